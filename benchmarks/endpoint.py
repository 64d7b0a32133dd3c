"""Endpointing trade-off of streaming recognition: how soon a ``final`` comes vs how often a command is cut.

Streams each recording (then 1 s of silence) through :class:`~speech_intent.live.StreamingRecognizer`
in 20 ms chunks, in process, once per setting of ``early_endpoint`` (``none``: wait for the whole
trailing silence), and reports per setting:

- ``split``: recordings that gave more than one ``final`` (a command cut at a pause inside it);
- ``same as file``: recordings whose streamed result (their longest ``final``) has the intent and
  slots of the pipeline on the whole file;
- ``accepted``: streamed results with the labelled intent and slots (``labels.json``; the file's own
  acceptance is printed too);
- end of speech -> ``final`` p50 / p95, single stream, on a simulated real-time clock: a chunk can be
  fed no sooner than it would arrive from a microphone, and each ``feed`` call holds the clock for as
  long as it computes, so recognition time counts once, as it would for one live client.

No server, no network: the service's own share is in ``serve.py``. The ASR stage is the default
(bundled tiny.en on faster-whisper, domain prompt); ``--intent`` the coffee model of ``coffee.py``.

    python -m benchmarks.endpoint --intent /tmp/speech-intent-coffee/model --early none 0.2 0.3 0.4
    python -m benchmarks.endpoint --intent DIR --limit 20 --early none 0.3    # a quick look
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .common import COFFEE_DATA, add_json_flag, add_threads_flag, benchmark_parser, write_json

CHUNK = 320  # 20 ms at 16 kHz


def stream_one(pipe, audio: np.ndarray, early) -> tuple:
    """(finals, end-of-speech -> final latencies) of one recording streamed at simulated real time."""
    from speech_intent.live import StreamingRecognizer

    recognizer = StreamingRecognizer(pipe, early_endpoint=early, partial_interval=None)
    signal = np.concatenate([audio, np.zeros(16000, np.float32)])
    clock, finals, latencies = 0.0, [], []
    for start in range(0, len(signal), CHUNK):
        clock = max(clock, (start + CHUNK) / 16000)  # the chunk has arrived
        began = time.perf_counter()
        events = recognizer.feed(signal[start: start + CHUNK])
        clock += time.perf_counter() - began
        for event in events:
            if event.type == "final":
                finals.append(event)
                if event.reason in ("silence", "early_endpoint"):
                    latencies.append(clock - event.speech_end)
    finals += [e for e in recognizer.close() if e.type == "final"]
    return finals, latencies


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--recordings", type=Path, default=COFFEE_DATA / "dev",
                        help="folder with wavs and labels.json (default: %(default)s)")
    parser.add_argument("--intent", required=True, help="intent model dir (e.g. the coffee model of coffee.py)")
    parser.add_argument("--early", nargs="+", default=["none", "0.2", "0.3", "0.4"],
                        help="early_endpoint settings in seconds ('none': off)")
    parser.add_argument("--limit", type=int, default=None, help="the first N recordings only")
    add_threads_flag(parser, 2, help="torch threads (default: %(default)s)")
    add_json_flag(parser, help="write the report here")
    args = parser.parse_args()

    import transformers

    from speech_intent import FasterWhisperASR, IntentClassifier, SpeechIntentPipeline
    from speech_intent.audio import load_audio
    from speech_intent.device import set_torch_threads
    from speech_intent.evaluate import read_manifest
    from speech_intent.evaluate.metrics import compute_report

    transformers.logging.set_verbosity_error()
    set_torch_threads(args.threads)
    gold = {Path(item.audio).name: item for item in read_manifest(args.recordings / "labels.json")}
    files = sorted(args.recordings.glob("*.wav"))[: args.limit]
    pipe = SpeechIntentPipeline(FasterWhisperASR.from_pretrained(None, cpu_threads=args.threads),
                                IntentClassifier.from_pretrained(args.intent))
    audio = [load_audio(str(f)) for f in files]
    reference = pipe(audio, batch_size=8)

    no_final = SimpleNamespace(error="no final", intent=None, slots={}, transcript=None)

    def accepted(results) -> int:
        """Recordings whose result has the labelled intent and slots (the library's command acceptance)."""
        scored = [(gold[f.name], r if r is not None else no_final) for f, r in zip(files, results) if f.name in gold]
        acceptance = compute_report([g for g, _ in scored], [r for _, r in scored], slot_mode="value").command_acceptance
        return round(acceptance * len(scored))

    report = {"recordings": str(args.recordings), "count": len(files), "load_average": os.getloadavg(),
              "file_accepted": accepted(reference), "settings": []}
    print(f"{len(files)} recordings; whole files accepted: {report['file_accepted']}")
    for setting in args.early:
        early = None if setting == "none" else float(setting)
        latencies, split, same, streamed, reasons, differences = [], 0, 0, [], {}, []
        for path, clip, ref in zip(files, audio, reference):
            finals, found = stream_one(pipe, clip, early)
            latencies += found
            for final in finals:
                reasons[final.reason] = reasons.get(final.reason, 0) + 1
            split += len(finals) > 1
            longest = max(finals, key=lambda e: e.end - e.start).result if finals else None
            equal = longest is not None and (longest.intent, longest.slots) == (ref.intent, ref.slots)
            same += equal
            streamed.append(longest)
            if not equal:
                differences.append({"file": path.name, "finals": len(finals), "file_transcript": ref.transcript,
                                    "stream_transcripts": [f.transcript for f in finals]})
        ok = accepted(streamed)
        row = {"early_endpoint": early, "split": split, "same_as_file": same, "accepted": ok, "reasons": reasons,
               "eos_p50_s": round(float(np.percentile(latencies, 50)), 3),
               "eos_p95_s": round(float(np.percentile(latencies, 95)), 3), "differences": differences}
        report["settings"].append(row)
        print(f"early_endpoint {setting}: split {split}, same as file {same}, accepted {ok}, finals {reasons}, "
              f"end of speech -> final p50 {row['eos_p50_s']:.3f} s, p95 {row['eos_p95_s']:.3f} s", flush=True)
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
