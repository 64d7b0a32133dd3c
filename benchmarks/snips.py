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
Targets with the bundled MiniLM: intent >= 98.6%, slot F1 >= 97.0%, sentence >= 93.6%.

Usage (from the repository root)::

    python benchmarks/snips.py                                  # full run (slow on CPU)
    python benchmarks/snips.py --epochs 1 --max-train-examples 500 --max-test-examples 200   # smoke run
    python benchmarks/snips.py --epochs 10 --lr 2e-4 --head-lr 3e-3 --json snips.json
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "snips"
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SNIPS folder with train/ dev/ test/")
    parser.add_argument("--epochs", type=float, default=10.0, help="maximum epochs")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=None, help="learning rate of the new heads (default: --lr)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--early-stopping", type=int, default=3, help="patience in epochs (0: never stop early)")
    parser.add_argument("--max-train-examples", type=int, default=None, help="random subset (smoke runs)")
    parser.add_argument("--max-dev-examples", type=int, default=None)
    parser.add_argument("--max-test-examples", type=int, default=None)
    parser.add_argument("--base", default=None, help="encoder (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: CUDA when available)")
    parser.add_argument("--output", type=Path, default=None, help="keep the trained model here (default: temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from speech_intent.data import load_examples
    from speech_intent.nlu import TrainingConfig, fine_tune

    train = _subset(load_examples(args.data / "train"), args.max_train_examples, args.seed)
    dev = _subset(load_examples(args.data / "dev"), args.max_dev_examples, args.seed)
    test = _subset(load_examples(args.data / "test"), args.max_test_examples, args.seed)
    config = TrainingConfig(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size, seed=args.seed,
                            early_stopping=args.early_stopping, oos_recall=None, head_learning_rate=args.head_lr)
    with tempfile.TemporaryDirectory() as scratch:
        output = args.output or Path(scratch) / "snips-joint"
        start = time.perf_counter()
        classifier = fine_tune(train, output, base=args.base, config=config, device=args.device, dev_examples=dev,
                               progress=not args.quiet)
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        scores = evaluate(classifier, test)
        eval_seconds = time.perf_counter() - start
    info = classifier.training or {}
    result = SnipsResult(
        intent_accuracy=scores["intent_accuracy"], slot_f1=scores["slot_f1"], slot_precision=scores["slot_precision"],
        slot_recall=scores["slot_recall"], sentence_accuracy=scores["sentence_accuracy"], test_examples=len(test),
        train_examples=len(train), dev_examples=len(dev), epochs_run=info.get("epochs_run", args.epochs),
        best_dev_score=info.get("best_dev_score"), train_seconds=round(train_seconds, 1),
        eval_seconds=round(eval_seconds, 1), device=str(classifier.device), text_mismatches=scores["text_mismatches"],
        settings={"epochs": args.epochs, "lr": args.lr, "head_lr": args.head_lr, "batch_size": args.batch_size,
                  "seed": args.seed,
                  "early_stopping": args.early_stopping, "base": info.get("base")},
    )
    print(f"\nSNIPS test ({result.test_examples} utterances; trained on {result.train_examples}, "
          f"{result.epochs_run:g} epochs, {result.train_seconds:.0f} s on {result.device})")
    for key, target in TARGETS.items():
        value = getattr(result, key)
        print(f"  {key:18s} {value:7.2%}   target {target:.1%}  {'ok' if value >= target else 'below'}")
    print(f"  slot precision {result.slot_precision:.2%}, recall {result.slot_recall:.2%}; "
          f"{result.text_mismatches} normalisation mismatches; eval {result.eval_seconds:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
