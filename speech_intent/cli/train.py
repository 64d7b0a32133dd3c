"""``speech-intent train``: fine-tune an intent (or joint intent + slot) model from labelled data, and fit the
end-of-turn detector of the same sentences into ``OUTPUT/turn/`` (``--no-turn``: not)."""
from __future__ import annotations

import argparse
import random
import sys
import time

from ..data import detect_format, load_examples
from ..validation import check_model_path
from .options import add_device_arg


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="fine-tune an intent (or joint intent + slot) model from labelled data")
    p.add_argument("--data", required=True, help="CSV/TSV, JSONL, BIO folder, Rasa YAML or Rhino grammar YAML")
    p.add_argument("--format", default=None, help="force the data format (default: detected)")
    p.add_argument("--dev", default=None, help="dev data: early stopping, best epoch, out-of-scope threshold")
    p.add_argument("--dev-format", default=None, help="force the dev data format (default: detected)")
    p.add_argument("--output", required=True, help="output model dir")
    p.add_argument("--base", default=None, help="encoder to start from (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--epochs", type=float, default=8.0, help="maximum epochs")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    p.add_argument("--head-lr", type=float, default=None, help="peak learning rate of the new heads (default: --lr)")
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the maximum training steps")
    p.add_argument("--scheduler", default="linear",
                   help="learning-rate schedule after warm-up: linear, cosine, constant_with_warmup, ...")
    p.add_argument("--layer-lr-decay", type=float, default=1.0,
                   help="layer-wise learning-rate decay of the encoder (1.0: one rate)")
    p.add_argument("--crf", action="store_true", help="joint models: CRF slot decoder (learned transitions, Viterbi)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--early-stopping", type=int, default=3, metavar="N",
                   help="with --dev: stop after N epochs without a better dev score (0: never)")
    p.add_argument("--max-examples", type=int, default=None, metavar="N",
                   help="grammar: sample N expansions (default 20000); other formats: a random N examples")
    p.add_argument("--dp-epsilon", type=float, default=None, metavar="E",
                   help="differentially private fine-tuning (DP-SGD, Opacus) with this target ε for the whole run; "
                        "needs pip install 'speech-intent[privacy]'")
    p.add_argument("--dp-delta", type=float, default=None, metavar="D",
                   help="with --dp-epsilon: target δ (default: min(1e-5, 1/(2N)) for N training examples)")
    p.add_argument("--dp-max-grad-norm", type=float, default=1.0, metavar="C",
                   help="with --dp-epsilon: per-example gradient clipping norm (default %(default)s)")
    p.add_argument("--no-turn", action="store_true",
                   help="do not fit the end-of-turn detector of the same data (OUTPUT/turn/, used by streaming)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_device_arg(p)
    p.set_defaults(func=run)
    return p


def _load(args: argparse.Namespace, path: str) -> list:
    """Training examples: grammars sampled up to ``--max-examples``, other formats subsampled to it."""
    name = (args.format or detect_format(path)).lower()
    if name == "grammar":
        return load_examples(path, format=name, max_examples=args.max_examples, seed=args.seed)
    examples = load_examples(path, format=name)
    if args.max_examples and len(examples) > args.max_examples:
        examples = random.Random(args.seed).sample(examples, args.max_examples)
    return examples


def _privacy(args: argparse.Namespace):
    """``PrivacyOptions`` from ``--dp-*`` (ConfigError for a bad ε, δ or C); ``None`` without ``--dp-epsilon``."""
    from ..errors import ConfigError
    from ..privacy.dp import PrivacyOptions

    if args.dp_epsilon is None:
        if args.dp_delta is not None:
            raise ConfigError("--dp-delta needs --dp-epsilon")
        return None
    return PrivacyOptions(epsilon=args.dp_epsilon, delta=args.dp_delta, max_grad_norm=args.dp_max_grad_norm)


def run(args: argparse.Namespace) -> int:
    from ..nlu import TrainingOptions, fine_tune

    privacy = _privacy(args)  # before anything is read or loaded
    if args.base:
        check_model_path(args.base)  # before the data is read: a missing --base is not sent to the hub
    examples = _load(args, args.data)
    dev = load_examples(args.dev, format=args.dev_format) if args.dev else None
    config = TrainingOptions(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size, seed=args.seed,
                            early_stopping=args.early_stopping, head_learning_rate=args.head_lr,
                            warmup_ratio=args.warmup, lr_scheduler=args.scheduler, layer_lr_decay=args.layer_lr_decay,
                            slot_decoder="crf" if args.crf else "softmax")
    with_slots = sum(1 for ex in examples if ex.slots)
    print(f"training on {len(examples)} examples ({with_slots} with slots)"
          + (f", {len(dev)} dev examples" if dev else "") + f" -> {args.output}", file=sys.stderr)
    start = time.perf_counter()
    clf = fine_tune(examples, args.output, base=args.base, options=config, device=args.device, dev_examples=dev,
                    progress=not args.quiet, privacy=privacy)
    kind = f"joint model, {len(clf.labels)} intents, {len(clf.slot_labels)} slot tags" if clf.is_joint \
        else f"{len(clf.labels)} intents"
    info = clf.training or {}
    extra = f"; best dev score {info['best_dev_score']:.4f}" if info.get("best_dev_score") is not None else ""
    extra += f"; threshold {clf.threshold:.3f}" if clf.threshold is not None else ""
    print(f"trained {kind} on {len(examples)} examples in {time.perf_counter() - start:.1f} s "
          f"({info.get('epochs_run', args.epochs)} epochs{extra}); saved to {args.output}", file=sys.stderr)
    if info.get("privacy"):
        from ..privacy.dp import PrivacyRecord

        print(f"differential privacy: {PrivacyRecord.from_dict(info['privacy']).summary()} "
              f"(privacy.json)", file=sys.stderr)
    if not args.no_turn:
        _train_turn(args, examples, clf)
    return 0


def _train_turn(args: argparse.Namespace, examples: list, clf) -> None:
    """The end-of-turn detector of the same sentences into OUTPUT/turn/ (a grammar's completeness with it)."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..turn import SUBDIR, TurnTrainingOptions, train_turn_detector

    grammar = args.data if (args.format or detect_format(args.data)).lower() == "grammar" else None
    output = Path(args.output) / SUBDIR
    try:
        turn = train_turn_detector([ex.text for ex in examples], grammar=grammar, normalizer=clf.normalizer,
                                   options=TurnTrainingOptions(seed=args.seed), output_dir=output)
    except ConfigError as error:  # e.g. one-word commands only: the intent model is saved all the same
        print(f"end-of-turn detector: not fitted ({error})", file=sys.stderr)
        return
    held = f", held-out AUC {turn.metrics['auc']:.4f}" if turn.metrics.get("auc") is not None else ""
    print(f"end-of-turn detector: {turn.metrics['train_texts']} texts{held}, threshold {turn.threshold:.3f}; "
          f"saved to {output}", file=sys.stderr)
