"""SNIPS NLU benchmark: joint intent + slot fine-tuning of the bundled MiniLM.

Trains on ``../shared/data/snips/train`` (13,084 utterances), uses ``dev`` for early
stopping / best-epoch selection, scores ``test`` (700):

- intent accuracy;
- slot F1 as defined in ``speech_intent.slots`` (seqeval, entity level, on word-level
  BIO tags of the normalised text; the same per-utterance alignment ``aligned_bio`` and
  scorer ``slot_scores`` as ``speech-intent evaluate``): gold spans are moved into
  normalised text piece by piece, predictions come from ``IntentClassifier.slot_spans``;
  spelled-out numbers change word counts but not the number of entities;
- sentence accuracy (intent right and every word's tag right);

plus training time, epochs run and device. No out-of-scope threshold is chosen
(SNIPS has no out-of-scope utterances; a threshold could only reject right answers).

Learning curves: after every epoch the dev scores (the Trainer's evaluation, used for
early stopping) and the test scores (this script's scorer, on the model of that epoch;
``--no-epoch-test`` skips them) go into ``history`` of the ``--json`` output, with the
train loss, learning rate and training seconds so far; ``--plot PATH`` draws them (PNG).
Targets with the bundled MiniLM: intent >= 98.6%, slot F1 >= 97.0%, sentence >= 93.6%.

Usage (from the repository root)::

    python -m benchmarks.snips                                  # full run (slow on CPU)
    python -m benchmarks.snips --epochs 1 --max-train-examples 500 --max-test-examples 200   # smoke run
    python -m benchmarks.snips --epochs 10 --lr 2e-4 --head-lr 3e-3 --json snips.json
    python -m benchmarks.snips --epochs 30 --early-stopping 5 --lr 1e-4 --head-lr 3e-3 --warmup 0.06 \
        --crf --layer-lr-decay 0.9 --json snips-crf.json --plot snips-crf.png
"""
from __future__ import annotations

import logging
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from transformers import TrainerCallback

from .common import (
    SNIPS_DATA,
    add_batch_size_flag,
    add_data_flag,
    add_device_flag,
    add_json_flag,
    benchmark_parser,
    write_json,
)

TARGETS = {"intent_accuracy": 0.986, "slot_f1": 0.970, "sentence_accuracy": 0.936}


