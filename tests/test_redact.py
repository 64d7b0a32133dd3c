"""Redaction (``speech_intent.privacy``): personal slot values and detected personal data replaced by
typed placeholders in text, results, rows, result files, logs, ``predict --redact`` and ``serve --redact``."""
from __future__ import annotations

import json
import logging
import re

import pytest

from benchmarks.pii import score
from benchmarks.pii_set import build
from speech_intent.batch.writer import ResultWriter
from speech_intent.data import read_rasa
from speech_intent.data.domain import personal_slots, read_domain_slots
from speech_intent.errors import ConfigError, DataFormatError
from speech_intent.normalize import TextNormalizer
from speech_intent.privacy.pii import PiiDetector, PiiOptions
from speech_intent.privacy.redact import RedactionOptions, Redactor, demo_domain
from speech_intent.privacy.spoken import spoken_digits, written_view
from speech_intent.results import IntentPrediction, PipelineResult, Transcript
from speech_intent.slots import SlotSpan, normalize_example
from tests.serving import AUDIO

NORMALIZE = TextNormalizer()


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor.from_domain()


def _result(example, name: str = "a.wav") -> PipelineResult:
    """The result a perfect pipeline gives for a domain example (transcript as written, normalised text)."""
    norm = normalize_example(example, NORMALIZE)
    spans = list(norm.slots)
    return PipelineResult(name, Transcript(example.text, 0.9),
                          IntentPrediction(norm.text, example.intent, 0.9, [(example.intent, 0.9)],
                                           {s.name: s.value for s in spans}, spans))


def _consistent(prediction: IntentPrediction) -> None:
    for span in prediction.slot_spans:
        assert prediction.text[span.start:span.end] in (span.value, span.raw), span


# ------------------------------------------------------------------ the domain's personal slots
def test_the_demo_domain_marks_contact_and_message_personal(tmp_path):
    assert personal_slots(demo_domain()) == ("contact", "message")
    assert read_domain_slots(demo_domain())["contact"]["type"] == "text"
    plain = tmp_path / "plain.yaml"
    plain.write_text("nlu: []\n")
    assert personal_slots(plain) == ()
    bad = tmp_path / "bad.yaml"
    bad.write_text("slots:\n  contact: {personal: maybe}\n")
    with pytest.raises(DataFormatError, match="personal"):
        personal_slots(bad)


# ------------------------------------------------------------------ spoken forms
@pytest.mark.parametrize("words, digits", [
    ("four one five five five five zero one three two", "4155550132"),
    ("four hundred and fifteen five hundred and fifty five one hundred and thirty two", "415555132"),
    ("oh seven seven double oh nine", "077009"),
    ("plus four four twenty seven thousand nine hundred and forty six", "+442794" "6"),
    ("four thousand one hundred and eleven one thousand one hundred and eleven", "41111111"),
    ("twenty twenty four", "2024"),
])
def test_spoken_numbers_are_read_as_digits(words, digits):
    assert spoken_digits(words.split()) == digits


def test_the_written_view_maps_back_to_the_spoken_words():
    text = "mail john dot smith at gmail dot com or call four one five five five five zero one three two"
    view = written_view(text)
    assert view.text == "mail john.smith@gmail.com or call 4155550132"
    start = view.text.index("4155")
    assert text[slice(*view.source_span(start, start + 10))] == "four one five five five five zero one three two"
    assert written_view("meet me at the station dot com").text == "meet me at the station dot com"  # no known TLD


# ------------------------------------------------------------------ text
@pytest.mark.parametrize("text, expected", [
    ("call me on four one five five five five zero one three two please", "call me on <PHONE_NUMBER> please"),
    ("my email is john dot smith at gmail dot com", "my email is <EMAIL_ADDRESS>"),
    ("My email is John.Smith@gmail.com.", "My email is <EMAIL_ADDRESS>."),
    ("pay with 4111 1111 1111 1111 today", "pay with <CREDIT_CARD> today"),
    ("text sarah that i'm late", "text <PERSON> that i'm late"),
    ("set a timer for twenty five minutes", "set a timer for twenty five minutes"),
    ("wake me up at 6:30 on the 12th", "wake me up at 6:30 on the 12th"),
    ("the door code is 4 2 1 9", "the door code is 4 2 1 9"),
])
def test_text_redaction(redactor, text, expected):
    assert redactor(text) == expected


def test_a_card_number_failing_luhn_is_not_a_card_but_still_a_long_number(redactor):
    detector = PiiDetector(PiiOptions(long_numbers=0))
    assert detector.detect("card 4111 1111 1111 1112") == []
    assert [h.entity for h in PiiDetector().detect("card 4111 1111 1111 1112")] == ["CREDIT_CARD"]


