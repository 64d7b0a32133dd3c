"""Training material for Whisper fine-tuning: (audio, transcript) pairs, and the evaluation data kept out.

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

:func:`collect_examples` turns a mix of paths, examples and sentences into ASRExamples.
:func:`sample_rehearsal` draws a seeded sample of other training data's sentences (**rehearsal**: mixed
into a one-domain training set, they keep the model from forgetting other speech); without other data
it draws from the library's own general-English sentences (:func:`bundled_rehearsal_path`).
:class:`EvaluationData` is what is never trained on: the recordings of evaluation manifests and
folders, evaluation noise files, matched by path and by content, and the transcripts of
evaluation manifests (a training sentence equal to one, after normalisation, is dropped too).
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

import numpy as np

from ..audio import AUDIO_EXTENSIONS
from ..data import Example, detect_format, load_examples
from ..data.manifest import MANIFEST_SUFFIXES, ManifestRecord, is_audio_manifest, read_audio_manifest
from ..errors import ConfigError, DataFormatError, DataNotFoundError
from ..normalize import TextNormalizer
from .text import detokenize, format_sentence

logger = logging.getLogger(__name__)

__all__ = ["ASRExample", "EvaluationData", "RehearsalSample", "bundled_rehearsal_path", "collect_examples",
           "detokenize", "format_sentence", "is_transcript_manifest", "read_transcript_manifest", "sample_rehearsal"]

PathLike = Union[str, Path]
TEXT_COLUMNS = ("text", "transcript")
DATA_SUFFIXES = MANIFEST_SUFFIXES + (".yaml", ".yml")
#: Sentences a grammar gives to draw a rehearsal sample from (its even-by-intent sampler).
REHEARSAL_GRAMMAR_POOL = 20000
#: The library's rehearsal sentences (``speech_intent/resources``): 400 general-English sentences on
#: everyday topics, written for this library (no voice-assistant commands), topic as the intent column.
REHEARSAL_DATA = "rehearsal_en.csv"


def bundled_rehearsal_path() -> Path:
    """The rehearsal data :func:`~speech_intent.asr_training.fine_tune_asr` uses when given none."""
    return Path(str(resources.files("speech_intent") / "resources" / REHEARSAL_DATA))


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
def _text_column(fields: Mapping[str, Any]) -> Optional[str]:
    return next((name for name in TEXT_COLUMNS if name in fields), None)


def _transcript(record: ManifestRecord) -> ASRExample:
    """The recording of a manifest record with its transcript; ValueError without one."""
    key = _text_column(record.fields)
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
def _data_examples(path: Path, max_examples: Optional[int], seed: int, *,
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


def _spoken(text: str, source: Optional[str], rng: np.random.Generator, text_format: str) -> ASRExample:
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
        return _spoken(text, source, rng, text_format)

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
                out.extend(spoken(ex.text, str(path)) for ex in _data_examples(path, max_examples, seed))
        elif isinstance(item, str):
            out.append(spoken(item, None))
        else:
            raise DataFormatError(f"cannot train the ASR on {type(item).__name__} {item!r}")
    return out


# ------------------------------------------------------------------ evaluation data
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class EvaluationData:
    """Files and transcripts never to train on (see the module docstring).

    Built from evaluation manifests (their recordings and transcripts), folders (every audio
    file under them) and single files (recordings, noise). A training recording is evaluation
    data when its resolved path or its content (SHA-256) is that of an evaluation file; a
    training-data source overlaps it when it is, holds or lies inside one of the added paths.
    """

    paths: Set[Path] = field(default_factory=set)
    roots: Set[Path] = field(default_factory=set)  # the added manifests, folders and files
    digests: Dict[int, Set[str]] = field(default_factory=dict)  # file size -> contents
    texts: Set[str] = field(default_factory=set)
    normalizer: TextNormalizer = field(default_factory=TextNormalizer)

    @classmethod
    def from_paths(cls, paths: Iterable[PathLike]) -> "EvaluationData":
        data = cls()
        for item in paths:
            data.add(item)
        return data

    def add(self, item: PathLike) -> None:
        """Add a manifest, a folder or a file (a path that does not exist raises DataNotFoundError)."""
        path = Path(item).resolve()
        if path.exists():
            self.roots.add(path)
        if path.is_dir():
            for file in path.rglob("*"):
                if file.is_file() and file.suffix.lower() in AUDIO_EXTENSIONS:
                    self._add_file(file)
            return
        if not path.is_file():
            raise DataNotFoundError("no such evaluation file or folder", source=item)
        if is_audio_manifest(path):
            for record in read_audio_manifest(path, check_files=False):
                self._add_file(record.audio)
                text = record.fields.get(_text_column(record.fields) or "")
                if isinstance(text, str) and text.strip():
                    self.texts.add(self._norm(text))
        self._add_file(path)

    def add_examples(self, examples: Iterable[ASRExample]) -> None:
        """Add the recordings and transcripts of ``examples`` (the dev set)."""
        for example in examples:
            if isinstance(example.audio, Path):
                self._add_file(example.audio)
            self.texts.add(self._norm(example.text))

    def _add_file(self, path: Path) -> None:
        path = path.resolve()
        self.paths.add(path)
        if path.is_file():
            self.digests.setdefault(path.stat().st_size, set()).add(_digest(path))

    def _norm(self, text: str) -> str:
        return re.sub(r"\s+", " ", self.normalizer(text)).strip()

    def contains_file(self, path: PathLike) -> bool:
        """True when ``path`` is (a copy of) an evaluation file."""
        path = Path(path).resolve()
        if path in self.paths:
            return True
        if not path.is_file():
            return False
        same_size = self.digests.get(path.stat().st_size)
        return bool(same_size) and _digest(path) in same_size

    def contains_text(self, text: str) -> bool:
        """True when ``text`` equals an evaluation transcript after normalisation."""
        return bool(self.texts) and self._norm(text) in self.texts

    def contains(self, example: ASRExample) -> bool:
        """True when ``example``'s recording is evaluation data or its transcript is an evaluation one."""
        if isinstance(example.audio, Path) and self.contains_file(example.audio):
            return True
        return self.contains_text(example.text)

    def overlaps(self, path: PathLike) -> Optional[Path]:
        """The added evaluation path that ``path`` is, holds or lies inside (``None`` when apart)."""
        path = Path(path).resolve()
        return next((root for root in sorted(self.roots)
                     if root == path or root in path.parents or path in root.parents), None)

    def __bool__(self) -> bool:
        return bool(self.paths or self.texts)


