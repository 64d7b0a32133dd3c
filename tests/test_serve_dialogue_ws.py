"""The spoken conversation WebSocket ``/v1/dialogue/{session}/stream`` (``speech_intent/serve/dialogue_ws.py``):
in-process (the table NLU, a slow stand-in voice: the event order, barge-in, bad input, the guards) and against a
real ``speech-intent serve --speak`` process with the default pipeline: a recorded command asks for its missing
slot, the spoken answer completes it, each reply heard as WAV audio."""
from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
import soundfile as sf

from speech_intent.pipeline import SpeechIntentPipeline
from tests.serving import LOCAL, chunks, pcm16, with_silences

from .test_dialogue import TableNLU

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

WS = "ws://127.0.0.1/v1/dialogue/{}/stream"


class SlowVoice:
    """A stand-in synthesiser: 0.4 s of silence per sentence, taking ``delay`` seconds to make; what it said."""

    sample_rate = 16000

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.said = delay, []

    def synthesize(self, text):
        time.sleep(self.delay)
        self.said.append(text)
        return np.zeros(6400, np.float32), 16000


@pytest.fixture()
def app(tiny_pipe):
    from speech_intent.serve import create_app

    return create_app(SpeechIntentPipeline(tiny_pipe.asr, TableNLU()))  # tiny Whisper for audio, the table for text


def _client(app, voice=None):
    from fastapi.testclient import TestClient

    from speech_intent.demo_model import demo_domain_path
    from speech_intent.dialogue import Assistant

    if voice is not None:
        app.state.assistant = Assistant(app.state.service.pipeline, demo_domain_path(), synthesizer=voice)
    return TestClient(app, base_url=LOCAL)


def _until(ws, kind: str, limit: int = 50) -> list:
    """The events up to and including the first of type ``kind``."""
    seen = []
    for _ in range(limit):
        seen.append(ws.receive_json())
        if seen[-1]["type"] == kind:
            return seen
    raise AssertionError(f"no {kind!r} in {[e['type'] for e in seen]}")


def test_text_turns_answer_in_order_with_audio_per_sentence(app):
    voice = SlowVoice()
    with _client(app, voice) as client, client.websocket_connect(WS.format("alice")) as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["session"] == "alice" and ready["speaks"] is True
        ws.send_json({"type": "text", "text": "set an alarm"})
        events = _until(ws, "audio_end")
        assert [e["type"] for e in events] == ["response", "audio", "audio_end"]
        response, audio, end = events
        assert response["text"] == "For what time?" and response["action"] == "utter_ask_set_alarm_time"
        assert response["state"]["requested_slot"] == "time" and response["sentences"] == 1
        samples, rate = sf.read(io.BytesIO(base64.b64decode(audio["data"])))
        assert (rate, len(samples), audio["text"]) == (16000, 6400, "For what time?") and audio["duration_s"] == 0.4
        assert end == {"type": "audio_end", "reply": 0, "sent": 1, "interrupted": False}
        ws.send_json({"type": "text", "text": "seven thirty"})
        done = _until(ws, "audio_end")
        assert done[0]["text"] == "Alarm set for seven thirty." and done[0]["reply"] == 1
        assert done[0]["state"]["active_intent"] is None
        ws.send_json({"type": "text", "text": "tell me a joke"})  # not understood: two sentences, two audio events
        unsure = _until(ws, "audio_end")
        assert [e["type"] for e in unsure] == ["response", "audio", "audio", "audio_end"]
        assert [e["index"] for e in unsure[1:3]] == [0, 1] and unsure[0]["sentences"] == 2
    assert client.app.state.assistant.state("alice").turns == 3  # the HTTP route's assistant: the same sessions


