"""``speech-intent convert``: a CTranslate2 Whisper model -> a transformers Whisper checkpoint."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..bundled import bundled_whisper_path
from ..validation import check_model_path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("convert", help="CTranslate2 Whisper dir -> transformers Whisper dir")
    p.add_argument("output", help="output directory")
    p.add_argument("--source", default=None, help="CTranslate2 model dir (default: bundled tiny.en)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..asr import convert_ctranslate2_whisper

    if args.source:
        check_model_path(Path(args.source))  # a local CTranslate2 directory
    src = args.source or bundled_whisper_path()
    out = convert_ctranslate2_whisper(src, args.output, dtype=args.dtype)
    print(f"converted {src} -> {out}", file=sys.stderr)
    return 0
