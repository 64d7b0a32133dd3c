"""The speech-intent command line: predict, transcribe, classify, train(-asr, -emotion, -sentiment, -turn), convert, evaluate, serve, chat.

One module per subcommand (each has ``add_parser(subparsers)`` and ``run(args)``); the
flags and model loading they share live in :mod:`.options`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from ..errors import SpeechIntentError
from . import (
    chat,
    classify,
    convert,
    evaluate,
    predict,
    serve,
    train,
    train_asr,
    train_emotion,
    train_responses,
    train_sentiment,
    train_turn,
    transcribe,
)

SUBCOMMANDS = (predict, transcribe, classify, train, train_asr, train_emotion, train_responses, train_sentiment,
               train_turn, convert, evaluate,
               serve, chat)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speech-intent", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except SpeechIntentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
