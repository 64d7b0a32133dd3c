"""speech_intent.errors: one hierarchy, and the CLI reports any of it as a clean error."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from speech_intent import errors
from speech_intent.cli import main
from speech_intent.validation import check_model_path, looks_like_local_path

REPO = Path(__file__).resolve().parents[1]


def test_every_error_class_of_the_library_is_a_speech_intent_error():
    import speech_intent.asr.convert
    import speech_intent.data
    import speech_intent.evaluate  # noqa: F401
    import speech_intent.speech_in_the_loop

    classes = {obj for obj in vars(errors).values() if inspect.isclass(obj) and issubclass(obj, Exception)}
    assert len(classes) >= 8
    assert all(issubclass(cls, errors.SpeechIntentError) for cls in classes)
    assert speech_intent.asr.convert.CTranslate2FormatError is errors.CTranslate2FormatError
    assert speech_intent.data.DataFormatError is errors.DataFormatError
    assert speech_intent.evaluate.ManifestError is errors.ManifestError
    assert issubclass(errors.CTranslate2FormatError, errors.ModelLoadError)
    assert issubclass(errors.DataNotFoundError, FileNotFoundError)
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.DataFormatError, ValueError)


def test_ctranslate2_format_error_keeps_its_message_and_names_the_file():
    error = errors.CTranslate2FormatError("/models/x/model.bin: truncated or corrupt file")
    assert str(error) == "/models/x/model.bin: truncated or corrupt file"
    assert error.source == "/models/x/model.bin" and error.reason == "truncated or corrupt file"


@pytest.mark.parametrize("argv, expected", [
    (["train", "--data", "/nonexistent/data.csv", "--output", "OUT"], "no such data file or directory"),
    (["evaluate", "/nonexistent/labels.json", "--asr", "x"], "no such manifest file"),
    (["classify", "hello", "--device", "cuda:7"], "CUDA is not available"),
    (["classify", "--file", "/nonexistent/texts.txt"], "/nonexistent/texts.txt: no such text file"),
    (["classify", "--file", str(REPO / "assets" / "audio" / "001_set_alarm.wav")], "not UTF-8 text"),
    (["evaluate", str(REPO / "assets" / "audio" / "manifest.csv"), "--noise", "/nonexistent/noise.wav"],
     "/nonexistent/noise.wav: no such noise file"),  # before any model loads
])
def test_the_cli_reports_library_errors_as_one_line_and_status_1(argv, expected, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(argv) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last and "Traceback" not in err


WAV = "assets/audio/001_set_alarm.wav"
MISSING = "/no/such/dir"


def _cli_error(argv, capsys) -> str:
    """Run the CLI, expect status 1 and exactly one ``error:`` line on stderr; return that line."""
    assert main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("argv", [
    ["predict", "--asr", MISSING, WAV],
    ["predict", "--intent", MISSING, WAV],
    ["predict", "--pipeline", MISSING, WAV],
    ["predict", "--engine", "ray", "--asr", MISSING, WAV],
    ["transcribe", "--asr", MISSING, WAV],
    ["evaluate", "assets/audio/manifest.csv", "--asr", MISSING],
    ["evaluate", "assets/demo_domain.yaml", "--intent", MISSING],
    ["classify", "hello", "--intent", MISSING],
    ["serve", "--asr", MISSING],
    ["train", "--data", "assets/demo_domain.yaml", "--output", "OUT", "--base", MISSING],
    ["train-asr", "--data", "assets/demo_domain.yaml", "--output", "OUT", "--base", MISSING],
    ["convert", "OUT", "--source", MISSING],
], ids=lambda argv: "-".join(a for a in argv if a.startswith("--") or a.isalpha()))
def test_a_model_path_that_does_not_exist_is_one_line_saying_so(argv, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    argv = [str(tmp_path / "OUT") if a == "OUT" else a for a in argv]
    assert _cli_error(argv, capsys) == f"error: {MISSING}: does not exist"
    assert not (tmp_path / "OUT").exists()


def test_predict_with_an_asr_dir_that_holds_no_model_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _cli_error(["predict", "--asr", str(empty), WAV], capsys)
    assert line == f"error: {empty}: cannot tell the ASR backend: not a model directory (no model.bin or config.json)"
    line = _cli_error(["predict", "--asr", WAV, WAV], capsys)  # a file where a directory belongs
    assert line == f"error: {WAV}: is a file, not a model directory"


@pytest.mark.parametrize("name, local", [
    ("/no/such/dir", True), ("./model", True), ("../model", True), ("~/model", True), ("models/asr/v2", True),
    (".cache/model", True), ("openai/whisper-small", False), ("facebook/wav2vec2-base-960h", False),
    ("bert-base-uncased", False), ("tiny.en", False),
])
def test_local_paths_are_told_from_hub_names(name, local):
    assert looks_like_local_path(name) is local
    if local:
        with pytest.raises(errors.ModelLoadError, match="does not exist"):
            check_model_path(name)
    else:
        check_model_path(name)  # hub names are left to from_pretrained


def test_hub_names_still_reach_from_pretrained(monkeypatch):
    from speech_intent import asr

    seen = []

    class Stage:
        @classmethod
        def from_pretrained(cls, name, **kwargs):
            seen.append(name)
            return cls

    monkeypatch.setattr(asr, "BACKENDS", {"whisper": Stage, "wav2vec2": Stage, "faster-whisper": Stage})
    asr.load_asr("openai/whisper-small")
    asr.load_asr("small.en")
    assert seen == ["openai/whisper-small", "small.en"]
    assert asr.detect_backend("openai/whisper-small") == "whisper"
    with pytest.raises(errors.ModelLoadError, match="does not exist"):
        asr.load_asr(Path(MISSING), backend="whisper")  # a Path is always local
