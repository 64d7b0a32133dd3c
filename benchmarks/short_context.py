"""Is the shorter encoder context lossless? Accuracy (and time) of 30 s vs short context, per audio set.

The ASR stages encode a batch over its longest clip plus ``context_margin`` seconds (default 2, at
least ``min_context``) instead of Whisper's 30 s window, and decode clips whose result looks
unreliable again on 30 s (``speech_intent.asr.whisper_common.needs_full_window``). This benchmark
decides whether that default is lossless, on every audio set there is:

- ``coffee``: the 100 coffee dev recordings, clean and with kitchen noise at ``--snr`` (6 dB), scored by
  command acceptance with the coffee intent model of ``benchmarks/coffee.py``;
- ``assets``: the 30 other-domain sample commands in ``assets/audio`` (WER against the manifest, intent
  accuracy with the demo model);
- ``demo``: ``--demo`` sentences of the demo domain spoken by espeak-ng (WER, command acceptance).

Rows per backend: ``30s`` (``context_margin=None``), ``short`` (the default) and ``short, no net``
(the safety net switched off, to show what it buys), plus how many clips the net decoded again.
Backends: ``faster-whisper`` (the default), ``whisper`` (transformers) and ``grammar`` (transformers,
constrained to the coffee grammar, coffee only). Times are wall seconds of the same run (ratios only;
``benchmarks/throughput.py`` measures speed on a quiet machine).

    python -m benchmarks.short_context                       # everything (tens of minutes on 2 cores)
    python -m benchmarks.short_context --backends faster-whisper --sets coffee --limit 20
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from .common import (
    ASSETS_AUDIO,
    COFFEE_DATA,
    add_batch_size_flag,
    add_data_flag,
    add_json_flag,
    benchmark_parser,
    write_json,
)

VARIANTS = ("30s", "short", "short, no net")


class NetCounter:
    """Counts the safety net's verdicts while patched into both Whisper modules (or vetoes them all)."""

    def __init__(self, enabled: bool) -> None:
        from speech_intent.asr import whisper_common

        self.enabled, self.original, self.asked, self.redone = enabled, whisper_common.needs_full_window, 0, 0

    def __call__(self, *args, **kwargs) -> bool:
        self.asked += 1
        verdict = self.enabled and self.original(*args, **kwargs)
        self.redone += int(verdict)
        return verdict

    def __enter__(self) -> "NetCounter":
        import speech_intent.asr.faster_whisper as fw
        import speech_intent.asr.whisper as hf

        for module in (fw, hf):
            module.needs_full_window = self
        return self

    def __exit__(self, *exc) -> None:
        import speech_intent.asr.faster_whisper as fw
        import speech_intent.asr.whisper as hf

        for module in (fw, hf):
            module.needs_full_window = self.original


def demo_items(count: int, folder: Path):
    """``count`` demo-domain sentences spoken by espeak-ng (voices rotated), as manifest items."""
    import soundfile as sf

    from speech_intent.data import load_examples
    from speech_intent.demo_model import demo_domain_path
    from speech_intent.evaluate.manifest import ManifestItem
    from speech_intent.synthesis.tts import EspeakSynthesizer

    examples = load_examples(demo_domain_path())
    rng = np.random.default_rng(0)
    picked = [examples[i] for i in rng.choice(len(examples), size=min(count, len(examples)), replace=False)]
    voice = EspeakSynthesizer()
    items = []
    for i, example in enumerate(picked):
        path = folder / f"demo-{i:03d}.wav"
        sf.write(path, voice.synthesize(example.text, voice=i), voice.sampling_rate)
        items.append(ManifestItem(audio=path, intent=example.intent, text=example.text,
                                  slots={s.name: s.value for s in example.slots}))
    return items


def load_stage(backend: str, grammar: Path):
    from speech_intent.asr import FasterWhisperASR, WhisperASR
    from speech_intent.asr.convert import bundled_whisper_transformers_path

    if backend == "faster-whisper":
        return FasterWhisperASR.from_pretrained(None, device="cpu")
    return WhisperASR.from_pretrained(bundled_whisper_transformers_path(), device="cpu",
                                      grammar=grammar if backend == "grammar" else None)


