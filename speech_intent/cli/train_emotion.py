"""``speech-intent train-emotion``: train the acoustic emotion stage on a labels CSV."""
from __future__ import annotations

import argparse
import json
import sys

from ..emotion.options import DEFAULT_CONTEXT_MARGIN, EmotionTrainingOptions, HeadConfig
from ..validation import check_model_path
from .options import _context_margin, add_device_arg

_DESCRIPTION = (
    "Train an emotion recogniser: a head (softmax layer weights over the Whisper encoder's hidden states, "
    "attentive statistics pooling, a classifier) over the frozen encoder of the bundled tiny.en (or --encoder). "
    "LABELS is a CSV/TSV/JSONL manifest with an audio column (path, audio or file; relative to the manifest), an "
    "emotion column and a speaker column. A share of the speakers (--dev-fraction) is held out: the epoch with "
    "the best dev UAR is kept. No emotion model ships with the library; a model inherits the licence of its "
    "training data (RAVDESS is CC BY-NC-SA 4.0: a model trained on it is for non-commercial use only).")


def add_parser(subparsers) -> argparse.ArgumentParser:
    defaults = EmotionTrainingOptions()
    p = subparsers.add_parser("train-emotion", help="train the acoustic emotion stage on labelled clips",
                              description=_DESCRIPTION)
    p.add_argument("labels", metavar="LABELS", help="labels CSV/TSV/JSONL: path, emotion, speaker columns")
    p.add_argument("--output", required=True, help="output model directory (EmotionRecognizer)")
    p.add_argument("--encoder", default=None,
                   help="transformers Whisper checkpoint whose encoder is used (default: the bundled tiny.en, "
                        "converted once)")
    p.add_argument("--emotion-column", default="emotion", help="column of the emotion label (default %(default)s)")
    p.add_argument("--speaker-column", default="speaker",
                   help="column of the speaker (default %(default)s; RAVDESS: actor)")
    p.add_argument("--dev-fraction", type=float, default=defaults.dev_fraction,
                   help="share of the speakers held out as dev (default %(default)s; 0: none)")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--lr", type=float, default=defaults.learning_rate, help="peak learning rate")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--patience", type=int, default=defaults.patience,
                   help="stop after N epochs without a better dev UAR (0: never)")
    p.add_argument("--layers", choices=["weighted", "last"], default=defaults.head.layers,
                   help="weighted: softmax weights over every encoder layer (default); last: the output only")
    p.add_argument("--pooling", choices=["attentive", "mean"], default=defaults.head.pooling,
                   help="attentive statistics pooling over time (default) or plain mean + std")
    p.add_argument("--context-margin", type=_context_margin, default=DEFAULT_CONTEXT_MARGIN, metavar="S",
                   help="encoder window: the clip + S seconds (default %(default)s); 'none' = 30 s")
    p.add_argument("--speeds", type=float, nargs="*", default=list(defaults.speeds), metavar="FACTOR",
                   help="also train on copies of the training clips played at these speeds (e.g. 0.9 1.1; each "
                        "copy is one more encoder pass per clip)")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="a best score under it reads as 'uncertain' (default %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    add_device_arg(p)
    p.set_defaults(func=run)
    return p


def options_from_args(args: argparse.Namespace) -> EmotionTrainingOptions:
    """The :class:`EmotionTrainingOptions` the flags describe (a bad value raises ConfigError)."""
    return EmotionTrainingOptions(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size,
                                  dev_fraction=args.dev_fraction, patience=args.patience, seed=args.seed,
                                  head=HeadConfig(layers=args.layers, pooling=args.pooling),
                                  speeds=tuple(args.speeds))


def run(args: argparse.Namespace) -> int:
    from ..emotion import fit_emotion, read_emotion_labels

    options = options_from_args(args)
    clips = read_emotion_labels(args.labels, speaker_column=args.speaker_column, emotion_column=args.emotion_column)
    if args.encoder:
        check_model_path(args.encoder)
        encoder = args.encoder
    else:
        from ..asr.convert import bundled_whisper_transformers_path

        encoder = bundled_whisper_transformers_path()
    margin = None if args.context_margin == "none" else args.context_margin
    print(f"training an emotion head on {len(clips)} clips of {args.labels} over {encoder}", file=sys.stderr)
    recognizer, result = fit_emotion(clips, encoder, options=options, context_margin=margin,
                                     threshold=args.threshold, device=args.device)
    recognizer.save_pretrained(args.output)
    for problem in result.skipped:
        print(f"skipped: {problem}", file=sys.stderr)
    training = result.training
    dev = "no dev split"
    if training.dev_uar is not None:
        dev = (f"dev ({len(result.dev_speakers)} speakers, {result.dev_clips} clips): UAR {training.dev_uar:.1%}, "
               f"WA {training.dev_wa:.1%} at epoch {training.best_epoch}")
    print(f"trained on {result.train_clips} clips of {result.train_speakers} speakers; {dev}; "
          f"{result.seconds:.0f} s", file=sys.stderr)
    summary = {"output": str(args.output), "labels": result.labels, "train_clips": result.train_clips,
               "dev_clips": result.dev_clips, "dev_speakers": result.dev_speakers, "dev_uar": training.dev_uar,
               "dev_wa": training.dev_wa, "best_epoch": training.best_epoch, "skipped": len(result.skipped)}
    print(json.dumps(summary))
    return 0
