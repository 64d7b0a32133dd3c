"""Input discovery for batch jobs: files, folders searched for audio, globs; nothing given is dropped."""
from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Iterable, List, Set, Tuple

from ..audio import AUDIO_EXTENSIONS

logger = logging.getLogger(__name__)


def expand_inputs(items: Iterable[str], extensions: Tuple[str, ...] = AUDIO_EXTENSIONS) -> List[str]:
    """Files as given, directories searched recursively for audio files, globs expanded.

    Nothing given is dropped: a path that does not exist, a directory without audio
    files and a glob that matches nothing are kept as they are, so each becomes a
    per-file error ("file not found", "is a directory") in the results.
    Order: as given, each directory and glob sorted; duplicates removed.
    """
    seen: Set[str] = set()
    out: List[str] = []

    def add(path: str) -> None:
        if path not in seen:
            seen.add(path)
            out.append(path)

    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
            if not found:
                logger.warning("directory %s holds no audio files (%s)", item, ", ".join(extensions))
                add(str(path))
            for file in found:
                add(str(file))
        elif not path.exists() and glob.has_magic(item):
            matches = [m for m in sorted(glob.glob(item, recursive=True)) if Path(m).is_file()]
            if not matches:
                logger.warning("pattern %s matched no files", item)
                add(item)
            for match in matches:
                add(match)
        else:
            add(str(path))
    return out
