"""``speech-intent transcribe``: audio -> one JSON line per input with the ASR stage's transcript."""
from __future__ import annotations

import argparse
import json

from ..audio import load_audio
from ..batch.inputs import expand_inputs
from ..errors import AudioError
from .options import add_model_args, load_asr_stage


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("transcribe", help="audio -> JSONL transcripts")
    p.add_argument("inputs", nargs="+")
    add_model_args(p, intent=False)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    asr = load_asr_stage(args)
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
