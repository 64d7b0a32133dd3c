"""speech_intent.errors: one hierarchy, and the CLI reports any of it as a clean error."""
from __future__ import annotations

import inspect

import pytest

from speech_intent import errors
from speech_intent.cli import main


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
])
def test_the_cli_reports_library_errors_as_one_line_and_status_1(argv, expected, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(argv) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last and "Traceback" not in err
