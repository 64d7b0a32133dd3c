"""Per-group evaluation (``evaluate --group-by COLUMN``): each metric per group, the worst group, the gap."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech_intent.cli import main
from speech_intent.errors import ConfigError
from speech_intent.evaluate import ManifestItem, group_reports, read_manifest
from speech_intent.evaluate.groups import MISSING
from speech_intent.results import IntentPrediction, PipelineResult, Transcript


def _result(text: str, intent: str) -> PipelineResult:
    return PipelineResult("x.wav", Transcript(text, 0.9, 1.0), IntentPrediction(text, intent, 0.9))


def test_each_group_is_scored_and_the_worst_group_and_gap_are_named():
    items = [ManifestItem(Path(f"/{i}.wav"), "order", {}, "a latte", columns=columns) for i, columns in
             enumerate([{"gender": "f"}, {"gender": "f"}, {"gender": "m"}, {"gender": "m"}, {}])]
    results = [_result("a latte", "order"), _result("a latte", "order"),  # f: 2 of 2 right
               _result("a latte", "order"), _result("a lot", "cancel"),  # m: 1 of 2, one word wrong
               _result("a latte", "cancel")]  # no gender: its own group
    groups = group_reports(items, results, "gender", condition="clean")
    assert list(groups) == [MISSING, "f", "m"] and [g.n for g in groups.values()] == [1, 2, 2]
    assert [g.intent_accuracy for g in groups.values()] == [0.0, 1.0, 0.5]
    from speech_intent.evaluate.report import EvaluationReport

    whole = EvaluationReport("clean", 5, 0.6, 0.5, 0.6, group_by="gender", groups=groups)
    summary = whole.group_summary()
    assert summary["intent_accuracy"]["worst"] == MISSING and summary["intent_accuracy"]["gap"] == 1.0
    assert summary["wer"]["worst"] == "m" and summary["wer"]["gap"] == pytest.approx(0.25)  # 1 of 4 words
    assert "by gender:" in whole.format_table() and whole.to_dict()["groups"]["column"] == "gender"
    from speech_intent.evaluate.report import IntentScore

    whole.per_intent = [IntentScore("order", 1.0, 0.75, 0.86, 4), IntentScore("cancel", 0.0, 0.0, 0.0, 1)]
    assert "support" in whole.format_table() and "order" in whole.format_table(max_intents=1)
    assert "1 more in report.json" in whole.format_table(max_intents=1)
    brief = whole.format_table(max_intents=0)  # groups only: no per-intent table
    assert "support" not in brief and "by gender:" in brief
    assert "worst acc: (none) (0.0%, gap 100.0%)" in brief and "worst WER: m (25.0%, gap 25.0%)" in brief
    with pytest.raises(ConfigError, match="'accent'.*gender"):
        group_reports(items, results, "accent", condition="clean")


def test_cli_evaluate_group_by_writes_the_groups_to_text_json_and_png(tiny_pipeline_dir, tmp_path, capsys):
    rows = []
    for i in range(4):
        t = np.arange(16000) / 16000
        sf.write(tmp_path / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t)).astype(np.float32), 16000)
        rows.append({"audio": f"c{i}.wav", "intent": "play_music", "text": "play some music",
                     "voice": "en-us" if i % 2 else "en-gb"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_manifest(manifest)[0].columns == {"voice": "en-gb"}
    out = tmp_path / "report"
    assert main(["evaluate", str(manifest), "--pipeline", str(tiny_pipeline_dir), "--device", "cpu",
                 "--group-by", "voice", "-o", str(out), "-q"]) == 0
    assert "by voice:" in capsys.readouterr().out
    clean = json.loads((out / "report.json").read_text())["conditions"]["clean"]
    assert sorted(clean["groups"]["reports"]) == ["en-gb", "en-us"]
    assert all(r["n"] == 2 for r in clean["groups"]["reports"].values())
    accuracy = clean["groups"]["metrics"]["intent_accuracy"]
    assert accuracy["worst"] in ("en-gb", "en-us") and accuracy["gap"] == pytest.approx(
        max(accuracy["groups"].values()) - min(accuracy["groups"].values()))
    assert (out / "groups.png").stat().st_size > 1000
    # a column no item has: a one-line error before any model loads
    assert main(["evaluate", str(manifest), "--pipeline", str(tmp_path / "nowhere"), "--group-by", "accent"]) == 1
    assert "no manifest item has a value in the column 'accent' (columns: voice)" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (Debian: espeak-ng)")
def test_voices_benchmark_writes_a_manifest_with_a_group_per_voice(tmp_path):
    from benchmarks.voices import COLUMNS, ESPEAK, speak_all
    from speech_intent.evaluate.groups import check_column, group_of

    texts = [{"text": "turn on the lights", "intent": "lights_on"}, {"text": "what time is it", "intent": "get_time"}]
    items = read_manifest(speak_all(texts, tmp_path, hibari=False))
    assert len(items) == 2 * len(ESPEAK)
    for column in COLUMNS:
        check_column(items, column)
    assert {group_of(item, "voice") for item in items} == {name for name, *_ in ESPEAK}
    assert {group_of(item, "gender") for item in items} == {"female", "male"}
    assert all(item.audio.stat().st_size > 8000 and item.intent in ("lights_on", "get_time") for item in items)
