"""Response generation benchmark on SGD dev: the fine-tuned generator against the template-only baseline.

On a seeded sample of ``DATA_DIR``'s dev SYSTEM turns (``--limit``), for the T2G2 template text alone
(the baseline) and, with ``--model``, for a trained :class:`~speech_intent.responses.LMResponseGenerator`:

- BLEU (sacrebleu ``corpus_bleu`` against the dev utterance);
- slot error rate (T2G2's definition): the share of non-categorical slot values of the acts (the schema's
  ``is_categorical``) missing from the response, case-insensitive substring match;
- the guard (:mod:`speech_intent.responses.guard`): responses it replaced by the template, and the share
  of final responses that still drop a value or state one not given (``wrong_value_rate``, target 0);
- ``--int8``: the same for the model with int8 dynamic quantisation (faster on CPU);
- latency on CPU, one response at a time (``--latency-samples``): text p50 / p95, and the first audio
  (``ResponseSynthesizer``: first sentence generated and spoken) p50 / p95, for both.

Targets (T2G2, T5-small): BLEU >= 30.3 with SER <= 1% before the guard; 0 wrong values after it; text
p50 <= 300 ms and first audio p50 <= 500 ms on 2 CPU cores.

Usage (from the repository root)::

    python -m benchmarks.responses ../shared/data/sgd --model responses-model --limit 1000 --out responses-out
    python -m benchmarks.responses ../shared/data/sgd --limit 1000          # the template baseline only
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .common import SHARED_DATA, add_device_flag, benchmark_parser, write_json

TARGETS = {"bleu": 30.3, "slot_error_rate": 0.01, "wrong_value_rate": 0.0, "text_p50_ms": 300.0,
           "first_audio_p50_ms": 500.0}
DEFAULT_DATA = SHARED_DATA / "sgd"


def slot_error_rate(hypotheses: Sequence[str], examples: Sequence[Any]) -> Dict[str, float]:
    """T2G2's slot error rate: non-categorical values missing from the response (case-insensitive)."""
    total = missing = turns_with_error = 0
    for text, example in zip(hypotheses, examples):
        lowered = text.lower()
        lost = [v for v in example.non_categorical if v.lower() not in lowered]
        total += len(example.non_categorical)
        missing += len(lost)
        turns_with_error += bool(lost)
    return {"slot_error_rate": missing / total if total else 0.0, "values": total, "missing": missing,
            "turns_with_error": turns_with_error}


def score(hypotheses: Sequence[str], examples: Sequence[Any]) -> Dict[str, Any]:
    """BLEU, slot error rate and the guard's own check (values dropped or made up) of ``hypotheses``."""
    import sacrebleu

    from speech_intent.responses.guard import check_response

    bleu = sacrebleu.corpus_bleu(list(hypotheses), [[e.response for e in examples]])
    verdicts = [check_response(h, e.input.values, (e.input.template,)) for h, e in zip(hypotheses, examples)]
    return {"bleu": round(bleu.score, 2), **slot_error_rate(hypotheses, examples),
            "wrong_value_rate": float(np.mean([not v.ok for v in verdicts])) if verdicts else 0.0,
            "made_up_value_rate": float(np.mean([bool(v.unexpected) for v in verdicts])) if verdicts else 0.0}


def percentiles(seconds: Sequence[float]) -> Dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "n": len(ms)}


