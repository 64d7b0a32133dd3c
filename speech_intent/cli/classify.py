"""``speech-intent classify``: texts -> one JSON line per text with intent, confidence, top-k and slots."""
from __future__ import annotations

import argparse
import json
import sys
from typing import List

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
        handle = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
        texts += [line.rstrip("\n") for line in handle if line.strip()]
    if not texts:
        print("error: give texts as arguments or with --file", file=sys.stderr)
        return 2
    for prediction in load_classifier(args)(texts, top_k=args.top_k):
        print(json.dumps(prediction.to_dict(), ensure_ascii=False))
    return 0
