"""benchmarks/gpu_check.py: the CPU dry run of the GPU readiness check, so it cannot rot between GPU runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
CHECKS = {"environment", "setup", "whisper float32 b=8", "whisper bfloat16 b=8", "sdpa vs eager",
          "wav2vec2 float32 (tiny random)", "faster-whisper", "fine_tune 1 epoch (fp32)", "pipeline end to end",
          "throughput", "compile"}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu-check")
    run = subprocess.run([sys.executable, str(SCRIPT), str(out), "--device", "cpu", "--dry-run"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {"report": json.loads((out / "gpu_check.json").read_text()), "text": (out / "gpu_check.txt").read_text()}


def test_dry_run_passes_every_check_it_can_run_on_cpu(dry_run):
    report = dry_run["report"]
    by_name = {r["check"]: r for r in report["results"]}
    assert CHECKS <= set(by_name), CHECKS - set(by_name)
    assert report["summary"]["FAIL"] == 0 and report["dry_run"] and report["device"] == "cpu"
    assert by_name["compile"]["status"] == "SKIP" and "GPU run" in by_name["compile"]["detail"]
    assert by_name["pipeline end to end"]["status"] == "PASS" and by_name["pipeline end to end"]["value"] > 0
    throughput = by_name["throughput"]["detail"]
    assert all(f"b={b}:" in throughput for b in (1, 8, 32))
    for name in CHECKS - {"compile", "environment", "setup"}:
        assert by_name[name]["status"] in ("PASS", "SKIP"), by_name[name]


def test_text_table_has_one_line_per_check_and_a_summary(dry_run):
    lines = dry_run["text"].strip().splitlines()
    assert sum(line.startswith(("PASS", "FAIL", "SKIP")) for line in lines) == len(dry_run["report"]["results"])
    assert "failed" in lines[-1] and "dry run" in lines[-1]


def test_a_check_that_raises_is_a_fail_and_the_exit_status_says_so(tmp_path, monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))

    def broken(ctx):
        raise RuntimeError("kernel launch failed")

    monkeypatch.setattr(gpu_check, "CHECKS", {"broken": broken, "skipped": gpu_check.check_compile})
    assert gpu_check.main([str(tmp_path), "--device", "cpu", "--dry-run", "--files", "1"]) == 1
    results = {r["check"]: r for r in json.loads((tmp_path / "gpu_check.json").read_text())["results"]}
    assert results["broken"]["status"] == "FAIL" and "kernel launch failed" in results["broken"]["detail"]
    assert results["skipped"]["status"] == "SKIP"
