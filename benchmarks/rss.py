"""Peak memory of ``speech-intent predict`` on N short files: it must not grow with N.

    python -m benchmarks.rss --files 1000 10000
    python -m benchmarks.rss --files 1000 --asr bundled      # the real tiny.en (slow on CPU)

Generates N one-second wav files (tones + noise) in a temp dir, saves a pipeline
(``tiny``: a random 2-layer wav2vec2 + 2-layer BERT, fast on any CPU, so memory
growth from the batch machinery is not hidden behind model time; ``bundled``:
faster-whisper tiny.en + the tiny BERT) and runs the CLI on each N in a subprocess.
Reported per N: wall time, peak RSS (``common.PeakMemory``: the child and its children,
sampled every 50 ms) and the RSS once 10/25/50/75/100 % of the
files were written (growth that levels off is allocator warm-up; steady growth is a leak).
Not part of CI.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf

from .common import (
    MB,
    PeakMemory,
    add_batch_size_flag,
    add_synthetic_asr_flag,
    add_work_flag,
    benchmark_parser,
    child_env,
)


def make_pipeline(out: Path, asr: str) -> Path:
    """Save a small pipeline to ``out``: random tiny wav2vec2 (or bundled tiny.en) + random tiny BERT."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    from speech_intent import FasterWhisperASR, IntentClassifier, SpeechIntentPipeline, Wav2Vec2ASR
    from speech_intent.bundled import bundled_encoder_path

    torch.manual_seed(0)
    labels = ["get_weather", "play_music", "set_alarm"]
    tokenizer = AutoTokenizer.from_pretrained(bundled_encoder_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={label: i for i, label in enumerate(labels)})
    intent = IntentClassifier(BertForSequenceClassification(config), tokenizer, device="cpu")
    if asr == "bundled":
        stage = FasterWhisperASR.from_pretrained(None, device="cpu")
    else:
        chars = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")
        vocab = out.parent / "vocab.json"
        vocab.write_text(json.dumps({c: i for i, c in enumerate(chars)}))
        processor = Wav2Vec2Processor(
            feature_extractor=Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                                       do_normalize=True, return_attention_mask=True),
            tokenizer=Wav2Vec2CTCTokenizer(str(vocab), word_delimiter_token="|"))
        w2v = Wav2Vec2Config(vocab_size=len(chars), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, conv_dim=(32, 32, 32), conv_stride=(5, 4, 4),
                             conv_kernel=(10, 8, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                             feat_extract_norm="layer", do_stable_layer_norm=True, pad_token_id=0)
        stage = Wav2Vec2ASR(Wav2Vec2ForCTC(w2v), processor, device="cpu")
    SpeechIntentPipeline(stage, intent).save_pretrained(out)
    return out


def make_files(folder: Path, n: int, seconds: float) -> None:
    """``n`` wav files of ``seconds`` each (a tone whose pitch varies per file, plus noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(16000 * seconds)) / 16000
    for i in range(n):
        path = folder / f"clip_{i:06d}.wav"
        if not path.exists():
            signal = 0.2 * np.sin(2 * np.pi * (200 + i % 600) * t) + 0.02 * rng.standard_normal(len(t))
            sf.write(path, signal.astype(np.float32), 16000, subtype="PCM_16")


def link_set(source: Path, target: Path, n: int) -> Path:
    """A folder with the first ``n`` files of ``source`` (hard links: no copies)."""
    target.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        link = target / f"clip_{i:06d}.wav"
        if not link.exists():
            os.link(source / link.name, link)
    return target


def run_predict(inputs: Path, pipeline: Path, output: Path, batch_size: int, n: int) -> Dict[str, float]:
    """Run the CLI in a subprocess, sampling its RSS (and its children's) every 50 ms."""
    cmd = [sys.executable, "-m", "speech_intent.cli", "predict", str(inputs), "--pipeline", str(pipeline),
           "--device", "cpu", "--batch-size", str(batch_size), "-q", "-o", str(output), "--overwrite"]
    output.unlink(missing_ok=True)  # a previous run's rows would confuse the progress count
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=child_env(threads=1), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: List[Tuple[int, int]] = []  # (lines written, rss)
    lines = offset = 0
    with PeakMemory(proc.pid, children=True, interval=0.05) as memory:
        while True:
            if output.exists():
                with open(output, "rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                lines += chunk.count(b"\n")
                offset += len(chunk)
            if memory.latest:
                samples.append((lines, memory.latest))
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"predict failed ({proc.returncode}):\n{stderr[-3000:]}")
    wall = time.perf_counter() - start
    written = sum(1 for _ in open(output, "rb"))
    def rss_at(fraction: float) -> float:
        return next((rss for done, rss in samples if done >= n * fraction), samples[-1][1]) / MB

    return {"files": n, "rows": written, "wall_s": wall, "files_per_s": n / wall,
            "peak_rss_mb": memory.peak_mb,
            "rss_at_pct_mb": {pct: rss_at(pct / 100) for pct in (10, 25, 50, 75, 100)},
            "summary": next((line for line in stderr.splitlines() if line.startswith("done: ")), "")}


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 10000], help="file counts to run")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each file")
    add_batch_size_flag(parser)
    add_synthetic_asr_flag(parser, "tiny")
    add_work_flag(parser, None, help="keep files here (default: a temp dir, removed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="speech-intent-rss-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        pipeline = make_pipeline(work / f"pipeline-{args.asr}", args.asr)
        t0 = time.perf_counter()
        make_files(work / "all", max(args.files), args.seconds)
        print(f"generated {max(args.files)} x {args.seconds:g} s wav files in {time.perf_counter() - t0:.0f} s",
              flush=True)
        print(f"{'files':>7} {'rows':>7} {'wall s':>7} {'files/s':>8} {'peak RSS MB':>12} "
              f" RSS MB at 10/25/50/75/100 % of files")
        for n in args.files:
            folder = link_set(work / "all", work / f"set_{n}", n)
            r = run_predict(folder, pipeline, work / f"out_{n}.jsonl", args.batch_size, n)
            print(f"{r['files']:>7} {r['rows']:>7} {r['wall_s']:>7.0f} {r['files_per_s']:>8.1f} "
                  f"{r['peak_rss_mb']:>12.0f}  "
                  f"{'/'.join(f'{v:.0f}' for v in r['rss_at_pct_mb'].values())}   [{r['summary']}]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
