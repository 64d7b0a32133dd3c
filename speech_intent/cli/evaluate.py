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
from ..data import load_examples
from ..errors import ConfigError, DataNotFoundError
from .options import add_asr_args, add_device_arg, add_intent_args, build_pipeline, load_classifier

_DESCRIPTION = ("Score a model. Text data is classified directly; an audio manifest goes through the whole "
                "pipeline, clean and, with --noise, at each --snr. Prints the tables; --output writes "
                "report.json, confusion.png and acceptance_vs_snr.png; --group-by COLUMN scores each group of a manifest "
                "column (speaker, gender, voice...) too, with the worst group and the gap (groups.png).")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to an ``add_subparsers()`` object."""
    p = subparsers.add_parser("evaluate", help="score a model on labelled text data or an audio manifest",
                              description=_DESCRIPTION)
    p.add_argument("data", help="text data (CSV/TSV, JSONL, BIO folder, Rasa or grammar YAML) or an audio "
                                "manifest (CSV/JSONL with an 'audio' column, or labels.json)")
    add_intent_args(p)
    add_asr_args(p)
    p.add_argument("--format", default=None, help="force the text data format (default: detected)")
    p.add_argument("--noise", default=None, help="noise recording mixed in for the SNR conditions")
    p.add_argument("--snr", type=float, nargs="+", default=None,
                   help="SNRs in dB (default with --noise: 6 9 12 15 18 21 24)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise segments")
    p.add_argument("--group-by", default=None, metavar="COLUMN",
                   help="also score each group of an audio manifest's COLUMN (speaker, gender, accent, noise "
                        "condition, voice...): every metric per group, the worst group and the largest gap "
                        "(text, report.json, groups.png)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="inputs per model call (default: 8 for audio, the classifier's own for text)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N items")
    add_device_arg(p)
    p.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION)
    p.add_argument("-o", "--output", default=None, help="report dir (report.json + PNGs); default: print only")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the evaluation, print the tables and write the report directory when ``--output`` is given."""
    from ..evaluate import evaluate_audio, evaluate_text, format_summary, is_audio_manifest, read_manifest, write_report
    from ..evaluate.groups import check_column

    if args.snr and not args.noise:
        print("error: --snr needs --noise", file=sys.stderr)
        return 2
    if args.noise and not Path(args.noise).is_file():  # before the models load (a first run trains one)
        raise DataNotFoundError("no such noise file", source=args.noise)
    audio = is_audio_manifest(args.data) or bool(args.pipeline or args.asr or args.noise or args.grammar)
    if args.group_by and not audio:
        raise ConfigError("--group-by needs an audio manifest (its columns give the groups)")
    meta = {"data": str(Path(args.data).resolve()), "mode": "audio" if audio else "text"}
    start = time.perf_counter()
    if audio:
        items = read_manifest(args.data)[: args.limit]
        if args.group_by:  # before the models load
            check_column(items, args.group_by)
        pipe = build_pipeline(args)
        loaded = time.perf_counter()
        reports = evaluate_audio(pipe, items, noise=args.noise, snrs=args.snr, seed=args.seed,
                                 batch_size=args.batch_size or 8, progress=not args.quiet, group_by=args.group_by)
        meta.update(asr=args.pipeline or args.asr or "bundled tiny.en (faster-whisper)",
                    intent=args.pipeline or args.intent or "demo-domain default", noise=args.noise,
                    snrs=[r.snr for r in reports.values() if r.snr is not None], seed=args.seed)
    else:
        examples = load_examples(args.data, format=args.format)[: args.limit]
        clf = load_classifier(args)
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
