"""tools/gpu_check: the CPU dry run of the GPU readiness check, so it cannot rot between GPU runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.gpu_check import runner
from tools.gpu_check.base import Result
from tools.gpu_check.model_checks import check_compile
from tools.gpu_check.weights import INT8_WEIGHTS, pack_int8, unpack_int8

REPO = Path(__file__).resolve().parents[1]
CHECKS = {"environment", "setup", "whisper float32 b=8", "whisper bfloat16 b=8", "sdpa vs eager",
          "wav2vec2 float32 (tiny random)", "faster-whisper", "fine_tune 1 epoch (fp32)", "pipeline end to end",
          "streams 1", "streams 3", "throughput", "asr fine-tune fp32 (cpu)", "asr fine-tune fp32 (cpu ref.)", "compile"}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu-check")
    run = subprocess.run([sys.executable, "-m", "tools.gpu_check", str(out), "--device", "cpu", "--dry-run"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
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


def test_streams_through_the_micro_batcher_each_get_their_final(dry_run):
    by_name = {r["check"]: r for r in dry_run["report"]["results"]}
    for name, streams in (("streams 1", 1), ("streams 3", 3)):
        row = by_name[name]
        assert row["status"] == "PASS" and row["unit"] == "ms p95", row
        # the final comes after the VAD's trailing silence (0.6 s of stream time, fed at 4x: 150 ms of wall time)
        assert 140 <= row["value"] < 60_000, row
        assert "finals/stream 1.00, dropped 0" in row["detail"] and "errors 0" in row["detail"], row
        assert ("target p95 <= 100 ms" in row["detail"]) == (streams > 1)


def test_asr_fine_tuning_trains_on_prepared_clips_and_times_the_cpu_reference(dry_run):
    by_name = {r["check"]: r for r in dry_run["report"]["results"]}
    run, ref = by_name["asr fine-tune fp32 (cpu)"], by_name["asr fine-tune fp32 (cpu ref.)"]
    assert run["status"] == ref["status"] == "PASS" and run["unit"] == "s/step" and run["value"] > 0
    assert run["detail"].startswith("2 of 2 steps of 4 clips,") and "loss " in run["detail"]
    # the reference stops at its budget (0 s in a dry run): after the first step
    assert ref["detail"].startswith("1 of 2 steps of 4 clips (stopped at the 0 s budget)") and "faster per step" in ref["detail"]


def test_packed_int8_weights_unpack_to_the_checkpoint_within_a_quantisation_step(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    weights = {"layer.weight": torch.randn(300, 256).half(), "layer.bias": torch.randn(300).half(),
               "model.decoder.embed_positions.weight": torch.randn(448, 384).half()}
    save_file(weights, tmp_path / "model.safetensors")
    (tmp_path / "tokenizer.json").write_text('{"model": "tokens"}')
    (tmp_path / "config.json").write_text("{}")
    pack_int8(tmp_path)
    assert not (tmp_path / "model.safetensors").exists() and not (tmp_path / "tokenizer.json").exists()
    packed = load_file(tmp_path / INT8_WEIGHTS)
    assert packed["layer.weight.int8"].dtype == torch.int8 and packed["layer.weight.int8"].shape == (300, 256)
    assert "layer.weight" not in packed and packed["layer.bias"].dtype == torch.float16
    out = unpack_int8(tmp_path, tmp_path / "unpacked")
    assert (out / "tokenizer.json").read_text() == '{"model": "tokens"}' and (out / "config.json").is_file()
    unpacked = load_file(out / "model.safetensors")
    assert set(unpacked) == set(weights) and all(v.dtype == torch.float16 for v in unpacked.values())
    assert torch.equal(unpacked["layer.bias"], weights["layer.bias"])  # small and 1-D tensors stay as they were
    assert torch.equal(unpacked["model.decoder.embed_positions.weight"], weights["model.decoder.embed_positions.weight"])
    step = weights["layer.weight"].float().abs().amax(dim=1, keepdim=True) / 127
    error = (unpacked["layer.weight"].float() - weights["layer.weight"].float()).abs()
    assert (error <= step / 2 + weights["layer.weight"].float().abs() * 2 ** -10 + 1e-6).all() and error.max() > 0


def test_text_table_has_one_line_per_check_and_a_summary(dry_run):
    lines = dry_run["text"].strip().splitlines()
    assert sum(line.startswith(("PASS", "FAIL", "SKIP")) for line in lines) == len(dry_run["report"]["results"])
    assert "failed" in lines[-1] and "dry run" in lines[-1]


def test_a_check_that_raises_is_a_fail_and_the_exit_status_says_so(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("kernel launch failed")

    monkeypatch.setattr(runner, "CHECKS", {"broken": broken, "skipped": check_compile})
    assert runner.main([str(tmp_path), "--device", "cpu", "--dry-run", "--files", "1"]) == 1
    results = {r["check"]: r for r in json.loads((tmp_path / "gpu_check.json").read_text())["results"]}
    assert results["broken"]["status"] == "FAIL" and "kernel launch failed" in results["broken"]["detail"]
    assert results["skipped"]["status"] == "SKIP"


def test_a_check_may_give_several_rows_and_only_takes_underscores(tmp_path, monkeypatch):
    def two_rows(ctx):
        return [Result("row a", "PASS", 1.0, "s", seconds=2.5), Result("row b", "FAIL", seconds=1.0)]

    monkeypatch.setattr(runner, "CHECKS", {"asr-finetune": two_rows, "other": check_compile})
    assert runner.main([str(tmp_path), "--device", "cpu", "--dry-run", "--files", "1", "--only", "asr_finetune"]) == 1
    results = json.loads((tmp_path / "gpu_check.json").read_text())["results"]
    assert [(r["check"], r["status"], r["seconds"]) for r in results[2:]] == [("row a", "PASS", 2.5), ("row b", "FAIL", 1.0)]
