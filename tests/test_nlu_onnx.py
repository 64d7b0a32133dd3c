"""The ONNX Runtime forward pass of IntentClassifier: same predictions as torch, int8, export cache, CLI flag."""
from __future__ import annotations

import json
import shutil
import sys

import pytest
import soundfile as sf
import torch

from speech_intent.errors import ConfigError, ModelLoadError
from speech_intent.nlu import IntentClassifier, TrainingOptions, export_onnx, fine_tune
from speech_intent.nlu import onnx as nlu_onnx

from .compare import assert_rows_match
from .conftest import LABELS, _sine, _toy_data

pytest.importorskip("onnx", reason="the onnx runtime needs the onnx package (pip install 'speech-intent[onnx]')")
pytest.importorskip("onnxruntime", reason="the onnx runtime needs onnxruntime (pip install 'speech-intent[onnx]')")

TEXTS = ["play some jazz", "what is the weather like in new york city tomorrow morning", "hi", "",
         "wake me up at seven thirty on friday please and then play the beatles very loud", "paris",
         "put on bohemian rhapsody", "how is the weather in tokyo"]


@pytest.fixture(scope="module")
def joint_dir(tiny_bert_dir, tmp_path_factory):
    """A tiny joint model with a CRF trained on the toy domain (closed slot values: canonicalised)."""
    config = TrainingOptions(epochs=20, learning_rate=5e-3, head_learning_rate=2e-2, batch_size=16, seed=0,
                            early_stopping=0, slot_decoder="crf")
    out = tmp_path_factory.mktemp("joint-crf") / "m"
    fine_tune(_toy_data(), out, base=tiny_bert_dir, options=config, device="cpu", progress=False)
    return out


def _copy(src, tmp_path, name="model"):
    return shutil.copytree(src, tmp_path / name)


@pytest.mark.parametrize("joint", [True, False], ids=["joint-crf", "plain"])
def test_onnx_gives_the_torch_predictions(joint, joint_dir, tiny_bert_dir, tmp_path):
    model_dir = _copy(joint_dir if joint else tiny_bert_dir, tmp_path)
    options = dict(device="cpu", threshold=0.4, max_length=12, batch_size=3)  # truncation and several batches
    ref = IntentClassifier.from_pretrained(model_dir, **options)(TEXTS)
    clf = IntentClassifier.from_pretrained(model_dir, runtime="onnx", threads=1, **options)
    assert clf.runtime == "onnx" and clf.is_joint == joint and (model_dir / "onnx" / "model.onnx").is_file()
    with torch.no_grad():  # the torch encoder is not used any more (the CRF's transitions still are)
        for param in (clf.model.encoder if joint else clf.model.bert).parameters():
            param.zero_()
    got = clf(TEXTS)
    if joint:  # the comparison means something: predictions vary and there are slots to compare
        assert {"get_weather", "play_music"} <= {p.intent for p in ref} and sum(bool(p.slots) for p in ref) >= 4
        assert clf.model.crf is not None and clf.canonicalizer is not None
    assert_rows_match(got, ref, atol=1e-4)  # another runtime: decisions but for a near-tie flip (tests/compare.py)
    probs = IntentClassifier.from_pretrained(model_dir, **options).predict_proba(TEXTS)
    torch.testing.assert_close(clf.predict_proba(TEXTS), probs, atol=1e-4, rtol=0)


