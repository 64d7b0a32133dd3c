"""Sentiment / emotion training data: TSV, CSV, JSON Lines and the GoEmotions layout.

Every reader gives :class:`SentimentExample` rows (a text, its sentiment labels, its emotion labels; either
may be empty, several labels make a multi-label row).

- **TSV / CSV with a header** (``.tsv``, ``.csv``): a ``text`` column and a ``sentiment`` and / or an
  ``emotion`` column (several labels separated by commas); a lone ``label`` / ``labels`` column is read as
  sentiment when its labels are sentiment names (positive, negative, neutral, ambiguous, mixed) and as
  emotion otherwise.
- **JSON Lines** (``.jsonl``): objects with ``text`` and ``sentiment`` / ``emotion`` (a string or a list).
- **GoEmotions** (a ``.tsv`` with a ``labels.txt`` beside it, no header): text, comma-separated label ids,
  comment id. Its folder, or the data set's root holding ``group/`` (sentiment) and ``ekman/`` or
  ``original/`` (emotion) with the same comments: :func:`read_goemotions` joins them by comment id.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..errors import DataFormatError, DataNotFoundError

PathLike = Union[str, Path]
#: Labels that make a ``label`` column sentiment rather than emotion.
SENTIMENT_NAMES = frozenset({"positive", "negative", "neutral", "ambiguous", "mixed"})
#: GoEmotions label sets (sub-folders of the data set), emotion sets in order of preference.
GOEMOTIONS_SENTIMENT = "group"
GOEMOTIONS_EMOTION = ("ekman", "original")


@dataclass(frozen=True)
class SentimentExample:
    """One training text with its sentiment labels and emotion labels (each possibly empty)."""

    text: str
    sentiment: Tuple[str, ...] = ()
    emotion: Tuple[str, ...] = ()
    id: Optional[str] = field(default=None, compare=False)


def _labels(raw: object, *, source: Path, line: int) -> Tuple[str, ...]:
    """A label cell / JSON value -> the labels in it (comma-separated string or list of strings)."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return tuple(item.strip() for item in raw if item.strip())
    raise DataFormatError(f"labels must be a string or a list of strings, not {raw!r}", source=source, line=line)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DataNotFoundError(f"no such file: {path}", source=path)


def read_table(path: PathLike, delimiter: Optional[str] = None) -> List[SentimentExample]:
    """Read a TSV / CSV file with a header (``text`` + ``sentiment`` / ``emotion`` / ``label`` columns)."""
    path = Path(path)
    _check_file(path)
    delimiter = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter=delimiter))
            header = [name.strip().lower() for name in (rows[0].keys() if rows else [])]
    except UnicodeDecodeError as error:
        raise DataFormatError(f"not UTF-8 text ({error})", source=path) from error
    if "text" not in header:
        raise DataFormatError(f"needs a 'text' column and a 'sentiment', 'emotion' or 'label' column; has {header}",
                              source=path)
    examples = []
    lone = next((name for name in ("label", "labels") if name in header), None)
    for number, row in enumerate(rows, start=2):
        row = {(key or "").strip().lower(): value for key, value in row.items()}
        sentiment = _labels(row.get("sentiment"), source=path, line=number)
        emotion = _labels(row.get("emotion"), source=path, line=number)
        if lone and not (sentiment or emotion):
            labels = _labels(row.get(lone), source=path, line=number)
            sentiment, emotion = (labels, ()) if set(labels) <= SENTIMENT_NAMES else ((), labels)
        examples.append(SentimentExample((row.get("text") or "").strip(), sentiment, emotion))
    return _checked(examples, path)


def read_jsonl(path: PathLike) -> List[SentimentExample]:
    """Read JSON Lines of ``{"text", "sentiment", "emotion"}`` objects (a ``label`` key as in :func:`read_table`)."""
    path = Path(path)
    _check_file(path)
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError(f"invalid JSON: {error}", source=path, line=number) from error
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise DataFormatError("expected an object with a string 'text'", source=path, line=number)
            sentiment = _labels(record.get("sentiment"), source=path, line=number)
            emotion = _labels(record.get("emotion"), source=path, line=number)
            if not (sentiment or emotion):
                labels = _labels(record.get("label", record.get("labels")), source=path, line=number)
                sentiment, emotion = (labels, ()) if set(labels) <= SENTIMENT_NAMES else ((), labels)
            examples.append(SentimentExample(record["text"].strip(), sentiment, emotion))
    return _checked(examples, path)