def test_barge_in_drops_the_rest_of_the_reply(app):
    voice = SlowVoice(delay=0.6)
    with _client(app, voice) as client, client.websocket_connect(WS.format("bob")) as ws:
        ws.receive_json()
        ws.send_json({"type": "text", "text": "tell me a joke"})  # "Sorry, I didn't get that. Could you say it again?"
        assert ws.receive_json()["sentences"] == 2
        assert ws.receive_json()["type"] == "audio"  # the first sentence; the second is being made
        ws.send_json({"type": "barge_in"})
        rest = _until(ws, "audio_end")
        assert rest[0] == {"type": "interrupted", "reply": 0, "pending": True}
        assert rest[-1] == {"type": "audio_end", "reply": 0, "sent": 1, "interrupted": True}
        assert [e["type"] for e in rest] == ["interrupted", "audio_end"]  # the second sentence was never sent
        ws.send_json({"type": "barge_in"})  # nothing left to drop
        assert ws.receive_json() == {"type": "interrupted", "reply": 0, "pending": False}
        ws.send_json({"type": "text", "text": "set a timer"})  # the conversation goes on
        assert ws.receive_json()["text"] in ("For how long?", "How long should the timer run?")


def test_bad_input_is_an_error_event_and_the_socket_stays_usable(app):
    from starlette.websockets import WebSocketDisconnect

    with _client(app) as client:
        with client.websocket_connect(WS.format("carol")) as ws:
            assert ws.receive_json()["speaks"] is False  # no --speak, no synthesiser: text only
            for bad in ("not json", json.dumps({"type": "text", "text": ""}), json.dumps({"type": "text"}),
                        json.dumps({"type": "dance"}), json.dumps({"type": "text", "text": "x" * 5000}),
                        json.dumps({"revisions": True})):
                ws.send_text(bad)
                event = ws.receive_json()
                assert event["type"] == "error" and event["message"], bad
            ws.send_bytes(b"\x01")  # half a sample: kept until its other byte
            ws.send_json({"type": "end"})
            assert ws.receive_json() == {"type": "end"}
            ws.send_json({"type": "text", "text": "call mom"})
            reply = ws.receive_json()
            assert reply["type"] == "response" and reply["action"] == "confirm_call_contact" and reply["sentences"] == 0
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect(WS.format("bad%20id")) as ws:
                ws.receive_json()
        assert refused.value.code == 1008
        with pytest.raises(WebSocketDisconnect) as foreign:
            with client.websocket_connect(WS.format("dave"), headers={"origin": "http://evil.example"}) as ws:
                ws.receive_json()
        assert foreign.value.code == 1008


def test_a_keyed_service_needs_the_key(tiny_pipe):
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from speech_intent.serve import ServeOptions, create_app

    app = create_app(SpeechIntentPipeline(tiny_pipe.asr, TableNLU()), ServeOptions(api_key="secret-key-1"))
    with TestClient(app, base_url=LOCAL) as client:
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect(WS.format("erin")) as ws:
                ws.receive_json()
        assert refused.value.code == 1008
        with client.websocket_connect(WS.format("erin") + "?api_key=secret-key-1") as ws:
            assert ws.receive_json()["type"] == "ready"


# ---------------------------------------------------------------------------- a real server, the default pipeline
@pytest.fixture(scope="module")
def speaking_server(tmp_path_factory):
    pytest.importorskip("uvicorn")
    from tests.serving import serve

    log = tmp_path_factory.mktemp("dialogue-ws") / "server.log"
    with serve(None, log, "--speak", "--threads", "1", "--partial-interval", "0.5") as running:
        yield running


def _speak_into(ws, audio: np.ndarray, rate: int, seed: int) -> None:
    for piece in chunks(pcm16(audio), seed=seed, low=640, high=6400):
        ws.send(piece)


