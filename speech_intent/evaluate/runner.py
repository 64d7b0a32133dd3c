"""Run models over labelled data and score them: text (classifier) or audio (pipeline, optional noise).

- :func:`evaluate_text`: an :class:`~speech_intent.nlu.IntentClassifier` on labelled Examples.
- :func:`evaluate_audio`: a :class:`~speech_intent.pipeline.SpeechIntentPipeline` on a manifest's
  recordings, clean and mixed with noise at each SNR (in memory, see :mod:`speech_intent.synthesis.noise`).
- :func:`write_report`: ``report.json`` + ``confusion.png`` (+ ``acceptance_vs_snr.png``).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..audio import load_audio
from ..data.examples import Example
from ..errors import AudioError, ConfigError
from ..normalize import TextNormalizer
from ..synthesis.noise import mix_at_snr
from .groups import check_column, group_reports
from .manifest import ManifestItem, read_manifest
from .metrics import Normalize, compute_report
from .plots import plot_acceptance_vs_snr, plot_confusion, plot_groups
from .report import EvaluationReport

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
#: The SNRs of the Picovoice speech-to-intent benchmark's sweep, in dB.
BENCHMARK_SNRS = (6.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.0)
CLEAN = "clean"

__all__ = ["evaluate_text", "evaluate_audio", "write_report", "condition_name", "BENCHMARK_SNRS"]


def condition_name(snr: Optional[float]) -> str:
    """``"clean"`` for ``None``, else e.g. ``"12dB"`` / ``"7.5dB"``."""
    return CLEAN if snr is None else f"{snr:g}dB"


def evaluate_text(
    classifier: Any,
    examples: Sequence[Example],
    *,
    batch_size: Optional[int] = None,
    normalizer: Optional[Normalize] = None,
) -> EvaluationReport:
    """Classify every example's text (batched by the classifier) and score intents and slots.

    Slots are scored as word-level BIO (seqeval) on the classifier's normalised text.
    """
    if not examples:
        raise ConfigError("no examples to evaluate")
    start = time.perf_counter()
    predictions = classifier([e.text for e in examples], batch_size=batch_size)
    logger.info("classified %d texts in %.1f s", len(examples), time.perf_counter() - start)
    bio_normalizer = getattr(classifier, "normalize", None)
    return compute_report(examples, predictions, condition="text", slot_mode="bio",
                          normalizer=normalizer, bio_normalizer=bio_normalizer)


def _mixed_inputs(items: Sequence[ManifestItem], noise: np.ndarray, snr: float, seed: int, rate: int,
                  max_duration: Optional[float]) -> Iterator[Any]:
    """Each clip mixed with noise; a clip that cannot be loaded is passed on as its path,
    so the pipeline reports the error for it."""
    for index, item in enumerate(items):
        try:
            clip = load_audio(item.audio, sampling_rate=rate, max_duration=max_duration)
        except AudioError:
            yield str(item.audio)
            continue
        yield mix_at_snr(clip, noise, snr, seed=seed, index=index)


def evaluate_audio(
    pipeline: Any,
    manifest_items: Union[Sequence[ManifestItem], PathLike],
    *,
    noise: Union[PathLike, np.ndarray, None] = None,
    snrs: Optional[Sequence[float]] = None,
    seed: int = 0,
    batch_size: int = 8,
    normalizer: Optional[Normalize] = None,
    include_clean: bool = True,
    progress: bool = False,
    group_by: Optional[str] = None,
) -> Dict[str, EvaluationReport]:
    """Run ``pipeline`` on the recordings, clean and at each SNR, and score every condition.

    Args:
        pipeline: a :class:`~speech_intent.pipeline.SpeechIntentPipeline` (anything with
            ``stream(inputs, batch_size=...)`` and ``asr.sampling_rate``).
        manifest_items: items from :func:`~speech_intent.evaluate.manifest.read_manifest`, or a manifest path.
        noise: a noise recording (path or samples at the ASR rate) mixed in for each SNR.
        snrs: SNRs in dB (default with noise: :data:`BENCHMARK_SNRS`).
        seed: picks the noise segment of each clip (with the clip's index).
        batch_size: inputs per pipeline chunk.
        normalizer: compares slot values and transcripts (default :class:`TextNormalizer`).
        include_clean: also score the clean recordings.
        group_by: a manifest column (speaker, gender, noise condition, ...): each report also holds one
            report per value of it (``report.groups``; :mod:`speech_intent.evaluate.groups`).
    Returns:
        condition name (``"clean"``, ``"6dB"``, ...) -> report, clean first, then by SNR.
    """
    items = read_manifest(manifest_items) if isinstance(manifest_items, (str, Path)) else list(manifest_items)
    if not items:
        raise ConfigError("no manifest items to evaluate")
    if snrs and noise is None:
        raise ConfigError("SNR conditions need a noise recording (noise=...)")
    if group_by is not None:  # before any model runs
        check_column(items, group_by)
    snr_list: List[float] = [float(s) for s in (snrs or (BENCHMARK_SNRS if noise is not None else ()))]
    rate = int(getattr(pipeline.asr, "sampling_rate", 16000))
    max_duration = getattr(pipeline, "max_duration", None)
    noise_samples = None
    if noise is not None and snr_list:
        noise_samples = load_audio(noise, sampling_rate=rate, max_duration=None,
                                   name=str(noise) if isinstance(noise, (str, Path)) else "<noise>")
    norm = normalizer or TextNormalizer()
    conditions: List[Optional[float]] = ([None] if include_clean else []) + snr_list
    reports: Dict[str, EvaluationReport] = {}
    for snr in conditions:
        name = condition_name(snr)
        start = time.perf_counter()
        if snr is None:
            inputs: Any = [str(item.audio) for item in items]
        else:
            inputs = _mixed_inputs(items, noise_samples, snr, seed, rate, max_duration)
        results = list(pipeline.stream(inputs, batch_size=batch_size, progress=progress, total=len(items)))
        for item, result in zip(items, results):
            result.path = str(item.audio)
        reports[name] = compute_report(items, results, condition=name, snr=snr, slot_mode="value",
                                       normalizer=norm)
        if group_by is not None:
            reports[name].group_by = group_by
            reports[name].groups = group_reports(items, results, group_by, condition=name, snr=snr,
                                                 normalizer=norm)
        logger.info("%s: %d clips in %.1f s, acceptance %.1f%%", name, len(items),
                    time.perf_counter() - start, 100 * reports[name].command_acceptance)
    return reports


def write_report(
    reports: Union[EvaluationReport, Mapping[str, EvaluationReport]],
    out_dir: PathLike,
    *,
    meta: Optional[Mapping[str, Any]] = None,
    items: bool = True,
) -> Dict[str, Path]:
    """Write ``report.json``, ``confusion.png``, with SNR conditions ``acceptance_vs_snr.png`` and with
    per-group reports ``groups.png``.

    The confusion matrix is the clean (or text, or first) condition's. Returns name -> path written.
    """
    if isinstance(reports, EvaluationReport):
        reports = {reports.condition: reports}
    if not reports:
        raise ConfigError("no reports to write")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": dict(meta or {}),
        "summary": [r.summary() for r in reports.values()],
        "conditions": {name: r.to_dict(items=items) for name, r in reports.items()},
    }
    written: Dict[str, Path] = {"report": out / "report.json"}
    written["report"].write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    main = reports.get(CLEAN) or reports.get("text") or next(iter(reports.values()))
    written["confusion"] = plot_confusion(main, out / "confusion.png")
    if any(r.snr is not None for r in reports.values()):
        written["acceptance_vs_snr"] = plot_acceptance_vs_snr(reports, out / "acceptance_vs_snr.png")
    if main.groups:
        written["groups"] = plot_groups(main, out / "groups.png")
    logger.info("wrote %s", ", ".join(str(p) for p in written.values()))
    return written
