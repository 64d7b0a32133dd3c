"""Coffee speech-to-intent benchmark (Picovoice's public domain), with ablations.

Trains a joint intent + slot model from ``grammar.yaml`` ONLY, then evaluates
command acceptance on the 100 real dev recordings: clean, per technique
(ablation), and with kitchen noise at 6-24 dB for the full configuration.

    python -m benchmarks.coffee                       # full run (tens of minutes on 2 CPU cores)
    python -m benchmarks.coffee --limit 20 --snr 6 24 # quick look
    python -m benchmarks.coffee --speech-loop 1500    # + speech-in-the-loop training (model-speechloop/)

Rows of the ablation (clean, and with kitchen noise at ``--ablation-snr``, default 6 dB):
  base       grammar-trained joint model on raw tiny.en transcripts
  +prompt    Whisper decoded with the domain prompt derived from the grammar's slot values
  +canon     slot spans mapped to the nearest canonical value (fuzzy + phonetic), no prompt
  +prompt+canon  both (the default: SpeechIntentPipeline turns the prompt on by itself)
  +grammar   tiny.en on transformers (the converted twin) decoding only sentences of grammar.yaml
             (speech_intent.asr.grammar), with prompt + canonicalisation: greedy, then --beams beams,
             then --beams beams without the domain prompt
  rejection  share of coffee recordings kept (clean, noisy) and of other-domain commands
             (assets/audio) rejected at ``--rejection`` nats

The noise sweep runs the configuration named by ``--asr`` (default: grammar-constrained decoding).

``--speech-loop N`` trains on the grammar sentences PLUS N other grammar sentences spoken by
espeak-ng, mixed with synthetic training noise (babble + pink/brown, never the kitchen test
noise) and transcribed by the same tiny.en with the domain prompt, labels projected onto the
transcripts (``speech_intent.speech_in_the_loop``). That model and its report go to
``WORK/model-speechloop`` and ``WORK/report-speechloop``; the transcripts are cached in
``WORK/speechloop-N.jsonl``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from speech_intent.asr.whisper_common import DEFAULT_CONTEXT_MARGIN

from .common import (
    ASSETS_AUDIO,
    COFFEE_DATA,
    add_batch_size_flag,
    add_data_flag,
    add_device_flag,
    add_work_flag,
    benchmark_parser,
)

DEFAULT_WORK = Path("/tmp/speech-intent-coffee")
DEFAULT_EPOCHS = 3.0
DEFAULT_MAX_EXAMPLES = 4000


def main() -> int:
    parser = benchmark_parser(__doc__)
    add_data_flag(parser, COFFEE_DATA, "coffee data: grammar.yaml, dev/ (recordings, labels.json), noise/kitchen.wav")
    add_work_flag(parser, DEFAULT_WORK)
    parser.add_argument("--manifest", type=Path, default=None,
                        help="recordings to evaluate (labels.json / CSV / JSONL manifest; default: DATA/dev/labels.json)")
    parser.add_argument("--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES,
                        help="grammar sentences sampled for training")
    parser.add_argument("--epochs", type=float, default=DEFAULT_EPOCHS)
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N recordings")
    parser.add_argument("--snr", type=float, nargs="*", default=[6, 9, 12, 15, 18, 21, 24])
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--ablation-only", action="store_true", help="ablation rows only, no noise sweep")
    parser.add_argument("--ablation-snr", type=float, nargs="*", default=[6.0], metavar="DB",
                        help="ablation rows are also evaluated with kitchen noise at these SNRs (default 6 dB)")
    parser.add_argument("--retrain", action="store_true")
    add_device_flag(parser, "cpu")
    add_batch_size_flag(parser)
    parser.add_argument("--asr", choices=["grammar", "faster-whisper"], default="grammar",
                        help="ASR of the noise sweep: grammar-constrained transformers Whisper, or free faster-whisper")
    parser.add_argument("--context-margin", type=_margin, default=DEFAULT_CONTEXT_MARGIN, metavar="S",
                        help="encoder context of every ASR row: audio + S seconds (default: the library's, "
                             f"{DEFAULT_CONTEXT_MARGIN:g}), or 'none' for the 30 s window")
    parser.add_argument("--beams", type=int, default=4, help="beam size of grammar-constrained decoding")
    parser.add_argument("--rejection", type=float, default=1.5, metavar="NATS",
                        help="out-of-grammar margin measured in the ablation: coffee recordings kept vs the other-"
                             "domain commands in assets/audio rejected (a negative value skips it)")
    parser.add_argument("--cpu-threads", type=int, default=None, help="CTranslate2 threads (default: the cores)")
    parser.add_argument("--speech-loop", type=int, default=0, metavar="N",
                        help="also train on N TTS + noise + ASR transcripts of grammar sentences")
    parser.add_argument("--speech-loop-snr", type=float, nargs="+", default=None, metavar="DB",
                        help="training SNRs for --speech-loop (inf = no noise; default: speech_in_the_loop.DEFAULT_SNRS)")
    parser.add_argument("--speech-loop-max-wer", type=float, default=0.5, metavar="WER",
                        help="drop speech-loop transcripts with a higher word error rate (default 0.5; 1e9: keep all)")
    args = parser.parse_args()

    from speech_intent import FasterWhisperASR, IntentClassifier, SpeechIntentPipeline
    from speech_intent.data import expand_grammar
    from speech_intent.evaluate import evaluate_audio, read_manifest, write_report

    if not (args.data / "grammar.yaml").is_file():
        sys.exit(f"coffee data not found under {args.data}")
    suffix = "-speechloop" if args.speech_loop else ""
    model_dir = args.work / f"model{suffix}"
    timings = {}
    start = time.perf_counter()
    if args.retrain or not (model_dir / "model.safetensors").is_file():
        closed, spoken = None, []
        if args.speech_loop:  # closed values come from the clean sentences the model trains on
            clean = expand_grammar(args.data / "grammar.yaml", max_examples=args.max_examples, seed=0)
            closed, spoken = speech_loop(args, clean, timings)
        start = time.perf_counter()
        train_intent_model(args.data / "grammar.yaml", model_dir, epochs=args.epochs, max_examples=args.max_examples,
                           device=args.device, extra_examples=spoken, closed_values=closed)
    timings["train_s"] = time.perf_counter() - start

    items = read_manifest(args.manifest or args.data / "dev" / "labels.json")
    items = items[: args.limit] if args.limit else items
    asr = FasterWhisperASR.from_pretrained(None, device=args.device, cpu_threads=args.cpu_threads,
                                           context_margin=args.context_margin)
    intent = IntentClassifier.from_pretrained(model_dir, device=args.device)
    print(f"device {args.device}, {len(items)} recordings, model {model_dir}, cpus {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}")

    rows = []
    if not args.no_ablation:
        rows = ablation_rows(args, asr, intent, items)
    if args.ablation_only:
        print(json.dumps({"ablation": rows}, default=float))
        return 0

    sweep_asr = grammar_asr(args, args.beams) if args.asr == "grammar" else asr
    pipe = SpeechIntentPipeline(sweep_asr, intent, domain_prompt=True)
    print(f"noise sweep: {args.asr}" + (f", {args.beams} beams" if args.asr == "grammar" else ""), flush=True)
    t = time.perf_counter()
    reports = evaluate_audio(pipe, items, noise=args.data / "noise" / "kitchen.wav", snrs=args.snr,
                             seed=0, batch_size=args.batch_size)
    timings["eval_s"] = time.perf_counter() - t
    out = args.work / f"report{suffix}"
    write_report(reports, out, meta={"benchmark": "coffee", "device": args.device, "rows": rows, "asr": args.asr,
                                     "beams": args.beams,
                                     "speech_loop": args.speech_loop, **timings})

    print("\ncondition   acceptance  slot F1")
    for name, report in reports.items():
        print(f"{name:10s} {report.command_acceptance:10.1%} {report.slot_f1:8.1%}")
    noisy = [r.command_acceptance for n, r in reports.items() if n != "clean"]
    if noisy:
        print(f"average over {len(noisy)} SNRs: {sum(noisy) / len(noisy):.1%}")
    loop = f"speech loop {timings['speech_loop_s']:.0f} s, " if "speech_loop_s" in timings else ""
    print(f"\n{loop}train {timings['train_s']:.0f} s, evaluation {timings['eval_s']:.0f} s; report in {out}")
    print(json.dumps({"ablation": rows}, default=float))
    return 0


def ablation_rows(args, asr, intent, items) -> list:
    """Command acceptance per technique, clean and at ``--ablation-snr``: (name, {condition: acceptance},
    clean slot F1, seconds)."""
    from speech_intent import SpeechIntentPipeline
    from speech_intent.evaluate import evaluate_audio
    from speech_intent.nlu.canonical import domain_prompt

    canon = intent.canonicalizer
    prompt_text = domain_prompt(canon.values) if canon is not None else None
    print(f"domain prompt: {prompt_text!r}")
    noise = args.data / "noise" / "kitchen.wav" if args.ablation_snr else None
    rows = []

    def run(name: str, pipe) -> None:
        t = time.perf_counter()
        reports = evaluate_audio(pipe, items, noise=noise, snrs=args.ablation_snr, seed=0, batch_size=args.batch_size)
        accepted = {condition: r.command_acceptance for condition, r in reports.items()}
        rows.append((name, accepted, reports["clean"].slot_f1, time.perf_counter() - t))
        print(f"  {name:24s} " + "  ".join(f"{c} {a:6.1%}" for c, a in accepted.items())
              + f"  clean slot F1 {reports['clean'].slot_f1:6.1%}", flush=True)

    for name, use_prompt, use_canon in (("base", False, False), ("+prompt", True, False), ("+canon", False, True),
                                        ("+prompt+canon", True, True)):
        intent.canonicalizer = canon if use_canon else None
        asr.configure(prompt=prompt_text if use_prompt else None)  # the stage's own prompt: the pipeline keeps it
        run(name, SpeechIntentPipeline(asr, intent, domain_prompt=False))
    intent.canonicalizer = canon
    asr.configure(prompt=None)
    for beams in dict.fromkeys((1, args.beams)):
        run(f"+grammar b={beams}", SpeechIntentPipeline(grammar_asr(args, beams), intent))
    run(f"+grammar b={args.beams}, no prompt", SpeechIntentPipeline(grammar_asr(args, args.beams), intent,
                                                                      domain_prompt=False))
    if args.rejection is not None:
        rows.extend(rejection_rows(args, items, prompt_text))
    return rows


def train_intent_model(grammar: Path, model_dir: Path, *, epochs: float = DEFAULT_EPOCHS,
                       max_examples: int = DEFAULT_MAX_EXAMPLES, device: str = "cpu", extra_examples=(),
                       closed_values=None, normalizer=None) -> Path:
    """The benchmark's joint intent + slot model, trained from ``grammar`` only (also used by throughput.py).

    ``max_examples`` sampled grammar sentences (seed 0) plus ``extra_examples``; 400 other sentences
    (seed 1) are the dev set that picks the best epoch. ``normalizer``: default ``TextNormalizer()``.
    """
    from speech_intent import TrainingOptions, fine_tune
    from speech_intent.data import expand_grammar

    examples = expand_grammar(grammar, max_examples=max_examples, seed=0) + list(extra_examples)
    dev = expand_grammar(grammar, max_examples=400, seed=1)
    config = TrainingOptions(epochs=epochs, learning_rate=2e-4, batch_size=32, seed=0, early_stopping=0,
                            oos_recall=None)
    fine_tune(examples, model_dir, options=config, device=device, dev_examples=dev, progress=False,
              closed_values=closed_values, normalizer=normalizer)
    return model_dir


def rejection_rows(args, items, prompt):
    """Out-of-grammar rejection at margin ``args.rejection``: coffee kept (clean and at ``--ablation-snr``),
    assets/audio (other domains, clean) rejected.

    The ASR gets the domain prompt, as SpeechIntentPipeline gives it.
    """
    import numpy as np

    from speech_intent.audio import load_audio
    from speech_intent.synthesis.noise import mix_at_snr

    if args.rejection < 0:
        return []
    asr = grammar_asr(args, args.beams)
    # score both decodings, reject nothing: the margins are read here
    asr.configure(grammar_rejection=float("inf"), prompt=prompt)
    coffee = [load_audio(i.audio) for i in items]
    noise = load_audio(args.data / "noise" / "kitchen.wav", max_duration=None)
    sets = [("coffee dev", coffee, True)]
    sets += [(f"coffee dev {snr:g} dB", [mix_at_snr(c, noise, snr, seed=0, index=i) for i, c in enumerate(coffee)], True)
             for snr in args.ablation_snr]
    sets.append(("assets/audio", [load_audio(f) for f in sorted(ASSETS_AUDIO.glob("*.wav"))], False))
    rows = []
    for name, clips, inside in sets:
        t = time.perf_counter()
        margins = np.array([tr.grammar_margin for tr in asr.transcribe(clips, batch_size=args.batch_size)])
        share = float(np.mean(margins <= args.rejection if inside else margins > args.rejection))
        what = "kept" if inside else "rejected"
        print(f"  rejection {name}: {share:6.1%} {what} at margin {args.rejection} (margins min "
              f"{margins.min():.2f}, median {np.median(margins):.2f}, max {margins.max():.2f})", flush=True)
        rows.append((f"rejection {name} {what}", {"clean": share}, None, time.perf_counter() - t))
    return rows


def _margin(text: str):
    """``--context-margin`` values: seconds, or ``none`` for the 30 s window."""
    return None if text.lower() == "none" else float(text)


def grammar_asr(args, beams: int):
    """The bundled tiny.en on transformers, decoding only sentences of the grammar (``--context-margin``
    as for the free rows)."""
    from speech_intent.asr import load_asr

    return load_asr(None, device=args.device, grammar=args.data / "grammar.yaml", num_beams=beams,
                    context_margin=args.context_margin)


def speech_loop(args, examples, timings):
    """Canonical slot values of the clean data, and ``args.speech_loop`` projected ASR transcripts.

    The clean sentences and their transcripts are cached in ``WORK/speechloop-N.jsonl``
    (``--retrain`` redoes them). They are made in a child process, so that CTranslate2 is not
    loaded while torch trains (its OpenMP threads make CPU fine-tuning several times slower).
    """
    import multiprocessing

    from speech_intent import TextNormalizer
    from speech_intent.data import Example
    from speech_intent.nlu.canonical import infer_closed_values
    from speech_intent.speech_in_the_loop import project_examples

    closed = infer_closed_values(examples, normalizer=TextNormalizer())
    cache = args.work / f"speechloop-{args.speech_loop}.jsonl"
    if args.retrain or not cache.is_file():
        start = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=_transcribe_job, args=(args, closed, cache))
        child.start()
        child.join()
        if child.exitcode != 0:
            sys.exit(f"speech loop failed (exit code {child.exitcode})")
        timings["speech_loop_s"] = time.perf_counter() - start
    rows = [json.loads(line) for line in cache.read_text().splitlines() if line.strip()]
    spoken = project_examples([Example.from_dict(r["clean"]) for r in rows], [r["hypothesis"] for r in rows],
                              max_wer=args.speech_loop_max_wer)
    print(f"speech loop: {len(rows)} transcripts, {len(spoken)} kept ({cache})", flush=True)
    return closed, spoken


def _transcribe_job(args, closed, cache):
    """Speak ``args.speech_loop`` grammar sentences, add training noise, transcribe; write ``cache``.

    The ASR is the pipeline's (bundled tiny.en) with the domain prompt of the clean data's slot
    values, as ``SpeechIntentPipeline`` would give it.
    """
    import logging

    from speech_intent import FasterWhisperASR
    from speech_intent.data import expand_grammar
    from speech_intent.nlu.canonical import domain_prompt
    from speech_intent.speech_in_the_loop import DEFAULT_SNRS, speak_and_transcribe
    from speech_intent.synthesis import EspeakSynthesizer
    from speech_intent.synthesis.noise import training_noise

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("speech_intent.speech_in_the_loop").setLevel(logging.INFO)
    sentences = expand_grammar(args.data / "grammar.yaml", max_examples=args.speech_loop, seed=2)
    synth = EspeakSynthesizer()
    noise = training_noise(synth, seconds=120.0, seed=0)
    snrs = tuple(args.speech_loop_snr or DEFAULT_SNRS)
    asr = FasterWhisperASR.from_pretrained(None, device=args.device, cpu_threads=args.cpu_threads,
                                           prompt=domain_prompt(closed))
    hypotheses = speak_and_transcribe([ex.text for ex in sentences], synth, asr, noise=noise, snrs=snrs, seed=0,
                                      batch_size=args.batch_size)
    args.work.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps({"clean": ex.to_dict(), "hypothesis": hyp}) + "\n"
                           for ex, hyp in zip(sentences, hypotheses)))
    tmp.replace(cache)
    print(f"speech loop: {len(sentences)} sentences spoken at SNRs {snrs} and transcribed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
