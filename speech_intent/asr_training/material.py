"""Training material for Whisper fine-tuning: (audio, transcript) pairs.

An :class:`ASRExample` is one of

- a **recording** with its transcript, from an audio manifest (:func:`read_transcript_manifest`):
  CSV/TSV with a header, JSON Lines or a JSON array of records with an audio column (``audio`` /
  ``file`` / ``path``, relative to the manifest's folder) and a ``text`` (or ``transcript``) column;
  or a ``labels.json``-style mapping ``{"file.wav": {"text": ...}}``. Other columns are ignored.
- a **synthesised** sentence: any training data :func:`speech_intent.data.load_examples` reads
  (grammar, Rasa, CSV, JSONL, BIO) gives sentences, spoken by a text-to-speech voice when the clip is
  needed (deterministic: sentence + voice number), so thousands of them cost no memory. A BIO /
  JointBERT folder's tokenised sentences (``what s the weather``, ``i d like``) are written as natural
  text first (:func:`detokenize`: ``What's the weather``, ``I'd like``), for the voice and the target.

:func:`collect_examples` turns a mix of paths, examples and sentences into ASRExamples. What is never
trained on is :mod:`.heldout`'s; the rehearsal sample of other data is :mod:`.rehearsal`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Union

import numpy as np

from ..data import Example, detect_format, load_examples
from ..data.manifest import MANIFEST_SUFFIXES, ManifestRecord, is_audio_manifest, read_audio_manifest
from ..errors import DataFormatError, DataNotFoundError
from .text import detokenize, format_sentence

__all__ = ["ASRExample", "collect_examples", "is_transcript_manifest", "read_transcript_manifest"]

PathLike = Union[str, Path]
TEXT_COLUMNS = ("text", "transcript")
DATA_SUFFIXES = MANIFEST_SUFFIXES + (".yaml", ".yml")


@dataclass(frozen=True, eq=False)
class ASRExample:
    """One training clip and its target transcript.

    Attributes:
        text: the transcript the model learns to write.
        audio: a recording (path, or float32 samples at 16 kHz); ``None`` for a synthesised clip.
        speak: the sentence a text-to-speech voice says (synthesised clips only).
        voice: the voice number (taken modulo the synthesizer's voices).
        source: where the example came from (``file:line``), for messages.
    """

    text: str
    audio: Union[Path, np.ndarray, None] = None
    speak: Optional[str] = None
    voice: int = 0
    source: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise DataFormatError(f"an ASR example needs a non-empty transcript, got {self.text!r}",
                                  source=self.source)
        if (self.audio is None) == (self.speak is None):
            raise DataFormatError("an ASR example has either a recording (audio) or a sentence to synthesise "
                                  "(speak)", source=self.source)
        if isinstance(self.audio, str):
            object.__setattr__(self, "audio", Path(self.audio))

    @property
    def synthesised(self) -> bool:
        return self.audio is None


# ------------------------------------------------------------------ manifests
def text_column(fields: Mapping[str, Any]) -> Optional[str]:
    """The transcript column of a manifest record (``TEXT_COLUMNS``, first found), ``None`` without one."""
    return next((name for name in TEXT_COLUMNS if name in fields), None)


def _transcript(record: ManifestRecord) -> ASRExample:
    """The recording of a manifest record with its transcript; ValueError without one."""
    key = text_column(record.fields)
    if key is None:
        raise ValueError(f"no transcript (a {' or '.join(repr(c) for c in TEXT_COLUMNS)} column); "
                         "ASR training needs what each recording says")
    text = record.fields[key]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty transcript {text!r}")
    return ASRExample(text=" ".join(text.split()), audio=record.audio, source=record.location)


def read_transcript_manifest(path: PathLike, *, check_files: bool = True) -> List[ASRExample]:
    """The recordings of an audio manifest with their transcripts, used as they are (formats in the
    module docstring; read by :func:`speech_intent.data.manifest.read_audio_manifest`).

    Raises :class:`~speech_intent.errors.ManifestError` (a DataFormatError) naming the file and the
    line (or record) for a row without audio or transcript, or whose recording does not exist.
    """
    return read_audio_manifest(path, _transcript, check_files=check_files)


#: True when a path is an audio manifest rather than text training data (the one test, shared with evaluation).
is_transcript_manifest = is_audio_manifest


# ------------------------------------------------------------------ collecting
def data_examples(path: Path, max_examples: Optional[int], seed: int, *,
                   grammar_max: Optional[int] = None) -> List[Example]:
    """Examples of a training-data file with text (a grammar sampled to ``max_examples``, or to
    ``grammar_max`` without it; others subsampled). A BIO / JointBERT folder's tokenised sentences
    are written as natural text (:func:`detokenize`; its slot spans are dropped)."""
    name = detect_format(path)
    if name == "grammar":
        cap = max_examples if max_examples is not None else grammar_max
        examples = load_examples(path, format=name, max_examples=cap, seed=seed)
    else:
        examples = load_examples(path, format=name)
    examples = [ex for ex in examples if ex.text.strip()]
    if name == "bio":
        examples = [Example(detokenize(ex.text), ex.intent) for ex in examples]
    if max_examples is not None and len(examples) > max_examples:
        keep = np.random.default_rng(seed).choice(len(examples), size=max_examples, replace=False)
        examples = [examples[i] for i in sorted(keep)]
    return examples


def spoken_example(text: str, source: Optional[str], rng: np.random.Generator, text_format: str) -> ASRExample:
    """A synthesised example of ``text``, a random voice, the target written per ``text_format``."""
    target = format_sentence(text) if text_format == "sentence" else " ".join(text.split())
    return ASRExample(text=target, speak=text, voice=int(rng.integers(0, 2**31 - 1)), source=source)


def _looks_like_path(text: str) -> bool:
    """A string names a file when it exists or ends like a data file; otherwise it is a sentence."""
    return Path(text).exists() or Path(text).suffix.lower() in DATA_SUFFIXES


def collect_examples(items: Iterable[Any], *, max_examples: Optional[int] = None, seed: int = 0,
                     text_format: str = "sentence") -> List[ASRExample]:
    """ASRExamples from a mix of sources, in order.

    Each item is an :class:`ASRExample` (kept), an audio manifest path (its recordings), another
    training-data path (its sentences, synthesised; a BIO folder's through :func:`detokenize`), a
    :class:`~speech_intent.data.Example` or a plain sentence (synthesised as given: call
    :func:`detokenize` on tokenised text from elsewhere). ``max_examples`` caps the sentences taken from each data file
    (a grammar is sampled). Synthesised clips get random voices (seeded by ``seed``); their
    targets are written per ``text_format`` (``"sentence"``: :func:`format_sentence`).
    """
    rng = np.random.default_rng([seed, 7])
    out: List[ASRExample] = []

    def spoken(text: str, source: Optional[str]) -> ASRExample:
        return spoken_example(text, source, rng, text_format)

    for item in items:
        if isinstance(item, ASRExample):
            out.append(item)
        elif isinstance(item, Example):
            out.append(spoken(item.text, None))
        elif isinstance(item, Path) or (isinstance(item, str) and _looks_like_path(item)):
            path = Path(item)
            if not path.exists():
                raise DataNotFoundError("no such data file or directory", source=path)
            if is_audio_manifest(path):
                out.extend(read_transcript_manifest(path))
            else:
                out.extend(spoken(ex.text, str(path)) for ex in data_examples(path, max_examples, seed))
        elif isinstance(item, str):
            out.append(spoken(item, None))
        else:
            raise DataFormatError(f"cannot train the ASR on {type(item).__name__} {item!r}")
    return out