def test_options_are_checked():
    with pytest.raises(ConfigError, match="unknown PII entity"):
        PiiOptions(entities=("SSN",))
    with pytest.raises(ConfigError, match="backend"):
        PiiOptions(backend="spacy")
    with pytest.raises(ConfigError, match="placeholder"):
        RedactionOptions(placeholder="<{kind}>")
    fixed = Redactor(RedactionOptions(placeholder="[redacted]"))
    assert fixed("call 415-555-0132") == "call [redacted]"
    only_slots = Redactor(RedactionOptions(personal_slots=("contact",), pii=PiiOptions(entities=())))
    assert only_slots("call 415-555-0132") == "call 415-555-0132"


# ------------------------------------------------------------------ results
def test_a_result_is_redacted_consistently_and_the_rest_kept(redactor):
    transcript = "Text John that the game starts at 7, and call me at 6 on 415-555-0132."
    text = NORMALIZE(transcript)
    contact, message, time = text.index("john"), text.index("the game"), text.index("six")
    spans = [SlotSpan("contact", contact, contact + 4, "john"),
             SlotSpan("message", message, text.index(" and call"), text[message:text.index(" and call")]),
             SlotSpan("time", time, time + 3, "6:00", raw="six")]
    result = PipelineResult("a.wav", Transcript(transcript, 0.8),
                            IntentPrediction(text, "send_message", 0.7, [("send_message", 0.7)],
                                             {"contact": "john", "message": spans[1].value, "time": "6:00"}, spans))
    out = redactor(result)
    assert out.transcript == "Text <contact> that <message> and call me at 6 on <PHONE_NUMBER>."
    assert out.text == "text <contact> that <message> and call me at six on <PHONE_NUMBER>"
    assert out.slots == {"contact": "<contact>", "message": "<message>", "time": "6:00"}
    assert (out.intent, out.confidence, out.top_k) == ("send_message", 0.7, [("send_message", 0.7)])
    _consistent(out.prediction)
    assert out.slot_spans[2] == SlotSpan("time", out.text.index("six"), out.text.index("six") + 3, "6:00", "six")
    assert result.transcript == transcript and result.slots["contact"] == "john"  # a copy: the input is untouched
    row = redactor(result.to_dict())
    assert row == out.to_dict()
    assert redactor(row) == row  # redacting twice changes nothing (resumed files are redacted again)


def test_a_personal_value_the_transcript_does_not_show_as_written_leaves_no_raw_transcript(redactor):
    text = "text mom that the code is one two three"
    start = text.index("the code")
    spans = [SlotSpan("contact", 5, 8, "mom"), SlotSpan("message", start, len(text), text[start:])]
    result = PipelineResult("b.wav", Transcript("Text Mom: the-code-is 1-2-3", 0.8),
                            IntentPrediction(text, "send_message", 0.9, slots={"contact": "mom", "message": text[start:]},
                                             slot_spans=spans))
    out = redactor(result)
    assert "code" not in out.transcript and "mom" not in out.transcript.lower()
    _consistent(out.prediction)


def test_no_raw_personal_slot_value_in_the_redacted_demo_domain(redactor):
    examples = [e for e in read_rasa(demo_domain()) if any(s.name in redactor.personal for s in e.slots)]
    assert len(examples) > 50
    leaked = []
    for example in examples:
        result = _result(example)
        out = json.dumps(redactor(result).to_dict())
        _consistent(redactor(result).prediction)
        for span in result.slot_spans:
            if span.name in redactor.personal:
                pattern = r"(?<![\w<])" + r"\W+".join(map(re.escape, span.value.split())) + r"(?![\w>])"
                if re.search(pattern, out, re.IGNORECASE):
                    leaked.append((example.text, span.value))
    assert leaked == []


# ------------------------------------------------------------------ the detector on the generated set
def test_detector_recall_on_the_generated_set():
    result = score(build(seed=3, per_entity=60), PiiDetector())["entities"]
    for entity in ("PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD"):
        assert result[entity]["recall"] >= 0.95, (entity, result[entity])
        assert result[entity]["precision"] >= 0.9, (entity, result[entity])


