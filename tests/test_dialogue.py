"""The dialogue policy, the Assistant and template responses on the demo domain, with a table NLU (what a
model would predict for each text) and, marked slow, the demo intent model on benchmark dialogues."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speech_intent.data.dialogue_domain import Domain, load_domain
from speech_intent.data.examples import DataFormatError
from speech_intent.demo_model import demo_domain_path
from speech_intent.dialogue import Assistant, DialogueState, PolicyOptions, is_affirm, is_deny
from speech_intent.errors import ConfigError
from speech_intent.responses.base import ResponseGenerator, ResponseRequest
from speech_intent.responses.templates import TemplateResponses, response_names
from speech_intent.results import IntentPrediction

from .strategies import texts

DOMAIN = load_domain(demo_domain_path())

#: text -> (intent, confidence, slots): what the demo model predicts (lower-cased, punctuation dropped).
TABLE: Dict[str, Tuple[Optional[str], float, Dict[str, str]]] = {
    "set an alarm": ("set_alarm", 1.0, {}),
    "seven thirty": ("set_alarm", 0.98, {"time": "seven thirty"}),
    "set an alarm for seven am": ("set_alarm", 1.0, {"time": "seven am"}),
    "no eight am": ("cancel", 0.99, {"time": "eight am"}),
    "actually make it eight": ("change_volume", 0.85, {"level": "eight"}),
    "whats the weather in chicago": ("get_weather", 1.0, {"city": "chicago"}),
    "and tomorrow": ("cancel", 0.45, {"date": "tomorrow"}),
    "what about london": ("navigate", 0.47, {"city": "london"}),
    "what time is it there": ("get_time", 0.99, {}),
    "send a message to anna": ("send_message", 1.0, {"contact": "anna"}),
    "im running late": ("get_time", 0.71, {}),
    "send a message": ("send_message", 1.0, {}),
    "anna": ("call_contact", 0.99, {"contact": "anna"}),
    "no to ben": ("cancel", 0.9, {"contact": "ben"}),
    "call mom": ("call_contact", 1.0, {"contact": "mom"}),
    "yes": ("cancel", 1.0, {}),
    "no": ("cancel", 1.0, {}),
    "cancel": ("cancel", 1.0, {}),
    "hmm": ("cancel", 0.5, {}),
    "tell me a joke": ("send_message", 0.75, {}),
    "book me a flight": ("navigate", 0.95, {}),
    "set a timer": ("set_timer", 1.0, {}),
    "turn on the lights in the kitchen": ("lights_on", 1.0, {"room": "kitchen"}),
    "cancel the alarm for tomorrow": ("cancel", 1.0, {"date": "tomorrow"}),
    "see you at eight": ("set_alarm", 0.97, {"time": "eight"}),
}


def _key(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


class TableNLU:
    """A stand-in intent stage: predictions from :data:`TABLE`, anything else not understood."""

    def __init__(self) -> None:
        self.calls: List[List[str]] = []

    def normalize(self, text: str) -> str:
        return _key(text)

    def __call__(self, batch, **options):
        batch = [batch] if isinstance(batch, str) else list(batch)
        self.calls.append(batch)
        out = []
        for text in batch:
            intent, confidence, slots = TABLE.get(_key(text), (None, 0.2, {}))
            out.append(IntentPrediction(_key(text), intent, confidence, slots=dict(slots)))
        return out


@pytest.fixture()
def assistant():
    bot = Assistant(TableNLU(), DOMAIN)
    bot.actions = []  # type: ignore[attr-defined]
    for intent in DOMAIN.intents:
        bot.add_handler(intent, lambda action, bot=bot: bot.actions.append((action.intent, action.slots)) or {})
    return bot


def talk(bot: Assistant, *turns: str, session: str = "s") -> List[Tuple[str, str]]:
    return [(t.action, t.response) for t in (bot.respond(turn, session=session) for turn in turns)]


def test_domain_reads_forms_responses_and_personal_slots():
    assert len(DOMAIN.intents) == 13
    assert DOMAIN.required_slots("send_message") == ("contact", "message")
    assert DOMAIN.confirm == {"send_message", "call_contact"}
    assert DOMAIN.slots["contact"].personal and DOMAIN.slots["contact"].from_text
    assert not DOMAIN.slots["time"].from_text
    assert DOMAIN.slots_of("get_weather") == {"city", "date"}
    for intent in DOMAIN.intents:  # every intent can be answered, every required slot asked for
        assert f"utter_{intent}" in DOMAIN.responses
        for slot in DOMAIN.required_slots(intent):
            assert any(name in DOMAIN.responses for name in response_names(f"utter_ask_{intent}_{slot}"))


def test_domain_errors_name_the_problem(tmp_path):
    bad = tmp_path / "d.yaml"
    bad.write_text("forms:\n  fly:\n    required_slots: [city]\n")
    with pytest.raises(DataFormatError, match="'fly' is not an intent"):
        load_domain(bad)
    bad.write_text("intents: [fly]\nresponses:\n  utter_fly: []\n")
    with pytest.raises(DataFormatError, match="utter_fly"):
        load_domain(bad)


def test_missing_slot_is_asked_and_a_bare_answer_fills_it(assistant):
    assert talk(assistant, "set an alarm") == [("utter_ask_set_alarm_time", "For what time?")]
    assert assistant.state("s").requested_slot == "time"
    assert talk(assistant, "seven thirty") == [("set_alarm", "Alarm set for seven thirty.")]
    assert assistant.actions == [("set_alarm", {"time": "seven thirty"})]
    assert assistant.state("s").active_intent is None


def test_free_text_answer_confirmation_and_correction(assistant):
    replies = talk(assistant, "send a message", "anna", "I'm running late", "no, to Ben", "yes")
    assert [a for a, _ in replies] == ["utter_ask_send_message_contact", "utter_ask_send_message_message",
                                       "confirm_send_message", "confirm_send_message", "send_message"]
    assert replies[3][1] == 'Send "im running late" to Ben?'  # values as the user wrote them ("ben" by the NLU)
    assert assistant.actions == [("send_message", {"contact": "Ben", "message": "im running late"})]


def test_a_message_body_is_taken_as_said_even_when_it_sounds_like_a_request(assistant):
    assert talk(assistant, "send a message to anna", "see you at eight")[1] == (
        "confirm_send_message", 'Send "see you at eight" to anna?')
    assert DOMAIN.free_text == {"message"}


def test_deny_at_confirmation_cancels_without_acting(assistant):
    assert talk(assistant, "call mom", "no") == [("confirm_call_contact", "Call mom?"), ("cancel", "OK, cancelled.")]
    assert assistant.actions == []
    assert assistant.state("s").active_intent is None


def test_follow_ups_carry_the_last_request_over(assistant):
    talk(assistant, "what's the weather in Chicago", "and tomorrow?", "what about London", "what time is it there")
    assert assistant.actions == [("get_weather", {"city": "Chicago"}),
                                 ("get_weather", {"city": "Chicago", "date": "tomorrow"}),
                                 ("get_weather", {"city": "London", "date": "tomorrow"}),
                                 ("get_time", {"city": "London"})]


def test_corrections_run_the_last_request_again(assistant):
    talk(assistant, "set an alarm for seven am", "no, eight am", "actually make it eight")
    assert [slots["time"] for _, slots in assistant.actions] == ["seven am", "eight am", "eight"]


def test_cancel_drops_the_request_and_a_lone_cancel_acts(assistant):
    assert talk(assistant, "set a timer", "cancel")[1][0] == "cancel"
    assert assistant.actions == []
    talk(assistant, "cancel the alarm for tomorrow", session="other")
    assert assistant.actions == [("cancel", {"date": "tomorrow"})]


def test_low_confidence_and_out_of_scope_never_guess(assistant):
    assert talk(assistant, "blorp")[0][0] == "fallback"
    assert talk(assistant, "tell me a joke")[0][0] == "out_of_scope"
    assert talk(assistant, "book me a flight")[0][0] == "out_of_scope"
    assert assistant.actions == []
    # a question pending: an unclear answer repeats it, at most max_reasks times, then gives up
    assert [a for a, _ in talk(assistant, "set an alarm", "hmm", "hmm", "hmm", session="r")] == [
        "utter_ask_set_alarm_time", "utter_ask_set_alarm_time", "utter_ask_set_alarm_time", "fallback"]
    assert assistant.state("r").active_intent is None


def test_a_new_request_interrupts_a_question(assistant):
    talk(assistant, "set an alarm", "turn on the lights in the kitchen")
    assert assistant.actions == [("lights_on", {"room": "kitchen"})]


def test_handlers_facts_errors_and_decorator():
    bot = Assistant(TableNLU(), DOMAIN)

    @bot.handler("get_weather")
    def weather(action):
        return {"forecast": f"sunny in {action.slots['city']}"}

    @bot.handler("lights_on")
    def broken(action):
        raise RuntimeError("no bridge")

    turn = bot.respond("what's the weather in Chicago")
    assert turn.response == "The weather in Chicago: sunny in Chicago."
    assert turn.facts == {"forecast": "sunny in Chicago"}
    assert turn.result.slots == {"city": "chicago"}  # the NLU's own result is kept as it was
    failed = bot.respond("turn on the lights in the kitchen")
    assert failed.action == "error" and "no bridge" in failed.error
    assert failed.response == "Sorry, something went wrong doing that."
    with pytest.raises(ConfigError, match="no intent 'fly'"):
        bot.add_handler("fly", weather)


def test_state_round_trips_and_bad_state_is_a_config_error(assistant):
    talk(assistant, "send a message to anna")
    state = assistant.state("s")
    again = DialogueState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state and again.requested_slot == "message"
    assert state.history[-1]["response"] == "What should the message say?"
    with pytest.raises(ConfigError, match="unknown dialogue state keys: bogus"):
        DialogueState.from_dict({"bogus": 1})


def test_batched_turns_one_nlu_call_and_sessions_independent():
    nlu = TableNLU()
    bot = Assistant(nlu, DOMAIN)
    turns = bot.respond_batch(["set an alarm", "set a timer", "seven thirty"], ["a", "b", "a"])
    assert len(nlu.calls) == 1
    assert [t.action for t in turns] == ["utter_ask_set_alarm_time", "utter_ask_set_timer_duration", "set_alarm"]
    assert bot.state("b").requested_slot == "duration" and bot.state("a").active_intent is None
    with pytest.raises(ConfigError, match="2 turns for 1 sessions"):
        bot.respond_batch(["a", "b"], ["x"])


def test_concurrent_sessions_are_safe():
    bot = Assistant(TableNLU(), DOMAIN)
    errors: List[BaseException] = []

    def dialogue(i: int) -> None:
        try:
            for _ in range(5):
                assert bot.respond("set an alarm", session=f"t{i}").action == "utter_ask_set_alarm_time"
                assert bot.respond("seven thirty", session=f"t{i}").action == "set_alarm"
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=dialogue, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(bot.state(f"t{i}").turns == 10 for i in range(6))


class Echo:
    """A ResponseGenerator of another kind: says the act."""

    def generate(self, requests):
        return [f"<{r.act}|{','.join(sorted(r.slots))}>" for r in requests]


def test_a_generator_and_a_synthesizer_plug_in():
    import numpy as np

    class Voice:
        sampling_rate = 8000

        def synthesize(self, text):
            return np.zeros(len(text), np.float32)

    assert isinstance(Echo(), ResponseGenerator)
    bot = Assistant(TableNLU(), DOMAIN, responses=Echo(), synthesizer=Voice())
    turn = bot.respond("what's the weather in Chicago")
    assert turn.response == "<get_weather|city>"
    assert turn.sample_rate == 8000 and turn.audio.shape == (len(turn.response),)
    assert Assistant(TableNLU(), DOMAIN).respond("set a timer").audio is None

    class Sentences:
        def synthesize(self, text):
            return ((np.ones(n, np.float32), 22050) for n in (3, 4))

    spoken = Assistant(TableNLU(), DOMAIN, synthesizer=Sentences()).respond("set a timer")
    assert spoken.sample_rate == 22050 and spoken.audio.shape == (7,)


def test_templates_pick_the_variant_stating_most_values_and_seeded_choice():
    domain = Domain(responses={"utter_x": ("X {a}.", "X {a} {b}.", "X."), "utter_default": ("?",)})
    templates = TemplateResponses(domain)
    assert templates.generate([ResponseRequest("x", {"a": "1"}), ResponseRequest("x", {"a": "1", "b": "2"}),
                               ResponseRequest("x"), ResponseRequest("nothing")]) == ["X 1.", "X 1 2.", "X.", "?"]
    many = TemplateResponses({"utter_y": [f"v{i}" for i in range(10)]}, seed=3)
    again = TemplateResponses({"utter_y": [f"v{i}" for i in range(10)]}, seed=3)
    picks = many.generate([ResponseRequest("y")] * 20)
    assert picks == again.generate([ResponseRequest("y")] * 20) and len(set(picks)) > 1
    assert response_names("utter_ask_send_message_contact")[-1] == "utter_ask_contact"
    assert response_names("fallback") == ("utter_default",)


def test_yes_no_words():
    assert is_affirm("yes please") and is_affirm("go ahead") and not is_affirm("yes no")
    assert is_deny("no to ben") and not is_deny("notebook")
    with pytest.raises(ConfigError):
        PolicyOptions(min_confidence=2.0)


_TURNS = st.one_of(st.sampled_from(sorted(TABLE)), texts())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_TURNS, st.sampled_from(["a", "b"])), min_size=1, max_size=12))
def test_any_turn_order_never_crashes_and_state_stays_serialisable(turns):
    bot = Assistant(TableNLU(), DOMAIN)
    for text, session in turns:
        turn = bot.respond(text, session=session)
        assert isinstance(turn.response, str) and turn.response
        state = turn.state
        assert DialogueState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
        if state.requested_slot is not None or state.confirming:
            assert state.active_intent is not None
        if state.confirming:
            assert set(DOMAIN.required_slots(state.active_intent)) <= set(state.slots)


_WORDS = ["yes", "no", "no, London", "actually make it eight", "and tomorrow?", "what about Paris", "cancel", "",
          "Anna", "seven thirty", "tell her hi"]
_PREDICTIONS = st.builds(
    IntentPrediction,
    text=st.one_of(st.sampled_from(_WORDS), texts()),
    intent=st.sampled_from([*DOMAIN.intents, None]),
    confidence=st.floats(0.0, 1.0),
    slots=st.dictionaries(st.sampled_from([*DOMAIN.slots, "bogus"]), st.text(max_size=12), max_size=3),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PREDICTIONS, min_size=1, max_size=15))
def test_any_prediction_sequence_keeps_the_state_consistent(predictions):
    """Whatever the NLU says, turn after turn: an answer, a serialisable state, and an action only with every
    required slot of its intent filled."""
    acted = []
    bot = Assistant(TableNLU(), DOMAIN, handlers={i: (lambda a: acted.append(a) or {}) for i in DOMAIN.intents})
    for prediction in predictions:
        turn = bot.respond(prediction, session="p")
        assert turn.response
        assert DialogueState.from_dict(json.loads(json.dumps(turn.state.to_dict()))) == turn.state
    for action in acted:
        assert set(DOMAIN.required_slots(action.intent)) <= set(action.slots)
        assert all(value.strip() for value in action.slots.values())


@pytest.mark.slow
def test_demo_model_on_benchmark_dialogues():
    """The real demo intent model through the benchmark's runner: a few scripted dialogues succeed."""
    from benchmarks.dialogue import load_dialogues, run_dialogues
    from speech_intent.demo_model import default_intent_model

    wanted = {"alarm_missing_time", "message_missing_both", "weather_follow_up_date", "weather_correction_city",
              "call_confirm_no", "oos_joke"}
    scripts = [s for s in load_dialogues(Path("benchmarks/data/dialogues")) if s.name in wanted]
    bot = Assistant(default_intent_model(progress=False), DOMAIN)
    result = run_dialogues(bot, scripts, [s.turns for s in scripts], tag="test")
    assert result["dialogues"] == len(wanted)
    assert result["failed"] == []


@pytest.mark.slow
def test_example_assistant_runs_its_conversation():
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, str(repo / "examples" / "assistant.py")], capture_output=True, text=True,
                         timeout=600, cwd=repo)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "assistant: For what time?" in run.stdout
    assert "The weather in London tomorrow: rain, 14 degrees." in run.stdout
    assert "[sending \"I'm running late\" to Anna]" in run.stdout
