"""``speech-intent evaluate``: score a model on labelled text data or on an audio manifest.

Text data (anything :func:`speech_intent.data.load_examples` reads) is classified directly;
an audio manifest (CSV/JSONL with an ``audio`` column, or a benchmark ``labels.json``) goes
through the whole pipeline, clean and, with ``--noise``, at each ``--snr``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..audio import DEFAULT_MAX_DURATION

_DESCRIPTION = ("Score a model. Text data is classified directly; an audio manifest goes through the whole "
                "pipeline, clean and, with --noise, at each --snr. Prints the tables; --output writes "
                "report.json, confusion.png and acceptance_vs_snr.png.")


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to an ``add_subparsers()`` object."""
    from ..cli import add_grammar_args

    p = subparsers.add_parser("evaluate", help="score a model on labelled text data or an audio manifest",
                              description=_DESCRIPTION)
    p.add_argument("data", help="text data (CSV/TSV, JSONL, BIO folder, Rasa or grammar YAML) or an audio "
                                "manifest (CSV/JSONL with an 'audio' column, or labels.json)")
    p.add_argument("--intent", default=None, help="intent model dir (default: demo-domain model)")
    p.add_argument("--pipeline", default=None, help="a saved pipeline dir (audio; overrides --asr/--intent)")
    p.add_argument("--asr", default=None, help="ASR model dir or hub name (audio; default: bundled tiny.en)")
    p.add_argument("--asr-backend", choices=["whisper", "wav2vec2", "faster-whisper"], default=None)
    add_grammar_args(p)
    p.add_argument("--format", default=None, help="force the text data format (default: detected)")
    p.add_argument("--noise", default=None, help="noise recording mixed in for the SNR conditions")
    p.add_argument("--snr", type=float, nargs="+", default=None,
                   help="SNRs in dB (default with --noise: 6 9 12 15 18 21 24)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise segments")
    p.add_argument("--batch-size", type=int, default=None,
                   help="inputs per model call (default: 8 for audio, the classifier's own for text)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N items")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    p.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION)
    p.add_argument("-o", "--output", default=None, help="report dir (report.json + PNGs); default: print only")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)
    return p


def _load_classifier(args: argparse.Namespace):
    from ..default import default_intent_model
    from ..nlu import IntentClassifier

    if args.intent:
        return IntentClassifier.from_pretrained(args.intent, device=args.device)
    return default_intent_model(device=args.device)


def _load_pipeline(args: argparse.Namespace):
    from ..asr import load_asr
    from ..cli import grammar_options, load_saved_pipeline
    from ..pipeline import SpeechIntentPipeline

    if args.pipeline:
        return load_saved_pipeline(args)
    asr = load_asr(args.asr, backend=args.asr_backend, device=args.device, **grammar_options(args))
    return SpeechIntentPipeline(asr, _load_classifier(args), max_duration=args.max_duration)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation, print the tables and write the report directory when ``--output`` is given."""
    from .manifest import is_audio_manifest, read_manifest
    from .report import format_summary
    from .runner import evaluate_audio, evaluate_text, write_report

    if args.snr and not args.noise:
        print("error: --snr needs --noise", file=sys.stderr)
        return 2
    audio = is_audio_manifest(args.data) or bool(args.pipeline or args.asr or args.noise or args.grammar)
    meta = {"data": str(Path(args.data).resolve()), "mode": "audio" if audio else "text"}
    start = time.perf_counter()
    if audio:
        items = read_manifest(args.data)[: args.limit]
        pipe = _load_pipeline(args)
        loaded = time.perf_counter()
        reports = evaluate_audio(pipe, items, noise=args.noise, snrs=args.snr, seed=args.seed,
                                 batch_size=args.batch_size or 8, progress=not args.quiet)
        meta.update(asr=args.pipeline or args.asr or "bundled tiny.en (faster-whisper)",
                    intent=args.pipeline or args.intent or "demo-domain default", noise=args.noise,
                    snrs=[r.snr for r in reports.values() if r.snr is not None], seed=args.seed)
    else:
        from ..data import load_examples

        examples = load_examples(args.data, format=args.format)[: args.limit]
        clf = _load_classifier(args)
        loaded = time.perf_counter()
        reports = {"text": evaluate_text(clf, examples, batch_size=args.batch_size)}
        meta.update(intent=args.intent or "demo-domain default")
    done = time.perf_counter()
    meta.update(load_seconds=round(loaded - start, 2), eval_seconds=round(done - loaded, 2))

    for report in reports.values():
        print(report.format_table())
        print()
    if len(reports) > 1:
        print(format_summary(reports))
        print()
    if args.output:
        written = write_report(reports, args.output, meta=meta)
        print(f"wrote {', '.join(str(p) for p in written.values())}", file=sys.stderr)
    n = next(iter(reports.values())).n
    print(f"evaluated {n} items x {len(reports)} condition(s) in {done - loaded:.1f} s "
          f"(+{loaded - start:.1f} s loading models)", file=sys.stderr)
    return 0
