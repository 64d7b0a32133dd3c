"""ASR fine-tuning benchmark: Whisper tiny.en fine-tuned on synthesised speech, evaluated with FREE decoding.

Coffee (closed slots): tiny.en is fine-tuned (``speech_intent.asr_training.fine_tune_asr``) on
``--max-examples`` sentences of ``grammar.yaml`` spoken by espeak-ng voices (no real coffee recording in
training), augmented with synthetic training noise (babble + pink/brown noise, never the kitchen
noise), speed perturbation and SpecAugment, half of the clips after the domain prompt; ``--dev-examples``
other grammar sentences (synthesised, training noise at ``--dev-snr``) pick the best epoch by WER. The
100 real dev recordings are then decoded freely (no grammar) by the bundled and the fine-tuned model
(CTranslate2 int8, the default backend) through the pipeline with the coffee intent model (domain prompt +
canonicalisation, as ``SpeechIntentPipeline`` does): command acceptance, slot F1 and slot-value recall
(share of labelled slot values found in the transcript: the coffee labels have no transcripts, so no
WER), clean and with kitchen noise at ``--snr`` (evaluation only), and the speed of each. Other-domain
speech: WER on ``assets/audio`` (30 commands, no prompt) before and after (forgetting).

Rehearsal (the library's default, as ``fine_tune_asr`` does it): ``--rehearsal-examples`` N (200)
sentences of the library's general-English rehearsal sentences (``bundled_rehearsal_path()``) are spoken
by the same voices and trained on with each domain's sentences, against forgetting; ``--rehearsal PATH``
samples them from other training data instead (e.g. the SNIPS training split, a JointBERT folder), and
``--rehearsal-examples 0`` trains without. A source inside ``assets/audio`` or the coffee data is refused
here before anything runs (and one overlapping the ``exclude=`` paths by the library), and a sentence
equal (normalised) to an ``assets/audio`` transcript is never drawn (``assets/audio/manifest.csv`` is
passed as ``exclude=``). A BIO folder's tokenised text is written naturally first (the library's
``detokenize``: ``what s`` -> ``what's``, ``i`` -> ``I``). Models are kept per setting
(``WORK/asr-coffee``, ``asr-coffee-rehearsal``, ``asr-coffee-no-rehearsal``; ``asr-demo...`` likewise) and
retrained when the kept one's ``training.json`` records another rehearsal setting. ``training.json`` and
the JSON output record the sample (``rehearsal``: sentences, sources, intents).

Open slots (``--demo-examples``, 0 to skip): tiny.en fine-tuned the same way on the demo domain's
sentences (``speech_intent/resources/demo_domain.yaml``: songs, contacts, cities; no grammar; the same
rehearsal setting), 15% of them held out; WER and slot-value recall on the held-out sentences (spoken by hibari-tts when installed,
else by other espeak-ng voice draws) and on ``assets/audio`` (in-domain here; its sentences are not in the
training data), before and after.

    python -m benchmarks.asr_finetune --json asr_finetune.json          # full run (about 1.5 hours on 2 CPU cores)
    python -m benchmarks.asr_finetune --max-examples 8 --dev-examples 4 --epochs 1 --limit 5 \\
        --demo-examples 8 --intent-epochs 0.1 --intent-max-examples 200 --rehearsal-examples 4  # smoke run

Training runs in a child process (CTranslate2's threads, once loaded, slow torch training on CPU);
models and results are kept in ``--work`` and reused unless ``--retrain``.
"""
from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from .common import (
    ASSETS_AUDIO,
    COFFEE_DATA,
    add_batch_size_flag,
    add_data_flag,
    add_device_flag,
    add_json_flag,
    add_work_flag,
    benchmark_parser,
    write_json,
)


