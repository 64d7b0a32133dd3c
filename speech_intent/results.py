"""Typed results of each stage. Every result is a dataclass with ``to_dict()``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .slots import SlotSpan


@dataclass
class Transcript:
    """Output of an ASR stage for one input.

    Attributes:
        text: the recognised text, stripped.
        confidence: geometric-mean token probability in [0, 1].
        duration: length of the input audio in seconds.
        in_grammar: with grammar-constrained decoding, whether the speech was judged to be a
            sentence of the grammar (``None`` = no grammar in use).
        grammar_margin: with out-of-grammar rejection on, how much better the free decoding
            scored than the constrained one (mean log-probability per token; rejected above
            the stage's ``grammar_rejection``).
    """

    text: str
    confidence: float
    duration: Optional[float] = None
    in_grammar: Optional[bool] = None
    grammar_margin: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class IntentPrediction:
    """Output of an intent stage for one text.

    Attributes:
        text: the text that was classified (after normalisation).
        intent: the predicted label, or ``None`` when out of scope / empty.
        confidence: softmax probability of the top label.
        top_k: the best labels with their probabilities, best first.
        slots: slot name -> value (joint models; empty for intent-only models).
        slot_spans: the same slots as :class:`~speech_intent.slots.SlotSpan` with character spans
            into ``text`` (``raw``: the text found there when ``value`` was canonicalised).
    """

    text: str
    intent: Optional[str]
    confidence: float
    top_k: List[Tuple[str, float]] = field(default_factory=list)
    slots: Dict[str, str] = field(default_factory=dict)
    slot_spans: List[SlotSpan] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "text": self.text,
            "intent": self.intent,
            "confidence": self.confidence,
            "top_k": [{"intent": label, "confidence": p} for label, p in self.top_k],
            "slots": dict(self.slots),
            "slot_spans": [s.to_dict() for s in self.slot_spans],
        }


@dataclass
class LabelScores:
    """A classifier's answer over a closed label set (sentiment, emotion, end of turn, ...).

    Attributes:
        label: the best label, or ``"uncertain"`` when its score is under the stage's threshold.
        score: the best label's probability in [0, 1].
        scores: every label -> its probability (for multi-label data each in [0, 1] on its own).
    """

    label: str
    score: float
    scores: Dict[str, float] = field(default_factory=dict)

    #: The label of an answer whose best score is under the stage's confidence threshold.
    UNCERTAIN = "uncertain"

    @classmethod
    def from_scores(cls, scores: Dict[str, float], threshold: float = 0.0) -> "LabelScores":
        """The best of ``scores``; ``label`` is :attr:`UNCERTAIN` when its score is under ``threshold``."""
        best = max(scores, key=scores.__getitem__)
        label = best if scores[best] >= threshold else cls.UNCERTAIN
        return cls(label=label, score=float(scores[best]), scores={k: float(v) for k, v in scores.items()})

    def to_dict(self) -> Dict[str, Any]:
        return {"label": self.label, "score": self.score, "scores": dict(self.scores)}


@dataclass
class PipelineResult:
    """One input's end-to-end result: what the ASR heard and what the intent stage made of it.

    Attributes:
        path: the input's file name (or ``<array #i>`` / ``<bytes #i>``).
        transcription: the ASR stage's :class:`Transcript` (``None`` when the input failed).
        prediction: the intent stage's :class:`IntentPrediction` of it (``None`` when the input
            failed; intent ``None`` and no slots when the ASR judged the speech out of grammar).
        error: why the input failed, or ``None``.
        segment, start, end, last: set on the per-utterance results of a long recording
            (:meth:`~speech_intent.SpeechIntentPipeline.predict_segments`): the utterance's number in
            its file from 0, where it starts and ends in seconds of the file, and whether it is the
            file's last row. A row for the whole file (no speech in it, or a file that could not be
            read) has ``segment=None`` and ``last=True``. ``None`` for results of whole inputs.
        sentiment, text_emotion: the text sentiment stage's answers on the transcript (sentiment; emotion, when
            its model has an emotion head), ``None`` without one, for an empty transcript or a failed input.
        emotion: the acoustic emotion stage's answer on the audio, ``None`` likewise (silent audio too).
        affect: the names of those three fields the run's pipeline has stages for (the same for every row of
            the run, failed ones included); ``to_dict()`` writes each as ``NAME`` (its label) and ``NAME_score``.

    The flat names of ``to_dict()`` (``transcript``, ``intent``, ``slots``, ...: :data:`FLAT_FIELDS`) are
    also read-only properties over the two parts (``None``, or an empty list / dict, when a part is missing).
    """

    path: str
    transcription: Optional[Transcript] = None
    prediction: Optional[IntentPrediction] = None
    error: Optional[str] = None
    segment: Optional[int] = None
    start: Optional[float] = None
    end: Optional[float] = None
    last: Optional[bool] = None
    sentiment: Optional[LabelScores] = None
    text_emotion: Optional[LabelScores] = None
    emotion: Optional[LabelScores] = None
    affect: Tuple[str, ...] = ()

    @classmethod
    def failed(cls, name: str, error: BaseException) -> "PipelineResult":
        """The result of an input a model stage raised on: ``"NAME: processing failed (Type: message)"``."""
        return cls(path=name, error=f"{name}: processing failed ({type(error).__name__}: {error})")

    @property
    def segmented(self) -> bool:
        """Whether this is a row of a segmented long recording (``to_dict()`` then has the segment keys)."""
        return self.last is not None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> Dict[str, Any]:
        """Flat keys: ``path``, the transcription's (its ``text`` / ``confidence`` as ``transcript`` /
        ``transcript_confidence``), the prediction's, ``error``; rows of a segmented recording also
        ``segment``, ``start``, ``end``, ``last``; with affect stages (``affect``) ``sentiment`` / ``sentiment_score``,
        ``text_emotion`` / ``text_emotion_score``, ``emotion`` / ``emotion_score``. A failed input has the same
        keys, null or empty."""
        # a missing part is written as an empty one: same keys, null values (empty top_k, slots, spans)
        transcription = self.transcription or Transcript(None, None)  # type: ignore[arg-type]
        prediction = self.prediction or IntentPrediction(None, None, None)  # type: ignore[arg-type]
        heard = {_TRANSCRIPT_KEYS.get(key, key): value for key, value in transcription.to_dict().items()}
        row = {"path": self.path, **heard, **prediction.to_dict(), "error": self.error}
        if self.segmented:
            row.update(segment=self.segment, start=self.start, end=self.end, last=self.last)
        for key in self.affect:  # the optional stages' answers: label and score, None when missing
            answer: Optional[LabelScores] = getattr(self, key)
            row.update({key: answer.label if answer else None, f"{key}_score": answer.score if answer else None})
        return row


#: ``Transcript.to_dict()`` keys renamed in ``PipelineResult.to_dict()`` (the prediction has its own).
_TRANSCRIPT_KEYS = {"text": "transcript", "confidence": "transcript_confidence"}


#: The flat read-only properties of :class:`PipelineResult`: name -> (part, the part's field, value when missing).
FLAT_FIELDS: Dict[str, Tuple[str, str, Any]] = {
    "transcript": ("transcription", "text", None),
    "transcript_confidence": ("transcription", "confidence", None),
    "duration": ("transcription", "duration", None),
    "in_grammar": ("transcription", "in_grammar", None),
    "grammar_margin": ("transcription", "grammar_margin", None),
    "text": ("prediction", "text", None),
    "intent": ("prediction", "intent", None),
    "confidence": ("prediction", "confidence", None),
    "top_k": ("prediction", "top_k", list),
    "slots": ("prediction", "slots", dict),
    "slot_spans": ("prediction", "slot_spans", list),
}


def _flat_property(part: str, name: str, missing: Any) -> property:
    def get(self: PipelineResult) -> Any:
        owner = getattr(self, part)
        if owner is not None:
            return getattr(owner, name)
        return missing() if callable(missing) else missing

    get.__doc__ = f"``{part}.{name}`` (read-only)."
    return property(get)


for _name, (_part, _field, _missing) in FLAT_FIELDS.items():
    setattr(PipelineResult, _name, _flat_property(_part, _field, _missing))