@pytest.mark.slow
def test_a_spoken_conversation_with_a_real_server(speaking_server):
    """009 ("Is it going to snow this weekend?") lacks the city: the assistant asks; "London." spoken by
    hibari (24 kHz, the stream's configured rate) answers it; each reply comes as WAV audio."""
    connect = pytest.importorskip("websockets.sync.client", reason="websockets (test extra) is not installed").connect
    from speech_intent.synthesis.speaker import ResponseSynthesizer

    question, _ = with_silences(["009_get_weather.wav"], lead=0.5, tail=1.5)
    with connect(speaking_server.ws_url + "/v1/dialogue/web-test/stream", open_timeout=20, max_size=None) as ws:
        receive = lambda: json.loads(ws.recv(timeout=60))  # noqa: E731
        assert receive()["type"] == "ready"
        _speak_into(ws, question, 16000, seed=1)
        events = []
        while not events or events[-1]["type"] != "audio_end":
            events.append(receive())
        kinds = [e["type"] for e in events]
        assert kinds[0] == "speech_start" and "final" in kinds, kinds
        final = kinds.index("final")
        assert set(kinds[1:final]) <= {"partial"} and kinds[final + 1:] == ["response", "audio", "audio_end"], kinds
        assert "snow" in events[final]["transcript"].lower() and events[final]["intent"] == "get_weather"
        response, audio = events[final + 1], events[final + 2]
        assert response["action"] == "utter_ask_get_weather_city" and response["state"]["requested_slot"] == "city"
        assert response["text"] in ("For which city?", "Which city do you mean?")
        spoken, rate = sf.read(io.BytesIO(base64.b64decode(audio["data"])))
        assert rate == 24000 and len(spoken) / rate > 0.4 and np.abs(spoken).max() > 0.05  # speech, not silence

        answer, answer_rate = ResponseSynthesizer().synthesize("London.")
        ws.send(json.dumps({"type": "end"}))  # a new stream at hibari's rate
        while receive()["type"] != "end":
            pass
        ws.send(json.dumps({"sample_rate": answer_rate}))
        assert receive()["sample_rate"] == answer_rate
        padded = np.concatenate([np.zeros(answer_rate // 2, np.float32), answer, np.zeros(answer_rate * 3 // 2, np.float32)])
        _speak_into(ws, padded, answer_rate, seed=2)
        events = []
        while not events or events[-1]["type"] != "audio_end":
            events.append(receive())
        kinds = [e["type"] for e in events]
        final = kinds.index("final")
        assert "london" in events[final]["transcript"].lower(), events[final]
        response = events[final + 1]
        assert response["type"] == "response" and response["action"] == "get_weather", response
        assert "london" in response["text"].lower() and response["state"]["requested_slot"] is None
        assert kinds[-2:] == ["audio", "audio_end"] and events[-1]["interrupted"] is False


def test_a_redacting_service_answers_without_the_personal_value(tiny_pipe):
    """``serve --redact``: the turn is redacted before the assistant sees it, so neither the response event's
    text nor its state carries the contact."""
    from fastapi.testclient import TestClient

    from speech_intent.privacy.pii import PiiOptions
    from speech_intent.privacy.redact import RedactionOptions
    from speech_intent.serve import ServeOptions, create_app

    config = ServeOptions(redact=RedactionOptions(personal_slots=("contact",), pii=PiiOptions(entities=())))
    app = create_app(SpeechIntentPipeline(tiny_pipe.asr, TableNLU()), config)
    with TestClient(app, base_url=LOCAL) as client, client.websocket_connect(WS.format("frank")) as ws:
        ws.receive_json()
        ws.send_json({"type": "text", "text": "call mom"})
        reply = ws.receive_json()
        assert reply["action"] == "confirm_call_contact", reply
        assert "mom" not in json.dumps(reply).lower() and "<contact>" in reply["text"], reply


def test_serve_speak_flags_make_the_speaker_options():
    from speech_intent.cli import build_parser
    from speech_intent.cli.serve import config_from_args
    from speech_intent.errors import ConfigError
    from speech_intent.synthesis.speaker import SpeakerOptions

    def speak(*flags):
        return config_from_args(build_parser().parse_args(["serve", *flags])).speak

    assert speak() is None
    assert speak("--speak") == SpeakerOptions(backend="hibari")
    assert speak("--speak", "espeak", "--speak-voice", "en-gb", "--speak-speed", "1.5") == SpeakerOptions(
        backend="espeak", voice="en-gb", speed=1.5)
    with pytest.raises(ConfigError, match="speed"):
        speak("--speak", "--speak-speed", "3")


@pytest.mark.slow
def test_the_http_turn_of_a_speaking_server_has_audio(speaking_server):
    import httpx

    body = httpx.post(speaking_server.url + "/v1/dialogue/web-http", json={"text": "set a timer"}, timeout=60).json()
    assert body["response"] in ("For how long?", "How long should the timer run?"), body
    spoken, rate = sf.read(io.BytesIO(base64.b64decode(body["audio"])))
    assert rate == 24000 and len(spoken) / rate > 0.4 and np.abs(spoken).max() > 0.05
