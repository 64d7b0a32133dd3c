"""Safe model loading: checkpoints (safetensors only, coherent labels), pipeline.json validation,
no remote code."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from speech_intent import IntentClassifier, SpeechIntentPipeline
from speech_intent.errors import ModelLoadError
from speech_intent.validation import check_classifier_dir

from .conftest import REPO


# ------------------------------------------------------------------ checkpoints: safetensors, coherent labels
def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def test_pickle_only_and_mislabelled_checkpoints_give_clear_model_load_errors(tiny_pipeline_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    from speech_intent import IntentClassifier

    def copy() -> Path:
        target = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        shutil.copytree(tiny_pipeline_dir, target)
        return target

    pickled = copy()
    weights = pickled / "intent" / "model.safetensors"
    torch.save(load_file(weights), pickled / "intent" / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ModelLoadError, match="only pickle weights .*safetensors only"):
        SpeechIntentPipeline.from_pretrained(pickled)
    with pytest.raises(ModelLoadError, match="safetensors"):
        IntentClassifier.from_pretrained(pickled / "intent")
    pickled_asr = copy()
    weights = pickled_asr / "asr" / "model.safetensors"
    torch.save(load_file(weights), pickled_asr / "asr" / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ModelLoadError, match=r"asr: only pickle weights found \(pytorch_model.bin\)"):
        SpeechIntentPipeline.from_pretrained(pickled_asr)

    cases = {
        "missing labels": dict(id2label=None, label2id=None),
        "generic LABEL_i": dict(id2label={"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}, label2id=None),
        "has 3 outputs but config.json names 5": dict(id2label={str(i): f"x{i}" for i in range(5)}, label2id=None,
                                                     num_labels=None),
        "without gaps": dict(id2label={"0": "a", "1": "b", "5": "c"}, label2id=None),
        "num_labels is 4": dict(num_labels=4),
    }
    for reason, changes in cases.items():
        target = copy()
        _edit_json(target / "intent" / "config.json", **changes)
        with pytest.raises(ModelLoadError, match=reason) as info:
            SpeechIntentPipeline.from_pretrained(target)
        assert "intent" in str(info.value)
    corrupt = copy()
    (corrupt / "intent" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="corrupt safetensors"):
        check_classifier_dir(corrupt / "intent")


def test_pickle_only_checkpoints_are_refused(tiny_bert_dir, tmp_path):
    import shutil

    from speech_intent.nlu import IntentClassifier

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_bert_dir, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors"):
        IntentClassifier.from_pretrained(pickled)


def test_direct_load_of_a_mismatched_head_is_a_clear_error(tiny_bert_dir, tmp_path):
    import json
    import shutil

    from speech_intent.errors import ModelLoadError

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b"}
    config["label2id"] = {"a": 0, "b": 1}
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError):
        IntentClassifier.from_pretrained(broken)


# ------------------------------------------------------------------ pipeline.json
@pytest.mark.parametrize("content,reason", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"asr": "asr", "intent": {}}', "'asr' must be an object"),
    ('{"asr": {"path": "../../etc"}, "intent": {}}', "sub-directory name"),
    ('{"asr": {"path": "/tmp"}, "intent": {}}', "sub-directory name"),
    ('{"asr": {"backend": "evil"}, "intent": {}}', "unknown ASR backend"),
    ('{"asr": {"options": [1]}, "intent": {}}', "asr.options must be an object"),
    ('{"asr": {}, "intent": {}, "top_k": "3"}', "top_k must be an integer"),
    ('{"asr": {}, "intent": {}, "max_duration": -1}', "max_duration must be a number"),
    ('{"format_version": 99, "asr": {}, "intent": {}}', "unsupported format_version"),
    ('{"asr": {}, "intent": {"path": "nowhere"}}', "missing its intent stage"),
])
def test_invalid_pipeline_json_is_a_clear_error(tiny_pipeline_dir, tmp_path, content, reason):
    target = tmp_path / "p"
    shutil.copytree(tiny_pipeline_dir, target)
    (target / "pipeline.json").write_text(content)
    with pytest.raises(ModelLoadError, match=reason):
        SpeechIntentPipeline.from_pretrained(target)


# ------------------------------------------------------------------ remote code
def test_remote_code_is_never_trusted():
    sources = "\n".join(p.read_text() for p in (REPO / "speech_intent").rglob("*.py"))
    assert "trust_remote_code=True" not in sources
