"""speech_intent.evaluate: metrics with known answers, manifests, reports, end to end (clean and with noise)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech_intent.data import SlotSpan
from speech_intent.evaluate import (
    EvaluationReport,
    ManifestError,
    ManifestItem,
    compute_report,
    evaluate_audio,
    is_audio_manifest,
    read_manifest,
    write_report,
)
from speech_intent.normalize import TextNormalizer
from speech_intent.results import IntentPrediction, PipelineResult, Transcript

from .compare import assert_transcripts_match
from .conftest import _ex

SHARED = Path(__file__).resolve().parents[2] / "shared"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pred(text: str, intent, **slots) -> IntentPrediction:
    """A prediction on normalised text, with spans located in it."""
    text = TextNormalizer()(text)
    spans = [SlotSpan(n, text.index(v), text.index(v) + len(v), v) for n, v in slots.items()]
    return IntentPrediction(text=text, intent=intent, confidence=0.9, slots=dict(slots), slot_spans=spans)


def _heard(path: str, transcript: str, text: str, intent, slots=None) -> PipelineResult:
    """An audio input's result: the ASR's ``transcript``, then ``intent`` and ``slots`` (no spans) on ``text``."""
    return PipelineResult(path, Transcript(transcript, 1.0),
                          IntentPrediction(text=text, intent=intent, confidence=0.9, slots=dict(slots or {})))


# ----------------------------------------------------------------------------- metrics
def test_intent_accuracy_macro_f1_and_confusion():
    gold = [_ex("a one", "a"), _ex("a two", "a"), _ex("b one", "b"), _ex("b two", "b")]
    preds = [_pred("a one", "a"), _pred("a two", "b"), _pred("b one", "b"), _pred("b two", "b")]
    report = compute_report(gold, preds)
    assert report.intent_accuracy == pytest.approx(0.75)
    # a: P 1, R .5 -> F1 2/3; b: P 2/3, R 1 -> F1 .8
    assert report.intent_macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    rows = {r.label: r for r in report.per_intent}
    assert rows["a"].recall == pytest.approx(0.5) and rows["b"].precision == pytest.approx(2 / 3)
    assert rows["a"].support == 2
    assert report.confusion_labels == ["a", "b"] and report.confusion == [[1, 1], [0, 2]]
    assert report.slot_mode is None and report.wer is None and report.oos_recall is None


def test_bio_slot_f1_through_normalisation_and_acceptance_ignores_extra_slots():
    gold = [
        _ex("wake me at 7:30 please", "alarm", time="7:30"),
        _ex("play jazz by Miles", "music", genre="jazz", artist="Miles"),
        _ex("play rock", "music", genre="rock"),
    ]
    preds = [
        _pred("wake me at 7:30 please", "alarm", time="seven thirty", extra="please"),  # right + 1 extra
        _pred("play jazz by Miles", "music", genre="jazz"),                             # misses artist
        _pred("play rock", "music", genre="play"),                                      # wrong span
    ]
    report = compute_report(gold, preds)
    assert report.slot_mode == "bio"
    # gold 4 entities, predicted 4, correct 2 (time, jazz)
    assert report.slot_precision == pytest.approx(0.5)
    assert report.slot_recall == pytest.approx(0.5)
    assert report.slot_f1 == pytest.approx(0.5)
    # only the first: "7:30" == "seven thirty" after normalisation; extra slot does not count against
    assert [item["accepted"] for item in report.items] == [True, False, False]
    assert report.command_acceptance == pytest.approx(1 / 3)


def test_acceptance_needs_the_right_intent_and_value_level_slots_for_audio():
    gold = [
        ManifestItem(Path("/x/1.wav"), "order", {"size": "large", "drink": "Latte"}, "a large latte"),
        ManifestItem(Path("/x/2.wav"), "order", {"drink": "12-ounce mocha"}, "a 12 ounce mocha"),
        ManifestItem(Path("/x/3.wav"), "order", {"drink": "tea"}, "tea"),
    ]
    preds = [
        _heard("/x/1.wav", "A large latte.", "a large latte", "order",
               slots={"size": "large", "drink": "latte", "milk": "oat"}),
        _heard("/x/2.wav", "a twelve ounce mocha", "a twelve ounce mocha", "cancel",
               slots={"drink": "twelve ounce mocha"}),
        PipelineResult("/x/3.wav", error="/x/3.wav: cannot decode audio"),
    ]
    report = compute_report(gold, preds)
    assert report.slot_mode == "value" and any("value-level" in n for n in report.notes)
    assert [i["accepted"] for i in report.items] == [True, False, False]  # 2: slots right, intent wrong
    assert report.n_errors == 1 and report.items[2]["intent"] is None
    # pairs: gold 4, predicted 4, matched 3
    assert report.slot_precision == pytest.approx(0.75) and report.slot_recall == pytest.approx(0.75)
    # WER after normalisation: 1 and 2 exact, 3 failed -> 1 deletion out of 8 reference words
    assert report.wer == pytest.approx(1 / 8)
    assert 0 < report.cer < report.wer


def test_wer_against_hand_computed_value():
    gold = [ManifestItem(Path("/a.wav"), "lights", {}, "Turn on the lights!")]
    preds = [_heard("/a.wav", "turn the light", "turn the light", "lights")]
    report = compute_report(gold, preds)
    assert report.wer == pytest.approx(0.5)  # one deletion + one substitution over four words
    assert report.slot_mode is None and report.command_acceptance == 1.0


def test_data_without_slot_labels_leaves_slot_scores_out():
    gold = [ManifestItem(Path("/a.wav"), "alarm", {}, "wake me at seven")]
    preds = [_heard("/a.wav", "wake me at seven", "wake me at seven", "alarm", {"time": "seven"})]
    report = compute_report(gold, preds)
    assert report.slot_mode is None and report.slot_f1 is None  # not a slot F1 of 0 against missing labels
    assert report.command_acceptance == 1.0 and any("no slot labels" in note for note in report.notes)


def test_out_of_scope_precision_and_recall():
    gold = [_ex("x", None), _ex("y", None), _ex("z", "a"), _ex("w", "a")]
    preds = [_pred("x", None), _pred("y", "a"), _pred("z", None), _pred("w", "a")]
    report = compute_report(gold, preds)
    assert report.oos_precision == pytest.approx(0.5) and report.oos_recall == pytest.approx(0.5)
    assert report.intent_accuracy == pytest.approx(0.5)
    assert "<none>" in report.confusion_labels and report.confusion_labels[-1] == "<none>"
    assert report.command_acceptance == pytest.approx(0.5)


def test_report_to_dict_is_json_and_table_prints():
    report = compute_report([_ex("play jazz", "music", genre="jazz")], [_pred("play jazz", "music")])
    data = json.loads(json.dumps(report.to_dict()))
    assert data["slot_f1"] == 0.0 and data["items"][0]["gold_slots"] == {"genre": "jazz"}
    assert "items" not in report.to_dict(items=False)
    table = report.format_table()
    assert "command acceptance" in table and "music" in table and "predicted no slots" in table


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="1 references but 0 predictions"):
        compute_report([_ex("a", "a")], [])


# --------------------------------------------------------------------------- manifests
@pytest.fixture()
def clips(tmp_path) -> Path:
    t = np.arange(16000) / 16000
    for i in range(3):
        sf.write(tmp_path / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t)).astype(np.float32), 16000)
    return tmp_path


def test_read_csv_manifest_resolves_paths_slots_and_text(clips):
    path = clips / "m.csv"
    path.write_text('file,intent,slots,text\n'
                    'c0.wav,order,"{""size"": ""large""}",a large one\n'
                    'c1.wav,,,\n')
    items = read_manifest(path)
    assert items[0] == ManifestItem((clips / "c0.wav").resolve(), "order", {"size": "large"}, "a large one", 2)
    assert items[1].intent is None and items[1].slots == {} and items[1].text is None
    assert is_audio_manifest(path)


def test_read_jsonl_manifest(clips):
    path = clips / "m.jsonl"
    path.write_text(json.dumps({"audio": "c1.wav", "intent": "a", "slots": {"x": "y"}}) + "\n\n"
                    + json.dumps({"path": str(clips / "c2.wav"), "intent": None, "text": "hi"}) + "\n")
    items = read_manifest(path)
    assert [i.audio.name for i in items] == ["c1.wav", "c2.wav"] and items[0].slots == {"x": "y"}
    assert items[1].intent is None and items[1].text == "hi" and items[1].line == 3


def test_read_labels_json(clips):
    path = clips / "labels.json"
    path.write_text(json.dumps({"c0.wav": {"intent": "orderDrink", "slots": {"size": "small"}},
                                "c2.wav": {"intent": "orderDrink", "slots": {}}}, indent=1))
    items = read_manifest(path)
    assert [i.audio.name for i in items] == ["c0.wav", "c2.wav"]
    assert items[0].slots == {"size": "small"} and items[0].text is None
    assert is_audio_manifest(path)


@pytest.mark.parametrize("name, content, match", [
    ("bad.csv", "file,text\nc0.wav,hi\n", r"bad\.csv: line 1: header .* 'intent'"),
    ("bad.csv", 'audio,intent,slots\nc0.wav,a,\nc1.wav,a,{not json\n', r"bad\.csv: line 3: slots is not valid JSON"),
    ("bad.csv", "audio,intent\nc0.wav,a\nnope.wav,a\n", r"bad\.csv: line 3: audio file not found: .*nope\.wav"),
    ("bad.jsonl", '{"audio": "c0.wav", "intent": "a"}\n{"audio": "c1.wav"\n', r"bad\.jsonl: line 2: invalid JSON"),
    ("bad.jsonl", '{"audio": "c0.wav", "intent": "a", "slots": {"n": 3}}\n', r"line 1: slot 'n': value must be"),
    ("bad.jsonl", '{"intent": "a"}\n', r"line 1: no audio column"),
    ("labels.json", '{\n "c0.wav": {"intent": "a"},\n "c1.wav": {"slots": {}}\n}\n',
     r"labels\.json: line 3: entry 'c1\.wav': missing 'intent'"),
    ("m.txt", "whatever", r"cannot tell the manifest format"),
])
def test_manifest_errors_name_file_and_line(clips, name, content, match):
    path = clips / name
    path.write_text(content)
    with pytest.raises(ManifestError, match=match):
        read_manifest(path)


def test_text_data_is_not_an_audio_manifest(tmp_path):
    path = tmp_path / "intents.csv"
    path.write_text("text,intent\nplay jazz,music\n")
    assert not is_audio_manifest(path)


# ----------------------------------------------------------------------------- reports
def _noisy_reports():
    gold = [ManifestItem(Path("/a.wav"), "x", {}, None), ManifestItem(Path("/b.wav"), "y", {}, None)]
    out = {}
    for snr, intents in ((None, ["x", "y"]), (6.0, ["y", "y"]), (12.0, ["x", "y"])):
        preds = [_heard(g.audio.as_posix(), "t", "t", i) for g, i in zip(gold, intents)]
        name = "clean" if snr is None else f"{snr:g}dB"
        out[name] = compute_report(gold, preds, condition=name, snr=snr)
    return out


def test_write_report_writes_json_and_pngs(tmp_path):
    reports = _noisy_reports()
    written = write_report(reports, tmp_path / "out", meta={"seed": 0})
    assert set(written) == {"report", "confusion", "acceptance_vs_snr"}
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert list(data["conditions"]) == ["clean", "6dB", "12dB"] and data["meta"] == {"seed": 0}
    assert [s["command_acceptance"] for s in data["summary"]] == [1.0, 0.5, 1.0]
    for name in ("confusion.png", "acceptance_vs_snr.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == PNG_MAGIC
    only = write_report(reports["clean"], tmp_path / "single")
    assert "acceptance_vs_snr" not in only and (tmp_path / "single" / "confusion.png").is_file()


# ------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_pipeline(tiny_wav2vec2_dir, tiny_bert_dir):
    from speech_intent import IntentClassifier, SpeechIntentPipeline, Wav2Vec2ASR

    return SpeechIntentPipeline(Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"),
                                IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu"))


def test_evaluate_audio_end_to_end_with_noise(tiny_pipeline, clips, tmp_path):
    (clips / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt not really")
    manifest = clips / "m.jsonl"
    rows = [{"audio": f"c{i}.wav", "intent": "play_music", "text": "play some music"} for i in range(3)]
    rows.append({"audio": "broken.wav", "intent": "set_alarm"})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    noise = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    reports = evaluate_audio(tiny_pipeline, read_manifest(manifest), noise=noise, snrs=[6, 18], seed=0, batch_size=2)
    assert list(reports) == ["clean", "6dB", "18dB"]
    for name, report in reports.items():
        assert isinstance(report, EvaluationReport) and report.n == 4 and report.n_errors == 1
        assert report.wer is not None and report.items[3]["error"] and "broken.wav" in report.items[3]["error"]
        assert [item["id"] for item in report.items] == [str((clips / n).resolve()) for n in
                                                         ("c0.wav", "c1.wav", "c2.wav", "broken.wav")]
    assert reports["6dB"].snr == 6.0 and reports["clean"].snr is None
    again = evaluate_audio(tiny_pipeline, manifest, noise=noise, snrs=[6], seed=0, include_clean=False)
    # the same noise draws (seed), another batch size: transcripts but for a near-tie flip (tests/compare.py)
    assert_transcripts_match([i["transcript"] for i in again["6dB"].items], [i["transcript"] for i in reports["6dB"].items])
    written = write_report(reports, tmp_path / "report")
    assert written["acceptance_vs_snr"].is_file() and json.loads(written["report"].read_text())["summary"]


@pytest.mark.slow
def test_default_pipeline_on_coffee_recordings(tmp_path):
    labels = SHARED / "data" / "coffee" / "dev" / "labels.json"
    if not labels.is_file():
        pytest.skip(f"shared coffee benchmark data not available ({labels} is missing)")
    from speech_intent import SpeechIntentPipeline

    items = read_manifest(labels)[:5]
    pipe = SpeechIntentPipeline.default(device="cpu", progress=False)
    noise = SHARED / "data" / "coffee" / "noise" / "kitchen.wav"
    reports = evaluate_audio(pipe, items, noise=noise if noise.is_file() else None,
                             snrs=[12] if noise.is_file() else None, batch_size=5)
    clean = reports["clean"]
    assert clean.n == 5 and clean.n_errors == 0 and clean.slot_mode == "value"
    assert all(item["transcript"] for item in clean.items)  # real speech is recognised
    assert write_report(reports, tmp_path)["report"].is_file()