def test_int8_runs_and_is_quantised(joint_dir, tmp_path):
    import onnx

    model_dir = _copy(joint_dir, tmp_path)
    clf = IntentClassifier.from_pretrained(model_dir, runtime="onnx-int8")
    assert clf.device.type == "cpu"  # device None means the CPU for ONNX Runtime
    ops = {node.op_type for node in onnx.load(str(model_dir / "onnx" / "model-int8.onnx")).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops
    ref = IntentClassifier.from_pretrained(model_dir, device="cpu")(TEXTS)
    with torch.no_grad():  # the torch encoder is not used
        for param in clf.model.encoder.parameters():
            param.zero_()
    got = clf(TEXTS)
    slot_names = {tag[2:] for tag in clf.slot_labels if tag != "O"}
    for a, b in zip(got, ref):
        assert a.text == b.text and (a.intent in LABELS or a.intent is None) and 0.0 <= a.confidence <= 1.0
        assert {label for label, _ in a.top_k} <= set(clf.labels)
        assert a.confidence == pytest.approx(b.confidence, abs=0.05)
        for span in a.slot_spans:
            assert span.name in slot_names and 0 <= span.start < span.end <= len(a.text)
    assert sum(a.intent == b.intent for a, b in zip(got, ref)) >= len(TEXTS) - 1  # int8 may flip a close call
    torch.testing.assert_close(clf.predict_proba(TEXTS).sum(dim=1), torch.ones(len(TEXTS)))


def test_onnx_runtime_refuses_gpu_other_dtypes_and_unknown_names(tiny_bert_dir, monkeypatch):
    with pytest.raises(ConfigError, match="CPU only"):
        nlu_onnx.check_runtime("onnx-int8", torch.device("cuda"), torch.float32)
    with pytest.raises(ConfigError, match="runtime must be one of"):
        IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu", runtime="tensorrt")
    with pytest.raises(ConfigError, match="float32"):
        IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu", dtype="bfloat16", runtime="onnx")
    with pytest.raises(ConfigError, match="threads"):
        IntentClassifier.from_pretrained(tiny_bert_dir, runtime="onnx", threads=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the device check comes before any CUDA call
    with pytest.raises(ConfigError, match="CPU only"):
        IntentClassifier.from_pretrained(tiny_bert_dir, device="cuda", runtime="onnx")
    assert not (tiny_bert_dir / "onnx").exists()  # refused before exporting anything


def test_missing_packages_say_what_to_install(tiny_bert_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with pytest.raises(ConfigError, match=r"onnxruntime.*pip install 'speech-intent\[onnx\]'"):
        IntentClassifier.from_pretrained(tiny_bert_dir, runtime="onnx")


def test_the_export_is_reused_and_redone_for_new_weights(tiny_bert_dir, tmp_path, monkeypatch):
    model_dir = _copy(tiny_bert_dir, tmp_path)
    IntentClassifier.from_pretrained(model_dir, runtime="onnx-int8")
    folder = model_dir / "onnx"
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", "model-int8.onnx", "model.onnx"]
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    export = nlu_onnx._export

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(nlu_onnx, "_export", no_export)
    for runtime in ("onnx", "onnx-int8"):
        assert IntentClassifier.from_pretrained(model_dir, runtime=runtime)(["play jazz"])[0].intent in LABELS
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps

    # new weights in the same folder: exported again (the old int8 file is not reused)
    monkeypatch.setattr(nlu_onnx, "_export", export)
    clf = IntentClassifier.from_pretrained(model_dir, device="cpu")
    with torch.no_grad():
        clf.model.classifier.weight.mul_(-3.0)
    clf.save_pretrained(model_dir)
    new = IntentClassifier.from_pretrained(model_dir, runtime="onnx")
    digest = json.loads((folder / "export.json").read_text())["weights_sha256"]
    assert digest == nlu_onnx.weights_digest(new.model) and not (folder / "model-int8.onnx").exists()
    texts = ["play some jazz", "what is the weather in paris"]
    torch.testing.assert_close(new.predict_proba(texts), clf.predict_proba(texts), atol=1e-4, rtol=0)


def test_explicit_export_folder_and_read_only_model_dir(tiny_bert_dir, tmp_path, monkeypatch):
    clf = IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu")
    path = export_onnx(clf, tmp_path / "exported", quantize=True)
    assert path == tmp_path / "exported" / "model-int8.onnx" and path.is_file()
    monkeypatch.setattr(nlu_onnx, "_export", lambda *a, **k: pytest.fail("exported again"))
    loaded = IntentClassifier.from_pretrained(tiny_bert_dir, runtime="onnx-int8", onnx_dir=tmp_path / "exported")
    assert loaded._onnx.path == path

    # a model folder that cannot be written: the export goes to the user cache, keyed by the weights
    monkeypatch.undo()  # exporting allowed again
    monkeypatch.setenv("SPEECH_INTENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(nlu_onnx, "_writable", lambda path: False)
    model_dir = _copy(tiny_bert_dir, tmp_path)
    clf = IntentClassifier.from_pretrained(model_dir, runtime="onnx")
    assert not (model_dir / "onnx").exists()
    assert clf._onnx.path.parent.parent == tmp_path / "cache" / "onnx" and clf._onnx.path.name == "model.onnx"


def test_an_export_that_differs_from_torch_is_refused(tiny_bert_dir, tmp_path, monkeypatch):
    clf = IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu")
    real_export = torch.onnx.export

    def export_then_change_the_weights(*args, **kwargs):  # the check then compares old graph and new weights
        real_export(*args, **kwargs)
        with torch.no_grad():
            clf.model.classifier.weight.add_(1.0)

    monkeypatch.setattr(torch.onnx, "export", export_then_change_the_weights)
    with pytest.raises(ModelLoadError, match="differs from the torch model"):
        export_onnx(clf, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.onnx")) and not list((tmp_path / "out").glob(".tmp-*"))


def test_cli_nlu_runtime_flag(joint_dir, tiny_pipeline_dir, tmp_path, capsys):
    from speech_intent import SpeechIntentPipeline
    from speech_intent.cli import main

    model_dir = _copy(joint_dir, tmp_path)
    rows = {}
    for runtime in ("torch", "onnx", "onnx-int8"):
        assert main(["classify", *TEXTS[:3], "--intent", str(model_dir), "--device", "cpu",
                     "--nlu-runtime", runtime]) == 0
        rows[runtime] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert_rows_match(rows["onnx"], rows["torch"], atol=1e-4)
    assert len(rows["onnx-int8"]) == 3 and (model_dir / "onnx" / "model-int8.onnx").is_file()

    # a saved pipeline (written before the flag existed) loads with it; predict runs end to end
    pipeline_dir = _copy(tiny_pipeline_dir, tmp_path, "pipeline")
    sf.write(tmp_path / "a.wav", _sine(), 16000)
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(tmp_path / "a.wav"), "--pipeline", str(pipeline_dir), "--nlu-runtime", "onnx-int8",
                 "-q", "-o", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["error"] is None and (row["intent"] in LABELS or row["intent"] is None)
    assert (pipeline_dir / "intent" / "onnx" / "model-int8.onnx").is_file()
    pipe = SpeechIntentPipeline.from_pretrained(pipeline_dir, device="cpu", intent_options={"runtime": "onnx"})
    assert pipe.intent.runtime == "onnx" and pipe.asr.device.type == "cpu"
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        main(["classify", "hi", "--intent", str(model_dir), "--nlu-runtime", "tensorrt"])
