"""NLU throughput on CPU: our IntentClassifier vs ``transformers.pipeline("text-classification")``.

One process, one torch thread setting for every row (``--threads``, default: the cores; the ONNX
Runtime rows get the same number of intra-op threads), the same texts and the same weights:

- ``HF pipeline b=N``: ``transformers.pipeline("text-classification", device=-1)`` on a
  ``BertForSequenceClassification`` twin of the joint model, saved to a temp dir: the joint
  model's encoder and intent head; its pooler is ``tanh(eps * x)`` with ``eps = 1e-4`` and the
  classifier weights are divided by ``eps``, so it computes the joint model's intent logits
  (up to ~1e-8 relative) without the slot head. Its argmax must equal our intents on every text.
  It is given the texts already normalised (our rows normalise inside the timed call). The
  better of its batch sizes is the anchor of the ``x anchor`` column.
- ``ours``: ``IntentClassifier(texts)`` as a user calls it (default batch size; intents and slots).
- ``onnx`` / ``onnx-int8`` (``nlu_variants.py``): the same classifier with the library's ONNX Runtime
  forward pass, ``runtime="onnx"`` (float32 export) or ``runtime="onnx-int8"`` (int8 dynamic
  quantisation of it); exported into a temp folder, not beside the model.
- ``int8-torch`` (``nlu_variants.py``; benchmark only, not offered by the library): the forward pass
  on torch's int8 dynamic quantisation of every ``nn.Linear``.

Warm-up call per row, then ``--reps`` repetitions with rows interleaved and rotated; medians.
Agreement of every row with ``ours``: intent (HF rows: argmax) and slot spans per text.
With ``--data`` (a labelled folder, e.g. the SNIPS test split) each of our rows is also scored
(intent accuracy, slot F1, sentence accuracy; ``benchmarks/snips.py``'s scorer).

Usage::

    python -m benchmarks.nlu_speed --texts 1000 --reps 3                  # demo model, demo texts
    python -m benchmarks.nlu_speed --model DIR --data ../shared/data/snips/test --texts 0 --reps 1
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .common import add_data_flag, add_json_flag, add_threads_flag, benchmark_parser, write_json
from .throughput import nlu_texts

EPS = 1e-4


def hf_twin(classifier, out: Path) -> Path:
    """Save a ``BertForSequenceClassification`` computing the joint model's intent logits."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    joint = classifier.model
    if not classifier.is_joint or joint.config.encoder.model_type != "bert":
        raise SystemExit("the HF twin needs a joint intent + slot model on a BERT encoder")
    config = BertConfig(**{k: v for k, v in joint.config.encoder.to_dict().items()
                           if k not in ("architectures", "model_type", "transformers_version")})
    config.num_labels = len(classifier.labels)
    config.id2label = dict(enumerate(classifier.labels))
    config.label2id = {label: i for i, label in enumerate(classifier.labels)}
    model = BertForSequenceClassification(config)
    state = {f"bert.{k}": v for k, v in joint.encoder.state_dict().items()}
    hidden = config.hidden_size
    state["bert.pooler.dense.weight"] = torch.eye(hidden) * EPS  # tanh(eps x) / eps = x (1 + O(eps^2 x^2))
    state["bert.pooler.dense.bias"] = torch.zeros(hidden)
    state["classifier.weight"] = joint.intent_head.weight.detach() / EPS
    state["classifier.bias"] = joint.intent_head.bias.detach()
    model.load_state_dict(state, strict=True)
    model.save_pretrained(out, safe_serialization=True)
    classifier.tokenizer.save_pretrained(out)
    return out


def load_texts(args) -> tuple:
    """(texts, labelled examples or None)."""
    if args.data is None:
        return nlu_texts(args.texts or 2000), None
    from speech_intent.data import load_examples

    examples = load_examples(args.data)
    if args.texts:
        examples = [examples[i % len(examples)] for i in range(args.texts)]
    return [e.text for e in examples], examples


