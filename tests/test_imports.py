"""Import cost: the package, the CLI parser and the Ray driver load no model library (torch, transformers,
CTranslate2, faster-whisper, ONNX Runtime, peft); the public names still import on first use.

Each check runs in a fresh interpreter, since this test process has the libraries loaded already.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "ctranslate2", "faster_whisper", "onnxruntime", "peft")


def run_python(code: str, cwd: Path = REPO) -> dict:
    """Run ``code`` in a fresh interpreter with this checkout first on the path; it prints one JSON line last."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_package_cli_parser_and_distributed_import_no_model_library():
    out = run_python(f"""
        import json, sys
        import speech_intent
        import speech_intent.cli as cli
        parser = cli.build_parser()
        import speech_intent.batch.ray_runner
        from speech_intent.asr import BACKENDS
        from speech_intent.nlu import RUNTIMES
        args = parser.parse_args(["predict", "x.wav", "--asr-backend", "whisper", "--nlu-runtime", "onnx"])
        print(json.dumps({{"loaded": [m for m in {HEAVY!r} if m in sys.modules], "backends": sorted(BACKENDS),
                          "runtimes": list(RUNTIMES), "backend": args.asr_backend}}))
    """)
    assert out["loaded"] == []
    assert out["backends"] == ["faster-whisper", "wav2vec2", "whisper"]
    assert out["runtimes"] == ["torch", "onnx", "onnx-int8"]
    assert out["backend"] == "whisper"


def test_predict_engine_ray_driver_path_imports_no_model_library(tmp_path):
    """``predict --engine ray`` through the CLI up to the Ray job: every input is already done, so no Ray
    starts, but the driver's own steps (flag checks, inputs, resumable writer, Parquet) all run."""
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"not decoded: its row is already done")
    out = run_python(f"""
        import json, sys
        from speech_intent.results import PipelineResult
        from speech_intent.batch.writer import ResultWriter
        writer = ResultWriter("out.jsonl")
        writer.write(PipelineResult(path={str(audio)!r}))
        writer.close()
        from speech_intent.cli import main
        code = main(["predict", "--engine", "ray", {str(audio)!r}, "-o", "out.jsonl", "-q"])
        print(json.dumps({{"code": code, "loaded": [m for m in {HEAVY!r} if m in sys.modules],
                          "ray": "ray" in sys.modules}}))
    """, cwd=tmp_path)
    assert out["code"] == 0
    assert out["loaded"] == []
    assert out["ray"] is False  # nothing was left to do: no Ray started
    assert (tmp_path / "out.parquet").is_file()


def test_public_names_still_import_and_are_listed():
    out = run_python("""
        import json, sys
        from speech_intent import SpeechIntentPipeline, WhisperASR, IntentClassifier, fine_tune_asr, TextNormalizer
        import speech_intent
        import speech_intent.asr
        import speech_intent.nlu
        from speech_intent.asr import BACKENDS
        from speech_intent.asr.whisper import WhisperASR as Defined
        names = dir(speech_intent)
        print(json.dumps({
            "same": WhisperASR is Defined and BACKENDS["whisper"] is Defined,
            "classes": [c.__name__ for c in (SpeechIntentPipeline, IntentClassifier, TextNormalizer)],
            "fine_tune_asr": fine_tune_asr.__module__,
            "missing_from_dir": [n for n in speech_intent.__all__ if n not in names],
            "unresolved": [f"{m.__name__}.{n}" for m in (speech_intent, speech_intent.asr, speech_intent.nlu)
                           for n in m.__all__ if not hasattr(m, n)],
            "torch": "torch" in sys.modules,
        }))
    """)
    assert out["same"] is True
    assert out["classes"] == ["SpeechIntentPipeline", "IntentClassifier", "TextNormalizer"]
    assert out["fine_tune_asr"] == "speech_intent.asr_training.trainer"
    assert out["missing_from_dir"] == []
    assert out["unresolved"] == []
    assert out["torch"] is True  # the model classes did load their libraries


def test_unknown_attribute_is_an_attribute_error():
    out = run_python("""
        import json
        import speech_intent, speech_intent.asr
        print(json.dumps([hasattr(speech_intent, "no_such_name"), hasattr(speech_intent.asr, "NoSuchASR")]))
    """)
    assert out == [False, False]