# ------------------------------------------------------------------ files and logs
def test_a_redacted_result_file_never_holds_the_raw_values(redactor, tmp_path):
    example = next(e for e in read_rasa(demo_domain()) if e.text.startswith("text John that"))
    raw = _result(example, str(tmp_path / "x.wav"))
    (tmp_path / "x.wav").write_bytes(b"x")
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"out.{fmt}"
        writer = ResultWriter(str(out))
        writer.write(raw)  # a run without redaction left a raw row
        writer.close()
        assert "John" in out.read_text()
        resumed = ResultWriter(str(out), redact=redactor.row)
        assert resumed.pending([str(tmp_path / "x.wav"), str(tmp_path / "y.wav")]) == [str(tmp_path / "y.wav")]
        resumed.write(PipelineResult(str(tmp_path / "y.wav"), Transcript("call me at 415 555 0132", 0.9)))
        resumed.close()
        content = out.read_text()
        assert "john" not in content.lower() and "on my way" not in content and "0132" not in content, content
        assert "<contact>" in content and "<PHONE_NUMBER>" in content
        assert ResultWriter(str(out), redact=redactor.row).is_done(str(tmp_path / "x.wav"))  # still resumable


def test_the_log_filter_redacts_messages_and_tracebacks(redactor, caplog):
    log = logging.getLogger("speech_intent.test_redact")
    handler = logging.Handler()
    records = []
    handler.emit = lambda record: records.append(logging.Formatter().format(record))
    handler.addFilter(redactor.log_filter())
    log.addHandler(handler)
    try:
        log.warning("heard %r", "call me on 415 555 0132")
        try:
            raise ValueError("bad john.smith@gmail.com")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    assert "<PHONE_NUMBER>" in records[0] and "0132" not in records[0]
    assert "<EMAIL_ADDRESS>" in records[1] and "gmail" not in records[1]


# ------------------------------------------------------------------ the command line and the service
@pytest.mark.slow
def test_cli_predict_redact_with_the_demo_model(tmp_path):
    from speech_intent.cli import main

    files = [str(AUDIO / "020_send_message.wav"), str(AUDIO / "021_send_message.wav")]
    raw, redacted = tmp_path / "raw.jsonl", tmp_path / "redacted.jsonl"
    assert main(["predict", *files, "-o", str(raw), "-q", "--device", "cpu"]) == 0
    assert main(["predict", *files, "-o", str(redacted), "-q", "--device", "cpu", "--redact"]) == 0
    raw_rows = [json.loads(line) for line in raw.read_text().splitlines()]
    rows = [json.loads(line) for line in redacted.read_text().splitlines()]
    assert re.search(r"maria|laura", raw.read_text(), re.IGNORECASE)  # what would leak without --redact
    assert not re.search(r"maria|laura", redacted.read_text(), re.IGNORECASE)
    assert [r["intent"] for r in rows] == [r["intent"] for r in raw_rows]
    assert all("<contact>" in r["transcript"] or "<PERSON>" in r["transcript"] for r in rows), rows
    for row in rows:
        for span in row["slot_spans"]:
            assert row["text"][span["start"]:span["end"]] == span["value"]
    assert main(["predict", *files, "--personal-slot", "contact"]) == 1  # needs --redact


@pytest.mark.slow
def test_serve_redact_answers_without_personal_data(tmp_path):
    import httpx

    from tests.serving import serve

    with serve(None, tmp_path / "server.log", "--redact") as server:
        text = "text Maria that I'm running late and call me on four one five five five five zero one three two"
        answer = httpx.post(server.url + "/v1/classify", json={"texts": [text]}, timeout=60).json()
        prediction = answer["predictions"][0]
        assert not re.search(r"maria|running late|four one five", json.dumps(prediction), re.IGNORECASE), prediction
        assert prediction["intent"] == "send_message" and "<PHONE_NUMBER>" in prediction["text"]
        with (AUDIO / "020_send_message.wav").open("rb") as handle:
            rows = httpx.post(server.url + "/v1/predict", files=[("files", ("020.wav", handle.read(), "audio/wav"))],
                              timeout=120).json()["results"]
        assert rows[0]["intent"] == "send_message" and not re.search(r"maria", json.dumps(rows), re.IGNORECASE), rows
        with (AUDIO / "021_send_message.wav").open("rb") as handle:
            verbose = httpx.post(server.url + "/v1/audio/transcriptions", data={"response_format": "verbose_json"},
                                 files={"file": ("021.wav", handle.read(), "audio/wav")}, timeout=120).json()
        assert not re.search(r"laura", json.dumps(verbose), re.IGNORECASE), verbose
    assert not re.search(r"maria|laura", (tmp_path / "server.log").read_text(), re.IGNORECASE)


