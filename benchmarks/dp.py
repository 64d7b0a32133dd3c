"""Differentially private fine-tuning: accuracy vs ε and a membership-inference check.

For each data set (SNIPS: ``DATA_DIR/snips`` train/test; the coffee grammar: ``DATA_DIR/coffee/grammar.yaml``,
training and test sentences sampled from it with different seeds, test sentences never in training) and
each ε (``inf`` = the ordinary non-private ``fine_tune``), a joint intent + slot model is fine-tuned from the
bundled all-MiniLM-L6-v2 and scored on the test set (intent accuracy, slot F1, as ``benchmarks.snips``).

Membership inference (``--mia-epsilons``, default ``inf 8``): a loss-threshold attack (Yeom et al. 2018):
an utterance is called a training member when the model's loss on it is low. Its AUC
(``sklearn.metrics.roc_auc_score``, score = minus the per-example loss) over ``--mia-examples`` training
utterances and as many held-out ones (test utterances) is 0.5 for a model that leaks nothing about
membership through its loss.

Each (data set, ε) run writes ``OUT/{data set}-eps{ε}.json``; every invocation then gathers all such
files in ``OUT`` into ``summary.json``, ``dp.png`` (accuracy vs ε) and a printed table, so the runs can be
made one ε at a time.

Usage (from the repository root; DATA_DIR holds ``snips/`` and ``coffee/``)::

    python -m benchmarks.dp ../shared/data --datasets snips --epsilons inf 8 3 1 --out dp-results
    python -m benchmarks.dp ../shared/data --datasets coffee --epsilons 8 --train-limit 2000 --epochs 3
    python -m benchmarks.dp ../shared/data --datasets snips --epsilons 8 --train-limit 500 --test-limit 100 \\
        --epochs 1 --out /tmp/dp-smoke                                   # smoke run
"""
from __future__ import annotations

import logging
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .common import benchmark_parser, write_json

TARGETS = {"eps8_intent_gap": 0.02, "eps3_intent_gap": 0.05, "eps8_mia_auc": 0.55}


def _subset(examples: List[Any], limit: Optional[int], seed: int) -> List[Any]:
    if limit is None or len(examples) <= limit:
        return list(examples)
    return random.Random(seed).sample(list(examples), limit)


def load_data(data_dir: Path, name: str, *, train_limit: Optional[int], test_limit: Optional[int],
              seed: int = 0):
    """``(train, test)`` examples of ``"snips"`` or ``"coffee"`` (grammar samples; test texts not in train)."""
    from speech_intent.data import expand_grammar, load_examples

    if name == "snips":
        train = _subset(load_examples(data_dir / "snips" / "train"), train_limit, seed)
        test = _subset(load_examples(data_dir / "snips" / "test"), test_limit, seed)
        return train, test
    if name == "coffee":
        grammar = data_dir / "coffee" / "grammar.yaml"
        train = expand_grammar(grammar, max_examples=train_limit or 2000, seed=seed)
        seen = {ex.text for ex in train}
        test = [ex for ex in expand_grammar(grammar, max_examples=(test_limit or 700) * 3, seed=seed + 1)
                if ex.text not in seen][: test_limit or 700]
        return train, test
    raise SystemExit(f"unknown data set {name!r}: snips or coffee")


def example_losses(classifier: Any, examples: Sequence[Any], batch_size: int = 64) -> List[float]:
    """The trained model's per-example loss (intent cross-entropy + mean slot loss over the words), eval mode."""
    import torch

    from speech_intent.nlu.dataset import JointCollator, encode, prepare_examples
    from speech_intent.nlu.private_training import per_example_loss

    label2id = {label: i for i, label in enumerate(classifier.labels)}
    prepared = [ex for ex in prepare_examples(examples, classifier.normalizer) if ex.intent in label2id]
    data = encode(classifier.tokenizer, prepared, label2id, slot_labels=classifier.slot_labels or None,
                  max_length=classifier.max_length)
    collate = JointCollator(classifier.tokenizer)
    model = classifier.model.eval()
    losses: List[float] = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = collate([data[i] for i in range(start, min(start + batch_size, len(data)))])
            losses += per_example_loss(model, {k: v.to(classifier.device) for k, v in batch.items()}).tolist()
    return losses