def latency(examples: Sequence[Any], generator: Optional[Any], speaker: Optional[Any]) -> Dict[str, Any]:
    """One response at a time: text latency, and first audio (first sentence generated, then spoken)."""
    from speech_intent.responses.guard import guard_responses

    text_s: List[float] = []
    audio_s: List[float] = []
    for example in examples:
        started = time.perf_counter()
        if generator is not None:
            generated = generator.generate_inputs([example.input])
            guard_responses(generated, [example.input])
        text_s.append(time.perf_counter() - started)
        if speaker is None:
            continue
        started = time.perf_counter()
        if generator is not None:
            stream = generator.stream_sentences(example.input)
            first = next(stream, "") or example.input.template
            stream.close()  # stops the generation of the rest
        else:
            first = example.input.template
        next(speaker.stream(first))
        audio_s.append(time.perf_counter() - started)
    return {"text": percentiles(text_s), **({"first_audio": percentiles(audio_s)} if audio_s else {})}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = benchmark_parser(__doc__)
    parser.add_argument("data", type=Path, nargs="?", default=DEFAULT_DATA, help="SGD folder (default: %(default)s)")
    parser.add_argument("--model", default=None, help="a trained response generator folder (none: baseline only)")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--limit", type=int, default=1000, help="dev turns sampled (seeded; default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--latency-samples", type=int, default=50, help="responses timed one at a time (0: none)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default %(default)s)")
    parser.add_argument("--speech", choices=["hibari", "espeak", "none"], default="hibari",
                        help="speech-out backend for first-audio latency")
    parser.add_argument("--int8", action="store_true",
                        help="also score and time the model with int8 dynamic quantisation (CPU)")
    parser.add_argument("--out", type=Path, default=Path("responses-out"))
    add_device_flag(parser, "cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import torch

    from speech_intent.responses.generator import DecodingOptions, LMResponseGenerator
    from speech_intent.responses.guard import guard_responses
    from speech_intent.responses.sgd import load_sgd_split
    from speech_intent.synthesis.speaker import ResponseSynthesizer, SpeakerOptions

    torch.set_num_threads(args.threads)
    examples, _ = load_sgd_split(args.data, args.split, limit=args.limit, seed=args.seed)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    results: Dict[str, Any] = {"settings": settings, "targets": TARGETS, "turns": len(examples)}
    templates = [e.input.template for e in examples]
    results["template"] = score(templates, examples)
    print(f"template baseline on {len(examples)} turns: {results['template']}")
    speaker = None if args.speech == "none" else ResponseSynthesizer(SpeakerOptions(backend=args.speech)).warmup()
    timed = examples[: args.latency_samples]
    if timed:
        results["template"]["latency"] = latency(timed, None, speaker)
    samples: List[Dict[str, Any]] = []
    if args.model:
        decoding = DecodingOptions(args.max_new_tokens, args.num_beams, args.batch_size)
        generator = LMResponseGenerator.from_pretrained(args.model, device=args.device, decoding=decoding)
        results["model_config"] = generator.config()
        started = time.perf_counter()
        generated = generator.generate_inputs([e.input for e in examples])
        results["generation_seconds"] = time.perf_counter() - started
        guarded = guard_responses(generated, [e.input for e in examples])
        final = [g.text for g in guarded]
        results["model"] = {"before_guard": score(generated, examples), "after_guard": score(final, examples),
                            "replaced_by_guard": float(np.mean([g.replaced for g in guarded]))}
        print(f"model before guard: {results['model']['before_guard']}")
        print(f"model after guard: {results['model']['after_guard']}, replaced {results['model']['replaced_by_guard']:.1%}")
        if timed:
            generator.generate_inputs([timed[0].input])  # warm up
            results["model"]["latency"] = latency(timed, generator, speaker)
            print(f"model latency: {results['model']['latency']}")
        samples = [{"template": e.input.template, "reference": e.response, **g.to_dict()}
                   for e, g in zip(examples[:200], guarded)]
        if args.int8:
            generator.quantize_int8()
            quantized = generator.generate_inputs([e.input for e in examples])
            guarded8 = guard_responses(quantized, [e.input for e in examples])
            results["model_int8"] = {"before_guard": score(quantized, examples),
                                     "after_guard": score([g.text for g in guarded8], examples),
                                     "replaced_by_guard": float(np.mean([g.replaced for g in guarded8]))}
            print(f"int8 before guard: {results['model_int8']['before_guard']}")
            if timed:
                generator.generate_inputs([timed[0].input])
                results["model_int8"]["latency"] = latency(timed, generator, speaker)
                print(f"int8 latency: {results['model_int8']['latency']}")
    if timed:
        print(f"template latency: {results['template']['latency']}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "responses.json", results)
    if samples:
        write_json(args.out / "samples.json", samples)
    return results


if __name__ == "__main__":
    main()