def test_detection_never_connects_anywhere(monkeypatch):
    import socket

    from speech_intent.privacy import spoken

    spoken._tld_extract.cache_clear()  # the suffix list is loaded afresh, inside the guard

    def refuse(*args, **kwargs):
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)  # a name looked up is a connection about to be made
    hits = PiiDetector().detect("mail anna dot lee at example dot org or call 020 7946 0958")
    assert [h.entity for h in hits] == ["EMAIL_ADDRESS", "PHONE_NUMBER"]


@pytest.mark.slow
def test_the_presidio_backend_finds_the_spoken_forms_too():
    pytest.importorskip("presidio_analyzer")
    detector = PiiDetector(PiiOptions(backend="presidio", entities=("PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD")))
    text = ("call four one five five five five zero one three two, mail john dot smith at gmail dot com, "
            "card four one one one one one one one one one one one one one one one")
    assert [h.entity for h in detector.detect(text)] == ["PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD"]


def test_a_row_that_cannot_be_redacted_is_withheld_not_passed_on(redactor):
    row = {"path": "c.wav", "transcript": 12345, "text": "call 415 555 0132", "slots": {"contact": "bob"},
           "slot_spans": [], "intent": "call_contact", "error": None}
    out = redactor(row)
    assert out["transcript"] == out["text"] == "<REDACTED>" and out["slots"] == {"contact": "<REDACTED>"}
    assert out["intent"] == "call_contact"


SAID = "Call Anna on 415 555 0132 or mail anna dot lee at example dot org"


class _Talkative:
    """The tiny pipeline, but every input is heard as :data:`SAID` with ``contact`` = Anna (real app, fake words)."""

    def __init__(self, pipe) -> None:
        self._pipe = pipe

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def _prediction(self) -> IntentPrediction:
        text = NORMALIZE(SAID)
        return IntentPrediction(text, "call_contact", 0.9, [("call_contact", 0.9)], {"contact": "anna"},
                                [SlotSpan("contact", 5, 9, "anna")])

    def recognise(self, items, names=None, batch_size=8):
        names = list(names or [f"<array #{i}>" for i in range(len(items))])
        return [PipelineResult(name, Transcript(SAID, 0.9, 1.0), self._prediction()) for name in names]

    def intent(self, texts, top_k=3):
        return [self._prediction() for _ in texts]


def test_the_service_redacts_every_answer(tiny_pipe):
    """``ServeOptions(redact=...)`` (``serve --redact``) through the real app: /v1/predict rows, /v1/classify,
    the transcriptions and the stream's partials and finals hold placeholders, never the words said."""
    import threading

    from fastapi.testclient import TestClient

    from speech_intent.serve import ServeOptions, create_app
    from tests.serving import LOCAL, STREAM, pcm16, wav_bytes, with_silences

    raw = re.compile(r"anna|0132|example", re.IGNORECASE)
    config = ServeOptions(redact=RedactionOptions(personal_slots=("contact",)), partial_interval=0.5)
    audio, _ = with_silences(["001_set_alarm.wav"], lead=0.5, tail=1.0)
    answers: dict = {}

    def talk() -> None:
        with TestClient(create_app(_Talkative(tiny_pipe), config), base_url=LOCAL) as client:
            answers["predict"] = client.post("/v1/predict", files=[("files", ("a.wav", wav_bytes(audio), "audio/wav"))]).json()
            answers["classify"] = client.post("/v1/classify", json={"texts": [SAID]}).json()
            answers["verbose"] = client.post("/v1/audio/transcriptions", data={"response_format": "verbose_json"},
                                             files={"file": ("a.wav", wav_bytes(audio), "audio/wav")}).json()
            with client.websocket_connect(STREAM) as ws:
                assert ws.receive_json()["type"] == "ready"
                data = pcm16(audio)
                for start in range(0, len(data), 3200):
                    ws.send_bytes(data[start:start + 3200])
                ws.send_text(json.dumps({"type": "end"}))
                events = []
                while not events or events[-1]["type"] != "end":
                    events.append(ws.receive_json())
                answers["stream"] = events

    talker = threading.Thread(target=talk, daemon=True)
    talker.start()
    talker.join(120)
    row = answers["predict"]["results"][0]
    assert row["transcript"] == "Call <contact> on <PHONE_NUMBER> or mail <EMAIL_ADDRESS>"
    assert row["slots"] == {"contact": "<contact>"} and row["intent"] == "call_contact"
    assert answers["classify"]["predictions"][0]["slots"] == {"contact": "<contact>"}
    finals = [e for e in answers["stream"] if e["type"] == "final"]
    assert finals and all("<PHONE_NUMBER>" in e["transcript"] for e in finals), answers["stream"]
    for name, answer in answers.items():
        assert not raw.search(json.dumps(answer)), (name, answer)
