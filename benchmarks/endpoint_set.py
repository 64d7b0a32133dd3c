"""An endpointing evaluation set with real pauses, built from the coffee recordings.

Writes ``OUT/manifest.jsonl`` (``audio``, ``intent``, ``slots``, ``kind``, ``pause``, ``pause_at``, ``text``)
and the new wavs beside it; the original recordings are listed where they are (never copied):

- ``coffee``: each dev recording as it is;
- ``paused``: each recording with a hesitation spliced in at one word boundary inside it (a random
  boundary, 0.3-1.0 s, seeded): the recording's own quietest 0.1 s (its room tone) repeated, so the
  pause sounds like the rest of the recording; word boundaries from Whisper word timestamps (the
  bundled tiny.en on faster-whisper, ``word_timestamps=True``), the cut halfway between the words;
- ``short_end``: recordings cut after a word where what was said so far is itself a whole sentence of
  the grammar ("... a large latte" of "... a large latte with milk"): commands that really end
  after a word a longer command could go on from. Labels: the recording's intent and the slots whose
  value was said before the cut.

    python -m benchmarks.endpoint_set --out /tmp/endpoint-set
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from .common import COFFEE_DATA, add_data_flag, benchmark_parser

SR = 16000


def room_tone(audio: np.ndarray, seconds: float) -> np.ndarray:
    """``seconds`` of the recording's quietest 0.1 s, repeated."""
    frame = SR // 10
    if len(audio) < frame:
        return np.zeros(int(seconds * SR), np.float32)
    energy = np.convolve(audio ** 2, np.ones(frame), mode="valid")[::160]
    start = int(np.argmin(energy)) * 160
    tone = audio[start: start + frame]
    return np.tile(tone, int(np.ceil(seconds * SR / frame)) + 1)[: int(seconds * SR)].astype(np.float32)


def main() -> None:
    parser = benchmark_parser(__doc__)
    add_data_flag(parser, COFFEE_DATA, "coffee data: grammar.yaml, dev/ (recordings, labels.json)")
    parser.add_argument("--out", type=Path, required=True, help="where the manifest and the new wavs go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-pause", type=float, default=0.3)
    parser.add_argument("--max-pause", type=float, default=1.0)
    parser.add_argument("--limit", type=int, default=None, help="the first N recordings only")
    args = parser.parse_args()

    import soundfile as sf
    from faster_whisper import WhisperModel

    from speech_intent.audio import load_audio
    from speech_intent.bundled import bundled_whisper_path
    from speech_intent.turn import GrammarCompleteness

    rng = random.Random(args.seed)
    labels = json.loads((args.data / "dev" / "labels.json").read_text())
    grammar = GrammarCompleteness(args.data / "grammar.yaml")
    model = WhisperModel(str(bundled_whisper_path()), device="cpu", compute_type="int8", cpu_threads=1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in sorted(labels)[: args.limit]:
        path = (args.data / "dev" / name).resolve()
        gold = labels[name]
        audio = load_audio(str(path))
        rows.append({"audio": str(path), "intent": gold["intent"], "slots": gold.get("slots", {}), "kind": "coffee"})
        segments, _ = model.transcribe(audio, language="en", word_timestamps=True, beam_size=1,
                                       condition_on_previous_text=False)
        words = [w for s in segments for w in (s.words or [])]
        if len(words) < 3:
            continue
        texts = [w.word.strip(" ,.?!").lower() for w in words]
        k = rng.randrange(1, len(words) - 1)  # the pause goes after words[k - 1]... before words[k]
        cut = int(SR * (words[k - 1].end + words[k].start) / 2)
        pause = round(rng.uniform(args.min_pause, args.max_pause), 3)
        spliced = np.concatenate([audio[:cut], room_tone(audio, pause), audio[cut:]])
        out = args.out / f"paused-{Path(name).stem}.wav"
        sf.write(out, spliced, SR, subtype="PCM_16")
        rows.append({"audio": str(out.resolve()), "intent": gold["intent"], "slots": gold.get("slots", {}),
                     "kind": "paused", "pause": pause, "pause_at": round(cut / SR, 3),
                     "text": " ".join(texts[:k]) + " ... " + " ".join(texts[k:])})
        for j in range(len(words) - 2, 0, -1):  # the longest whole sentence before the end
            said = " ".join(texts[: j + 1])
            if grammar.is_sentence(said):
                end = min(len(audio), int(SR * (words[j].end + min(0.1, (words[j + 1].start - words[j].end) / 2))))
                short = args.out / f"short-{Path(name).stem}.wav"
                sf.write(short, audio[:end], SR, subtype="PCM_16")
                slots = {k_: v for k_, v in gold.get("slots", {}).items() if v.lower() in said}
                rows.append({"audio": str(short.resolve()), "intent": gold["intent"], "slots": slots,
                             "kind": "short_end", "text": said})
                break
    with (args.out / "manifest.jsonl").open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    counts = {kind: sum(r["kind"] == kind for r in rows) for kind in ("coffee", "paused", "short_end")}
    print(f"{len(rows)} recordings {counts} -> {args.out / 'manifest.jsonl'}")


if __name__ == "__main__":
    main()