def membership_auc(classifier: Any, members: Sequence[Any], outsiders: Sequence[Any]) -> Dict[str, float]:
    """Loss-threshold membership inference: ROC AUC of ``-loss`` separating ``members`` from ``outsiders``."""
    from sklearn.metrics import roc_auc_score

    inside, outside = example_losses(classifier, members), example_losses(classifier, outsiders)
    auc = roc_auc_score([1] * len(inside) + [0] * len(outside), [-x for x in inside + outside])
    return {"auc": float(auc), "auc_se": auc_standard_error(auc, len(inside), len(outside)),
            "members": len(inside), "outsiders": len(outside),
            "member_loss": sum(inside) / len(inside), "outsider_loss": sum(outside) / len(outside)}


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's (1982) standard error of an ROC AUC from ``positives`` and ``negatives`` scores."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) \
        / (positives * negatives)
    return float(math.sqrt(max(var, 0.0)))


def run_one(args: Any, name: str, epsilon: float) -> Dict[str, Any]:
    """Train at ``epsilon`` (``inf``: non-private), score the test set, and (when asked) the attack."""
    from speech_intent.nlu import TrainingOptions, fine_tune
    from speech_intent.privacy.dp import PrivacyOptions

    from .snips import evaluate

    train, test = load_data(args.data_dir, name, train_limit=args.train_limit, test_limit=args.test_limit,
                            seed=args.seed)
    private = math.isfinite(epsilon)
    options = TrainingOptions(epochs=args.epochs, batch_size=args.batch_size if private else args.plain_batch_size,
                              learning_rate=args.dp_lr if private else args.lr, seed=args.seed, early_stopping=0,
                              oos_recall=None, warmup_ratio=0.0 if private else 0.1,
                              lr_scheduler="constant" if private else "linear")
    privacy = PrivacyOptions(epsilon=epsilon, max_grad_norm=args.max_grad_norm,
                             max_physical_batch_size=args.physical_batch_size,
                             trainable_layers=args.dp_trainable_layers) if private else None
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        classifier = fine_tune(train, Path(scratch) / "model", options=options, device=args.device,
                               progress=not args.quiet, privacy=privacy)
        seconds = time.perf_counter() - started
        scores = evaluate(classifier, test)
        row: Dict[str, Any] = {
            "dataset": name, "epsilon": epsilon if private else "inf", "train_examples": len(train),
            "test_examples": len(test), "intent_accuracy": scores["intent_accuracy"], "slot_f1": scores["slot_f1"],
            "train_seconds": round(seconds, 1), "settings": {**vars(options), "device": str(classifier.device),
                                                             "privacy_options": vars(privacy) if privacy else None},
            "privacy": (classifier.training or {}).get("privacy"),
        }
        if epsilon in args.mia_epsilons or (not private and math.inf in args.mia_epsilons):
            members = _subset(train, args.mia_examples, args.seed + 2)
            row["membership_inference"] = membership_auc(classifier, members, _subset(test, args.mia_examples,
                                                                                      args.seed + 2))
    return row


def _epsilon_key(row: Dict[str, Any]) -> float:
    return math.inf if row["epsilon"] == "inf" else float(row["epsilon"])


def gather(out: Path) -> Dict[str, Any]:
    """Every ``{data set}-eps{ε}.json`` in ``out``: rows by data set (ε descending), the gaps to non-private,
    ``summary.json`` and ``dp.png``."""
    import json

    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*-eps*.json"))]
    by_set: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        by_set.setdefault(row["dataset"], []).append(row)
    for name, items in by_set.items():
        items.sort(key=_epsilon_key, reverse=True)
        plain = next((r for r in items if r["epsilon"] == "inf"), None)
        for row in items:
            if plain is not None:
                row["intent_gap"] = plain["intent_accuracy"] - row["intent_accuracy"]
    summary = {"targets": TARGETS, "results": by_set}
    write_json(out / "summary.json", summary)
    _plot(by_set, out / "dp.png")
    return summary


