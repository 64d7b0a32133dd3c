"""The ``speech-intent`` command line: predict, transcribe, classify, train, convert."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import List, Optional

from .audio import DEFAULT_MAX_DURATION


def _add_model_args(parser: argparse.ArgumentParser, intent: bool = True) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    parser.add_argument("--asr", default=None, help="ASR model dir or hub name (default: bundled tiny.en)")
    parser.add_argument("--asr-backend", choices=["whisper", "wav2vec2", "faster-whisper"], default=None,
                        help="force the ASR backend (default: detected from --asr)")
    if intent:
        parser.add_argument("--intent", default=None, help="intent model dir (default: demo-domain model)")
        parser.add_argument("--pipeline", default=None, help="a saved pipeline dir (overrides --asr/--intent)")
    add_grammar_args(parser)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION,
                        help="refuse inputs longer than this many seconds")


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
            raise ValueError("--grammar-rejection needs --grammar (or a --pipeline saved with a grammar)")
        return {}
    return {"grammar": args.grammar, "grammar_rejection": args.grammar_rejection}


def load_saved_pipeline(args: argparse.Namespace):
    """``--pipeline DIR`` loaded, with ``--grammar`` applied to its ASR stage when given."""
    from .asr import apply_grammar
    from .pipeline import SpeechIntentPipeline

    pipe = SpeechIntentPipeline.from_pretrained(args.pipeline, device=args.device, max_duration=args.max_duration)
    if args.grammar or args.grammar_rejection is not None:
        apply_grammar(pipe.asr, args.grammar, args.grammar_rejection)
    return pipe


def _build_pipeline(args: argparse.Namespace):
    from .asr import load_asr
    from .default import default_intent_model
    from .nlu import IntentClassifier
    from .pipeline import SpeechIntentPipeline

    if args.pipeline:
        return load_saved_pipeline(args)
    from .validation import check_classifier_dir

    if args.intent:
        check_classifier_dir(args.intent)  # labels vs head size, safetensors only: a clear ModelLoadError
    asr = load_asr(args.asr, backend=args.asr_backend, device=args.device, **grammar_options(args))
    intent = (IntentClassifier.from_pretrained(args.intent, device=args.device) if args.intent
              else default_intent_model(device=args.device))
    return SpeechIntentPipeline(asr, intent, max_duration=args.max_duration)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict every input into a resumable JSONL/CSV; prints ``done: N, skipped: N, failed: N``."""
    from .inputs import ResultWriter, expand_inputs

    files = expand_inputs(args.inputs)
    if not files:
        print("error: no input files found", file=sys.stderr)
        return 2
    writer = ResultWriter(args.output, args.format, resume=not args.overwrite)
    # load the models before changing the output: a model that fails to load leaves it as it was
    pipe = _build_pipeline(args) if any(not writer.is_done(f) for f in files) else None
    todo = writer.pending(files)  # drops the rows of files about to be retried: one row per file in the end
    skipped = len(files) - len(todo)
    done = failed = 0
    audio_seconds = 0.0
    start = time.perf_counter()
    interrupted = False
    try:
        if pipe is not None:
            for result in pipe.stream(todo, batch_size=args.batch_size, progress=not args.quiet, total=len(todo)):
                writer.write(result)
                if result.error:
                    failed += 1
                else:
                    done += 1
                    audio_seconds += result.duration or 0.0
    except KeyboardInterrupt:
        interrupted = True
    finally:
        writer.close()
    elapsed = time.perf_counter() - start
    rtf = f", {audio_seconds / elapsed:.1f}x real time" if elapsed > 0 and audio_seconds else ""
    note = f"; interrupted, {len(todo) - done - failed} not processed: rerun to resume" if interrupted else ""
    print(f"done: {done}, skipped: {skipped}, failed: {failed} ({elapsed:.1f} s{rtf}){note}", file=sys.stderr)
    return 130 if interrupted else 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .asr import load_asr
    from .audio import load_audio
    from .errors import AudioError
    from .inputs import expand_inputs

    asr = load_asr(args.asr, backend=args.asr_backend, device=args.device, **grammar_options(args))
    files = expand_inputs(args.inputs)
    for start in range(0, len(files), args.batch_size):
        chunk = files[start : start + args.batch_size]
        arrays, names = [], []
        for name in chunk:
            try:
                arrays.append(load_audio(name, sampling_rate=asr.sampling_rate, max_duration=args.max_duration))
                names.append(name)
            except AudioError as error:
                print(json.dumps({"path": name, "error": str(error)}, ensure_ascii=False))
        for name, transcript in zip(names, asr.transcribe(arrays, batch_size=args.batch_size) if arrays else []):
            print(json.dumps({"path": name, **transcript.to_dict()}, ensure_ascii=False), flush=True)
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from .default import default_intent_model
    from .nlu import IntentClassifier

    texts: List[str] = list(args.texts)
    if args.file:
        handle = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
        texts += [line.rstrip("\n") for line in handle if line.strip()]
    if not texts:
        print("error: give texts as arguments or with --file", file=sys.stderr)
        return 2
    clf = IntentClassifier.from_pretrained(args.intent, device=args.device) if args.intent \
        else default_intent_model(device=args.device)
    for prediction in clf(texts, top_k=args.top_k):
        print(json.dumps(prediction.to_dict(), ensure_ascii=False))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import random

    from .data import detect_format, load_examples
    from .nlu import TrainingConfig, fine_tune

    def load(path: str) -> list:
        name = (args.format or detect_format(path)).lower()
        if name == "grammar":  # grammars are sampled up to --max-examples
            return load_examples(path, format=name, max_examples=args.max_examples, seed=args.seed)
        examples = load_examples(path, format=name)
        if args.max_examples and len(examples) > args.max_examples:
            examples = random.Random(args.seed).sample(examples, args.max_examples)
        return examples

    examples = load(args.data)
    dev = load_examples(args.dev, format=args.dev_format) if args.dev else None
    config = TrainingConfig(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size, seed=args.seed,
                            early_stopping=args.early_stopping, head_learning_rate=args.head_lr)
    with_slots = sum(1 for ex in examples if ex.slots)
    print(f"training on {len(examples)} examples ({with_slots} with slots)"
          + (f", {len(dev)} dev examples" if dev else "") + f" -> {args.output}", file=sys.stderr)
    start = time.perf_counter()
    clf = fine_tune(examples, args.output, base=args.base, config=config, device=args.device, dev_examples=dev,
                    progress=not args.quiet)
    kind = f"joint model, {len(clf.labels)} intents, {len(clf.slot_labels)} slot tags" if clf.is_joint \
        else f"{len(clf.labels)} intents"
    info = clf.training or {}
    extra = f"; best dev score {info['best_dev_score']:.4f}" if info.get("best_dev_score") is not None else ""
    extra += f"; threshold {clf.threshold:.3f}" if clf.threshold is not None else ""
    print(f"trained {kind} on {len(examples)} examples in {time.perf_counter() - start:.1f} s "
          f"({info.get('epochs_run', args.epochs)} epochs{extra}); saved to {args.output}", file=sys.stderr)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .asr import convert_ctranslate2_whisper
    from .models import bundled_whisper_path

    src = args.source or bundled_whisper_path()
    out = convert_ctranslate2_whisper(src, args.output, dtype=args.dtype)
    print(f"converted {src} -> {out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speech-intent", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="audio files/dirs/globs -> JSONL or CSV of transcript + intent")
    p.add_argument("inputs", nargs="+", help="audio files, directories (searched recursively) or globs")
    p.add_argument("-o", "--output", default=None, help="results file (.jsonl or .csv); default: stdout")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from --output's suffix")
    p.add_argument("--overwrite", action="store_true", help="start the output afresh instead of resuming")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_model_args(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("transcribe", help="audio -> JSONL transcripts")
    p.add_argument("inputs", nargs="+")
    _add_model_args(p, intent=False)
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("classify", help="text -> JSONL intents")
    p.add_argument("texts", nargs="*")
    p.add_argument("--file", default=None, help="one text per line ('-' for stdin)")
    p.add_argument("--intent", default=None, help="intent model dir (default: demo-domain model)")
    p.add_argument("--device", default=None)
    p.add_argument("--top-k", type=int, default=3)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("train", help="fine-tune an intent (or joint intent + slot) model from labelled data")
    p.add_argument("--data", required=True, help="CSV/TSV, JSONL, BIO folder, Rasa YAML or Rhino grammar YAML")
    p.add_argument("--format", default=None, help="force the data format (default: detected)")
    p.add_argument("--dev", default=None, help="dev data: early stopping, best epoch, out-of-scope threshold")
    p.add_argument("--dev-format", default=None, help="force the dev data format (default: detected)")
    p.add_argument("--output", required=True, help="output model dir")
    p.add_argument("--base", default=None, help="encoder to start from (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--epochs", type=float, default=8.0, help="maximum epochs")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    p.add_argument("--head-lr", type=float, default=None, help="peak learning rate of the new heads (default: --lr)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--early-stopping", type=int, default=3, metavar="N",
                   help="with --dev: stop after N epochs without a better dev score (0: never)")
    p.add_argument("--max-examples", type=int, default=None, metavar="N",
                   help="grammar: sample N expansions (default 20000); other formats: a random N examples")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", help="CTranslate2 Whisper dir -> transformers Whisper dir")
    p.add_argument("output", help="output directory")
    p.add_argument("--source", default=None, help="CTranslate2 model dir (default: bundled tiny.en)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.set_defaults(func=cmd_convert)
    from .evaluate.cli import add_evaluate_parser
    add_evaluate_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from .errors import SpeechIntentError

    try:
        return int(args.func(args) or 0)
    except SpeechIntentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
