"""Per-group evaluation of a pipeline on synthetic voices: does it work as well for every voice, accent and gender?

Speaks every command of a text manifest (``text,intent`` columns; default: the sample commands of
``assets/audio/manifest.csv``) in each voice — espeak-ng accents (American, British, Received Pronunciation,
Scottish, Caribbean, New York, male and female variants) and hibari-tts's neural voice when it is installed —
writes the clips and an audio manifest with ``voice``, ``accent``, ``gender`` and ``engine`` columns, and scores the
pipeline once per column with ``evaluate_audio(group_by=...)``: every metric per group, the worst group and the
largest gap (``report-COLUMN/report.json`` + ``groups.png``).

    python -m benchmarks.voices                                   # default pipeline, sample commands
    python -m benchmarks.voices --data my_commands.csv --pipeline DIR --noise ../shared/data/coffee/noise/kitchen.wav --snr 12

None of these voices trained the demo intent model's encoder or Whisper: the groups differ by voice only. Synthetic
voices are not people: a gap here is a lower bound on the gaps real speakers of those accents meet.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import soundfile as sf

from benchmarks.common import add_device_flag, add_json_flag, add_work_flag, write_json
from speech_intent.synthesis.tts import EspeakSynthesizer, EspeakVoice, HibariSynthesizer, SynthesizerUnavailable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEXTS = REPO / "assets" / "audio" / "manifest.csv"
COLUMNS = ("voice", "accent", "gender", "engine")

#: (voice name in the report, espeak-ng voice, accent, gender)
ESPEAK: Tuple[Tuple[str, EspeakVoice, str, str], ...] = (
    ("espeak-us-m", EspeakVoice("en-us", 140, 3), "American", "male"),
    ("espeak-us-f", EspeakVoice("en-us+f3", 135, 3), "American", "female"),
    ("espeak-gb-m", EspeakVoice("en-gb", 145, 3), "British", "male"),
    ("espeak-gb-f", EspeakVoice("en-gb+f2", 145, 3), "British", "female"),
    ("espeak-rp-m", EspeakVoice("en-gb-x-rp", 145, 3), "Received Pronunciation", "male"),
    ("espeak-scot-m", EspeakVoice("en-gb-scotland", 145, 3), "Scottish", "male"),
    ("espeak-carib-m", EspeakVoice("en-029", 140, 3), "Caribbean", "male"),
    ("espeak-nyc-f", EspeakVoice("en-us-nyc+f4", 140, 3), "New York", "female"),
)


def read_texts(path: Path) -> List[Dict[str, str]]:
    """Rows with ``text`` and ``intent`` (other columns, e.g. ``file``, are ignored)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("text")]
    if not rows or "intent" not in rows[0]:
        raise SystemExit(f"{path}: needs 'text' and 'intent' columns")
    return rows


def speak_all(rows: Sequence[Dict[str, str]], out: Path, *, hibari: bool) -> Path:
    """Write one clip per (row, voice) under ``out/clips`` and ``out/manifest.csv``; returns the manifest."""
    voices: List[Tuple[str, object, int, str, str, str]] = []  # name, synthesizer, voice number, accent, gender, engine
    espeak = EspeakSynthesizer([voice for _, voice, _, _ in ESPEAK])
    voices += [(name, espeak, i, accent, gender, "espeak-ng") for i, (name, _, accent, gender) in enumerate(ESPEAK)]
    if hibari:
        try:
            neural = HibariSynthesizer(speeds=(1.0,))
            voices.append(("hibari-heart-f", neural, 0, "American", "female", "hibari"))
        except SynthesizerUnavailable as error:
            print(f"hibari-tts left out: {error}", file=sys.stderr)
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "text", "intent", *COLUMNS])
        for name, synthesizer, number, accent, gender, engine in voices:
            for i, row in enumerate(rows):
                path = clips / f"{name}_{i:03d}.wav"
                if not path.exists():
                    audio = synthesizer.synthesize(row["text"], voice=number)
                    sf.write(path, audio, synthesizer.sampling_rate, subtype="PCM_16")
                writer.writerow([str(path), row["text"], row["intent"], name, accent, gender, engine])
    return manifest


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_TEXTS, help="text manifest: text,intent (default: %(default)s)")
    parser.add_argument("--pipeline", type=Path, default=None, help="a saved pipeline dir (default: the default pipeline)")
    parser.add_argument("--noise", type=Path, default=None, help="a noise recording mixed in at each --snr")
    parser.add_argument("--snr", type=float, nargs="+", default=None, help="SNRs in dB with --noise")
    parser.add_argument("--no-hibari", action="store_true", help="espeak-ng voices only")
    add_work_flag(parser, Path("/tmp/speech-intent-voices"))
    add_device_flag(parser, "cpu")
    add_json_flag(parser)
    args = parser.parse_args(argv)

    from speech_intent import SpeechIntentPipeline
    from speech_intent.evaluate import evaluate_audio, write_report

    rows = read_texts(args.data)
    manifest = speak_all(rows, args.work, hibari=not args.no_hibari)
    if args.pipeline:
        pipeline = SpeechIntentPipeline.from_pretrained(args.pipeline, device=args.device)
    else:
        pipeline = SpeechIntentPipeline.default(device=args.device, progress=False)
    summary: Dict[str, Dict[str, object]] = {}
    for column in COLUMNS:
        reports = evaluate_audio(pipeline, manifest, noise=args.noise, snrs=args.snr, group_by=column)
        write_report(reports, args.work / f"report-{column}", meta={"benchmark": "voices", "group_by": column})
        for condition, report in reports.items():
            print(f"\n== {column} ({condition}) ==")
            print(report.format_table(max_intents=0))
            summary[f"{column}/{condition}"] = report.group_summary()
    if args.json:
        write_json(args.json, {"data": str(args.data), "utterances": len(rows), "groups": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
