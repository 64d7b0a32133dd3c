"""``speech-intent train-turn``: fit the end-of-turn detector of a domain (the streaming recogniser's).

Saved as ``INTENT_DIR/turn/`` (``--intent``, where streaming finds it) or ``--output``; with
``--intent`` the intent model's text normaliser is used so both read transcripts alike.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..data import detect_format, load_examples
from ..errors import ConfigError, DataFormatError
from ..normalize import TextNormalizer
from ..validation import check_model_path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train-turn", help="fit the end-of-turn detector of a domain (used by streaming)")
    p.add_argument("--data", required=True, help="the domain's sentences: CSV/TSV, JSONL, BIO, Rasa YAML or a "
                                                 "Rhino grammar YAML (whose completeness is kept with the model)")
    p.add_argument("--format", default=None, help="force the data format (default: detected)")
    p.add_argument("--intent", default=None, help="the intent model dir: its normaliser, and saved as INTENT/turn/")
    p.add_argument("--output", default=None, help="output dir (default: INTENT/turn/)")
    p.add_argument("--required-slots", default=None, metavar="JSON",
                   help='intent -> slots a command needs, JSON text or a .json file ({"orderDrink": ["coffeeDrink"]})')
    p.add_argument("--max-examples", type=int, default=20000, metavar="N", help="grammar: sample N expansions")
    p.add_argument("--noise", type=float, default=0.5, help="share of texts with an ASR-noisy copy (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)
    return p


def _required(text):
    if text is None:
        return None
    path = Path(text)
    try:
        value = json.loads(path.read_text() if path.suffix == ".json" and path.is_file() else text)
    except (OSError, json.JSONDecodeError) as error:
        raise DataFormatError(f"--required-slots: not JSON ({error})", source=text) from error
    return value


def _normalizer(intent_dir):
    if intent_dir is None:
        return TextNormalizer()
    check_model_path(intent_dir)
    settings_file = Path(intent_dir) / "speech_intent.json"
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    return TextNormalizer.from_dict(settings["normalizer"]) if settings.get("normalizer") else TextNormalizer()


def run(args: argparse.Namespace) -> int:
    from ..turn import SUBDIR, TurnTrainingOptions, train_turn_detector

    if args.output is None and args.intent is None:
        raise ConfigError("train-turn needs --intent (saved as INTENT/turn/) or --output")
    output = Path(args.output) if args.output else Path(args.intent) / SUBDIR
    normalizer = _normalizer(args.intent)
    name = (args.format or detect_format(args.data)).lower()
    grammar = args.data if name == "grammar" else None
    examples = load_examples(args.data, format=name, **({"max_examples": args.max_examples, "seed": args.seed}
                                                         if grammar else {}))
    start = time.perf_counter()
    turn = train_turn_detector([e.text for e in examples], grammar=grammar, required_slots=_required(args.required_slots),
                               normalizer=normalizer, options=TurnTrainingOptions(noise=args.noise, seed=args.seed),
                               output_dir=output)
    metrics = turn.metrics
    held = (f"; held-out AUC {metrics['auc']:.4f}, accuracy {metrics['accuracy']:.4f}"
            if metrics.get("auc") is not None else "")
    print(f"end-of-turn detector: {metrics['train_texts']} texts from {len(examples)} sentences in "
          f"{time.perf_counter() - start:.1f} s{held}, threshold {turn.threshold:.3f}; saved to {output}",
          file=sys.stderr)
    return 0
