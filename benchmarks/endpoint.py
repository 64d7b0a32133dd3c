"""Endpointing of streaming recognition: how soon a ``final`` comes vs how often a command is cut.

Streams each recording of a labelled manifest (then 1 s of silence, or the trailing silence + 0.5 s) through
:class:`~speech_intent.live.StreamingRecognizer` in 20 ms chunks, in process, once per setting:

- ``silence``: wait for the whole trailing silence (``--trailing-silence``, 0.6 s);
- ``early:S``: the confidence-only early endpoint: end after S s of pause when the intent is at least
  ``--early-confidence`` (0.9) and the transcript does not end in a comma;
- ``turn:S``: the end-of-turn detector (``--turn``, default the intent model's ``turn/``): end after
  S s of pause when P(complete) is at least ``--turn-confidence`` (default the detector's threshold),
  else wait up to ``--turn-silence`` (1.0 s); premature ends repaired (``revisions``). A ``/pN`` suffix
  (``turn:0.2/p0.25``) adds partial recognition every N s of speech, its cost on the clock too; ``/sN``
  another trailing silence (``turn:0.2/s1.2``).

Reported per setting, per ``kind`` column of the manifest (``endpoint_set.py``: ``coffee``,
``paused``, ``short_end``) and overall:

- ``split``: recordings left with more than one utterance (a command cut in two, not repaired);
- ``premature``: recordings with a ``final`` before the speaker had finished (split, or revised);
- ``revised``: recordings whose premature ``final`` was repaired by a revision;
- ``late``: recordings whose last ``final`` came over 0.5 s after the end of speech;
- ``same as file``: recordings whose streamed result (their longest ``final``) has the intent and
  slots of the pipeline on the whole file; ``accepted``: streamed results with the labelled ones;
- end of speech -> ``final`` p50 / p95 (the recording's last ``final``) on a simulated real-time
  clock: a chunk is fed no sooner than it would arrive from a microphone, and each ``feed`` call
  holds the clock for the CPU time the process spent in it (``--clock cpu``, the default: on a
  loaded machine, time spent waiting for a core is not counted, so the numbers are those of one
  stream on cores of its own; ``--clock wall`` counts it), so recognition time counts once, as it
  would for one live client.

The detector's own cost (ms per call, one text at a time) is measured on the streamed transcripts.
No server, no network: the service's own share is in ``serve.py``. The ASR stage is the default
(bundled tiny.en on faster-whisper, domain prompt); ``--intent`` the coffee model of ``coffee.py``.

    python -m benchmarks.endpoint --intent /tmp/speech-intent-coffee/model --turn DIR \\
        --manifest /tmp/endpoint-set/manifest.jsonl --settings silence early:0.2 early:0.4 turn:0.2
    python -m benchmarks.endpoint --intent DIR --limit 20 --settings silence turn:0.2   # a quick look
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .common import COFFEE_DATA, add_json_flag, add_threads_flag, benchmark_parser, write_json

CHUNK = 320  # 20 ms at 16 kHz
LATE = 0.5  # seconds from the end of speech to the final over which an end counts as late


def parse_setting(text: str) -> dict:
    """``silence`` | ``early:S`` | ``turn:S``, then optionally ``/pN`` (partials every N s) and ``/sN``
    (this trailing silence instead of ``--trailing-silence`` / ``--turn-silence``)."""
    name, *suffixes = text.split("/")
    kind, _, pause = name.partition(":")
    extra = {part[0]: part[1:] for part in suffixes if part[:1] in ("p", "s") and part[1:]}
    if kind not in ("silence", "early", "turn") or (kind != "silence" and not pause) or len(extra) != len(suffixes):
        raise SystemExit(f"bad setting {text!r}: silence, early:SECONDS or turn:SECONDS, then /pSECONDS (partials), "
                         "/sSECONDS (trailing silence)")
    return {"name": text, "kind": kind, "pause": float(pause) if pause else None,
            "partial_interval": float(extra["p"]) if "p" in extra else None,
            "trailing_silence": float(extra["s"]) if "s" in extra else None}


def stream_one(make, audio: np.ndarray, clock_kind: str = "cpu", tail: float = 1.0) -> tuple:
    """(events, {utterance: clock when its last final came}) of one recording (then ``tail`` s of
    silence) at simulated real time."""
    recognizer = make()
    signal = np.concatenate([audio, np.zeros(int(16000 * tail), np.float32)])
    tick = time.process_time if clock_kind == "cpu" else time.perf_counter
    clock, events, when = 0.0, [], {}
    for start in range(0, len(signal), CHUNK):
        clock = max(clock, (start + CHUNK) / 16000)  # the chunk has arrived
        began = tick()
        found = recognizer.feed(signal[start: start + CHUNK])
        clock += tick() - began
        for event in found:
            events.append(event)
            if event.type == "final":
                when[event.utterance] = clock
    for event in recognizer.close():
        events.append(event)
        if event.type == "final":
            when[event.utterance] = None
    return events, when


def summarise(rows: list) -> dict:
    latencies = [r["latency"] for r in rows if r["latency"] is not None]
    count = len(rows)
    out = {"count": count, **{k: sum(r[k] for r in rows) for k in ("split", "premature", "revised", "late", "same",
                                                                       "accepted")}}
    out["split_rate"] = round(out["split"] / count, 4) if count else None
    out["eos_p50_s"] = round(float(np.percentile(latencies, 50)), 3) if latencies else None
    out["eos_p95_s"] = round(float(np.percentile(latencies, 95)), 3) if latencies else None
    return out


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--manifest", type=Path, default=COFFEE_DATA / "dev" / "labels.json",
                        help="labelled recordings: labels.json or a manifest (kind column optional; default: %(default)s)")
    parser.add_argument("--intent", required=True, help="intent model dir (e.g. the coffee model of coffee.py)")
    parser.add_argument("--turn", default=None, help="end-of-turn detector dir (default: INTENT/turn)")
    parser.add_argument("--settings", nargs="+", default=["silence", "early:0.2", "early:0.4", "turn:0.2"],
                        help="silence, early:SECONDS, turn:SECONDS, with /pSECONDS for partials (default: %(default)s)")
    parser.add_argument("--trailing-silence", type=float, default=0.6, help="silence and early settings")
    parser.add_argument("--turn-silence", type=float, default=1.0, help="the longest wait of turn settings")
    parser.add_argument("--early-confidence", type=float, default=0.9)
    parser.add_argument("--turn-confidence", type=float, default=None, help="default: the detector's threshold")
    parser.add_argument("--no-revisions", action="store_true", help="turn settings without revisions")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="what a feed call costs the clock")
    parser.add_argument("--limit", type=int, default=None, help="the first N recordings only")
    add_threads_flag(parser, 1, help="torch and CTranslate2 threads (default: %(default)s)")
    add_json_flag(parser, help="write the report here")
    args = parser.parse_args()
    settings = [parse_setting(s) for s in args.settings]

    import transformers

    from speech_intent import FasterWhisperASR, IntentClassifier, SpeechIntentPipeline
    from speech_intent.audio import load_audio
    from speech_intent.device import set_torch_threads
    from speech_intent.evaluate import read_manifest
    from speech_intent.evaluate.metrics import compute_report
    from speech_intent.live import StreamingRecognizer
    from speech_intent.turn import load_turn_detector
    from speech_intent.vad import VADOptions

    transformers.logging.set_verbosity_error()
    set_torch_threads(args.threads)
    items = read_manifest(args.manifest)[: args.limit]
    turn = load_turn_detector(args.turn or args.intent)
    if turn is None and any(s["kind"] == "turn" for s in settings):
        raise SystemExit(f"no end-of-turn detector in {args.turn or args.intent} (speech-intent train-turn)")
    pipe = SpeechIntentPipeline(FasterWhisperASR.from_pretrained(None, cpu_threads=args.threads),
                                IntentClassifier.from_pretrained(args.intent))
    audio = [load_audio(str(item.audio)) for item in items]
    reference = pipe(audio, batch_size=8)
    kinds = [item.columns.get("kind", "all") for item in items]
    no_final = SimpleNamespace(error="no final", intent=None, slots={}, transcript=None)

    def accepted(item, result) -> bool:
        report = compute_report([item], [result if result is not None else no_final], slot_mode="value")
        return report.command_acceptance == 1.0

    report = {"manifest": str(args.manifest), "count": len(items), "load_average": os.getloadavg(),
              "clock": args.clock, "file_accepted": sum(accepted(i, r) for i, r in zip(items, reference)),
              "settings": []}
    if turn is not None:
        report["turn"] = {"threshold": turn.threshold, "metrics": turn.metrics}
    print(f"{len(items)} recordings {dict((k, kinds.count(k)) for k in sorted(set(kinds)))}; whole files accepted: "
          f"{report['file_accepted']}", flush=True)
    transcripts = []
    for setting in settings:
        silence = args.turn_silence if setting["kind"] == "turn" else args.trailing_silence
        vad = VADOptions(trailing_silence=setting["trailing_silence"] or silence)
        options = {"vad": vad, "partial_interval": setting["partial_interval"]}
        if setting["kind"] == "early":
            options.update(early_endpoint=setting["pause"], early_confidence=args.early_confidence)
        elif setting["kind"] == "turn":
            options.update(turn=turn, early_endpoint=setting["pause"], early_confidence=args.turn_confidence,
                           revisions=not args.no_revisions)

        def make(options=options):
            return StreamingRecognizer(pipe, **options)

        rows, reasons, differences = [], {}, []
        for item, clip, ref, kind in zip(items, audio, reference, kinds):
            events, when = stream_one(make, clip, args.clock, tail=max(1.0, vad.trailing_silence + 0.5))
            finals = [e for e in events if e.type == "final"]
            for final in finals:
                reasons[final.reason] = reasons.get(final.reason, 0) + 1
                transcripts.append(final.transcript or "")
            surviving = {}
            for final in finals:  # a revision replaces the final of its utterance
                surviving[final.utterance] = final
            kept = list(surviving.values())
            longest = max(kept, key=lambda e: e.end - e.start).result if kept else None
            last = max(kept, key=lambda e: e.end) if kept else None
            latency = None
            if last is not None and when.get(last.utterance) is not None:
                latency = when[last.utterance] - last.speech_end
            equal = longest is not None and (longest.intent, longest.slots) == (ref.intent, ref.slots)
            revised = any(e.revises is not None for e in finals)
            row = {"kind": kind, "split": len(kept) > 1, "revised": revised, "premature": len(kept) > 1 or revised,
                   "late": latency is not None and latency > LATE, "latency": latency, "same": equal,
                   "accepted": accepted(item, longest)}
            rows.append(row)
            if not equal or row["split"] or row["late"] or revised:
                differences.append({"file": Path(item.audio).name, "kind": kind, "finals": len(finals),
                                    "file_transcript": ref.transcript, "late": row["late"],
                                    "stream": [(f.transcript, f.reason, f.revises,
                                                None if f.turn is None else round(f.turn.scores["complete"], 3))
                                               for f in finals]})
        summary = {"setting": setting["name"], "reasons": reasons, "all": summarise(rows),
                   "by_kind": {k: summarise([r for r in rows if r["kind"] == k]) for k in sorted(set(kinds))},
                   "differences": differences}
        report["settings"].append(summary)
        for name, part in [("all", summary["all"])] + sorted(summary["by_kind"].items()):
            print(f"{setting['name']:>16} {name:>9}: n {part['count']}, split {part['split']}, premature "
                  f"{part['premature']} (revised {part['revised']}), late {part['late']}, same as file {part['same']}, "
                  f"accepted {part['accepted']}, end of speech -> final p50 {part['eos_p50_s']} s, p95 "
                  f"{part['eos_p95_s']} s", flush=True)
        print(f"{setting['name']:>16} finals {reasons}", flush=True)
    if turn is not None and transcripts:
        sample = (transcripts * (1 + 500 // len(transcripts)))[:500]
        times = []
        for text in sample:
            began = time.perf_counter()
            turn.predict([text])
            times.append(time.perf_counter() - began)
        report["turn_ms_per_call"] = {"p50": round(1000 * float(np.percentile(times, 50)), 3),
                                      "p95": round(1000 * float(np.percentile(times, 95)), 3)}
        print(f"end-of-turn detector: {report['turn_ms_per_call']} ms per call (one text)")
    report["settings_vad"] = {"trailing_silence": args.trailing_silence, "turn_silence": args.turn_silence}
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
