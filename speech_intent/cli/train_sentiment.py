"""``speech-intent train-sentiment``: fine-tune the text sentiment / emotion stage from labelled texts."""
from __future__ import annotations

import argparse
import json
import sys

from ..validation import check_model_path
from .options import add_device_arg


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train-sentiment", help="fine-tune the text sentiment / emotion stage (TSV, CSV, JSONL or GoEmotions)",
        description="DATA: a .tsv / .csv with a header (text, sentiment and / or emotion; several labels separated "
                    "by commas), a .jsonl of {text, sentiment, emotion}, a GoEmotions .tsv with labels.txt beside "
                    "it, or a GoEmotions folder (group/ for sentiment joined with ekman/ or original/ for emotion). "
                    "A head whose data has rows with several labels is trained multi-label (sigmoid).")
    p.add_argument("data", help="training data (file or GoEmotions folder)")
    p.add_argument("--output", required=True, help="where the trained stage is saved")
    p.add_argument("--dev", default=None,
                   help="dev data (same forms; for a GoEmotions folder default: its dev split): per-epoch macro-F1, "
                        "early stopping, best epoch")
    p.add_argument("--emotion-set", default=None, help="GoEmotions folder: the emotion labels (ekman or original)")
    p.add_argument("--base", default=None, help="encoder to start from (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--epochs", type=float, default=3.0, help="maximum epochs")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64, help="tokens per text (longer ones are cut)")
    p.add_argument("--train-limit", type=int, default=None, metavar="N", help="train on the first N texts only")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="the stage's confidence threshold: a best score under it reads 'uncertain'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--early-stopping", type=int, default=2, metavar="N",
                   help="with dev data: stop after N epochs without a better dev score (0: never)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_device_arg(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..sentiment import SentimentTrainingOptions, read_sentiment_data, train_sentiment

    options = SentimentTrainingOptions(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size,
                                       max_length=args.max_length, seed=args.seed, train_limit=args.train_limit,
                                       early_stopping=args.early_stopping, threshold=args.threshold)
    options.check()  # before anything is read or loaded
    if args.base:
        check_model_path(args.base)
    examples = read_sentiment_data(args.data, split="train", emotion_set=args.emotion_set)
    dev_path = args.dev
    if dev_path is None and Path(args.data).is_dir():
        dev_path = args.data if _has_dev(Path(args.data)) else None
    dev = read_sentiment_data(dev_path, split="dev", emotion_set=args.emotion_set) if dev_path else None
    stage = train_sentiment(examples, args.output, base=args.base, options=options, dev_examples=dev,
                            device=args.device, progress=not args.quiet)
    info = stage.training or {}
    summary = {"output": args.output, "labels": stage.labels, "train_examples": info.get("train_examples"),
               "dev_examples": info.get("dev_examples"), "best_dev_score": info.get("best_dev_score"),
               "epochs_run": info.get("epochs_run"), "seconds": info.get("seconds")}
    print(json.dumps(summary), file=sys.stdout)
    return 0


def _has_dev(folder) -> bool:
    """Whether a GoEmotions folder has a dev split (in it or in its group/ / ekman/ / original/)."""
    return any((folder / sub / "dev.tsv").is_file() for sub in ("", "group", "ekman", "original"))
