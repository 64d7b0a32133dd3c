"""Weight interpolation against forgetting (WiSE-FT): a fine-tuned Whisper's weights moved back towards the base's.

For each ``--alpha`` A the saved weights are ``base + A * (fine-tuned - base)`` (A = 0: the base, A = 1: the
fine-tuned model as trained; Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022),
converted to CTranslate2 int8 like ``fine_tune_asr``'s export, and scored the way
``asr_finetune.py`` scores its models: coffee command acceptance and slot F1 on the 100 dev recordings
(free decoding, domain prompt, the coffee intent model), clean and at ``--snr`` kitchen noise, and WER on
``assets/audio`` (other domains, no prompt). Costs no training: it reuses a model ``asr_finetune.py`` made.

    python -m benchmarks.asr_interpolate /tmp/speech-intent-asr-finetune/asr-coffee-no-rehearsal \\
        --intent /tmp/speech-intent-coffee/model --alpha 0 0.5 0.7 0.8 0.9 1

A = 0 is the base converted from its transformers twin, so its row can differ slightly from the bundled
CTranslate2 model's row in ``asr_finetune.py`` (int8 quantisation of a different source).
"""
from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

from .common import (
    COFFEE_DATA,
    add_batch_size_flag,
    add_data_flag,
    add_json_flag,
    add_work_flag,
    benchmark_parser,
    write_json,
)


def interpolate(base_dir: Path, tuned_dir: Path, alpha: float, out: Path) -> Path:
    """Save ``base + alpha * (tuned - base)`` as a WhisperASR directory with its CTranslate2 copy; that copy."""
    from safetensors.torch import load_file, save_file

    from speech_intent.asr_training import CTRANSLATE2_DIR, export_ctranslate2

    if not (out / CTRANSLATE2_DIR / "model.bin").is_file():
        base, tuned = load_file(str(base_dir / "model.safetensors")), load_file(str(tuned_dir / "model.safetensors"))
        if set(base) != set(tuned):
            sys.exit(f"{tuned_dir} and {base_dir} hold different weights")
        shutil.copytree(tuned_dir, out, ignore=shutil.ignore_patterns(CTRANSLATE2_DIR, "model.safetensors"),
                        dirs_exist_ok=True)
        merged = {k: (base[k].float() + alpha * (tuned[k].float() - base[k].float())).to(tuned[k].dtype) for k in tuned}
        save_file(merged, str(out / "model.safetensors"), metadata={"format": "pt"})
        export_ctranslate2(out, out / CTRANSLATE2_DIR)
    return out / CTRANSLATE2_DIR


def main() -> int:
    from . import asr_finetune as bench

    parser = benchmark_parser(__doc__)
    parser.add_argument("model", type=Path, help="a fine_tune_asr output directory (transformers weights)")
    parser.add_argument("--intent", type=Path, required=True, help="the coffee intent model (asr_finetune.py's)")
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.0, 0.5, 0.7, 0.8, 0.9, 1.0])
    parser.add_argument("--base", type=Path, default=None, help="default: the bundled tiny.en's transformers twin")
    add_data_flag(parser, COFFEE_DATA, "coffee data (grammar.yaml, dev/, noise/kitchen.wav)")
    parser.add_argument("--snr", type=float, nargs="*", default=[6.0])
    add_work_flag(parser, Path("/tmp/speech-intent-asr-interpolate"))
    add_batch_size_flag(parser)
    add_json_flag(parser)
    args = parser.parse_args()

    from speech_intent import IntentClassifier, SpeechIntentPipeline
    from speech_intent.asr.convert import bundled_whisper_transformers_path
    from speech_intent.evaluate import read_manifest

    base_dir = args.base or Path(bundled_whisper_transformers_path())
    scoring = types.SimpleNamespace(device="cpu", cpu_threads=None, batch_size=args.batch_size, snr=args.snr,
                                    limit=None, data=args.data)
    intent = IntentClassifier.from_pretrained(args.intent, device="cpu")
    items = read_manifest(args.data / "dev" / "labels.json")
    kitchen = args.data / "noise" / "kitchen.wav"
    clips, references = bench.assets_clips()
    rows = {}
    print(f"{'alpha':>6s} " + "".join(f"{c + ' accept':>14s} {'slot F1':>8s}" for c in ["clean"] + [f"{s:g}dB" for s in args.snr])
          + "   assets/audio WER")
    for alpha in args.alpha:
        asr = bench.fast_asr(scoring, interpolate(base_dir, args.model, alpha, args.work / f"alpha-{alpha:g}"))
        pipe = SpeechIntentPipeline(asr, intent, domain_prompt=True)
        row = {c: {"acceptance": r.command_acceptance, "slot_f1": r.slot_f1}
               for c, (r, _) in bench.timed_reports(pipe, items, kitchen, scoring).items()}
        row["assets_wer"] = bench.transcribe_wer(asr, clips, references, args.batch_size)["wer"]
        rows[alpha] = row
        cells = "".join(f"{v['acceptance']:14.1%} {v['slot_f1']:8.1%}" for k, v in row.items() if k != "assets_wer")
        print(f"{alpha:6g} {cells}   {row['assets_wer']:8.1%}", flush=True)
    if args.json:
        write_json(args.json, {"model": str(args.model), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
