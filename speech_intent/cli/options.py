"""Options shared by the subcommands, and the model loading they share.

Every subcommand that runs a model takes the same flags for it (``--device``, ``--asr``,
``--asr-backend``, ``--intent``, ``--pipeline``, ``--nlu-runtime``, ``--grammar``, ``--grammar-rejection``,
``--context-margin``, ``--batch-size``, ``--max-duration``) and loads models the same way.
Building the parser imports no model library: the loaders import the stages when they run.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..asr import BACKEND_NAMES, apply_grammar, load_asr
from ..audio import DEFAULT_MAX_DURATION
from ..errors import ConfigError, ModelLoadError
from ..nlu.runtimes import RUNTIMES, require_onnx
from ..vad import VADOptions
from ..validation import PIPELINE_CONFIG, check_classifier_dir, check_model_path

if TYPE_CHECKING:
    from ..nlu import IntentClassifier
    from ..pipeline import SpeechIntentPipeline

DEVICE_HELP = "cpu, cuda, cuda:1 (default: CUDA when available)"


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help=DEVICE_HELP)


def add_asr_args(parser: argparse.ArgumentParser) -> None:
    """``--asr`` / ``--asr-backend`` and the grammar options."""
    parser.add_argument("--asr", default=None, help="ASR model dir or hub name (default: bundled tiny.en)")
    parser.add_argument("--asr-backend", choices=sorted(BACKEND_NAMES), default=None,
                        help="force the ASR backend (default: detected from --asr)")
    parser.add_argument("--context-margin", type=_context_margin, default=None, metavar="S",
                        help="Whisper encoder context: the longest clip of a batch + S seconds, unreliable clips"
                             " decoded again on 30 s (default: the stage's own, 2); 'none' = always 30 s")
    add_grammar_args(parser)


def _context_margin(text: str) -> object:
    """``--context-margin`` values: seconds, or ``none`` (the 30 s window)."""
    if text.strip().lower() in ("none", "30s", "full"):
        return "none"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or 'none', got {text!r}") from None


def asr_overrides(args: argparse.Namespace) -> dict:
    """ASR option changes given on the command line (``--context-margin``)."""
    margin = getattr(args, "context_margin", None)
    return {} if margin is None else {"context_margin": None if margin == "none" else margin}


def add_intent_args(parser: argparse.ArgumentParser, *, pipeline: bool = True) -> None:
    """``--intent`` (and ``--pipeline``), ``--nlu-runtime``."""
    parser.add_argument("--intent", default=None, help="intent model dir (default: demo-domain model)")
    if pipeline:
        parser.add_argument("--pipeline", default=None, help="a saved pipeline dir (overrides --asr/--intent)")
    parser.add_argument("--nlu-runtime", choices=RUNTIMES, default="torch",
                        help="the intent model's forward pass: torch (default), or ONNX Runtime on the CPU: onnx"
                             " (float32) or onnx-int8 (int8 dynamic quantisation, faster); exported once into the"
                             " model's onnx/ folder; needs pip install 'speech-intent[onnx]'")


def intent_options(args: argparse.Namespace) -> dict:
    """``IntentClassifier`` keyword arguments from ``--nlu-runtime`` (and ``--threads`` where a command has it)."""
    runtime = getattr(args, "nlu_runtime", "torch")
    if runtime == "torch":
        return {}
    threads = getattr(args, "threads", None)
    return {"runtime": runtime, **({"threads": threads} if threads is not None else {})}


def add_model_args(parser: argparse.ArgumentParser, intent: bool = True) -> None:
    """Everything a subcommand that runs the ASR (and intent) stage takes."""
    add_device_arg(parser)
    add_asr_args(parser)
    if intent:
        add_intent_args(parser)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION,
                        help="refuse inputs longer than this many seconds")


def add_vad_args(parser: argparse.ArgumentParser) -> None:
    """``--trailing-silence`` / ``--max-utterance``: how the VAD cuts speech into utterances."""
    parser.add_argument("--trailing-silence", type=float, default=0.6, help="seconds of silence that end an utterance")
    parser.add_argument("--max-utterance", type=float, default=15.0,
                        help="longest utterance in seconds (longer speech is cut there)")


def vad_options(args: argparse.Namespace) -> VADOptions:
    return VADOptions(trailing_silence=args.trailing_silence, max_utterance=args.max_utterance)


def add_grammar_args(parser: argparse.ArgumentParser) -> None:
    """``--grammar`` / ``--grammar-rejection`` (grammar-constrained decoding)."""
    parser.add_argument("--grammar", default=None, metavar="YAML",
                        help="constrain Whisper to the sentences of this Rhino-style grammar (transformers backend;"
                             " the bundled tiny.en is converted once when --asr is not given)")
    parser.add_argument("--grammar-rejection", type=float, default=None, metavar="NATS",
                        help="with --grammar: mark speech out of grammar (intent null) when free decoding beats the"
                             " constrained one by more than this mean log-probability per token")


def grammar_options(args: argparse.Namespace) -> dict:
    """``load_asr`` keyword arguments for the grammar options (empty without ``--grammar``)."""
    if getattr(args, "grammar", None) is None:
        if getattr(args, "grammar_rejection", None) is not None:
            raise ConfigError("--grammar-rejection needs --grammar (or a --pipeline saved with a grammar)")
        return {}
    return {"grammar": args.grammar, "grammar_rejection": args.grammar_rejection}


def load_asr_stage(args: argparse.Namespace, num_workers: Optional[int] = None):
    """The ASR stage named by ``--asr`` / ``--asr-backend`` / ``--grammar`` (``num_workers``: see
    :func:`~speech_intent.asr.load_asr`)."""
    return load_asr(args.asr, backend=args.asr_backend, device=args.device, num_workers=num_workers,
                    **grammar_options(args), **asr_overrides(args))


def load_classifier(args: argparse.Namespace) -> IntentClassifier:
    """``--intent DIR``, else the demo-domain default model (its first-run fine-tune without a bar with ``-q``)."""
    from ..demo_model import default_intent_model
    from ..nlu import IntentClassifier

    if args.intent:
        return IntentClassifier.from_pretrained(args.intent, device=args.device, **intent_options(args))
    return default_intent_model(device=args.device, progress=not getattr(args, "quiet", False), **intent_options(args))


def load_saved_pipeline(args: argparse.Namespace, num_workers: Optional[int] = None) -> SpeechIntentPipeline:
    """``--pipeline DIR`` loaded, with ``--grammar`` applied to its ASR stage when given."""
    from ..pipeline import SpeechIntentPipeline

    pipe = SpeechIntentPipeline.from_pretrained(args.pipeline, device=args.device, max_duration=args.max_duration,
                                                intent_options=intent_options(args), num_workers=num_workers)
    if args.grammar or args.grammar_rejection is not None:
        apply_grammar(pipe.asr, args.grammar, args.grammar_rejection)
    if asr_overrides(args):
        pipe.asr.configure(**asr_overrides(args))
    return pipe


def check_model_args(args: argparse.Namespace) -> None:
    """Checks of the model flags that load nothing (before a job starts workers that load the models): model
    paths that do not exist or are no model directory, ``--nlu-runtime`` needing ONNX, the grammar flags."""
    if getattr(args, "pipeline", None):
        check_model_path(Path(args.pipeline))
        config = Path(args.pipeline) / PIPELINE_CONFIG
        if not config.is_file():
            raise ModelLoadError(args.pipeline, f"not a pipeline directory (no {PIPELINE_CONFIG})")
    else:
        if getattr(args, "asr", None):
            check_model_path(args.asr)
        if getattr(args, "intent", None):
            check_model_path(args.intent)
            check_classifier_dir(args.intent)
    if intent_options(args):
        require_onnx(args.nlu_runtime)
    grammar_options(args)


def build_pipeline(args: argparse.Namespace, num_workers: Optional[int] = None) -> SpeechIntentPipeline:
    """``--pipeline``, else the stages from ``--asr`` / ``--intent`` (bundled defaults); ``num_workers``:
    batches it will be called with at once (``--workers``)."""
    check_model_args(args)  # a bad path fails before any model loads: a clear ModelLoadError
    if args.pipeline:
        return load_saved_pipeline(args, num_workers)
    from ..pipeline import SpeechIntentPipeline

    asr = load_asr_stage(args, num_workers)
    return SpeechIntentPipeline(asr, load_classifier(args), max_duration=args.max_duration)