def main(argv: Optional[List[str]] = None) -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None, help="joint model dir (default: the demo model)")
    add_data_flag(parser, None, "labelled examples folder, e.g. ../shared/data/snips/test (texts and scores; "
                                "none: demo-domain texts, no scores)")
    parser.add_argument("--texts", type=int, default=1000, help="number of texts (cycled; 0 = all of --data)")
    parser.add_argument("--reps", type=int, default=3)
    add_threads_flag(parser, len(os.sched_getaffinity(0)), help="torch / ORT threads (default: the cores)")
    parser.add_argument("--hf-batch-sizes", default="1,64")
    parser.add_argument("--variants", default="onnx,onnx-int8,int8-torch",
                        help="other runtimes to measure (nlu_variants.py; '' = none)")
    add_json_flag(parser, help="write all measurements here")
    args = parser.parse_args(argv)

    import torch
    import transformers
    from transformers import pipeline

    from speech_intent import IntentClassifier
    from speech_intent.demo_model import default_intent_model

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    load = [("start", os.getloadavg())]
    base = (IntentClassifier.from_pretrained(args.model, device="cpu") if args.model
            else default_intent_model(device="cpu", progress=False))
    texts, examples = load_texts(args)
    normalized = [base.normalize(t) for t in texts]
    rows: Dict[str, Callable[[List[str]], List[Any]]] = {}
    ours: Dict[str, Any] = {"ours": base}
    with tempfile.TemporaryDirectory(prefix="si-nlu-") as tmp:
        for name in (v for v in args.variants.split(",") if v):
            from .nlu_variants import variant

            ours[name] = variant(base, name, Path(tmp) / "onnx", threads=args.threads)
        for name, clf in ours.items():
            rows[name] = (lambda c: lambda batch: c(batch))(clf)
        pipe = pipeline("text-classification", model=str(hf_twin(base, Path(tmp) / "hf")), device=-1)
        for bs in (int(b) for b in args.hf_batch_sizes.split(",")):
            rows[f"HF pipeline b={bs}"] = (lambda b: lambda batch: pipe(batch, batch_size=b, truncation=True,
                                                                        max_length=base.max_length))(bs)
        inputs = {name: normalized if name.startswith("HF") else texts for name in rows}
        for name, run in rows.items():  # warm-up
            run(inputs[name][:64])
        times: Dict[str, List[float]] = {name: [] for name in rows}
        outputs: Dict[str, List[Any]] = {}
        names = list(rows)
        for rep in range(args.reps):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                outputs[name] = rows[name](inputs[name])
                times[name].append(time.perf_counter() - start)
                print(f"rep {rep + 1}/{args.reps} {name}: {times[name][-1]:.2f} s load {os.getloadavg()[0]:.2f}",
                      flush=True)
            load.append((f"after rep {rep + 1}", os.getloadavg()))
    report(args, texts, examples, ours, rows, times, outputs, load)


def report(args, texts, examples, ours, rows, times, outputs, load) -> None:
    ref = outputs.get("ours")
    medians = {name: statistics.median(t) for name, t in times.items()}
    hf = [n for n in rows if n.startswith("HF")]
    anchor = min(hf, key=medians.get) if hf else None
    table = []
    for name in rows:
        row: Dict[str, Any] = {"row": name, "median_s": medians[name], "times_s": times[name],
                               "utt_per_s": len(texts) / medians[name],
                               "x_anchor": medians[anchor] / medians[name] if anchor else None}
        out = outputs[name]
        if ref is not None:
            if name.startswith("HF"):
                labels = [(o[0] if isinstance(o, list) else o)["label"] for o in out]
                row["intent_agree"] = sum(a == b.top_k[0][0] for a, b in zip(labels, ref)) / len(ref)
            else:
                row["intent_agree"] = sum(a.intent == b.intent for a, b in zip(out, ref)) / len(ref)
                row["slot_agree"] = sum(a.slot_spans == b.slot_spans for a, b in zip(out, ref)) / len(ref)
        if examples is not None and not name.startswith("HF"):
            from .snips import evaluate

            scores = evaluate(ours[name], examples)
            row.update({k: scores[k] for k in ("intent_accuracy", "slot_f1", "sentence_accuracy")})
        table.append(row)
    print(f"\n{len(texts)} texts, {args.threads} threads, medians of {args.reps}; load averages "
          + ", ".join(f"{label} {a[0]:.2f}" for label, a in load))
    cols = ["row", "utt/s", "median s", "x anchor", "intent agree", "slot agree"]
    if examples is not None:
        cols += ["intent acc", "slot F1", "sentence acc"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in table:
        cells = [r["row"], f"{r['utt_per_s']:.0f}", f"{r['median_s']:.2f}",
                 f"{r['x_anchor']:.2f}" if r["x_anchor"] else "", _pct(r.get("intent_agree")), _pct(r.get("slot_agree"))]
        if examples is not None:
            cells += [_pct(r.get("intent_accuracy")), _pct(r.get("slot_f1")), _pct(r.get("sentence_accuracy"))]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        write_json(args.json, {"texts": len(texts), "threads": args.threads, "reps": args.reps, "anchor": anchor,
                               "load": load, "rows": table})


def _pct(value: Optional[float]) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


if __name__ == "__main__":
    main()
