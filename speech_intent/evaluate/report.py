"""The evaluation report: one dataclass per condition, JSON-ready and printable."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

#: Label used for "no intent" (out of scope, or a failed input) in tables and matrices.
NO_INTENT = "<none>"
#: Metrics compared across groups (:meth:`EvaluationReport.group_summary`): name -> whether higher is better.
GROUP_METRICS = {"intent_accuracy": True, "intent_macro_f1": True, "slot_f1": True, "command_acceptance": True,
                 "wer": False}


@dataclass
class IntentScore:
    """Precision, recall, F1 and gold support of one intent label."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> Dict[str, Any]:
        return {"label": self.label, "precision": self.precision, "recall": self.recall, "f1": self.f1,
                "support": self.support}


@dataclass
class EvaluationReport:
    """Scores of one model on one data set under one condition.

    Attributes:
        condition: ``"text"``, ``"clean"`` or an SNR condition such as ``"12dB"``.
        snr: the SNR in dB of a noisy condition (``None`` otherwise).
        n: number of utterances; ``n_errors`` of them could not be processed (scored as no intent).
        intent_accuracy / intent_macro_f1: macro-F1 is over the in-scope intents of the gold data.
        slot_mode: ``"bio"`` (seqeval, word-level BIO on the shared text), ``"value"`` ((name, value)
            pairs, used for audio where the recognised text differs from the reference) or ``None``
            when neither side has slots.
        command_acceptance: intent right and every gold slot predicted with exactly its value.
        wer / cer: transcript error rates after normalisation (``None`` without reference transcripts).
        oos_precision / oos_recall: of "no intent" predictions, when the gold data has out-of-scope items.
        per_intent: one row per label seen in gold or predictions.
        confusion_labels / confusion: rows = gold, columns = predicted.
        items: one record per utterance (gold, prediction, correctness).
        notes: caveats worth printing with the numbers.
        group_by / groups: with per-group evaluation, the manifest column and one report per value of it
            (:mod:`speech_intent.evaluate.groups`); :meth:`group_summary` gives the worst group and the gap.
    """

    condition: str
    n: int
    intent_accuracy: float
    intent_macro_f1: float
    command_acceptance: float
    snr: Optional[float] = None
    n_errors: int = 0
    slot_mode: Optional[str] = None
    slot_precision: Optional[float] = None
    slot_recall: Optional[float] = None
    slot_f1: Optional[float] = None
    wer: Optional[float] = None
    cer: Optional[float] = None
    oos_precision: Optional[float] = None
    oos_recall: Optional[float] = None
    per_intent: List[IntentScore] = field(default_factory=list)
    confusion_labels: List[str] = field(default_factory=list)
    confusion: List[List[int]] = field(default_factory=list)
    items: List[Dict[str, Any]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    group_by: Optional[str] = None
    groups: Dict[str, "EvaluationReport"] = field(default_factory=dict)

    def group_summary(self) -> Dict[str, Dict[str, Any]]:
        """Per metric that every group has: each group's value, the ``worst`` group and the ``gap`` (best -
        worst); empty without groups."""
        out: Dict[str, Dict[str, Any]] = {}
        for metric, higher_is_better in GROUP_METRICS.items():
            values = {name: getattr(report, metric) for name, report in self.groups.items()}
            if not values or any(value is None for value in values.values()):
                continue
            worst = (min if higher_is_better else max)(values, key=lambda name: values[name])
            out[metric] = {"groups": values, "worst": worst, "gap": max(values.values()) - min(values.values())}
        return out

    def summary(self) -> Dict[str, Any]:
        """The headline numbers only (no tables, no items)."""
        keys = ("condition", "snr", "n", "n_errors", "intent_accuracy", "intent_macro_f1", "slot_mode",
                "slot_precision", "slot_recall", "slot_f1", "command_acceptance", "wer", "cer",
                "oos_precision", "oos_recall")
        return {k: getattr(self, k) for k in keys}

    def to_dict(self, items: bool = True) -> Dict[str, Any]:
        """JSON-ready mapping; ``items=False`` leaves out the per-utterance records."""
        out = self.summary()
        out["per_intent"] = [row.to_dict() for row in self.per_intent]
        out["confusion"] = {"labels": list(self.confusion_labels), "matrix": [list(r) for r in self.confusion]}
        out["notes"] = list(self.notes)
        if self.group_by is not None:
            out["groups"] = {"column": self.group_by,
                             "reports": {name: report.summary() for name, report in self.groups.items()},
                             "metrics": self.group_summary()}
        if items:
            out["items"] = list(self.items)
        return out

    def format_table(self, max_intents: int = 40) -> str:
        """A plain-text summary followed by the per-intent table of the ``max_intents`` most frequent intents
        (``0``: no per-intent table) and the per-group table (for printing)."""
        lines = [f"condition: {self.condition}   utterances: {self.n}"
                 + (f"   failed: {self.n_errors}" if self.n_errors else "")]
        rows = [("intent accuracy", _pct(self.intent_accuracy)), ("intent macro-F1", _pct(self.intent_macro_f1))]
        if self.slot_mode:
            mode = "seqeval BIO" if self.slot_mode == "bio" else "value pairs"
            rows += [(f"slot P / R / F1 ({mode})",
                      f"{_pct(self.slot_precision)} / {_pct(self.slot_recall)} / {_pct(self.slot_f1)}")]
        rows.append(("command acceptance", _pct(self.command_acceptance)))
        if self.wer is not None:
            rows.append(("WER / CER", f"{_pct(self.wer)} / {_pct(self.cer)}"))
        if self.oos_recall is not None:
            rows.append(("out-of-scope P / R", f"{_pct(self.oos_precision)} / {_pct(self.oos_recall)}"))
        width = max(len(name) for name, _ in rows)
        lines += [f"  {name:<{width}}  {value}" for name, value in rows]
        if self.per_intent and max_intents > 0:
            shown = sorted(self.per_intent, key=lambda r: (-r.support, r.label))[:max_intents]
            label_w = max([12, *(len(r.label) for r in shown)])
            lines.append("")
            lines.append(f"  {'intent':<{label_w}}  {'prec':>6}  {'recall':>6}  {'F1':>6}  {'support':>7}")
            for r in shown:
                lines.append(f"  {r.label:<{label_w}}  {_pct(r.precision):>6}  {_pct(r.recall):>6}  "
                             f"{_pct(r.f1):>6}  {r.support:>7}")
            if len(self.per_intent) > len(shown):
                lines.append(f"  ... {len(self.per_intent) - len(shown)} more in report.json")
        lines += self._group_lines()
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def _group_lines(self) -> List[str]:
        """The per-group table: n and each compared metric per group and the gap, then each metric's worst group."""
        metrics = self.group_summary()
        if not metrics:
            return []
        width = max(12, *(len(name) for name in self.groups))
        heads = {"intent_accuracy": "acc", "intent_macro_f1": "mF1", "slot_f1": "slotF1",
                 "command_acceptance": "accept", "wer": "WER"}
        lines = ["", f"  by {self.group_by}:",
                 f"  {'group':<{width}}  {'n':>5}  " + "  ".join(f"{heads[m]:>6}" for m in metrics)]
        for name, report in self.groups.items():
            lines.append(f"  {name:<{width}}  {report.n:>5}  "
                         + "  ".join(f"{_pct(m['groups'][name]):>6}" for m in metrics.values()))
        lines.append(f"  {'gap':<{width}}  {'':>5}  " + "  ".join(f"{_pct(m['gap']):>6}" for m in metrics.values()))
        lines += [f"  worst {heads[name]}: {m['worst']} ({_pct(m['groups'][m['worst']])}, gap {_pct(m['gap'])})"
                  for name, m in metrics.items()]
        return lines


def format_summary(reports: Mapping[str, EvaluationReport]) -> str:
    """One line per condition: accuracy, macro-F1, slot F1, acceptance, WER."""
    head = f"{'condition':<10} {'n':>5} {'acc':>6} {'mF1':>6} {'slotF1':>6} {'accept':>6} {'WER':>6}"
    lines = [head]
    for name, r in reports.items():
        lines.append(f"{name:<10} {r.n:>5} {_pct(r.intent_accuracy):>6} {_pct(r.intent_macro_f1):>6} "
                     f"{_pct(r.slot_f1):>6} {_pct(r.command_acceptance):>6} {_pct(r.wer):>6}")
    return "\n".join(lines)


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
