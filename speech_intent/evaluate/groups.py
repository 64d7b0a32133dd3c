"""Per-group evaluation: each metric per value of a manifest column, the worst group and the largest gap.

Any manifest column that is not one of the labels (``audio``, ``intent``, ``slots``, ``text``) can split
an evaluation: speaker, gender, accent, noise condition, TTS voice... :func:`group_reports` scores each
group's items with the same code as the whole set (:func:`~speech_intent.evaluate.metrics.compute_report`),
and :meth:`EvaluationReport.group_summary` names, per metric, the worst group and the gap between the best and the worst.
Items without a value in the column form the group ``MISSING``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..errors import ConfigError
from .manifest import ManifestItem
from .metrics import Normalize, compute_report
from .report import EvaluationReport

#: The group of items that have no value in the column.
MISSING = "(none)"


def check_column(items: Sequence[ManifestItem], column: str) -> None:
    """Raise :class:`ConfigError` when no item has a value in ``column`` (naming the columns there are)."""
    if all(group_of(item, column) == MISSING for item in items):
        seen = sorted({name for item in items for name in item.columns})
        raise ConfigError(f"no manifest item has a value in the column {column!r} "
                          f"(columns: {', '.join(seen) if seen else 'none besides the labels'})")


def group_of(item: ManifestItem, column: str) -> str:
    """``item``'s value in ``column`` (:data:`MISSING` when it has none)."""
    value = item.columns.get(column)
    return MISSING if value in (None, "") else str(value)


def group_reports(items: Sequence[ManifestItem], results: Sequence[Any], column: str, *, condition: str,
                  snr: Optional[float] = None, normalizer: Optional[Normalize] = None) -> Dict[str, EvaluationReport]:
    """One report per value of ``column`` (sorted), scored as the whole set is (slot values, not BIO).

    Raises:
        ConfigError: no item has a value in ``column`` (the message lists the columns there are).
    """
    check_column(items, column)
    groups: Dict[str, List[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(group_of(item, column), []).append(index)
    return {name: compute_report([items[i] for i in indices], [results[i] for i in indices],
                                 condition=f"{condition} {column}={name}", snr=snr, slot_mode="value",
                                 normalizer=normalizer)
            for name, indices in sorted(groups.items())}