def main() -> int:
    from speech_intent.asr_training import ASRTrainingOptions

    defaults = ASRTrainingOptions()
    parser = benchmark_parser(__doc__)
    add_data_flag(parser, COFFEE_DATA, "coffee data (grammar.yaml, dev/, noise/kitchen.wav)")
    add_work_flag(parser, Path("/tmp/speech-intent-asr-finetune"))
    parser.add_argument("--max-examples", type=int, default=1500, help="coffee grammar sentences to train on")
    parser.add_argument("--rehearsal", type=Path, default=None, metavar="PATH",
                        help="other-domain training data mixed into the coffee training (any format load_examples "
                             "reads; default: the library's general-English sentences)")
    parser.add_argument("--rehearsal-examples", type=int, default=defaults.rehearsal_examples, metavar="N",
                        help="rehearsal sentences sampled (default %(default)s; 0: no rehearsal)")
    parser.add_argument("--dev-examples", type=int, default=100, help="synthesised dev sentences (best epoch)")
    parser.add_argument("--dev-snr", type=float, default=10.0, help="training noise in the dev clips (dB)")
    parser.add_argument("--epochs", type=float, default=defaults.epochs)
    parser.add_argument("--lr", type=float, default=defaults.learning_rate)
    parser.add_argument("--train-batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--freeze-encoder", action="store_true")
    parser.add_argument("--lora", type=int, default=None, metavar="RANK")
    parser.add_argument("--snr", type=float, nargs="*", default=[6.0], help="kitchen-noise SNRs of the evaluation")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N coffee recordings")
    parser.add_argument("--demo-examples", type=int, default=10_000, help="demo-domain sentences (0: skip the domain)")
    parser.add_argument("--intent", type=Path, default=None, help="coffee intent model (default: trained in WORK)")
    parser.add_argument("--intent-epochs", type=float, default=3.0, help="coffee intent model recipe (coffee.py)")
    parser.add_argument("--intent-max-examples", type=int, default=4000)
    add_batch_size_flag(parser, help="evaluation batch size")
    parser.add_argument("--cpu-threads", type=int, default=None, help="CTranslate2 threads (default: the cores)")
    add_device_flag(parser, "cpu")
    parser.add_argument("--retrain", action="store_true", help="train again even if WORK has the models")
    add_json_flag(parser, help="write every number to this JSON file")
    args = parser.parse_args()
    if not (args.data / "grammar.yaml").is_file():
        sys.exit(f"coffee data not found under {args.data}")
    if args.rehearsal_examples < 0:
        parser.error("--rehearsal-examples must be at least 0")
    if args.rehearsal is not None:
        check_rehearsal(parser, args)
    args.work.mkdir(parents=True, exist_ok=True)
    out = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}

    intent_dir = args.intent or args.work / "intent"
    if args.intent is None and (args.retrain or not (intent_dir / "model.safetensors").is_file()):
        run_child(_intent_job, args, intent_dir)
    out["coffee"] = coffee(args, intent_dir)
    if args.demo_examples:
        out["demo"] = demo(args)
    if args.json:
        write_json(args.json, out)
        print(f"\nwrote {args.json}")
    return 0


# ------------------------------------------------------------------ training (child processes)
def run_child(target, *arguments) -> None:
    child = multiprocessing.get_context("spawn").Process(target=target, args=arguments)
    child.start()
    child.join()
    if child.exitcode != 0:
        sys.exit(f"{target.__name__} failed (exit code {child.exitcode})")


def _intent_job(args, intent_dir: Path) -> None:
    from . import coffee as coffee_benchmark

    coffee_benchmark.train_intent_model(args.data / "grammar.yaml", intent_dir, epochs=args.intent_epochs,
                                        max_examples=args.intent_max_examples, device=args.device)


def _asr_job(args, train, dev, out_dir: Path, prompt, exclude, rehearsal) -> None:
    import logging

    from speech_intent.asr_training import ASRTrainingOptions, LoraOptions, fine_tune_asr

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("speech_intent.asr_training").setLevel(logging.INFO)
    options = ASRTrainingOptions(epochs=args.epochs, learning_rate=args.lr, batch_size=args.train_batch_size,
                                 freeze_encoder=args.freeze_encoder, dev_snr=args.dev_snr,
                                 rehearsal_examples=args.rehearsal_examples,
                                 lora=LoraOptions(rank=args.lora, alpha=2.0 * args.lora) if args.lora else None)
    fine_tune_asr(train, out_dir, options=options, dev=dev, prompt=prompt, exclude=exclude, rehearsal=rehearsal,
                  device=args.device, progress=False)