def _plot(by_set: Dict[str, List[Dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, items in by_set.items():
        finite = [r for r in items if r["epsilon"] != "inf"]
        xs = [float(r["epsilon"]) for r in finite]
        for key, style in (("intent_accuracy", "-o"), ("slot_f1", "--s")):
            line, = ax.plot(xs, [r[key] for r in finite], style, label=f"{name} {key.replace('_', ' ')}")
            plain = next((r for r in items if r["epsilon"] == "inf"), None)
            if plain is not None:
                ax.axhline(plain[key], color=line.get_color(), lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("ε (dotted: non-private)")
    ax.set_ylabel("test score")
    ax.set_title("DP fine-tuning of MiniLM: accuracy vs ε")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(summary: Dict[str, Any]) -> None:
    print(f"{'data set':8} {'ε':>5} {'achieved':>8} {'σ/C':>6} {'steps':>6} {'train':>6} {'intent':>7} "
          f"{'gap':>6} {'slot F1':>7} {'MIA AUC':>7} {'seconds':>8}")
    for name, items in summary["results"].items():
        for r in items:
            p = r.get("privacy") or {}
            mia = r.get("membership_inference", {}).get("auc")
            print(f"{name:8} {str(r['epsilon']):>5} {p.get('epsilon', float('nan')):8.3f} "
                  f"{p.get('noise_multiplier', float('nan')):6.3f} {p.get('steps', 0):6d} {r['train_examples']:6d} "
                  f"{r['intent_accuracy']:7.4f} {r.get('intent_gap', float('nan')):6.3f} {r['slot_f1']:7.4f} "
                  f"{mia if mia is not None else float('nan'):7.3f} {r['train_seconds']:8.0f}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("data_dir", type=Path, help="folder with snips/ and coffee/ (e.g. ../shared/data)")
    parser.add_argument("--datasets", nargs="+", default=["snips", "coffee"], choices=["snips", "coffee"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[math.inf, 8.0, 3.0, 1.0],
                        help="target ε of each run ('inf': non-private)")
    parser.add_argument("--mia-epsilons", nargs="*", type=float, default=[math.inf, 8.0],
                        help="runs that also get the membership-inference attack")
    parser.add_argument("--mia-examples", type=int, default=500, help="members and outsiders each")
    parser.add_argument("--train-limit", type=int, default=None, help="random training subset (coffee: sample size)")
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=256, help="expected (Poisson) batch of private runs")
    parser.add_argument("--plain-batch-size", type=int, default=32, help="batch of the non-private run")
    parser.add_argument("--lr", type=float, default=1e-4, help="non-private peak learning rate")
    parser.add_argument("--dp-lr", type=float, default=1e-3, help="private learning rate (constant)")
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="per-example clipping norm C")
    parser.add_argument("--physical-batch-size", type=int, default=32)
    parser.add_argument("--dp-trainable-layers", type=int, default=None, metavar="N",
                        help="private runs train only the top N encoder layers and the heads (default: all layers; "
                             "0: the heads only, which needs no backward pass through the encoder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("dp-results"))
    parser.add_argument("--report-only", action="store_true", help="only gather the runs already in --out")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for name in args.datasets:
            for epsilon in args.epsilons:
                row = run_one(args, name, epsilon)
                label = "inf" if not math.isfinite(epsilon) else f"{epsilon:g}"
                write_json(args.out / f"{name}-eps{label}.json", row)
                print(f"{name} ε={label}: intent {row['intent_accuracy']:.4f}, slot F1 {row['slot_f1']:.4f}"
                      + (f", MIA AUC {row['membership_inference']['auc']:.3f}" if "membership_inference" in row
                         else ""), file=sys.stderr, flush=True)
    print_table(gather(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
