"""Scores of predictions against gold labels: intents, slots, command acceptance, WER/CER.

Gold labels come as :class:`Reference` (built from a training :class:`~speech_intent.data.Example`
or an audio :class:`~speech_intent.evaluate.manifest.ManifestItem`); predictions are
:class:`~speech_intent.results.IntentPrediction` (text input) or
:class:`~speech_intent.results.PipelineResult` (audio input). Slot values, transcripts and
references are all compared after the library's :class:`~speech_intent.normalize.TextNormalizer`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..data.examples import Example
from ..normalize import TextNormalizer
from ..slots import SlotSpan, aligned_bio, locate_values, slot_scores, slots_accepted, spans_from_values, value_scores
from .manifest import ManifestItem
from .report import NO_INTENT, EvaluationReport, IntentScore

logger = logging.getLogger(__name__)

Normalize = Callable[[str], str]

__all__ = ["Reference", "as_reference", "compute_report", "intent_scores", "error_rates"]


@dataclass(frozen=True)
class Reference:
    """The gold label of one utterance.

    Attributes:
        intent: gold intent (``None`` = out of scope).
        slots: gold ``(name, value)`` pairs.
        text: the utterance text (text input) or reference transcript (audio), when known.
        spans: character spans of the slots in ``text`` (needed for BIO scoring).
        id: a name for reports (audio path, or the text).
    """

    intent: Optional[str]
    slots: Tuple[Tuple[str, str], ...] = ()
    text: Optional[str] = None
    spans: Tuple[SlotSpan, ...] = ()
    id: Optional[str] = None

    @classmethod
    def from_example(cls, example: Example) -> "Reference":
        return cls(example.intent, tuple((s.name, s.value) for s in example.slots), example.text,
                   example.slots, example.text)

    @classmethod
    def from_manifest_item(cls, item: ManifestItem) -> "Reference":
        spans: Tuple[SlotSpan, ...] = ()
        if item.text and item.slots:
            try:  # spans only when every value is literally in the transcript
                spans = spans_from_values(item.text, item.slots.items())
            except ValueError:
                spans = ()
        return cls(item.intent, tuple(item.slots.items()), item.text, spans, str(item.audio))


GoldLike = Union[Reference, Example, ManifestItem]


def as_reference(gold: GoldLike) -> Reference:
    """Any supported gold record as a :class:`Reference`."""
    if isinstance(gold, Reference):
        return gold
    if isinstance(gold, Example):
        return Reference.from_example(gold)
    if isinstance(gold, ManifestItem):
        return Reference.from_manifest_item(gold)
    raise TypeError(f"cannot use {type(gold).__name__} as a gold label")


def _label(intent: Optional[str]) -> str:
    return NO_INTENT if intent is None else intent


def _sorted_labels(labels: Sequence[str]) -> List[str]:
    return sorted(set(labels), key=lambda l: (l == NO_INTENT, l))


def intent_scores(gold: Sequence[Optional[str]], pred: Sequence[Optional[str]]) -> Dict[str, Any]:
    """Accuracy, macro-F1 (over in-scope gold intents), per-label rows and the confusion matrix."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    y_true, y_pred = [_label(g) for g in gold], [_label(p) for p in pred]
    labels = _sorted_labels(y_true + y_pred)
    in_scope = _sorted_labels([y for y in y_true if y != NO_INTENT]) or _sorted_labels(y_true)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=in_scope, average="macro", zero_division=0)),
        "per_intent": [IntentScore(l, float(pi), float(ri), float(fi), int(si))
                       for l, pi, ri, fi, si in zip(labels, p, r, f, s)],
        "labels": labels,
        "confusion": confusion_counts(y_true, y_pred, labels),
    }