def rehearsal_setting(args) -> Tuple[str, Optional[List[Path]]]:
    """``(name suffix, rehearsal=)`` of the run: the library's default sentences, ``--rehearsal`` or none."""
    if args.rehearsal_examples == 0:
        return "-no-rehearsal", []
    if args.rehearsal is not None:
        return "-rehearsal", [args.rehearsal]
    return "", None


def _same_rehearsal(record: dict, args, rehearsal: Optional[List[Path]]) -> bool:
    """Whether a kept model was trained with this run's rehearsal setting."""
    from speech_intent.asr_training import bundled_rehearsal_path

    wanted = [] if rehearsal == [] else [Path(p).resolve() for p in (rehearsal or [bundled_rehearsal_path()])]
    done = record.get("rehearsal") or {}
    return ({Path(p).resolve() for p in done.get("sources", {})} == set(wanted)
            and (not wanted or done.get("requested") == args.rehearsal_examples))


def fine_tuned(args, name: str, train, dev, prompt, exclude, rehearsal=None) -> dict:
    """Fine-tune into ``WORK/asr-NAME`` (a child process) unless it is there with the same rehearsal setting;
    its training.json. ``rehearsal`` (the library's option): other training data, ``--rehearsal-examples`` of
    its sentences mixed in; ``None``: the library's general-English sentences; ``[]``: none."""
    out_dir = args.work / f"asr-{name}"
    record = out_dir / "training.json"
    if args.retrain or not record.is_file() or not _same_rehearsal(json.loads(record.read_text()), args, rehearsal):
        source = "the library's sentences" if rehearsal is None else ", ".join(map(str, rehearsal))
        mix = f" + {args.rehearsal_examples} rehearsal sentences of {source}" if rehearsal != [] else ""
        print(f"fine-tuning tiny.en on {len(train)} {name} sentences{mix} ({len(dev)} dev) -> {out_dir}", flush=True)
        run_child(_asr_job, args, train, dev, out_dir, prompt, exclude, rehearsal)
    result = json.loads(record.read_text())
    print(f"  {result['train_examples']} clips, {result['steps']} steps, {result['seconds']:.0f} s; dev WER "
          f"{result['dev_wer_before']} -> {result['best_dev_wer']} (step {result['best_step']})", flush=True)
    rehearsed = result.get("rehearsal")
    if rehearsed:
        print(f"  rehearsal: {rehearsed['sentences']} sentences of {', '.join(rehearsed['sources'])} "
              f"({rehearsed['available']} there, {rehearsed['dropped_as_evaluation']} equal to an evaluation "
              f"transcript never drawn); intents {rehearsed['intents']}", flush=True)
    return result


# ------------------------------------------------------------------ scoring
def slot_value_recall(pairs, norm) -> float:
    """Share of gold slot values found (whole words, normalised) in their transcripts."""
    found = total = 0
    for values, transcript in pairs:
        words = f" {norm(transcript or '')} "
        for value in values:
            total += 1
            found += f" {norm(value)} " in words
    return found / total if total else float("nan")


def fast_asr(args, path=None):
    from speech_intent import FasterWhisperASR

    return FasterWhisperASR.from_pretrained(path, device=args.device, cpu_threads=args.cpu_threads)


def transcribe_wer(asr, clips, references, batch_size: int) -> dict:
    """WER (normalised) and speed of ``asr`` on ``clips`` (no prompt)."""
    from speech_intent import TextNormalizer
    from speech_intent.evaluate import error_rates

    start = time.perf_counter()
    texts = [t.text for t in asr.transcribe(clips, batch_size=batch_size)]
    seconds = time.perf_counter() - start
    wer, _ = error_rates(references, texts, TextNormalizer())
    audio_s = sum(len(c) for c in clips) / 16000
    return {"wer": wer, "seconds": seconds, "rtfx": audio_s / seconds, "texts": texts}


def assets_clips():
    import csv

    from speech_intent.audio import load_audio

    rows = list(csv.DictReader((ASSETS_AUDIO / "manifest.csv").open()))
    return [load_audio(ASSETS_AUDIO / r["file"]) for r in rows], [r["text"] for r in rows]