def run_set(asr, intent, items, *, noise, snrs, batch_size: int) -> Dict[str, Dict[str, Any]]:
    """Every variant of ``asr`` on ``items``: {variant: {condition: scores, "seconds", "redone", "asked"}}."""
    from speech_intent import SpeechIntentPipeline
    from speech_intent.evaluate import evaluate_audio

    pipe = SpeechIntentPipeline(asr, intent)
    out: Dict[str, Dict[str, Any]] = {}
    for variant in VARIANTS:
        asr.configure(context_margin=None if variant == "30s" else 2.0)
        with NetCounter(enabled=variant != "short, no net") as net:
            start = time.perf_counter()
            reports = evaluate_audio(pipe, items, noise=noise, snrs=snrs, seed=0, batch_size=batch_size)
            seconds = time.perf_counter() - start
        row: Dict[str, Any] = {name: {"acceptance": r.command_acceptance, "intent": r.intent_accuracy, "wer": r.wer}
                               for name, r in reports.items()}
        row.update(seconds=seconds, redone=net.redone if variant != "30s" else 0, asked=net.asked)
        out[variant] = row
        cells = "  ".join(f"{name} acc {r['acceptance']:.1%}" + (f" WER {r['wer']:.1%}" if r["wer"] is not None else "")
                          for name, r in row.items() if isinstance(r, dict))
        print(f"    {variant:14s} {cells}  {seconds:6.1f} s  redone {row['redone']}/{row['asked']} "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return out


def main(argv: List[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    add_data_flag(parser, COFFEE_DATA, "coffee data (grammar.yaml, dev/, noise/kitchen.wav)")
    parser.add_argument("--sets", default="coffee,assets,demo")
    parser.add_argument("--backends", default="faster-whisper,whisper,grammar")
    parser.add_argument("--snr", type=float, nargs="*", default=[6.0], help="kitchen-noise SNRs for coffee")
    parser.add_argument("--demo", type=int, default=60, help="spoken demo-domain sentences")
    parser.add_argument("--limit", type=int, default=None, help="first N coffee recordings only")
    add_batch_size_flag(parser)
    add_json_flag(parser)
    args = parser.parse_args(argv)

    import torch

    from speech_intent import IntentClassifier
    from speech_intent.demo_model import default_intent_model
    from speech_intent.evaluate import read_manifest

    from . import coffee  # the coffee benchmark's intent model, trained from the grammar on first use

    torch.set_num_threads(os.cpu_count() or 1)
    sets, backends = args.sets.split(","), args.backends.split(",")
    grammar = args.data / "grammar.yaml"
    demo_model = default_intent_model(device="cpu", progress=False)
    results: Dict[str, Any] = {"load_start": os.getloadavg(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="si-short-") as tmp:
        data: Dict[str, Any] = {}
        if "coffee" in sets:
            if not grammar.is_file():
                sys.exit(f"coffee data not found under {args.data} (--data)")
            model_dir = coffee.DEFAULT_WORK / "model"
            if not (model_dir / "model.safetensors").is_file():
                coffee.train_intent_model(grammar, model_dir)
            items = read_manifest(args.data / "dev" / "labels.json")[: args.limit]
            data["coffee"] = (items, IntentClassifier.from_pretrained(model_dir, device="cpu"),
                              args.data / "noise" / "kitchen.wav", args.snr)
        if "assets" in sets:
            data["assets"] = (read_manifest(ASSETS_AUDIO / "manifest.csv"), demo_model, None, None)
        if "demo" in sets:
            data["demo"] = (demo_items(args.demo, Path(tmp)), demo_model, None, None)
        for backend in backends:
            asr = load_stage(backend, grammar)
            for name, (items, intent, noise, snrs) in data.items():
                if backend == "grammar" and name != "coffee":
                    continue  # grammar decoding can only say coffee orders
                print(f"{backend} on {name} ({len(items)} recordings)", flush=True)
                results[f"{backend} / {name}"] = run_set(asr, intent, items, noise=noise, snrs=snrs,
                                                         batch_size=args.batch_size)
    results["load_end"] = os.getloadavg()
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
