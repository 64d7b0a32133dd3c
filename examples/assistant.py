"""A voice assistant on the demo domain: handlers that act, a multi-turn dialogue, and spoken input.

    python examples/assistant.py                        # a scripted conversation as text
    python examples/assistant.py turn1.wav turn2.wav    # your recordings, one turn each, in one session

The assistant asks for what a request is missing ("set an alarm" -> "For what time?"), takes a bare answer
("seven thirty"), carries the last request over to a follow-up ("and tomorrow?"), confirms before sending a
message, and takes corrections ("no, London"). Each handler below acts and returns facts the response states.
"""
from __future__ import annotations

import sys
from pathlib import Path

from speech_intent import SpeechIntentPipeline
from speech_intent.demo_model import default_intent_model, demo_domain_path
from speech_intent.dialogue import Assistant

SCRIPT = [
    "set an alarm",
    "seven thirty",
    "what's the weather in Chicago",
    "and tomorrow?",
    "no, London",
    "send a message to Anna",
    "I'm running late",
    "yes",
]


def build(audio: bool) -> Assistant:
    # text turns need only the intent model; audio turns need the whole pipeline (Whisper + the intent model)
    pipeline = SpeechIntentPipeline.default(progress=False) if audio else default_intent_model(progress=False)
    assistant = Assistant(pipeline, demo_domain_path())
    alarms = []

    @assistant.handler("set_alarm")
    def set_alarm(action):
        alarms.append(action.slots)
        return {"count": len(alarms)}

    @assistant.handler("get_weather")
    def weather(action):
        return {"forecast": "sunny, 21 degrees" if action.slots.get("date") != "tomorrow" else "rain, 14 degrees"}

    @assistant.handler("send_message")
    def send(action):
        print(f"    [sending {action.slots['message']!r} to {action.slots['contact']}]")

    return assistant


def main(argv) -> int:
    files = [Path(a) for a in argv]
    assistant = build(audio=bool(files))
    for turn in files or SCRIPT:
        reply = assistant.respond(turn, session="demo")
        print(f"you:       {reply.text}")
        print(f"assistant: {reply.response}    ({reply.action})")
    state = assistant.state("demo")
    print(f"\n{state.turns} turns; last request: {state.last_intent} {state.last_slots}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
