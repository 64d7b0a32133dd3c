"""GoEmotions benchmark: the text sentiment / emotion stage on the data set's dev split.

Trains one :class:`~speech_intent.sentiment.SentimentClassifier` (the bundled MiniLM, mean pooling, a
sentiment head on the ``group`` labels and an emotion head on the ``ekman`` labels, both multi-label: the
same comments joined by id) on ``DATA_DIR``'s train split, or scores a trained one (``--model``), and
reports on dev:

- macro-F1 over the 4 sentiment groups (positive, negative, ambiguous, neutral) and over Ekman's 7 emotions
  (+ neutral, as the GoEmotions paper counts it), with per-class precision / recall / F1;
- a label counts as predicted at ``--decision-threshold`` (0.3, the paper's) or when it is a row's best.

Targets with MiniLM-L6 (BERT-base's numbers in the GoEmotions paper): group macro-F1 >= 70.06, Ekman
macro-F1 >= 62.38. Any folder in the same layout (``group/`` and ``ekman/``, each ``train.tsv``,
``dev.tsv``, ``labels.txt``) runs.

Usage (from the repository root)::

    python -m benchmarks.goemotions ../shared/data/goemotions --out goemotions-out            # full run
    python -m benchmarks.goemotions ../shared/data/goemotions --epochs 1 --train-limit 500 --dev-limit 300
    python -m benchmarks.goemotions ../shared/data/goemotions --model goemotions-out/model --out rescored
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from .common import SHARED_DATA, add_device_flag, benchmark_parser, write_json

TARGETS = {"sentiment": 0.7006, "emotion": 0.6238}
DEFAULT_DATA = SHARED_DATA / "goemotions"


def per_class(gold: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> Dict[str, Any]:
    """Macro-F1 and per-class precision / recall / F1 / support of 0-1 matrices ``(rows, labels)``."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, average=None, zero_division=0)
    return {
        "macro_f1": float(f1_score(gold, predicted, average="macro", zero_division=0)),
        "per_class": {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for label, p, r, f, s in zip(labels, precision, recall, f1, support)},
    }


def score(classifier, examples: List[Any], decision_threshold: float) -> Dict[str, Any]:
    """Each head's dev scores (rows with gold labels for it)."""
    from speech_intent.sentiment.training import head_predictions

    probabilities = classifier.predict_proba([ex.text for ex in examples])
    results = {}
    for head, labels in classifier.labels.items():
        gold = np.array([[label in getattr(ex, head) for label in labels] for ex in examples], dtype=np.int64)
        keep = gold.sum(-1) > 0
        multi = classifier.model.config.multi_label(head)
        predicted = head_predictions(probabilities[head][keep], multi, decision_threshold)
        results[head] = {"rows": int(keep.sum()), "multi_label": multi, "target": TARGETS.get(head),
                         **per_class(gold[keep], predicted, labels)}
    return results


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("data", type=Path, nargs="?", default=DEFAULT_DATA,
                        help="GoEmotions folder (group/ and ekman/ sub-folders; default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("goemotions-out"), help="results.json and model/ go here")
    parser.add_argument("--model", type=Path, default=None, help="score this trained stage instead of training")
    parser.add_argument("--emotion-set", default="ekman", help="the emotion sub-folder (ekman or original)")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--train-limit", type=int, default=None, help="train on the first N texts only")
    parser.add_argument("--dev-limit", type=int, default=None, help="score the first N dev texts only")
    parser.add_argument("--no-dev-selection", action="store_true",
                        help="train all epochs without per-epoch dev scores (faster; the last epoch is kept)")
    parser.add_argument("--decision-threshold", type=float, default=0.3)
    parser.add_argument("--balance", type=float, default=0.5,
                        help="positive-row weight exponent of the multi-label heads (0: unweighted BCE)")
    add_device_flag(parser, None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from speech_intent.sentiment import SentimentClassifier, SentimentTrainingOptions, train_sentiment
    from speech_intent.sentiment.data import read_goemotions

    dev = read_goemotions(args.data, "dev", emotion_set=args.emotion_set, limit=args.dev_limit)
    started = time.perf_counter()
    if args.model is not None:
        classifier = SentimentClassifier.from_pretrained(args.model, device=args.device)
        options = None
    else:
        train = read_goemotions(args.data, "train", emotion_set=args.emotion_set)
        options = SentimentTrainingOptions(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size,
                                           max_length=args.max_length, train_limit=args.train_limit,
                                           decision_threshold=args.decision_threshold, balance=args.balance)
        classifier = train_sentiment(train, args.out / "model", options=options, device=args.device,
                                     dev_examples=None if args.no_dev_selection else dev)
    trained = time.perf_counter() - started
    results = score(classifier, dev, args.decision_threshold)
    report = {"data": str(args.data), "dev_texts": len(dev), "decision_threshold": args.decision_threshold,
              "options": None if options is None else options.__dict__, "seconds": round(trained, 1),
              "training": classifier.training, "heads": results}
    write_json(args.out / "results.json", report)
    for head, found in results.items():
        target = found["target"]
        print(f"{head:9s} macro-F1 {100 * found['macro_f1']:.2f}" + (f"  (target {100 * target:.2f})" if target else ""))
        for label, row in found["per_class"].items():
            print(f"    {label:12s} F1 {100 * row['f1']:6.2f}  P {100 * row['precision']:6.2f}  "
                  f"R {100 * row['recall']:6.2f}  n={row['support']}")
    print(f"results: {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