@dataclass
class SnipsResult:
    """One benchmark run: test scores, what was trained and how long it took."""

    intent_accuracy: float
    slot_f1: float
    slot_precision: float
    slot_recall: float
    sentence_accuracy: float
    test_examples: int
    train_examples: int
    dev_examples: int
    epochs_run: float
    best_dev_score: Optional[float]
    train_seconds: float
    eval_seconds: float
    device: str
    text_mismatches: int
    settings: Dict[str, Any]
    best_epoch: Optional[float] = None
    history: List[Dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _subset(examples: List[Any], limit: Optional[int], seed: int) -> List[Any]:
    if limit is None or len(examples) <= limit:
        return examples
    return random.Random(seed).sample(examples, limit)


def evaluate(classifier: Any, examples: List[Any], batch_size: int = 64) -> Dict[str, Any]:
    """Score a joint classifier on examples: intent accuracy, slot P/R/F1 and sentence accuracy."""
    from speech_intent.nlu import nlu_metrics
    from speech_intent.slots import aligned_bio, normalize_spans

    predictions = classifier([ex.text for ex in examples], batch_size=batch_size)
    gold_tags, pred_tags, mismatches = [], [], 0
    for ex, p in zip(examples, predictions):
        # whole-text and piecewise normalisation can differ (rare): predictions are then projected
        # onto the gold words, as in ``evaluate``
        mismatches += p.text.split() != normalize_spans(ex.text, ex.slots, classifier.normalize)[0].split()
        gold, pred = aligned_bio(ex.text, ex.slots, p.text, p.slot_spans, classifier.normalize)
        gold_tags.append(gold)
        pred_tags.append(pred)
    metrics = nlu_metrics([ex.intent for ex in examples], [p.intent for p in predictions], gold_tags, pred_tags)
    return {**metrics.to_dict(), "text_mismatches": mismatches}


class EpochTestScores(TrainerCallback):
    """After each dev evaluation, the test scores of the current model (a ``TrainerCallback``).

    ``rows``: ``epoch``, ``seconds`` (training so far, without this callback's own test runs)
    and ``test_*`` scores from :func:`evaluate` (none when ``test`` is empty).
    """

    def __init__(self, test: List[Any], tokenizer: Any, normalizer: Any, max_length: int) -> None:
        self.test, self.tokenizer, self.normalizer, self.max_length = test, tokenizer, normalizer, max_length
        self.rows: List[Dict[str, Any]] = []
        self.start, self.own_seconds = time.perf_counter(), 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start, self.own_seconds = time.perf_counter(), 0.0

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        import torch

        from speech_intent.nlu import IntentClassifier

        began = time.perf_counter()
        row: Dict[str, Any] = {"epoch": round(float(state.epoch or 0), 3),
                               "seconds": round(began - self.start - self.own_seconds, 1)}
        if self.test:
            training = model.training
            device = next(model.parameters()).device  # float32 weights (mixed precision keeps them so)
            classifier = IntentClassifier(model, self.tokenizer, device=device, dtype=torch.float32,
                                          normalizer=self.normalizer, max_length=self.max_length)
            scores = evaluate(classifier, self.test)
            model.train(training)
            row.update({f"test_{k}": scores[k] for k in ("intent_accuracy", "slot_f1", "sentence_accuracy")})
        self.rows.append(row)
        self.own_seconds += time.perf_counter() - began


def merge_history(trained: List[Dict[str, Any]], extra: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Join fine_tune's per-epoch rows (train loss, dev scores) with the callback's rows by epoch."""
    rows: Dict[float, Dict[str, Any]] = {}
    for row in list(trained) + list(extra):
        rows.setdefault(row["epoch"], {}).update(row)
    return [rows[epoch] for epoch in sorted(rows)]


def plot_history(history: List[Dict[str, Any]], path: Path, title: str) -> Path:
    """Learning curves (PNG): dev (solid) and test (dashed) scores per epoch; train and dev loss."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    scores, losses = fig.subplots(1, 2)
    colors = {"intent_accuracy": "tab:blue", "slot_f1": "tab:orange", "sentence_accuracy": "tab:green"}

    def curve(ax, key, **style):
        points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, **style)

    for name, color in colors.items():
        curve(scores, f"dev_{name}", color=color, label=f"dev {name.replace('_', ' ')}")
        curve(scores, f"test_{name}", color=color, linestyle="--", label=f"test {name.replace('_', ' ')}")
        scores.axhline(TARGETS[name], color=color, linestyle=":", linewidth=0.8)
    scores.set_xlabel("epoch")
    scores.set_ylabel("score (dotted: test targets)")
    scores.grid(alpha=0.3)
    scores.legend(fontsize=7, loc="lower right")
    curve(losses, "train_loss", color="tab:red", label="train loss")
    curve(losses, "dev_loss", color="tab:purple", label="dev loss")
    losses.set_xlabel("epoch")
    losses.set_ylabel("loss")
    losses.set_yscale("log")
    losses.grid(alpha=0.3)
    losses.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def main(argv: Optional[List[str]] = None) -> int:
    parser = benchmark_parser(__doc__)
    add_data_flag(parser, SNIPS_DATA, "SNIPS folder with train/ dev/ test/")
    parser.add_argument("--epochs", type=float, default=10.0, help="maximum epochs")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=None,
                        help="learning rate of the new heads and the CRF (default: --lr)")
    parser.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the maximum training steps")
    parser.add_argument("--scheduler", default="linear",
                        help="learning-rate schedule after warm-up: linear, cosine, constant_with_warmup, ...")
    parser.add_argument("--layer-lr-decay", type=float, default=1.0,
                        help="layer-wise learning-rate decay (encoder layer i of n at lr * decay ** (n - i))")
    parser.add_argument("--crf", action="store_true", help="CRF slot decoder (learned transitions, Viterbi)")
    parser.add_argument("--no-bio-constraint", action="store_true",
                        help="with --crf: let Viterbi put I-x after O (default: BIO-valid sequences only)")
    add_batch_size_flag(parser, 32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--early-stopping", type=int, default=3, help="patience in epochs (0: never stop early)")
    parser.add_argument("--max-train-examples", type=int, default=None, help="random subset (smoke runs)")
    parser.add_argument("--max-dev-examples", type=int, default=None)
    parser.add_argument("--max-test-examples", type=int, default=None)
    parser.add_argument("--base", default=None, help="encoder (default: bundled all-MiniLM-L6-v2)")
    add_device_flag(parser, None, help="cpu, cuda (default: CUDA when available)")
    parser.add_argument("--output", type=Path, default=None, help="keep the trained model here (default: temp dir)")
    add_json_flag(parser, help="write the result (with per-epoch history) as JSON")
    parser.add_argument("--plot", type=Path, default=None, help="write the learning curves as a PNG")
    parser.add_argument("--no-epoch-test", action="store_true", help="no test scores after each epoch")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from transformers import AutoTokenizer

    from speech_intent.bundled import bundled_encoder_path
    from speech_intent.data import load_examples
    from speech_intent.nlu import TrainingOptions, fine_tune
    from speech_intent.normalize import TextNormalizer

    train = _subset(load_examples(args.data / "train"), args.max_train_examples, args.seed)
    dev = _subset(load_examples(args.data / "dev"), args.max_dev_examples, args.seed)
    test = _subset(load_examples(args.data / "test"), args.max_test_examples, args.seed)
    config = TrainingOptions(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size, seed=args.seed,
                            early_stopping=args.early_stopping, oos_recall=None, head_learning_rate=args.head_lr,
                            warmup_ratio=args.warmup, lr_scheduler=args.scheduler, layer_lr_decay=args.layer_lr_decay,
                            slot_decoder="crf" if args.crf else "softmax", bio_constrained=not args.no_bio_constraint)
    normalizer = TextNormalizer()
    tokenizer = AutoTokenizer.from_pretrained(str(args.base or bundled_encoder_path()))
    per_epoch = EpochTestScores([] if args.no_epoch_test else test, tokenizer, normalizer, config.max_length)
    with tempfile.TemporaryDirectory() as scratch:
        output = args.output or Path(scratch) / "snips-joint"
        start = time.perf_counter()
        classifier = fine_tune(train, output, base=args.base, options=config, normalizer=normalizer,
                               device=args.device, dev_examples=dev, progress=not args.quiet, callbacks=[per_epoch])
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        scores = evaluate(classifier, test)
        eval_seconds = time.perf_counter() - start
    info = classifier.training or {}
    history = merge_history(info.get("history", []), per_epoch.rows)
    scored = [row for row in history if row.get("dev_score") is not None]
    best_epoch = max(scored, key=lambda row: row["dev_score"])["epoch"] if scored else None
    result = SnipsResult(
        intent_accuracy=scores["intent_accuracy"], slot_f1=scores["slot_f1"], slot_precision=scores["slot_precision"],
        slot_recall=scores["slot_recall"], sentence_accuracy=scores["sentence_accuracy"], test_examples=len(test),
        train_examples=len(train), dev_examples=len(dev), epochs_run=info.get("epochs_run", args.epochs),
        best_dev_score=info.get("best_dev_score"), train_seconds=round(train_seconds, 1),
        eval_seconds=round(eval_seconds, 1), device=str(classifier.device), text_mismatches=scores["text_mismatches"],
        settings={"epochs": args.epochs, "lr": args.lr, "head_lr": args.head_lr, "batch_size": args.batch_size,
                  "seed": args.seed, "early_stopping": args.early_stopping, "warmup": args.warmup,
                  "scheduler": args.scheduler, "layer_lr_decay": args.layer_lr_decay, "crf": args.crf,
                  "bio_constrained": not args.no_bio_constraint, "base": info.get("base")},
        best_epoch=best_epoch, history=history,
    )
    _print_history(history)
    print(f"\nSNIPS test ({result.test_examples} utterances; trained on {result.train_examples}, "
          f"{result.epochs_run:g} epochs, best dev epoch {result.best_epoch}, {result.train_seconds:.0f} s "
          f"on {result.device})")
    for key, target in TARGETS.items():
        value = getattr(result, key)
        print(f"  {key:18s} {value:7.2%}   target {target:.1%}  {'ok' if value >= target else 'below'}")
    print(f"  slot precision {result.slot_precision:.2%}, recall {result.slot_recall:.2%}; "
          f"{result.text_mismatches} normalisation mismatches; eval {result.eval_seconds:.1f} s")
    if args.json:
        write_json(args.json, result.to_dict())
    if args.plot:
        decoder = "CRF" if args.crf else "softmax"
        title = (f"SNIPS, {decoder} slots, lr {args.lr:g} (heads {args.head_lr or args.lr:g}), warmup {args.warmup:g}, "
                 f"{args.scheduler}, layer decay {args.layer_lr_decay:g}; best dev epoch {best_epoch}")
        print(f"learning curves: {plot_history(history, args.plot, title)}")
    return 0


def _print_history(history: List[Dict[str, Any]]) -> None:
    """One line per epoch: seconds, train loss, dev and test intent / slot F1 / sentence."""
    print("\nepoch  seconds  train loss | dev intent  slot F1  sentence | test intent  slot F1  sentence")

    def cell(row: Dict[str, Any], key: str, width: int) -> str:
        value = row.get(key)
        return f"{value:{width}.2%}" if value is not None else " " * (width - 1) + "-"

    for row in history:
        loss = row.get("train_loss")
        print(f"{row['epoch']:5g}  {row.get('seconds', float('nan')):7.0f}  "
              f"{loss if loss is not None else float('nan'):10.4f} | "
              f"{cell(row, 'dev_intent_accuracy', 10)}  {cell(row, 'dev_slot_f1', 7)}  "
              f"{cell(row, 'dev_sentence_accuracy', 8)} | {cell(row, 'test_intent_accuracy', 11)}  "
              f"{cell(row, 'test_slot_f1', 7)}  {cell(row, 'test_sentence_accuracy', 8)}")


if __name__ == "__main__":
    sys.exit(main())
