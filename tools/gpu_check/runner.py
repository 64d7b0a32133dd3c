"""The GPU readiness check's run: :data:`CHECKS` by name, each run in turn into the report rows
(``OUT/gpu_check.json`` and ``OUT/gpu_check.txt``), and the command line (``python -m tools.gpu_check``)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

import torch

from .asr_finetune import check_asr_finetune
from .base import REPO, Context, Result, Skip, describe
from .model_checks import (
    check_attention,
    check_compile,
    check_environment,
    check_faster_whisper,
    check_fine_tune,
    check_grammar,
    check_pipeline,
    check_precision,
    check_throughput,
    check_wav2vec2,
    prepare,
)
from .streams import check_streams

DESCRIPTION = "GPU readiness: every GPU path of the library in one short run, each with a pass/fail line and a number."
#: The checks by name (``--only``), in the order they run.
CHECKS: Dict[str, Callable[[Context], Union[Result, List[Result]]]] = {
    "fp16": lambda ctx: check_precision(ctx, "float16" if ctx.device.type == "cuda" else "float32"),
    "bf16": lambda ctx: check_precision(ctx, "bfloat16"),
    "attention": check_attention,
    "grammar": check_grammar,
    "wav2vec2": check_wav2vec2,
    "faster-whisper": check_faster_whisper,
    "fine-tune": check_fine_tune,
    "pipeline": check_pipeline,
    "streams64": check_streams,
    "throughput": check_throughput,
    "asr-finetune": check_asr_finetune,
    "compile": check_compile,  # last: it compiles for minutes
}


def run(ctx: Context, only: Optional[List[str]], files: int) -> List[Result]:
    results = [check_environment(ctx)]
    start = time.perf_counter()
    try:
        detail = prepare(ctx, files)
        results.append(Result("setup", "PASS", detail=detail, seconds=time.perf_counter() - start))
    except Exception as error:  # nothing below can run without audio and references
        results.append(Result("setup", "SKIP" if isinstance(error, Skip) else "FAIL", detail=describe(error)))
        return results
    for name, check in CHECKS.items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        try:
            rows = check(ctx)
        except Skip as reason:
            rows = Result(name, "SKIP", detail=str(reason))
        except Exception as error:
            rows = Result(name, "FAIL", detail=describe(error))
        if isinstance(rows, Result):  # one row, timed here; a check giving several times each itself
            rows.seconds = round(time.perf_counter() - start, 1)
            rows = [rows]
        for result in rows:
            results.append(result)
            print(line(result), flush=True)
    return results


def line(r: Result) -> str:
    value = "" if r.value is None else f"{r.value:.1f} {r.unit}"
    return f"{r.status:4}  {r.check:30} {value:>18} {r.seconds:7.1f} s  {r.detail}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=DESCRIPTION)
    parser.add_argument("out", type=Path, help="folder for gpu_check.json and gpu_check.txt")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--dry-run", action="store_true", help="tiny random models, few files (CPU test)")
    parser.add_argument("--assets", type=Path, default=REPO / ".gpu", help="what prepare.sh made")
    parser.add_argument("--only", nargs="+", choices=sorted(CHECKS), type=lambda name: name.replace("_", "-"),
                        help="run these checks only (reruns)")
    parser.add_argument("--files", type=int, default=None, help="sample commands to use (default 30; dry run 3)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device} but torch sees no CUDA device", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        ctx = Context(device=torch.device(args.device), dry_run=args.dry_run, assets=args.assets, work=Path(work))
        started = time.perf_counter()
        results = run(ctx, args.only, args.files or (3 if args.dry_run else 30))
    table = "\n".join(line(r) for r in results)
    summary = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    text = f"{table}\n\n{summary['PASS']} passed, {summary['FAIL']} failed, {summary['SKIP']} skipped " \
           f"in {time.perf_counter() - started:.0f} s on {args.device}{' (dry run)' if args.dry_run else ''}\n"
    (args.out / "gpu_check.txt").write_text(text)
    (args.out / "gpu_check.json").write_text(json.dumps(
        {"device": args.device, "dry_run": args.dry_run, "summary": summary,
         "results": [asdict(r) for r in results]}, indent=2) + "\n")
    print(text)
    return 1 if summary["FAIL"] else 0
