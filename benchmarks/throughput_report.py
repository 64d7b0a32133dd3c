"""Scoring and tables of ``benchmarks/throughput.py``: command acceptance, agreement / WER, and
the markdown report (split from the runner, which only measures)."""
from __future__ import annotations

import csv
import json
import os
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .common import ASSETS_AUDIO, write_json


def transcripts(row_out: List[Any]) -> List[str]:
    """The transcripts of a row's output (ours: result dicts; anchors: strings)."""
    return [o["transcript"] if isinstance(o, dict) else o for o in row_out]


def acceptance(row_out: List[Any], files: List[str], n_coffee: int, classify, labels: Path) -> Optional[float]:
    """Coffee command acceptance: our rows' own intents and slots; an anchor's transcripts are
    classified by ``classify`` (the same intent model). ``None`` without ``labels`` (the coffee
    ``labels.json``) or a coffee model."""
    from types import SimpleNamespace

    from speech_intent.evaluate import read_manifest
    from speech_intent.evaluate.metrics import compute_report

    if classify is None or not n_coffee or not labels.is_file():
        return None
    by_name = {Path(item.audio).name: item for item in read_manifest(labels)}
    pairs = [(by_name[Path(f).name], o) for f, o in zip(files[:n_coffee], row_out[:n_coffee]) if Path(f).name in by_name]
    outs = [o for _, o in pairs]
    if not all(isinstance(o, dict) for o in outs):
        outs = [{"transcript": t, "intent": p.intent, "slots": p.slots}
                for t, p in zip(transcripts(outs), classify(transcripts(outs)))]
    predictions = [SimpleNamespace(error=None, **o) for o in outs]
    return compute_report([item for item, _ in pairs], predictions, slot_mode="value").command_acceptance


def accuracy(row_out: List[Any], files: List[str], n_coffee: int, reference: Optional[List[Any]],
             baseline: Optional[List[Any]], labels_file: Path) -> Dict[str, Optional[float]]:
    """Agreement / WER vs the anchor (coffee), vs the 30 s baseline, and vs references (the sample
    commands' manifest; ``labels_file``: the coffee ``labels.json``, for slot recall)."""
    import jiwer

    from speech_intent.normalize import TextNormalizer

    norm = TextNormalizer()
    hyp = [norm(t) for t in transcripts(row_out)]

    def compare(ref: Optional[List[str]], sl: slice) -> Tuple[Optional[float], Optional[float]]:
        if ref is None or not hyp[sl]:
            return None, None
        r = [norm(t) for t in transcripts(ref[sl])]
        pairs = [(a or "<empty>", b or "<empty>") for a, b in zip(r, hyp[sl])]
        agree = sum(a == b for a, b in pairs) / len(pairs)
        return agree, jiwer.wer([a for a, _ in pairs], [b for _, b in pairs])

    coffee = slice(0, n_coffee)
    out: Dict[str, Optional[float]] = {}
    out["agree_anchor"], out["wer_anchor"] = compare(reference, coffee)
    out["agree_30s"], out["wer_30s"] = compare(baseline, coffee)
    manifest = {r["file"]: r["text"] for r in csv.DictReader(open(ASSETS_AUDIO / "manifest.csv"))} \
        if (ASSETS_AUDIO / "manifest.csv").is_file() else {}
    asset_pairs = [(norm(manifest[Path(f).name]), h) for f, h in zip(files[n_coffee:], hyp[n_coffee:])
                   if Path(f).name in manifest]
    out["wer_assets_ref"] = jiwer.wer(*map(list, zip(*asset_pairs))) if asset_pairs else None
    if labels_file.is_file() and n_coffee:
        labels = json.loads(labels_file.read_text())
        found = [norm(v) in h for f, h in zip(files[:n_coffee], hyp[:n_coffee])
                 for v in labels.get(Path(f).name, {}).get("slots", {}).values()]
        out["slot_recall"] = sum(found) / len(found) if found else None
    return out


# ------------------------------------------------------------------------------------------ report


