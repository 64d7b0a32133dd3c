"""Evaluation: score an intent model on text, or a whole pipeline on audio (clean and noisy).

Modules: :mod:`.manifest` (audio manifests) -> :mod:`.runner` (run models, collect predictions) ->
:mod:`.metrics` (scores; slots with :mod:`speech_intent.slots`) -> :mod:`.report`
(:class:`EvaluationReport`) -> :mod:`.plots` (PNGs). ``speech-intent evaluate`` is
:mod:`speech_intent.cli.evaluate`; noise mixing is :mod:`speech_intent.synthesis.noise` (shared with
speech-in-the-loop training).

```python
from speech_intent.evaluate import evaluate_audio, read_manifest, write_report
reports = evaluate_audio(pipe, read_manifest("dev/labels.json"), noise="kitchen.wav", snrs=[6, 12, 24])
write_report(reports, "eval-out")
```
"""
from ..synthesis.noise import max_frame_energy, mix_at_snr, peak_snr_db
from .groups import group_reports
from .manifest import ManifestError, ManifestItem, is_audio_manifest, read_labels_json, read_manifest
from .metrics import Reference, as_reference, compute_report, error_rates, intent_scores
from .plots import plot_acceptance_vs_snr, plot_confusion, plot_groups
from .report import NO_INTENT, EvaluationReport, IntentScore, format_summary
from .runner import BENCHMARK_SNRS, condition_name, evaluate_audio, evaluate_text, write_report

__all__ = [
    "EvaluationReport", "IntentScore", "Reference", "ManifestItem", "ManifestError", "NO_INTENT", "BENCHMARK_SNRS",
    "evaluate_text", "evaluate_audio", "write_report", "compute_report", "intent_scores", "error_rates",
    "as_reference", "read_manifest", "read_labels_json", "is_audio_manifest", "mix_at_snr", "max_frame_energy",
    "peak_snr_db", "plot_confusion", "plot_acceptance_vs_snr", "plot_groups", "format_summary", "condition_name",
    "group_reports",
]