def confusion_counts(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> List[List[int]]:
    """Confusion matrix as nested lists: rows gold, columns predicted, in ``labels`` order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for gold, pred in zip(y_true, y_pred):
        matrix[index[gold]][index[pred]] += 1
    return matrix


def error_rates(references: Sequence[str], hypotheses: Sequence[str], normalize: Normalize) -> Tuple[float, float]:
    """Corpus WER and CER (jiwer) after ``normalize``; pairs with an empty reference are skipped."""
    import jiwer

    pairs = [(normalize(r), normalize(h or "")) for r, h in zip(references, hypotheses)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        raise ValueError("no non-empty reference transcripts")
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))


def _oos(gold: Sequence[Optional[str]], pred: Sequence[Optional[str]]) -> Tuple[Optional[float], Optional[float]]:
    if not any(g is None for g in gold):
        return None, None
    both = sum(g is None and p is None for g, p in zip(gold, pred))
    predicted = sum(p is None for p in pred)
    return (both / predicted if predicted else 0.0), both / sum(g is None for g in gold)


def _predicted_spans(prediction: Any, normalize: Normalize) -> List[SlotSpan]:
    spans = getattr(prediction, "slot_spans", None) or []
    if spans:
        return list(spans)
    slots = getattr(prediction, "slots", None) or {}
    return locate_values(prediction.text or "", slots, normalize) if slots else []


def _slot_dict(pairs: Sequence[Tuple[str, str]]) -> Dict[str, Any]:
    """Name -> value, or name -> list of values for a name labelled more than once."""
    grouped: Dict[str, List[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}


def compute_report(
    references: Sequence[GoldLike],
    predictions: Sequence[Any],
    *,
    condition: str = "text",
    snr: Optional[float] = None,
    slot_mode: str = "auto",
    normalizer: Optional[Normalize] = None,
    bio_normalizer: Optional[Normalize] = None,
) -> EvaluationReport:
    """Score ``predictions`` (IntentPrediction or PipelineResult, in gold order) against ``references``.

    Args:
        condition / snr: how the inputs were presented (stored in the report).
        slot_mode: ``"bio"`` (slot F1 as defined in :mod:`speech_intent.slots`: word-level BIO with
            seqeval; needs gold spans and the same text on both sides), ``"value"`` ((name, normalised
            value) pairs; for ASR output) or ``"auto"`` (``"value"`` when predictions carry a
            transcript, else ``"bio"``).
        normalizer: compares slot values and transcripts (default :class:`TextNormalizer`).
        bio_normalizer: maps gold text to the prediction text for BIO tagging (default:
            ``normalizer``; pass the classifier's own normaliser).
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not references:
        raise ValueError("nothing to evaluate (no references)")
    refs = [as_reference(g) for g in references]
    norm: Normalize = normalizer or TextNormalizer()
    audio = any(hasattr(p, "transcript") for p in predictions)
    mode = ("value" if audio else "bio") if slot_mode == "auto" else slot_mode
    if mode not in ("bio", "value"):
        raise ValueError(f"slot_mode must be 'bio', 'value' or 'auto', got {slot_mode!r}")
    errors = [getattr(p, "error", None) for p in predictions]
    gold_intents = [r.intent for r in refs]
    pred_intents = [None if e else p.intent for p, e in zip(predictions, errors)]
    pred_slots = [{} if e else dict(getattr(p, "slots", None) or {}) for p, e in zip(predictions, errors)]
    scores = intent_scores(gold_intents, pred_intents)

    accepted = [g == p and (g is None or slots_accepted(r.slots, s, norm))
                for r, g, p, s in zip(refs, gold_intents, pred_intents, pred_slots)]
    report = EvaluationReport(
        condition=condition, snr=snr, n=len(refs), n_errors=sum(e is not None for e in errors),
        intent_accuracy=scores["accuracy"], intent_macro_f1=scores["macro_f1"],
        command_acceptance=sum(accepted) / len(refs), per_intent=scores["per_intent"],
        confusion_labels=scores["labels"], confusion=scores["confusion"],
    )
    report.oos_precision, report.oos_recall = _oos(gold_intents, pred_intents)

    has_slots = any(r.slots for r in refs)  # data without slot labels: slots are not scored
    if not has_slots and any(pred_slots):
        report.notes.append("the data has no slot labels: slot scores are left out")
    if has_slots and mode == "bio" and any(r.slots and not r.spans for r in refs):
        logger.warning("some gold slots have no character spans; scoring slots by value instead of BIO")
        mode = "value"
    if has_slots:
        report.slot_mode = mode
        if mode == "bio":
            bnorm = bio_normalizer or norm
            tags = [aligned_bio(r.text or "", r.spans, "" if e else (p.text or ""),
                                [] if e else _predicted_spans(p, bnorm), bnorm)
                    for r, p, e in zip(refs, predictions, errors)]
            report.slot_precision, report.slot_recall, report.slot_f1 = slot_scores(
                [g for g, _ in tags], [q for _, q in tags])
        else:
            values = value_scores([r.slots for r in refs], [list(s.items()) for s in pred_slots], norm)
            report.slot_precision, report.slot_recall, report.slot_f1 = (
                values["precision"], values["recall"], values["f1"])
            if audio:
                report.notes.append("slot scores are value-level P/R/F1 over (slot, normalised value) pairs: "
                                    "the recognised text differs from the reference, so BIO spans cannot be aligned")
        if not any(pred_slots):
            report.notes.append("the model predicted no slots (intent-only model): slot scores are 0 and "
                                "command acceptance needs utterances without slots")

    transcripts = [getattr(p, "transcript", None) for p in predictions]
    if audio and any(r.text for r in refs):
        with_ref = [(r.text, t) for r, t in zip(refs, transcripts) if r.text]
        try:
            report.wer, report.cer = error_rates([r for r, _ in with_ref], [t or "" for _, t in with_ref], norm)
            if len(with_ref) < len(refs):
                report.notes.append(f"WER/CER over the {len(with_ref)} utterances with a reference transcript")
        except ValueError:
            pass

    for r, p, e, s, ok, pi in zip(refs, predictions, errors, pred_slots, accepted, pred_intents):
        record: Dict[str, Any] = {"id": r.id, "gold_intent": r.intent, "intent": pi,
                                  "confidence": None if e else getattr(p, "confidence", None),
                                  "gold_slots": _slot_dict(r.slots), "slots": s,
                                  "intent_correct": r.intent == pi, "accepted": ok}
        if audio:
            record.update(reference=r.text, transcript=getattr(p, "transcript", None), error=e)
        record["text"] = getattr(p, "text", None)
        report.items.append(record)
    return report
