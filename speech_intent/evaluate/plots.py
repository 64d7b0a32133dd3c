"""PNG figures of an evaluation: the intent confusion matrix and acceptance against SNR.

Uses matplotlib's non-interactive Agg backend through an explicit ``Figure`` (no pyplot state),
so it works headless and in threads.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Mapping, Union

import numpy as np

from .report import EvaluationReport

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_confusion(report: EvaluationReport, path: PathLike, *, title: str | None = None) -> Path:
    """Write the confusion matrix (rows gold, columns predicted) as a PNG.

    Cells are coloured by the share of their gold row and labelled with counts; the figure
    grows with the number of labels and long labels are shortened so they stay readable.
    """
    labels = [l if len(l) <= 28 else l[:26] + "…" for l in report.confusion_labels]
    matrix = np.asarray(report.confusion, dtype=float)
    n = max(len(labels), 1)
    size = min(max(4.5, 0.45 * n + 2.5), 30.0)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot(1, 1, 1)
    if matrix.size:
        rows = matrix.sum(axis=1, keepdims=True)
        share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of gold row")
        if n <= 40:
            font = 9 if n <= 15 else 7 if n <= 25 else 5
            for i in range(matrix.shape[0]):
                for j in range(matrix.shape[1]):
                    if matrix[i, j]:
                        ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=font,
                                color="white" if share[i, j] > 0.6 else "black")
    tick_font = 9 if n <= 15 else 7 if n <= 30 else 5
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", rotation_mode="anchor", fontsize=tick_font)
    ax.set_yticks(range(len(labels)), labels, fontsize=tick_font)
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("gold intent")
    ax.set_title(title or f"Intent confusion ({report.condition}, n={report.n}, "
                          f"accuracy {100 * report.intent_accuracy:.1f}%)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_acceptance_vs_snr(reports: Mapping[str, EvaluationReport], path: PathLike, *,
                           title: str | None = None) -> Path:
    """Write command acceptance and intent accuracy against SNR (clean as dashed lines) as a PNG."""
    noisy = sorted((r for r in reports.values() if r.snr is not None and math.isfinite(r.snr)),
                   key=lambda r: r.snr)
    clean = next((r for r in reports.values() if r.snr is None), None)
    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    snrs = [r.snr for r in noisy]
    series = (("command acceptance", "command_acceptance", "C0", "o"),
              ("intent accuracy", "intent_accuracy", "C1", "s"))
    for name, attr, color, marker in series:
        if noisy:
            ax.plot(snrs, [100 * getattr(r, attr) for r in noisy], color=color, marker=marker, label=name)
        if clean is not None:
            ax.axhline(100 * getattr(clean, attr), color=color, linestyle="--", linewidth=1,
                       label=f"{name} (clean)")
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("%")
    ax.set_ylim(-2, 102)
    if snrs:
        ax.set_xticks(snrs)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "Command acceptance vs SNR", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_groups(report: EvaluationReport, path: PathLike, *, title: str | None = None) -> Path:
    """Write each compared metric per group (``report.groups``) as grouped bars, the worst group marked."""
    metrics = report.group_summary()
    names = list(report.groups)
    fig = _figure(max(6.5, 2.8 + 0.45 * len(names) * max(1, len(metrics))), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(metrics))
    for k, (metric, summary) in enumerate(metrics.items()):
        xs = [i + (k - (len(metrics) - 1) / 2) * width for i in range(len(names))]
        bars = ax.bar(xs, [100 * summary["groups"][n] for n in names], width, label="WER" if metric == "wer" else metric.replace("_", " "))
        bars[names.index(summary["worst"])].set_hatch("//")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{n}\n(n={report.groups[n].n})" for n in names], fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or f"By {report.group_by} ({report.condition}; hatched: the worst group)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("wrote %s", path)
    return path