# ------------------------------------------------------------------ rehearsal
def check_rehearsal(parser, args) -> None:
    """Refuse a rehearsal source that is, holds or lies inside evaluation data."""
    source = args.rehearsal.resolve()
    if not source.exists():
        parser.error(f"--rehearsal {args.rehearsal}: no such file or folder")
    if args.rehearsal_examples < 1:
        parser.error("--rehearsal needs --rehearsal-examples of at least 1")
    for name, kept_out in (("assets/audio", ASSETS_AUDIO), ("the coffee data", args.data)):
        kept_out = kept_out.resolve()
        if source == kept_out or kept_out in source.parents or source in kept_out.parents:
            parser.error(f"--rehearsal {args.rehearsal}: overlaps {name} ({kept_out}), which is never trained on")


# ------------------------------------------------------------------ coffee
def coffee(args, intent_dir: Path) -> dict:
    import soundfile as sf

    from speech_intent import IntentClassifier, SpeechIntentPipeline, TextNormalizer
    from speech_intent.data import expand_grammar
    from speech_intent.evaluate import read_manifest
    from speech_intent.nlu.canonical import domain_prompt

    grammar, kitchen = args.data / "grammar.yaml", args.data / "noise" / "kitchen.wav"
    intent = IntentClassifier.from_pretrained(intent_dir, device=args.device)
    prompt = domain_prompt(intent.canonicalizer.values) if intent.canonicalizer is not None else None
    train = [ex.text for ex in expand_grammar(grammar, max_examples=args.max_examples, seed=0)]
    dev = [ex.text for ex in expand_grammar(grammar, max_examples=args.dev_examples, seed=1)]
    exclude = [args.data / "dev", kitchen, ASSETS_AUDIO, ASSETS_AUDIO / "manifest.csv"]
    suffix, rehearsal = rehearsal_setting(args)
    result = fine_tuned(args, "coffee" + suffix, train, dev, prompt, exclude, rehearsal)
    rehearsal = result.get("rehearsal")

    items = read_manifest(args.data / "dev" / "labels.json")
    items = items[: args.limit] if args.limit else items
    audio_s = sum(sf.info(str(item.audio)).duration for item in items)
    norm = TextNormalizer()
    clips, references = assets_clips()
    rows = {}
    for name, path, use_prompt in (("tiny.en", None, True), ("fine-tuned", result["ctranslate2_dir"], True),
                                   ("fine-tuned, no prompt", result["ctranslate2_dir"], False)):
        asr = fast_asr(args, path)
        pipe = SpeechIntentPipeline(asr, intent, domain_prompt=use_prompt)
        row = {}
        for condition, (report, seconds) in timed_reports(pipe, items, kitchen, args).items():
            pairs = [(item["gold_slots"].values(), item["transcript"]) for item in report.items]
            row[condition] = {"acceptance": report.command_acceptance, "slot_f1": report.slot_f1,
                              "slot_value_recall": slot_value_recall(pairs, norm), "seconds": seconds,
                              "rtfx": audio_s / seconds}
        if use_prompt:  # once per model: the ASR alone, no prompt
            scored = transcribe_wer(asr, clips, references, args.batch_size)
            row["assets_wer"] = {k: v for k, v in scored.items() if k != "texts"}
        rows[name] = row
    print_coffee(rows, args, len(items), len(train), rehearsal)
    return {"training": result, "prompt": prompt, "recordings": len(items), "rehearsal": rehearsal, "rows": rows}


def timed_reports(pipe, items, kitchen, args) -> dict:
    """condition -> (report, wall seconds): ``evaluate_audio`` one condition at a time."""
    from speech_intent.evaluate import evaluate_audio

    reports = {}
    for snr in [None] + list(args.snr):
        start = time.perf_counter()
        got = evaluate_audio(pipe, items, noise=kitchen if snr is not None else None,
                             snrs=[snr] if snr is not None else None, include_clean=snr is None, seed=0,
                             batch_size=args.batch_size)
        for condition, report in got.items():
            reports[condition] = (report, time.perf_counter() - start)
    return reports


