"""``speech-intent train-asr``: fine-tune the Whisper ASR stage on recordings and/or synthesised speech."""
from __future__ import annotations

import argparse
import sys

from ..asr_training.options import ASRTrainingOptions, LoraOptions
from ..validation import check_model_path
from .options import add_device_arg

_DESCRIPTION = (
    "Fine-tune Whisper (default: the bundled tiny.en) on audio manifests with a text column and/or on the "
    "sentences of any training data (grammar, Rasa, CSV, JSONL, BIO), spoken by espeak-ng voices. Clips are "
    "augmented with training noise, speed perturbation and SpecAugment. Saves a transformers Whisper "
    "directory (--asr OUTPUT) and a CTranslate2 copy for the fast backend (--asr OUTPUT/ctranslate2).")


def add_parser(subparsers) -> argparse.ArgumentParser:
    defaults = ASRTrainingOptions()
    p = subparsers.add_parser("train-asr", help="fine-tune the Whisper ASR stage (recordings and/or synthesised "
                                                "speech)", description=_DESCRIPTION)
    p.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="audio manifests with a text column (CSV/TSV/JSONL/JSON/labels.json) and/or training data "
                        "whose sentences are synthesised (grammar/Rasa YAML, CSV, JSONL, BIO folder)")
    p.add_argument("--dev", nargs="+", default=None, metavar="PATH",
                   help="dev data of the same kinds: early stopping and best checkpoint by WER (never trained on)")
    p.add_argument("--output", required=True, help="output directory (WhisperASR; ctranslate2/ inside)")
    p.add_argument("--base", default=None, help="Whisper checkpoint to start from (default: bundled tiny.en)")
    p.add_argument("--exclude", nargs="+", default=[], metavar="PATH",
                   help="evaluation manifests, folders and files (recordings, noise) never to train on")
    p.add_argument("--epochs", type=float, default=defaults.epochs)
    p.add_argument("--lr", type=float, default=defaults.learning_rate, help="peak learning rate")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--grad-accum", type=int, default=defaults.gradient_accumulation, metavar="N",
                   help="gradient accumulation steps")
    p.add_argument("--freeze-encoder", action="store_true", help="train the decoder only")
    p.add_argument("--lora", type=int, default=None, metavar="RANK", help="train LoRA adapters of this rank (peft)")
    p.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default: 2 x rank)")
    p.add_argument("--snr", type=float, nargs=2, default=defaults.snr_range, metavar=("LOW", "HIGH"),
                   help="training-noise SNR range in dB (default %(default)s)")
    p.add_argument("--noise-prob", type=float, default=defaults.noise_probability,
                   help="share of clips mixed with training noise (default %(default)s; 0: no noise)")
    p.add_argument("--noise", default=None, metavar="FILE",
                   help="training noise recording (default: synthetic babble + pink/brown noise)")
    p.add_argument("--speed", type=float, nargs=2, default=defaults.speed_range, metavar=("LOW", "HIGH"),
                   help="speed perturbation range (default %(default)s; 1 1: off)")
    p.add_argument("--no-specaugment", action="store_true", help="no SpecAugment masks")
    p.add_argument("--prompt", default=None,
                   help="decoder prompt for a share of the clips (e.g. the pipeline's domain prompt)")
    p.add_argument("--max-examples", type=int, default=None, metavar="N",
                   help="sentences taken from each training-data file (a grammar is sampled)")
    p.add_argument("--rehearsal", nargs="+", default=None, metavar="PATH",
                   help="other domains' training data (grammar/Rasa YAML, CSV, JSONL, BIO folder): a sample of its "
                        "sentences is trained on too, so that the model does not forget other speech (default: "
                        "the library's general-English sentences)")
    p.add_argument("--rehearsal-examples", type=int, default=defaults.rehearsal_examples, metavar="N",
                   help="rehearsal sentences sampled (seeded by --seed; default %(default)s; 0: no rehearsal)")
    p.add_argument("--early-stopping", type=int, default=defaults.early_stopping, metavar="N",
                   help="with --dev: stop after N evaluations without a lower WER (0: never)")
    p.add_argument("--eval-steps", type=int, default=None, metavar="N", help="evaluate every N steps (default: epochs)")
    p.add_argument("--dev-snr", type=float, default=None, metavar="DB",
                   help="mix training noise into the dev clips at this SNR")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="auto: bf16 mixed precision on CUDA, float32 on CPU")
    p.add_argument("--no-ctranslate2", action="store_true", help="skip the CTranslate2 export")
    p.add_argument("--quantization", default=defaults.ctranslate2_quantization,
                   help="weight type of the CTranslate2 export (default %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_device_arg(p)
    p.set_defaults(func=run)
    return p


def options_from_args(args: argparse.Namespace) -> ASRTrainingOptions:
    """The :class:`ASRTrainingOptions` the flags describe (checked: a bad value raises ConfigError)."""
    lora = None
    if args.lora is not None:
        lora = LoraOptions(rank=args.lora, alpha=args.lora_alpha if args.lora_alpha is not None else 2.0 * args.lora)
    return ASRTrainingOptions(
        epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size, gradient_accumulation=args.grad_accum,
        freeze_encoder=args.freeze_encoder, lora=lora, noise_probability=args.noise_prob,
        snr_range=tuple(args.snr), speed_range=tuple(args.speed), specaugment=not args.no_specaugment,
        rehearsal_examples=args.rehearsal_examples, early_stopping=args.early_stopping, eval_steps=args.eval_steps,
        dev_snr=args.dev_snr, seed=args.seed, dtype=args.dtype, ctranslate2=not args.no_ctranslate2,
        ctranslate2_quantization=args.quantization)


def run(args: argparse.Namespace) -> int:
    from ..asr_training import fine_tune_asr

    options = options_from_args(args)
    if args.base:
        check_model_path(args.base)  # a missing --base is not sent to the hub
    print(f"fine-tuning {args.base or 'the bundled tiny.en'} on {', '.join(args.data)} -> {args.output}",
          file=sys.stderr)
    result = fine_tune_asr(args.data, args.output, base=args.base, options=options, dev=args.dev,
                           prompt=args.prompt, exclude=args.exclude, noise=args.noise,
                           max_examples=args.max_examples, rehearsal=args.rehearsal, device=args.device,
                           progress=not args.quiet)
    dev = ""
    if result.best_dev_wer is not None:
        dev = f"; dev WER {result.dev_wer_before:.1%} before, {result.best_dev_wer:.1%} at step {result.best_step}"
    notes = f", {result.excluded_examples} evaluation examples left out" if result.excluded_examples else ""
    if result.rehearsal is not None:
        notes += f", {result.rehearsal['sentences']} rehearsal sentences of {', '.join(result.rehearsal['sources'])}"
    print(f"trained on {result.train_examples} clips ({result.synthesised_examples} synthesised{notes}) for "
          f"{result.steps} steps in {result.seconds:.0f} s{dev}", file=sys.stderr)
    for problem in result.skipped:
        print(f"skipped: {problem}", file=sys.stderr)
    print(f"saved: {result.output_dir} (transformers)"
          + (f", {result.ctranslate2_dir} (CTranslate2)" if result.ctranslate2_dir else ""), file=sys.stderr)
    return 0