def read_goemotions_file(path: PathLike, labels: Optional[Sequence[str]] = None) -> List[SentimentExample]:
    """Read one GoEmotions TSV (text, comma-separated label ids, comment id; ``labels.txt`` beside it).

    The labels are sentiment when they are all sentiment names (the ``group`` set), emotion otherwise.
    """
    path = Path(path)
    _check_file(path)
    names = list(labels) if labels is not None else _goemotions_labels(path.parent / "labels.txt")
    is_sentiment = set(names) <= SENTIMENT_NAMES
    examples = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row:
                continue
            if len(row) < 2:
                raise DataFormatError("expected text<TAB>label ids<TAB>comment id", source=path, line=number)
            try:
                found = tuple(names[int(i)] for i in row[1].split(",") if i.strip())
            except (ValueError, IndexError) as error:
                raise DataFormatError(f"label ids {row[1]!r} are not indices into {len(names)} labels",
                                      source=path, line=number) from error
            examples.append(SentimentExample(row[0].strip(), found if is_sentiment else (),
                                             () if is_sentiment else found, id=row[2] if len(row) > 2 else None))
    return _checked(examples, path)


def _goemotions_labels(path: Path) -> List[str]:
    if not path.is_file():
        raise DataNotFoundError(f"a GoEmotions TSV needs its labels.txt beside it: {path} is missing", source=path)
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_goemotions(root: PathLike, split: str = "train", *, emotion_set: Optional[str] = None,
                    limit: Optional[int] = None) -> List[SentimentExample]:
    """One split of a GoEmotions folder: the sentiment groups joined with an emotion set by comment id.

    ``root`` holds ``group/`` and ``ekman/`` / ``original/`` sub-folders (each ``SPLIT.tsv`` + ``labels.txt``;
    ``emotion_set`` picks one, default the first present of ekman, original), or is one such sub-folder.
    ``limit``: the first rows only.
    """
    root = Path(root)
    if (root / f"{split}.tsv").is_file():
        return read_goemotions_file(root / f"{split}.tsv")[:limit]
    group = root / GOEMOTIONS_SENTIMENT / f"{split}.tsv"
    emotions = [emotion_set] if emotion_set else list(GOEMOTIONS_EMOTION)
    emotion = next((root / name / f"{split}.tsv" for name in emotions if (root / name / f"{split}.tsv").is_file()),
                   None)
    if emotion is None and (emotion_set or not group.is_file()):
        raise DataNotFoundError(f"no GoEmotions {split}.tsv in {root} nor in its {GOEMOTIONS_SENTIMENT}/ or "
                                f"{' / '.join(name + '/' for name in emotions)}", source=root)
    if not group.is_file():
        return read_goemotions_file(emotion)[:limit]  # type: ignore[arg-type]
    rows = read_goemotions_file(group)
    if emotion is not None:
        by_id = {ex.id: ex.emotion for ex in read_goemotions_file(emotion)}
        rows = [SentimentExample(ex.text, ex.sentiment, by_id.get(ex.id, ()), id=ex.id) for ex in rows]
    return rows[:limit]


def read_sentiment_data(path: PathLike, *, split: str = "train", limit: Optional[int] = None,
                        emotion_set: Optional[str] = None) -> List[SentimentExample]:
    """Read training data by its form: a GoEmotions folder (``split`` of it), a ``.tsv`` with ``labels.txt``
    beside it (GoEmotions), another ``.tsv`` / ``.csv`` (header), or ``.jsonl``. ``limit``: the first rows."""
    path = Path(path).expanduser()
    if path.is_dir():
        return read_goemotions(path, split, emotion_set=emotion_set, limit=limit)
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = read_jsonl(path)
    elif suffix == ".tsv" and (path.parent / "labels.txt").is_file() and not _has_text_header(path):
        rows = read_goemotions_file(path)
    elif suffix in (".tsv", ".csv"):
        rows = read_table(path)
    else:
        raise DataFormatError("unknown data format: expected .tsv, .csv, .jsonl or a GoEmotions folder",
                              source=path)
    return rows[:limit]


def _has_text_header(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = handle.readline().lower().split("\t")
    return bool(first) and first[0].strip() == "text"


def _checked(examples: List[SentimentExample], source: Path) -> List[SentimentExample]:
    """The examples with a text and at least one label; DataFormatError when none is left."""
    kept = [ex for ex in examples if ex.text and (ex.sentiment or ex.emotion)]
    if not kept:
        raise DataFormatError("no example with a text and a sentiment or emotion label", source=source)
    return kept


def label_sets(examples: Iterable[SentimentExample]) -> Dict[str, Tuple[List[str], bool]]:
    """Per head (``sentiment`` / ``emotion``): its sorted labels and whether any row has several of them."""
    found: Dict[str, Tuple[set, bool]] = {"sentiment": (set(), False), "emotion": (set(), False)}
    for ex in examples:
        for head in found:
            labels = getattr(ex, head)
            names, multi = found[head]
            names.update(labels)
            found[head] = (names, multi or len(set(labels)) > 1)
    return {head: (sorted(names), multi) for head, (names, multi) in found.items()}