# ------------------------------------------------------------------ rehearsal
@dataclass(frozen=True)
class RehearsalSample:
    """Sentences of other training data, sampled by :func:`sample_rehearsal`.

    Attributes:
        examples: the sampled sentences, synthesised :class:`ASRExample`\\ s (``source``: their file).
        requested: the sample size asked for (more than the sources hold gives all of them).
        sources: each source path and how many of the sampled sentences it gave.
        available: non-empty sentences the sources hold.
        dropped: of those, equal to an evaluation or dev transcript (normalised), never sampled.
        intents: sampled sentences per intent (``"-"``: unlabelled).
    """

    examples: Tuple[ASRExample, ...]
    requested: int
    sources: Dict[str, int]
    available: int
    dropped: int
    intents: Dict[str, int]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready; ``sentences`` is the sample size."""
        return {"sentences": len(self.examples), "requested": self.requested, "sources": dict(self.sources),
                "available": self.available, "dropped_as_evaluation": self.dropped, "intents": dict(self.intents)}


def sample_rehearsal(paths: Union[PathLike, Iterable[PathLike]], n: int, *, seed: int = 0,
                     evaluation: Optional[EvaluationData] = None, text_format: str = "sentence") -> RehearsalSample:
    """A seeded sample of ``n`` sentences of other training data, to mix into a one-domain training set.

    ``paths`` are training-data files or folders :func:`speech_intent.data.load_examples` reads
    (grammar, Rasa, CSV, JSONL, BIO), read as :func:`collect_examples` reads them (a BIO folder's
    tokenised text written naturally by :func:`detokenize`; a grammar expanded to at most
    ``REHEARSAL_GRAMMAR_POOL`` sentences). Their sentences are pooled; those equal to an
    ``evaluation`` transcript (normalised) are dropped; then ``n`` are drawn without replacement
    (``numpy.random.default_rng(seed)``, kept in pool order), spoken by random voices.

    Raises :class:`~speech_intent.errors.ConfigError` for a source that is, holds or lies inside an
    ``evaluation`` path, an audio manifest (recordings belong in the training data itself), an
    ``n`` below 1, or sources with no usable sentence; :class:`~speech_intent.errors.DataNotFoundError`
    for a missing path.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"rehearsal needs a sample size >= 1, got {n!r}")
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    pool: List[Tuple[Example, str]] = []
    dropped = 0
    for item in paths:
        path = Path(item)
        if not path.exists():
            raise DataNotFoundError("no such rehearsal data file or directory", source=path)
        inside = evaluation.overlaps(path) if evaluation is not None else None
        if inside is not None:
            raise ConfigError(f"rehearsal source {path} overlaps the excluded evaluation data {inside}; "
                              "evaluation data is never trained on")
        if is_audio_manifest(path):
            raise ConfigError(f"rehearsal source {path} is an audio manifest; rehearsal samples the sentences of "
                              "training data (put recordings in the training data itself)")
        for example in _data_examples(path, None, seed, grammar_max=REHEARSAL_GRAMMAR_POOL):
            if evaluation is not None and evaluation.contains_text(example.text):
                dropped += 1
            else:
                pool.append((example, str(path)))
    if not pool:
        raise ConfigError(f"no rehearsal sentences in {', '.join(str(p) for p in paths)}"
                          + (f" ({dropped} are evaluation transcripts)" if dropped else ""))
    if len(pool) < n:
        logger.warning("rehearsal: %d sentences requested, the sources have %d; using all", n, len(pool))
    keep = np.random.default_rng(seed).choice(len(pool), size=min(n, len(pool)), replace=False)
    chosen = [pool[i] for i in sorted(keep)]
    voices = np.random.default_rng([seed, 13])
    return RehearsalSample(
        examples=tuple(_spoken(ex.text, source, voices, text_format) for ex, source in chosen), requested=n,
        sources={str(p): sum(source == str(p) for _, source in chosen) for p in paths},
        available=len(pool) + dropped, dropped=dropped,
        intents=dict(sorted(Counter(ex.intent or "-" for ex, _ in chosen).items())))
