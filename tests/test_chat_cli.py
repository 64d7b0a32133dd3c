"""``speech-intent chat``: text turns from arguments, files and stdin, audio turns through a pipeline, JSON lines,
reply wavs; errors as one line and exit status 1 / 2."""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from speech_intent.cli import main


def _chat(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["chat", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_untrained_model_is_never_guessed_from(capsys, tiny_bert_dir):
    """A random tiny model's confidence is under the policy's threshold: every turn re-prompts, no action."""
    code, out, _ = _chat(capsys, "set an alarm", "seven thirty", "--intent", tiny_bert_dir, "--device", "cpu", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["text"] for row in rows] == ["set an alarm", "seven thirty"]
    assert all(row["decision"]["act"] == "fallback" and row["decision"]["execute"] is None for row in rows)
    assert rows[0]["response"] == "Sorry, I didn't get that. Could you say it again?"
    assert rows[1]["state"]["turns"] == 2 and rows[1]["state"]["failures"] == 2
    assert all(row["result"]["confidence"] < 0.7 for row in rows)  # PolicyOptions.min_confidence


def test_turns_from_stdin_and_a_file_print_state_and_response(capsys, monkeypatch, tiny_bert_dir, tmp_path):
    code, out, _ = _chat(capsys, "--intent", tiny_bert_dir, "--device", "cpu", stdin="hello\n\nthere\n",
                         monkeypatch=monkeypatch)
    assert code == 0
    assert out.count("you: ") == 2 and out.count("assistant: ") == 2 and '"active_intent": null' in out
    turns = tmp_path / "turns.txt"
    turns.write_text("one\ntwo\nthree\n")
    code, out, _ = _chat(capsys, "--file", turns, "--intent", tiny_bert_dir, "--device", "cpu", "--json")
    assert code == 0 and len(out.splitlines()) == 3


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not on PATH")
def test_audio_turns_and_spoken_replies(capsys, tiny_pipeline_dir, tmp_path):
    wav = tmp_path / "turn.wav"
    sf.write(wav, (0.2 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)).astype(np.float32), 16000)
    code, out, _ = _chat(capsys, wav, "and text", "--pipeline", tiny_pipeline_dir, "--device", "cpu", "--json",
                         "--speak", "espeak", "--out", tmp_path / "replies")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows[0]["result"]["path"] == str(wav) and "transcript" in rows[0]["result"]
    for i, row in enumerate(rows, start=1):
        assert row["reply_wav"] == str(tmp_path / "replies" / f"reply-{i:03d}.wav")
        audio, rate = sf.read(row["reply_wav"])
        assert rate == row["sample_rate"] == 16000 and len(audio) > rate // 4


def test_bad_invocations_are_one_line_errors(capsys, tiny_bert_dir, tmp_path):
    code, _, err = _chat(capsys, "hi", "--out", tmp_path, "--intent", tiny_bert_dir)
    assert code == 1 and "--out writes the spoken replies" in err
    code, _, err = _chat(capsys, "--file", tmp_path / "missing.txt", "--intent", tiny_bert_dir)
    assert code == 1 and "no such turns file" in err


@pytest.mark.slow
def test_demo_model_asks_for_the_missing_time(capsys):
    code, out, _ = _chat(capsys, "set an alarm", "seven thirty", "--device", "cpu")
    assert code == 0
    assert "assistant: For what time?" in out
    assert "assistant: Alarm set for seven thirty." in out
