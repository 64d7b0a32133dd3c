"""Redaction: personal slot values and detected personal data replaced by typed placeholders.

A :class:`Redactor` replaces, in a result (and in plain text):

- the values of the slots the domain marks personal (``slots: {contact: {personal: true}}``, see
  :mod:`speech_intent.data.domain`) by ``<SLOT>`` (``<contact>``, ``<message>``), wherever the
  value occurs in the transcript and the intent stage's text;
- personal data found by the :class:`~speech_intent.privacy.pii.PiiDetector` (spoken forms too) by
  ``<ENTITY>`` (``<PHONE_NUMBER>``, ``<EMAIL_ADDRESS>``, ``<CREDIT_CARD>``, ``<PERSON>``).

Intents, confidences and the other slots are kept. The slot spans are rewritten to index the redacted
text: a redacted slot's span covers its placeholder (``value`` the placeholder, ``raw`` none); the
others move with the text (a non-personal slot overlapping redacted text is redacted with it, so no
span ever holds part of a redacted value). The transcript and the intent stage's text (its
normalised form) are redacted consistently: what is found in the transcript is also removed from the
text in its normalised form, and a personal slot value the redactor cannot find in the transcript
(the normaliser rewrote it) makes the redacted transcript the redacted text, so no raw value is kept.
"""
from __future__ import annotations

import copy
import logging
import re
from bisect import bisect_right
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..data.domain import personal_slots
from ..errors import ConfigError
from ..normalize import TextNormalizer
from ..results import IntentPrediction, PipelineResult
from ..slots import SlotSpan, span_from_dict
from .pii import PiiDetector, PiiOptions

__all__ = ["RedactionOptions", "Redactor", "RedactingFilter", "personal_slots_of", "demo_domain"]

logger = logging.getLogger(__name__)

Normalize = Callable[[str], str]
Value = Tuple[str, str]  # a known personal value and the slot it belongs to
Region = Tuple[int, int, str, int]  # start, end, label (slot name or entity type), priority


