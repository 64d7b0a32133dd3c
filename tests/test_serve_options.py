"""The service's settings (``speech_intent/serve/options.py``) and how ``speech-intent serve`` builds them:
threads and workers from the cores, the checks made before any model loads."""
from __future__ import annotations

import pytest


def test_serve_defaults_to_the_cores_and_checks_threads_and_workers(monkeypatch):
    from speech_intent.cli import build_parser
    from speech_intent.cli.serve import config_from_args
    from speech_intent.device import available_cpus

    monkeypatch.delenv("SPEECH_INTENT_API_KEY", raising=False)
    assert config_from_args(build_parser().parse_args(["serve"])).threads == available_cpus()
    assert config_from_args(build_parser().parse_args(["serve", "--threads", "3"])).threads == 3
    workers = {tuple(flags): config_from_args(build_parser().parse_args(["serve", *flags])).workers
               for flags in (["--threads", "1"], ["--threads", "2", "--device", "cpu"], ["--workers", "3"])}
    assert workers == {("--threads", "1"): 1, ("--threads", "2", "--device", "cpu"): 2, ("--workers", "3"): 3}
    from speech_intent.errors import ConfigError
    from speech_intent.serve import ServeOptions

    with pytest.raises(ConfigError, match="threads"):
        ServeOptions(threads=0)
    with pytest.raises(ConfigError, match="workers"):
        ServeOptions(workers=0)


def test_binding_another_address_needs_an_api_key(capsys, monkeypatch):
    pytest.importorskip("fastapi")  # the serve command's own check for its extra comes first
    pytest.importorskip("uvicorn")
    from speech_intent.cli import main

    monkeypatch.delenv("SPEECH_INTENT_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 1  # refused before any model loads
    assert "API key" in capsys.readouterr().err