def _fmt(value: Optional[float], spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def report(rows: List[Any], files, n_coffee: int, audio_s: float, n_texts: int, loads, info, args,
           quiet: bool = False) -> None:
    """Print the speed and accuracy tables (markdown) and optionally write JSON."""
    labels = args.data / "dev" / "labels.json"
    rows = [r for r in rows if r.runs]
    anchor = next(r for r in rows if r.kind == "anchor")
    anchor_out = anchor.runs[0]["out"]
    summary = []
    for row in rows:
        walls = [r["wall"] for r in row.runs]
        med = statistics.median(walls)
        units = n_texts if row.kind == "nlu" else len(files)
        item = {"row": row.name, "batch": row.batch or "-", "median_s": med, "min_s": min(walls), "max_s": max(walls),
                "rtfx": None if row.kind == "nlu" else audio_s / med, "per_s": units / med,
                "rss_mb": max(r["rss_mb"] for r in row.runs), "gpu_mb": row.runs[0]["gpu_mb"] if row.device == "cuda"
                else None, "device": row.device, "kind": row.kind}
        if row.kind != "nlu":
            base = next((r for r in rows if r.kind == "ours" and r.group == row.group and r.margin is None
                         and r.batch == row.batch), None) if row.margin is not None else None
            item.update(accuracy(row.runs[0]["out"], files, n_coffee, None if row is anchor else anchor_out,
                                 base.runs[0]["out"] if base else None, labels))
            item["acceptance"] = acceptance(row.runs[0]["out"], files, n_coffee, args.classify, labels)
        summary.append(item)
    fw = next(s for s in summary if s["kind"] == "anchor")
    for s in summary:
        hf = next((h for h in summary if h["kind"] == "hf" and h["device"] == s["device"]), None)
        s["x_fw"] = s["rtfx"] / fw["rtfx"] if s["rtfx"] else None
        s["x_hf"] = s["rtfx"] / hf["rtfx"] if s["rtfx"] and hf else None
    if args.json:
        write_json(args.json, {"summary": summary, "loadavg": loads, "audio_s": audio_s,
                               "runs": {f"{r.name} b={r.batch}": [x["wall"] for x in r.runs] for r in rows},
                               "transcripts": {f"{r.name} b={r.batch}": transcripts(r.runs[0]["out"])
                                               for r in rows if r.kind != "nlu"}, "files": files})
    if quiet:
        return
    print(f"\n{len(files)} files ({n_coffee} coffee), {audio_s:.1f} s of audio; {args.reps} interleaved reps; "
          f"{os.cpu_count()} CPUs; torch threads {sorted({v['torch_threads'] for v in info.values()})}")
    print("load average (1/5/15 min): " + "; ".join(f"{k} {a:.2f}/{b:.2f}/{c:.2f}" for k, (a, b, c) in loads))
    asr = [s for s in summary if s["kind"] != "nlu"]
    _table(["row", "batch", "RTFx (median)", "wall s median [min-max]", "files/s", "peak RSS MB",
            "peak GPU MB (torch)", "x fw 1-by-1", "x HF pipeline"],
           [[s["row"], s["batch"], _fmt(s["rtfx"], ".1f"), f"{s['median_s']:.2f} [{s['min_s']:.2f}-{s['max_s']:.2f}]",
             f"{s['per_s']:.2f}", f"{s['rss_mb']:.0f}", _fmt(s["gpu_mb"], ".0f"), _fmt(s["x_fw"]), _fmt(s["x_hf"])]
            for s in asr])
    _table(["row", "batch", "agree vs anchor", "WER vs anchor", "agree vs 30 s", "WER vs 30 s", "assets WER vs ref",
            "coffee slot recall", "coffee command acceptance"],
           [[s["row"], s["batch"], _fmt(s["agree_anchor"]), _fmt(s["wer_anchor"], ".3f"), _fmt(s["agree_30s"]),
             _fmt(s["wer_30s"], ".3f"), _fmt(s["wer_assets_ref"], ".3f"), _fmt(s.get("slot_recall")),
             _fmt(s.get("acceptance"))] for s in asr])
    for s in summary:
        if s["kind"] == "nlu":
            print(f"\nNLU alone ({s['device']}, {n_texts} texts): {s['per_s']:.0f} utterances/s "
                  f"(median {s['median_s']:.2f} s [{s['min_s']:.2f}-{s['max_s']:.2f}]), peak RSS {s['rss_mb']:.0f} MB")


def _table(columns: List[str], lines: List[List[Any]]) -> None:
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for line in lines:
        print("| " + " | ".join(map(str, line)) + " |")
