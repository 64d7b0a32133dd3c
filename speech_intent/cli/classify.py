"""``speech-intent classify``: texts -> one JSON line per text with intent, confidence, top-k and slots."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List

from ..errors import DataFormatError, DataNotFoundError
from .options import add_device_arg, add_intent_args, load_classifier


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("classify", help="text -> JSONL intents")
    p.add_argument("texts", nargs="*")
    p.add_argument("--file", default=None, help="one text per line ('-' for stdin)")
    add_intent_args(p, pipeline=False)
    add_device_arg(p)
    p.add_argument("--top-k", type=int, default=3)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    texts: List[str] = list(args.texts)
    if args.file:
        texts += [line for line in _read_lines(args.file) if line.strip()]
    if not texts:
        print("error: give texts as arguments or with --file", file=sys.stderr)
        return 2
    for prediction in load_classifier(args)(texts, top_k=args.top_k):
        print(json.dumps(prediction.to_dict(), ensure_ascii=False))
    return 0


def _read_lines(file: str) -> List[str]:
    """The lines of a UTF-8 text file (``-``: stdin)."""
    if file == "-":
        return sys.stdin.read().splitlines()
    if not Path(file).is_file():
        raise DataNotFoundError("no such text file", source=file)
    try:
        return Path(file).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DataFormatError(f"not UTF-8 text ({error.reason} at byte {error.start})", source=file) from None
