"""Stream the microphone (or a wav file, in real time) through the pipeline and print the events.

    python examples/stream_microphone.py                       # microphone (needs `pip install sounddevice`)
    python examples/stream_microphone.py --wav assets/audio/014_lights_on.wav
    python examples/stream_microphone.py --pipeline my-pipeline --trailing-silence 0.8

Without sounddevice or a microphone it streams ``--wav`` (default: two sample commands with silence
between them) in 20 ms chunks at real time.
"""
from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from pathlib import Path

import numpy as np

from speech_intent import SpeechIntentPipeline
from speech_intent.audio import load_audio
from speech_intent.live import StreamingRecognizer
from speech_intent.vad import VADOptions

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "audio"


def microphone_chunks(rate: int = 16000, block: int = 320):
    """20 ms float32 blocks from the default input device; None when there is no microphone."""
    try:
        import sounddevice as sd

        sd.check_input_settings(samplerate=rate, channels=1, dtype="float32")
    except Exception as error:  # not installed, no PortAudio, no input device
        print(f"no microphone ({type(error).__name__}: {error}); streaming a wav file instead", file=sys.stderr)
        return None
    blocks: "queue.Queue[np.ndarray]" = queue.Queue()

    def generate():
        with sd.InputStream(samplerate=rate, channels=1, dtype="float32", blocksize=block,
                            callback=lambda data, frames, t, status: blocks.put(data[:, 0].copy())):
            print("listening (Ctrl+C to stop)", file=sys.stderr)
            while True:
                yield blocks.get()

    return generate()


def wav_chunks(paths, rate: int = 16000, block: int = 320):
    """The files joined by 1.5 s of silence, in 20 ms chunks at real time."""
    silence = np.zeros(int(1.5 * rate), np.float32)
    audio = np.concatenate([part for p in paths for part in (silence, load_audio(p, max_duration=None))] + [silence])
    began = time.monotonic()
    for i, start in enumerate(range(0, len(audio), block)):
        yield audio[start: start + block]
        time.sleep(max(0.0, began + (i + 1) * block / rate - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wav", nargs="*", default=None, help="stream these files instead of the microphone")
    parser.add_argument("--pipeline", default=None, help="a saved pipeline dir (default: the embedded default)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--trailing-silence", type=float, default=0.6)
    parser.add_argument("--max-utterance", type=float, default=15.0)
    parser.add_argument("--partial-interval", type=float, default=1.0)
    parser.add_argument("--early-endpoint", type=float, default=None,
                        help="seconds of pause that end a complete, confident command early (default: off)")
    args = parser.parse_args()

    pipe = (SpeechIntentPipeline.from_pretrained(args.pipeline, device=args.device) if args.pipeline
            else SpeechIntentPipeline.default(device=args.device))
    chunks = None if args.wav else microphone_chunks()
    if chunks is None:
        chunks = wav_chunks(args.wav or [ASSETS / "014_lights_on.wav", ASSETS / "007_get_weather.wav"])
    stream = StreamingRecognizer(pipe, vad=VADOptions(trailing_silence=args.trailing_silence,
                                                      max_utterance=args.max_utterance),
                                 partial_interval=args.partial_interval or None, early_endpoint=args.early_endpoint)
    try:
        for event in stream.process(chunks):
            row = event.to_dict()
            row.pop("result", None)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    except KeyboardInterrupt:
        for event in stream.close():
            print(json.dumps(event.to_dict(), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
