"""The command line (``speech_intent.cli.main`` and ``python -m speech_intent.cli``): predict (resume,
a kill mid-run then a rerun), classify and transcribe with the default models, train, evaluate, and the
grammar flags."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech_intent.asr import FasterWhisperASR, WhisperASR
from speech_intent.cli import main
from speech_intent.errors import ConfigError
from speech_intent.evaluate import evaluate_text
from speech_intent.nlu import IntentClassifier

from .compare import assert_rows_match
from .conftest import AUDIO, GRAMMAR, REPO, _ex, _signal, _sine, _toy_data


# ------------------------------------------------------------------ predict: resume after a kill
def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists():
            lines = path.read_bytes().count(b"\n")
            if lines >= n:
                return lines
        time.sleep(0.005)
    return -1


def test_sigkill_mid_run_then_rerun_gives_every_file_exactly_once(tiny_pipeline_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    x = _signal(16000, 1.0)
    for i in range(60):
        sf.write(folder / f"clip_{i:03d}.wav", np.roll(x, i * 50), 16000)
    (folder / "broken_1.wav").write_bytes(b"not audio at all")
    (folder / "broken_2.wav").write_bytes(b"")
    out = tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "speech_intent.cli", "predict", str(folder), "--pipeline", str(tiny_pipeline_dir),
           "--device", "cpu", "--batch-size", "1", "--workers", "2", "-q", "-o", str(out)]  # 2 batches at once
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = _wait_for_lines(out, 10, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lines >= 10, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    before = [json.loads(line) for line in out.read_text().splitlines() if line.endswith("}")]
    assert len(before) < 62, "the kill landed after the last file"
    with open(out, "a") as handle:  # make sure a torn row is handled too, wherever the kill landed
        handle.write('{"path": "' + str(folder / "clip_059.wav") + '", "transcr')

    done_before = sum(1 for r in before if not r["error"])
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = [line for line in rerun.stderr.splitlines() if line.startswith("done: ")]
    assert summary and summary[-1].startswith(f"done: {60 - done_before}, skipped: {done_before}, failed: 2")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 62  # every file exactly once
    assert {r["path"] for r in rows if r["error"]} == {str(folder / "broken_1.wav"), str(folder / "broken_2.wav")}

    assert main(cmd[3:]) == 0  # in-process third run: only the two failures are retried, not duplicated
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len({r["path"] for r in rows}) == 62


def test_predict_workers_give_the_rows_of_one_worker_in_the_same_order(tiny_pipeline_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(7):
        sf.write(folder / f"clip_{i}.wav", np.roll(_signal(16000, 0.5 + 0.1 * i), i * 50), 16000)
    (folder / "clip_9.wav").write_bytes(b"not audio")
    rows = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}.jsonl"
        assert main(["predict", str(folder), "--pipeline", str(tiny_pipeline_dir), "--device", "cpu",
                     "--batch-size", "2", "--workers", workers, "-q", "-o", str(out)]) == 0
        rows[workers] = [json.loads(line) for line in out.read_text().splitlines()]
    # two workers run each batch on one thread, one worker on two: same rows, order, paths, errors and
    # durations; transcripts and scores of the random model to a tolerance (tests/compare.py)
    assert [Path(r["path"]).name for r in rows["2"]] == [f"clip_{i}.wav" for i in (0, 1, 2, 3, 4, 5, 6, 9)]
    assert_rows_match(rows["2"], rows["1"])
    assert all(r["error"] is None and r["transcript"] is not None for r in rows["1"][:-1]) and rows["1"][-1]["error"]
    capsys.readouterr()
    assert main(["predict", str(folder), "--pipeline", str(tiny_pipeline_dir), "--workers", "0", "-q"]) == 1
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert main(["predict", str(folder), "--pipeline", str(tiny_pipeline_dir), "--workers", "2", "--segment"]) == 1
    assert "--segment runs one file at a time" in capsys.readouterr().err


# ------------------------------------------------------------------ the default models (slow)
@pytest.mark.slow
def test_cli_predict_writes_jsonl_and_resumes(tmp_path, manifest, bad_files, default_pipe):
    folder = tmp_path / "in"
    folder.mkdir()
    for n in sorted(manifest)[:3]:
        shutil.copy(AUDIO / n, folder / n)
    shutil.copy(bad_files["text"], folder / "zz_text.wav")
    out = tmp_path / "results.jsonl"
    assert main(["predict", str(folder), "-o", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and sum(bool(r["error"]) for r in rows) == 1
    assert all(r["intent"] == manifest[Path(r["path"]).name]["intent"] for r in rows if not r["error"])
    # rerun: finished files are skipped, the failed one is retried (and fails again): one row per file
    assert main(["predict", str(folder), "-o", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and sum(bool(r["error"]) for r in rows) == 1
    assert sorted(Path(r["path"]).name for r in rows) == sorted(p.name for p in folder.iterdir())
    csv_out = tmp_path / "results.csv"
    assert main(["predict", str(folder / sorted(manifest)[0]), "-o", str(csv_out), "-q"]) == 0
    assert list(csv.DictReader(csv_out.open()))[0]["intent"] == manifest[sorted(manifest)[0]]["intent"]


@pytest.mark.slow
def test_cli_classify_and_transcribe(capsys, default_pipe, manifest):
    assert main(["classify", "turn the kitchen lights off please"]) == 0
    assert json.loads(capsys.readouterr().out)["intent"] == "lights_off"
    name = sorted(manifest)[0]
    assert main(["transcribe", str(AUDIO / name)]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["path"].endswith(name) and line["text"]


# ------------------------------------------------------------------ train
@pytest.mark.parametrize("options", [[], ["--crf", "--warmup", "0.2", "--scheduler", "cosine", "--layer-lr-decay", "0.9"]])
def test_cli_train_with_dev_data_trains_a_joint_model(tiny_bert_dir, tmp_path, capsys, options):
    from speech_intent.cli import main
    from speech_intent.data import to_markup

    lines = ["version: '3.1'", "nlu:"]
    for intent in ("get_weather", "play_music", "set_alarm"):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {to_markup(ex)}" for ex in _toy_data() if ex.intent == intent]
    data = tmp_path / "nlu.yml"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "model"
    rc = main(["train", "--data", str(data), "--dev", str(data), "--output", str(out), "--base", str(tiny_bert_dir),
               "--epochs", "2", "--lr", "5e-3", "--batch-size", "16", "--early-stopping", "1", "--max-examples", "20",
               "--device", "cpu", "-q", *options])
    assert rc == 0
    err = capsys.readouterr().err
    assert "training on 20 examples" in err and "trained joint model" in err
    clf = IntentClassifier.from_pretrained(out, device="cpu")
    assert clf.is_joint and clf.threshold is not None and clf.training["dev_examples"] == 31
    config = clf.training["config"]
    assert clf.model.config.slot_decoder == config["slot_decoder"] == ("crf" if options else "softmax")
    assert (config["warmup_ratio"], config["lr_scheduler"], config["layer_lr_decay"]) == \
        ((0.2, "cosine", 0.9) if options else (0.1, "linear", 1.0))


# ------------------------------------------------------------------ evaluate
def test_evaluate_text_and_cli(tiny_bert_dir, tmp_path, capsys):
    from speech_intent import IntentClassifier
    from speech_intent.cli import main

    data = tmp_path / "intents.csv"
    data.write_text("text,intent\nplay some jazz,play_music\nwake me at 7,set_alarm\nis it raining,get_weather\n")
    clf = IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu")
    report = evaluate_text(clf, [_ex("play some jazz", "play_music"), _ex("wake me at 7", "set_alarm")])
    assert report.condition == "text" and report.n == 2 and report.slot_mode is None
    assert main(["evaluate", str(data), "--intent", str(tiny_bert_dir), "--device", "cpu",
                 "-o", str(tmp_path / "out")]) == 0
    assert "intent accuracy" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "report.json").read_text())["conditions"]["text"]["n"] == 3
    assert main(["evaluate", str(data), "--snr", "6"]) == 2


# ------------------------------------------------------------------ grammar flags
def test_load_asr_and_cli_take_a_grammar(tiny_whisper_dir, tiny_wav2vec2_dir, tmp_path, capsys, automaton):
    import json

    import soundfile as sf
    import yaml

    from speech_intent.asr import apply_grammar, load_asr
    from speech_intent.cli import main

    assert load_asr(tiny_whisper_dir, device="cpu", grammar=GRAMMAR)._constraint is not None
    wav2vec2 = load_asr(tiny_wav2vec2_dir, device="cpu")
    with pytest.raises(ConfigError, match="transformers Whisper"):
        load_asr(tiny_wav2vec2_dir, device="cpu", grammar=GRAMMAR)
    with pytest.raises(ConfigError, match="transformers Whisper"):
        apply_grammar(wav2vec2, GRAMMAR)
    with pytest.raises(ConfigError, match="transformers Whisper"):  # refused before any model is loaded
        FasterWhisperASR.from_pretrained(tmp_path / "no-such-model", grammar=GRAMMAR)
    with pytest.raises(ConfigError, match="transformers Whisper"):
        FasterWhisperASR(object(), grammar=GRAMMAR)
    grammar = tmp_path / "grammar.yaml"
    grammar.write_text(yaml.safe_dump(GRAMMAR))
    sf.write(tmp_path / "a.wav", _sine(), 16000)
    assert main(["transcribe", str(tmp_path / "a.wav"), "--asr", str(tiny_whisper_dir), "--device", "cpu",
                 "--grammar", str(grammar)]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert automaton.matches(row["text"]) and row["in_grammar"] is True
    assert main(["transcribe", str(tmp_path / "a.wav"), "--asr", str(tiny_wav2vec2_dir), "--grammar",
                 str(grammar)]) == 1
    assert "transformers Whisper" in capsys.readouterr().err


def test_beams_and_rejection_follow_the_grammar_unless_given(tiny_whisper_dir, tmp_path, capsys):
    import soundfile as sf

    from speech_intent.asr import apply_grammar
    from speech_intent.cli import main

    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=8)
    assert asr.num_beams == 1 and not asr.constrained
    with pytest.raises(ConfigError, match="needs a grammar"):
        apply_grammar(asr, None, 0.5)
    apply_grammar(asr, GRAMMAR)  # like `--pipeline P --grammar G`: the same 4 beams as `--grammar` at load
    assert asr.num_beams == 4 and asr.grammar_rejection is None
    apply_grammar(asr, None, 0.5)
    apply_grammar(asr, GRAMMAR)  # a new grammar keeps the margin it was given
    assert asr.constrained and asr.grammar_rejection == 0.5
    asr.set_grammar(None)
    assert asr.num_beams == 1
    given = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", num_beams=2)
    given.set_grammar(GRAMMAR)
    assert given.num_beams == 2
    sf.write(tmp_path / "a.wav", _sine(), 16000)
    assert main(["transcribe", str(tmp_path / "a.wav"), "--asr", str(tiny_whisper_dir), "--device", "cpu",
                 "--grammar-rejection", "1.0"]) == 1
    assert "--grammar-rejection needs --grammar" in capsys.readouterr().err


def test_context_margin_flag_reaches_the_stage(tiny_whisper_dir, tiny_wav2vec2_dir, capsys):
    """``--context-margin`` sets the Whisper stage's encoder context ('none' = the 30 s window); a
    backend without one refuses it with a clear error, and a bad value is an argparse error."""
    from speech_intent.cli import build_parser, main
    from speech_intent.cli.options import load_asr_stage

    parser = build_parser()
    base = ["transcribe", "x.wav", "--asr", str(tiny_whisper_dir), "--device", "cpu"]
    assert load_asr_stage(parser.parse_args(base)).options.context_margin == 2.0
    assert load_asr_stage(parser.parse_args(base + ["--context-margin", "none"])).options.context_margin is None
    assert load_asr_stage(parser.parse_args(base + ["--context-margin", "5"])).options.context_margin == 5.0
    with pytest.raises(ConfigError, match="context_margin"):
        load_asr_stage(parser.parse_args(["transcribe", "x.wav", "--asr", str(tiny_wav2vec2_dir), "--context-margin",
                                          "1"]))
    with pytest.raises(SystemExit):
        main(base + ["--context-margin", "soon"])
    assert "expected seconds or 'none'" in capsys.readouterr().err