@dataclass(frozen=True)
class RedactionOptions:
    """What is redacted and how it is shown.

    Attributes:
        personal_slots: slot names whose values are personal (default: none; :meth:`Redactor.from_domain`
            takes those the domain marks ``personal: true``).
        pii: what the detector finds in transcripts (:class:`~speech_intent.privacy.pii.PiiOptions`;
            ``entities=()``: no detection, personal slots only).
        placeholder: the replacement, ``{label}`` the slot name or entity type (default ``<{label}>``;
            a fixed text such as ``[redacted]`` hides the type too).
    """

    personal_slots: Tuple[str, ...] = ()
    pii: PiiOptions = field(default_factory=PiiOptions)
    placeholder: str = "<{label}>"

    def __post_init__(self) -> None:
        if isinstance(self.personal_slots, str):
            object.__setattr__(self, "personal_slots", (self.personal_slots,))
        object.__setattr__(self, "personal_slots", tuple(self.personal_slots))
        if any(not isinstance(name, str) or not name for name in self.personal_slots):
            raise ConfigError(f"personal slot names must be non-empty strings, got {list(self.personal_slots)!r}")
        if not isinstance(self.pii, PiiOptions):
            raise ConfigError(f"pii must be PiiOptions, got {type(self.pii).__name__}")
        try:
            sample = self.placeholder.format(label="PERSON")
        except (AttributeError, IndexError, KeyError, ValueError) as error:
            raise ConfigError(f"placeholder {self.placeholder!r} must be a text with at most a {{label}} field "
                              f"({error})") from error
        if not sample.strip():
            raise ConfigError("placeholder must not be empty")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class Redactor:
    """Redact results, rows, predictions and text: ``redactor(result)`` returns a redacted copy.

    ``normalizer``: the intent stage's text normaliser (default: the library's :class:`TextNormalizer`),
    used to find in the intent stage's text what was found in the transcript.
    """

    def __init__(self, options: Optional[RedactionOptions] = None, *, normalizer: Optional[Normalize] = None) -> None:
        self.options = options or RedactionOptions()
        self.personal = frozenset(self.options.personal_slots)
        self.detector = PiiDetector(self.options.pii) if self.options.pii.entities else None
        self.normalize: Normalize = normalizer or TextNormalizer()

    @classmethod
    def from_domain(cls, domain: Union[str, Path, None] = None, *, personal_slots: Iterable[str] = (),
                    pii: Optional[PiiOptions] = None, placeholder: str = "<{label}>",
                    normalizer: Optional[Normalize] = None) -> "Redactor":
        """The redactor of a domain YAML's personal slots (default domain: the demo domain), plus ``personal_slots``."""
        names = tuple(dict.fromkeys((*personal_slots_of(domain if domain is not None else demo_domain()),
                                     *personal_slots)))
        return cls(RedactionOptions(personal_slots=names, pii=pii or PiiOptions(), placeholder=placeholder),
                   normalizer=normalizer)

    def label(self, name: str) -> str:
        """The placeholder of a slot name or entity type."""
        return self.options.placeholder.format(label=name)

    # ------------------------------------------------------------------ the public forms
    def __call__(self, item: Any) -> Any:
        """A redacted copy of a :class:`PipelineResult`, :class:`IntentPrediction`, result row (dict) or text."""
        if isinstance(item, PipelineResult):
            return self.result(item)
        if isinstance(item, IntentPrediction):
            return self.prediction(item)
        if isinstance(item, dict):
            return self.row(item)
        if isinstance(item, str):
            return self.text(item)
        raise TypeError(f"cannot redact a {type(item).__name__}: a PipelineResult, IntentPrediction, row or text")

    def text(self, text: str, values: Optional[Dict[str, str]] = None) -> str:
        """``text`` with detected personal data replaced, and the personal slot values ``values``
        (slot name -> value) wherever they occur."""
        return self._text(text, [(v, k) for k, v in (values or {}).items()])[0]

    def prediction(self, prediction: IntentPrediction, source: Optional[str] = None) -> IntentPrediction:
        """A redacted copy of ``prediction``; ``source``: the text it was made from (before normalisation),
        whose personal data is also removed from ``prediction.text``."""
        _, text, slots, spans = self._parts(source, prediction.text, prediction.slots, prediction.slot_spans)
        return replace(prediction, text=text, slots=slots, slot_spans=spans)

    def result(self, result: PipelineResult) -> PipelineResult:
        """A redacted copy of ``result``: transcript, text, slot values and spans (intent, scores kept)."""
        prediction = result.prediction
        transcript = result.transcription.text if result.transcription is not None else None
        heard, text, slots, spans = self._parts(
            transcript, prediction.text if prediction else None, prediction.slots if prediction else {},
            prediction.slot_spans if prediction else [])
        out = copy.copy(result)
        if result.transcription is not None:
            out.transcription = replace(result.transcription, text=heard)
        if prediction is not None:
            out.prediction = replace(prediction, text=text, slots=slots, slot_spans=spans)
        if result.error:
            out.error = self.text(result.error)
        return out

    def row(self, row: Dict[str, Any]) -> Dict[str, Any]:
        """A redacted copy of a result row (``PipelineResult.to_dict()`` plus any other keys, kept)."""
        try:
            spans = [span_from_dict(row.get("text") or "", s) if isinstance(s, dict) else s
                     for s in row.get("slot_spans") or []]
        except ValueError:  # spans that do not fit the text: dropped, the slot values are still redacted
            spans = []
        slots = row.get("slots") or {}
        heard, text, slots, spans = self._parts(row.get("transcript"), row.get("text"),
                                                slots if isinstance(slots, dict) else {"slots": slots}, spans)
        out = dict(row)
        for key, value in (("transcript", heard), ("text", text)):
            if key in row:
                out[key] = value
        if "slots" in row:
            out["slots"] = slots
        if "slot_spans" in row:
            out["slot_spans"] = [s.to_dict() for s in spans]
        if isinstance(row.get("error"), str):
            out["error"] = self.text(row["error"])
        return out

    def log_filter(self) -> "RedactingFilter":
        """A :class:`logging.Filter` redacting every record it passes (see :class:`RedactingFilter`)."""
        return RedactingFilter(self)

    # ------------------------------------------------------------------ the work
    def _parts(self, transcript: Optional[str], text: Optional[str], slots: Dict[str, Any],
               spans: Sequence[SlotSpan]) -> Tuple[Optional[str], Optional[str], Dict[str, Any], List[SlotSpan]]:
        """Redacted ``(transcript, text, slots, spans)``; ``spans`` index ``text``. Parts that cannot be
        redacted (not text, a detector that fails) are withheld whole: ``<REDACTED>``, never passed on raw."""
        try:
            return self._redact_parts(transcript, text, slots, spans)
        except Exception as error:  # one odd result never stops a batch, and never leaks
            logger.warning("redaction failed (%s: %s); the transcript, text and slots are withheld",
                           type(error).__name__, self.text(str(error)) if isinstance(error, ValueError) else "")
            withheld = self.label("REDACTED")
            return (None if transcript is None else withheld, None if text is None else withheld,
                    {name: withheld for name in slots}, [])

    def _redact_parts(self, transcript: Optional[str], text: Optional[str], slots: Dict[str, Any],
                      spans: Sequence[SlotSpan]) -> Tuple[Optional[str], Optional[str], Dict[str, Any], List[SlotSpan]]:
        known: List[Value] = [(v, s.name) for s in spans if s.name in self.personal for v in (s.raw, s.value) if v]
        known += [(v, k) for k, v in slots.items() if k in self.personal and isinstance(v, str)]
        known = [(v, k) for v, k in dict.fromkeys(known) if v.strip() and v != self.label(k)]  # not placeholders
        heard, found = transcript, []
        if transcript is not None:
            heard, found, missing = self._text(transcript, known)
            if missing and text is not None:
                heard = None  # a personal value not found in the transcript: it becomes the redacted text
        new_text, new_spans, redacted = text, list(spans), {}
        if text is not None:
            extra = [(self._safe_normalize(piece), label) for piece, label in found]
            new_text, new_spans, redacted = self._text_with_spans(text, spans, known + extra)
            if heard is None:
                heard = new_text
        new_slots: Dict[str, Any] = {}
        for name, value in slots.items():
            if name in redacted:
                new_slots[name] = redacted[name]
            elif name in self.personal:
                new_slots[name] = self.label(name)
            elif isinstance(value, str):
                new_slots[name] = self._text(value, known)[0]
            else:
                new_slots[name] = value
        return heard, new_text, new_slots, new_spans

    def _safe_normalize(self, text: str) -> str:
        try:
            return self.normalize(text)
        except Exception:  # a normaliser that refuses a piece: the piece itself is searched
            return text

    def _regions(self, text: str, values: Sequence[Value]) -> Tuple[List[Region], List[str]]:
        """``(start, end, label, priority)`` to replace in ``text`` (detections, known values) and the values
        found nowhere in it, neither as written nor in the normalised form of its words."""
        regions: List[Region] = []
        if self.detector is not None:
            regions += [(h.start, h.end, h.entity, 1) for h in self.detector.detect(text)]
        missing = []
        words: Optional[Tuple[str, List[Tuple[int, int, int]]]] = None
        for value, label in values:
            pattern = _value_pattern(value)
            if pattern is None:
                continue
            matches = [(m.start(), m.end()) for m in pattern.finditer(text)]
            if not matches:
                words = words or self._normalized_words(text)
                matches = _search_words(pattern, *words)
            if not matches:
                missing.append(value)
            regions += [(start, end, label, 2) for start, end in matches]
        return regions, missing

    def _normalized_words(self, text: str) -> Tuple[str, List[Tuple[int, int, int]]]:
        """Each word of ``text`` normalised, joined by spaces, with ``(start in joined, source start, source end)``."""
        parts, where, length = [], [], 0
        for match in re.finditer(r"\S+", text):
            word = self._safe_normalize(match.group())
            if not word:
                continue
            where.append((length, match.start(), match.end()))
            parts.append(word)
            length += len(word) + 1
        return " ".join(parts), where

    def _text(self, text: str, values: Sequence[Value] = ()) -> Tuple[str, List[Value], List[str]]:
        """Redacted ``text``, the ``(piece, label)`` redacted, and the values of ``values`` not found in it."""
        regions, missing = self._regions(text, values)
        merged = _merge(regions)
        redacted = _replace(text, merged, lambda label: self.label(label or "PERSONAL"))
        return redacted, [(text[s:e], label) for s, e, label, _ in merged], missing

    def _text_with_spans(self, text: str, spans: Sequence[SlotSpan], values: Sequence[Value]
                         ) -> Tuple[str, List[SlotSpan], Dict[str, str]]:
        """Redacted ``text``, its spans moved / redacted, and slot name -> placeholder for the redacted slots."""
        regions, _ = self._regions(text, values)
        regions += [(s.start, s.end, s.name, 3) for s in spans if s.name in self.personal]
        merged = _merge(regions)
        while True:  # a slot partly inside a redacted region is redacted with it
            grown = _merge(merged + [(s.start, s.end, "", 0) for s in spans
                                     if any(s.start < e and s.end > b for b, e, _, _ in merged)])
            if grown == merged:
                break
            merged = grown
        pieces, shift, last = [], 0, 0
        where: List[Tuple[int, int, int, int]] = []  # old start, old end, new start, new end of each region
        for start, end, label, _ in merged:
            holder = self.label(label or "PERSONAL")
            pieces += [text[last:start], holder]
            where.append((start, end, start + shift, start + shift + len(holder)))
            shift += len(holder) - (end - start)
            last = end
        pieces.append(text[last:])
        new_text = "".join(pieces)
        out_spans: List[SlotSpan] = []
        redacted: Dict[str, str] = {}
        for span in spans:
            region = next((w for w in where if span.start < w[1] and span.end > w[0]), None)
            if region is not None:
                holder = new_text[region[2]:region[3]]
                out_spans.append(SlotSpan(span.name, region[2], region[3], holder))
                redacted[span.name] = holder
            else:
                before = sum(w[3] - w[2] - (w[1] - w[0]) for w in where if w[1] <= span.start)
                out_spans.append(replace(span, start=span.start + before, end=span.end + before))
        return new_text, out_spans, redacted


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message and traceback (add it to the handlers).

    Only detected personal data is removed (the filter does not know the slots of the result a
    message came from); the library's own log lines never hold transcripts.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: left to the handler to report
            return True
        redacted = self.redactor.text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redactor.text(logging.Formatter().formatException(record.exc_info))
        return True

    def install(self, logger: Optional[logging.Logger] = None) -> "RedactingFilter":
        """Add this filter to every handler of ``logger`` (default: the root logger)."""
        for handler in (logger or logging.getLogger()).handlers:
            if self not in handler.filters:
                handler.addFilter(self)
        return self