def print_coffee(rows: dict, args, n: int, n_coffee: int, rehearsal) -> None:
    conditions = ["clean"] + [f"{s:g}dB" for s in args.snr]
    mix = (f" + {rehearsal['sentences']} rehearsal sentences of {', '.join(rehearsal['sources'])}" if rehearsal
           else ", no rehearsal")
    print(f"\ncoffee dev ({n} recordings), free decoding, CTranslate2 int8; fine-tuned on {n_coffee} grammar "
          f"sentences{mix}")
    print(" " * 25 + "".join(f"{c:^34s}" for c in conditions))
    print(f"{'model':24s} " + "".join(f"{'accept':>9s} {'slot F1':>7s} {'recall':>7s} {'(RTFx)':>8s}" for _ in conditions)
          + "   assets/audio WER")
    for name, row in rows.items():
        cells = "".join(f"{row[c]['acceptance']:9.1%} {row[c]['slot_f1']:7.1%} {row[c]['slot_value_recall']:7.1%} "
                        f"({row[c]['rtfx']:5.1f}x)" for c in conditions)
        wer = f"{row['assets_wer']['wer']:8.1%}" if "assets_wer" in row else "       -"
        print(f"{name:24s} {cells}   {wer}")


# ------------------------------------------------------------------ the demo domain (open slots)
def demo(args) -> dict:
    import numpy as np

    from speech_intent import TextNormalizer
    from speech_intent.audio import load_audio
    from speech_intent.data import read_rasa
    from speech_intent.demo_model import demo_domain_path
    from speech_intent.synthesis.noise import mix_at_snr

    examples = [ex for ex in read_rasa(demo_domain_path()) if ex.text.strip()]
    order = np.random.default_rng(0).permutation(len(examples))
    n_test = max(1, int(0.15 * len(examples)))
    test = [examples[i] for i in order[:n_test]]
    rest = [examples[i] for i in order[n_test:]][: args.demo_examples]
    n_dev = min(len(rest) // 10, args.dev_examples)
    train, dev = [ex.text for ex in rest[n_dev:]], [ex.text for ex in rest[:n_dev]] or [rest[0].text]
    kitchen = args.data / "noise" / "kitchen.wav"
    suffix, rehearsal = rehearsal_setting(args)
    result = fine_tuned(args, "demo" + suffix, train, dev, None, [kitchen, ASSETS_AUDIO], rehearsal)

    synth, voice_name = test_synthesizer()
    clean = [synth.synthesize(ex.text, voice=i) for i, ex in enumerate(test)]
    noise = load_audio(kitchen, max_duration=None)
    conditions = {"clean": clean}
    conditions.update({f"{s:g}dB": [mix_at_snr(c, noise, s, seed=0, index=i) for i, c in enumerate(clean)]
                       for s in args.snr})
    norm = TextNormalizer()
    assets, references = assets_clips()
    rows = {}
    for name, path in (("tiny.en", None), ("fine-tuned", result["ctranslate2_dir"])):
        asr = fast_asr(args, path)
        row = {}
        for condition, clips in conditions.items():
            scored = transcribe_wer(asr, clips, [ex.text for ex in test], args.batch_size)
            pairs = [([s.value for s in ex.slots], t) for ex, t in zip(test, scored.pop("texts"))]
            row[condition] = {**scored, "slot_value_recall": slot_value_recall(pairs, norm)}
        row["assets_wer"] = {k: v for k, v in transcribe_wer(asr, assets, references, args.batch_size).items()
                             if k != "texts"}
        rows[name] = row
    print(f"\ndemo domain: {len(test)} held-out sentences spoken by {voice_name}; WER / slot-value recall (RTFx)")
    for name, row in rows.items():
        cells = "  ".join(f"{c} {row[c]['wer']:6.1%} {row[c]['slot_value_recall']:6.1%} ({row[c]['rtfx']:5.1f}x)"
                          for c in conditions)
        print(f"{name:12s} {cells}   assets/audio WER {row['assets_wer']['wer']:6.1%}")
    return {"training": result, "test_sentences": len(test), "test_voice": voice_name, "rows": rows}


def test_synthesizer():
    """hibari-tts (not a training voice) when installed, else espeak-ng."""
    from speech_intent.errors import SynthesizerUnavailable
    from speech_intent.synthesis import EspeakSynthesizer, HibariSynthesizer

    try:
        return HibariSynthesizer(), "hibari-tts (heart, 3 speeds)"
    except SynthesizerUnavailable:
        return EspeakSynthesizer(), "espeak-ng (the training voices)"


if __name__ == "__main__":
    sys.exit(main())
