"""The held-out guard of Whisper fine-tuning: :class:`EvaluationData`, what is never trained on.

The recordings of evaluation manifests and folders and evaluation noise files, matched by path and
by content, and the transcripts of evaluation manifests and of the dev set (a training sentence equal
to one, after normalisation, is dropped too).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Optional, Set, Union

from ..audio import AUDIO_EXTENSIONS
from ..data.manifest import is_audio_manifest, read_audio_manifest
from ..errors import DataNotFoundError
from ..normalize import TextNormalizer
from .material import ASRExample, text_column

__all__ = ["EvaluationData"]

PathLike = Union[str, Path]


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
                text = record.fields.get(text_column(record.fields) or "")
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