def demo_domain() -> Path:
    """The demo domain shipped with the package (``speech_intent/resources/demo_domain.yaml``)."""
    from importlib import resources

    return Path(str(resources.files("speech_intent") / "resources" / "demo_domain.yaml"))


def personal_slots_of(domain: Union[str, Path]) -> Tuple[str, ...]:
    """The personal slots of a domain YAML (:func:`speech_intent.data.domain.personal_slots`)."""
    return personal_slots(domain)


def _value_pattern(value: str) -> Optional["re.Pattern[str]"]:
    """A case-insensitive pattern of ``value``'s words, any punctuation or spacing between them."""
    words = re.findall(r"\w+(?:'\w+)*", value)
    if not words:
        return None
    return re.compile(r"(?<![\w'])" + r"[\W_]+".join(re.escape(w) for w in words) + r"(?![\w'])", re.IGNORECASE)


def _search_words(pattern: "re.Pattern[str]", joined: str, where: List[Tuple[int, int, int]]) -> List[Tuple[int, int]]:
    """Spans of the source text whose normalised words ``pattern`` matches (see ``_normalized_words``)."""
    starts = [w[0] for w in where]
    found = []
    for match in pattern.finditer(joined):
        first = bisect_right(starts, match.start()) - 1
        last = bisect_right(starts, match.end() - 1) - 1
        if first >= 0:
            found.append((where[first][1], where[last][2]))
    return found


def _merge(regions: List[Region]) -> List[Region]:
    """Overlapping regions joined; a joined region takes the label of its longest labelled member (of two as
    long, the higher priority: a personal slot over a detection), e.g. a contact's name inside an e-mail
    address is an ``EMAIL_ADDRESS``, a detected name that is the contact slot is ``contact``."""
    out: List[Region] = []
    best: List[Tuple[bool, int, int]] = []  # of each joined region: (labelled, length, priority) of its label
    for start, end, label, priority in sorted(regions):
        rank = (bool(label), end - start, priority)
        if out and start < out[-1][1]:
            s, e, lab, pri = out[-1]
            if rank > best[-1]:
                lab, pri, best[-1] = label, priority, rank
            out[-1] = (s, max(e, end), lab, pri)
        else:
            out.append((start, end, label, priority))
            best.append(rank)
    return out


def _replace(text: str, merged: List[Region], holder: Callable[[str], str]) -> str:
    pieces, last = [], 0
    for start, end, label, _ in merged:
        pieces += [text[last:start], holder(label)]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)
