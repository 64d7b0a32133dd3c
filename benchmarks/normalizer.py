"""Which text normaliser? An ablation on the coffee benchmark (the default is chosen by this).

The normaliser runs on the training text and on every transcript (it is saved with the intent
model), so each variant trains its own coffee model (``benchmarks/coffee.py``'s recipe, from
``grammar.yaml`` only) and classifies the same transcripts: the 100 dev recordings transcribed
once by the bundled tiny.en (faster-whisper, free decoding, with the domain prompt a coffee model
gives it), clean and with kitchen noise at ``--snr`` dB (mixed the benchmark's way, seed 0).

    python -m benchmarks.normalizer --epochs 1            # ~2 min per variant on 2 CPU cores

Variants: the default ``TextNormalizer()``; each of its steps turned off (numbers to words,
hyphen splitting, punctuation stripping); contractions expanded; and no normalisation beyond
lower case and whitespace.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from . import coffee  # the coffee benchmark's training recipe
from .common import COFFEE_DATA, add_batch_size_flag, add_data_flag, add_work_flag, benchmark_parser

VARIANTS = {
    "default": {},
    "numbers as digits": {"numbers_to_words": False},
    "hyphens kept": {"split_hyphens": False},
    "punctuation kept": {"strip_punctuation": False},
    "contractions expanded": {"expand_contractions": True},
    "lower case only": {"numbers_to_words": False, "split_hyphens": False, "strip_punctuation": False,
                        "units": {}, "number_units": {}, "titles": {}, "cased_titles": {}},
}


def transcribe(items, grammar: Path, noise_file: Path, snrs, batch_size: int, cache: Path) -> dict:
    """condition -> transcripts of ``items`` (cached in ``cache``); ``grammar`` gives the domain prompt."""
    if cache.is_file():
        return json.loads(cache.read_text())
    from speech_intent import FasterWhisperASR, TextNormalizer
    from speech_intent.audio import load_audio
    from speech_intent.data import expand_grammar
    from speech_intent.nlu.canonical import domain_prompt, infer_closed_values
    from speech_intent.synthesis.noise import mix_at_snr

    closed = infer_closed_values(expand_grammar(grammar, max_examples=coffee.DEFAULT_MAX_EXAMPLES, seed=0),
                                 normalizer=TextNormalizer())
    # the prompt SpeechIntentPipeline gives a coffee model's ASR
    asr = FasterWhisperASR.from_pretrained(None, device="cpu", prompt=domain_prompt(closed))
    clips = [load_audio(item.audio) for item in items]
    noise = load_audio(noise_file, max_duration=None)
    out = {"clean": [t.text for t in asr.transcribe(clips, batch_size=batch_size)]}
    for snr in snrs:
        mixed = [mix_at_snr(clip, noise, snr, seed=0, index=i) for i, clip in enumerate(clips)]
        out[f"{snr:g}dB"] = [t.text for t in asr.transcribe(mixed, batch_size=batch_size)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def main() -> int:
    parser = benchmark_parser(__doc__)
    add_data_flag(parser, COFFEE_DATA, "coffee data: grammar.yaml, dev/ (recordings, labels.json), noise/kitchen.wav")
    add_work_flag(parser, coffee.DEFAULT_WORK / "normalizer")
    parser.add_argument("--epochs", type=float, default=coffee.DEFAULT_EPOCHS)
    parser.add_argument("--snr", type=float, nargs="*", default=[6.0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    add_batch_size_flag(parser)
    args = parser.parse_args()

    from speech_intent import TextNormalizer
    from speech_intent.evaluate import read_manifest
    from speech_intent.evaluate.metrics import compute_report

    items = read_manifest(args.data / "dev" / "labels.json")
    texts = transcribe(items, args.data / "grammar.yaml", args.data / "noise" / "kitchen.wav", args.snr, args.batch_size,
                       args.work / f"transcripts-{'-'.join(f'{s:g}' for s in args.snr)}.json")
    rows = []
    for name in args.variants:
        normalizer = TextNormalizer(**VARIANTS[name])
        model_dir = args.work / name.replace(" ", "-")
        start = time.perf_counter()
        if not (model_dir / "model.safetensors").is_file():
            coffee.train_intent_model(args.data / "grammar.yaml", model_dir, epochs=args.epochs,
                                      normalizer=normalizer)
        from speech_intent import IntentClassifier

        classifier = IntentClassifier.from_pretrained(model_dir, device="cpu")
        scores = {}
        for condition, transcripts in texts.items():
            predictions = [SimpleNamespace(transcript=t, intent=p.intent, slots=p.slots, error=None)
                           for t, p in zip(transcripts, classifier(transcripts))]
            report = compute_report(items, predictions, condition=condition, slot_mode="value")
            scores[condition] = (report.command_acceptance, report.slot_f1)
        rows.append((name, scores, time.perf_counter() - start))
        print(f"{name:22s} " + "  ".join(f"{c} {a:6.1%} (slot F1 {f:6.1%})" for c, (a, f) in scores.items()),
              flush=True)
    conditions = list(texts)
    print("\n| normaliser | " + " | ".join(f"{c} acceptance | {c} slot F1" for c in conditions) + " |")
    print("|---|" + "---|---|" * len(conditions))
    for name, scores, _ in rows:
        print(f"| {name} | " + " | ".join(f"{scores[c][0]:.0%} | {scores[c][1]:.1%}" for c in conditions) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
