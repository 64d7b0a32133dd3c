"""The one resumable run loop (speech_intent/batch/run.py) with a stand-in engine: what it starts, writes,
counts and says, whichever engine gives the rows (the local and Ray engines: test_cli, test_batch_ray)."""
from __future__ import annotations

import json

from speech_intent.batch.run import RunSummary, format_summary, run_batch
from speech_intent.batch.writer import file_key


class _Engine:
    """Rows for each input (``broken`` ones get an error row); Ctrl-C after ``stop_after`` inputs."""

    def __init__(self, broken=(), stop_after=None) -> None:
        self.broken, self.stop_after, self.calls = set(broken), stop_after, []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def results(self, todo, writer):
        for i, path in enumerate(todo):
            if i == self.stop_after:
                raise KeyboardInterrupt
            error = f"{path}: boom" if path in self.broken else None
            row = {"path": path, "transcript": "hi", "duration": 1.5, "error": error, "slots": {}}
            yield path, ({**row, "file_key": file_key(path)},)


def _files(tmp_path, n):
    paths = []
    for i in range(n):
        paths.append(str(tmp_path / f"{i}.wav"))
        (tmp_path / f"{i}.wav").write_bytes(b"x" * (i + 1))
    return paths


def test_the_loop_writes_each_row_counts_and_resumes_without_starting_the_engine_when_all_is_done(tmp_path):
    files, out = _files(tmp_path, 3), str(tmp_path / "out.jsonl")
    engine = _Engine(broken={str(tmp_path / "1.wav")})
    summary = run_batch(files, engine, out)
    assert (summary.done, summary.skipped, summary.failed, summary.audio_seconds) == (2, 0, 1, 3.0)
    assert engine.calls == ["start", "stop"] and not summary.interrupted
    assert [json.loads(line)["path"] for line in open(out)] == files
    again = _Engine()
    summary = run_batch(files, again, out)  # the failed file is redone, the others skipped
    assert (summary.done, summary.skipped, summary.failed) == (1, 2, 0)
    done = _Engine()
    summary = run_batch(files, done, out, parquet=str(tmp_path / "out.parquet"))
    assert done.calls == [] and (summary.done, summary.skipped) == (0, 3)  # nothing to do: nothing started
    assert summary.parquet == str(tmp_path / "out.parquet") and (tmp_path / "out.parquet").is_file()
    assert sorted(json.loads(line)["path"] for line in open(out)) == files  # one row per file


def test_ctrl_c_ends_the_run_resumably_and_the_summary_says_what_is_left(tmp_path):
    files, out = _files(tmp_path, 4), str(tmp_path / "out.jsonl")
    engine = _Engine(stop_after=1)
    summary = run_batch(files, engine, out, parquet=str(tmp_path / "out.parquet"))
    assert summary.interrupted and (summary.done, summary.not_processed) == (1, 3)
    assert engine.calls == ["start", "stop"] and not (tmp_path / "out.parquet").exists()
    assert "; interrupted, 3 not processed: rerun to resume" in format_summary(summary)
    summary = run_batch(files, _Engine(), out)
    assert (summary.done, summary.skipped, summary.failed) == (3, 1, 0)


def test_one_summary_line_for_every_kind_of_run():
    assert format_summary(RunSummary(done=3, skipped=1, failed=2, seconds=2.0, audio_seconds=10.0)) == \
        "done: 3, skipped: 1, failed: 2 (2.0 s, 5.0x real time)"
    assert format_summary(RunSummary(done=1, utterances=4, seconds=0.5)) == \
        "done: 1, skipped: 0, failed: 0, utterances: 4 (0.5 s)"
    assert format_summary(RunSummary(done=2, seconds=1.0, audio_seconds=2.0, parquet="out.parquet")) == \
        "done: 2, skipped: 0, failed: 0 (1.0 s, 2.0x real time); parquet: out.parquet"
