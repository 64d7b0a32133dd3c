"""RAVDESS acoustic emotion benchmark: the emotion stage over the bundled tiny.en encoder, actor-independent.

RAVDESS speech (24 actors in the full set; the shared copy has actors 1-18, 1,080 clips, 8 emotions) is
split by ACTOR, never by clip: ``--folds`` folds of consecutive actors (6 folds of 3 actors by default).
For each fold the head is trained on the other actors -- a fifth of them held out (by actor) to choose the
epoch -- and scores the fold's clips. The predictions of all folds are pooled:

- UAR (unweighted average recall = balanced accuracy) and WA (accuracy), pooled and per fold;
- per gender (the ``gender`` column): UAR / WA of each and the gap;
- the confusion matrix (PNG) and the learned layer weights.

The encoder's hidden states are computed once per clip and cached (``--cache``, default
``/tmp/ravdess-emotion``); heads then train per fold in memory. ``--variants`` runs ablations of the
head (``weighted-attentive`` is the stage's default; ``last-attentive``: the encoder output only;
``weighted-mean``: mean + std pooling). ``--context-margin none`` runs the encoder on the 30 s window.

``--cost N`` measures, on N clips, the emotion stage's time against the default ASR stage (faster-whisper,
bundled tiny.en) on the same clips, and the head alone (what the stage would cost if the ASR's encoder
pass were reused): the shares of the ASR's time.

Licence: RAVDESS is CC BY-NC-SA 4.0. Models trained here are for this benchmark (non-commercial use);
none ships with the library.

Usage (from the repository root; the extraction takes minutes on one CPU thread)::

    python -m benchmarks.ravdess ../shared/data/ravdess --out /tmp/ravdess-out
    python -m benchmarks.ravdess ../shared/data/ravdess --variants weighted-attentive last-attentive weighted-mean
    python -m benchmarks.ravdess ../shared/data/ravdess --cost 40 --variants
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .common import benchmark_parser, write_json

TARGETS = {"uar": 0.65, "uar_stretch": 0.72}
VARIANTS = {"weighted-attentive": ("weighted", "attentive"), "last-attentive": ("last", "attentive"),
            "weighted-mean": ("weighted", "mean")}
logger = logging.getLogger("benchmarks.ravdess")


def actor_folds(actors: Sequence[str], folds: int) -> List[List[str]]:
    """``folds`` groups of consecutive actors (sorted by number), as even in size as they can be."""
    names = sorted(set(actors), key=lambda a: (len(a), a))
    return [list(chunk) for chunk in np.array_split(np.array(names, dtype=object), folds) if len(chunk)]


def encoder_and_states(clips: Sequence[Any], cache: Path, margin: Optional[float], batch_size: int,
                       speed: float = 1.0):
    """``(recognizer, states, seconds)``: a recogniser over the bundled tiny.en encoder (untrained head) and
    each clip's hidden states (float16; of the clip played ``speed`` times faster -- a training copy, pitch
    shifted as in Kaldi's speed perturbation -- when ``speed`` is not 1), read from ``cache`` when they were
    computed before."""
    import torch

    from speech_intent.asr.convert import bundled_whisper_transformers_path
    from speech_intent.audio import load_audio, resample
    from speech_intent.emotion import EmotionRecognizer

    labels = sorted({clip.emotion for clip in clips})
    recognizer = EmotionRecognizer.build(bundled_whisper_transformers_path(), labels, device="cpu",
                                         context_margin=margin, batch_size=batch_size)
    file = cache / f"states-margin-{'none' if margin is None else margin}{'' if speed == 1.0 else f'-speed-{speed}'}.pt"
    paths = [str(clip.path) for clip in clips]
    if file.is_file():
        saved = torch.load(file, weights_only=True)
        if saved["paths"] == paths:
            logger.info("read cached encoder states of %d clips from %s", len(paths), file)
            return recognizer, saved["states"], saved["seconds"]
    started, states = time.perf_counter(), []
    for start in range(0, len(clips), 60):
        audios = [load_audio(clip.path) for clip in clips[start : start + 60]]
        if speed != 1.0:
            audios = [resample(audio, 16_000, int(round(16_000 / speed))) for audio in audios]
        states.extend(s.half() for s in recognizer.features(audios))
        logger.info("encoder states: %d / %d clips, %.0f s", len(states), len(clips), time.perf_counter() - started)
    seconds = time.perf_counter() - started
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"paths": paths, "states": states, "seconds": seconds}, file)
    return recognizer, states, seconds


def run_variant(name: str, recognizer: Any, clips: Sequence[Any], states: Sequence[Any], folds: List[List[str]],
                options: Any, extra: Sequence[Sequence[Any]] = ()) -> Dict[str, Any]:
    """Train and score one head variant over the actor folds: pooled and per-fold scores, per gender."""
    import torch

    from speech_intent.emotion import (
        EmotionHead,
        EmotionRecognizer,
        emotion_scores,
        speaker_split,
        train_head,
    )
    from speech_intent.emotion.head import layer_weight_list

    labels = recognizer.labels
    layers, pooling = VARIANTS[name]
    options = replace(options, head=replace(options.head, layers=layers, pooling=pooling))
    seed = options.seed
    targets = np.array([labels.index(clip.emotion) for clip in clips])
    predicted = np.full(len(clips), -1)
    per_fold = []
    for number, test_actors in enumerate(folds):
        started = time.perf_counter()
        test = [i for i, clip in enumerate(clips) if clip.speaker in test_actors]
        rest = [i for i, clip in enumerate(clips) if clip.speaker not in test_actors]
        train, dev = speaker_split([clips[i].speaker for i in rest], options.dev_fraction, seed + number)
        train, dev = [rest[i] for i in train], [rest[i] for i in dev]
        torch.manual_seed(seed + number)
        head = EmotionHead(states[0].shape[0], states[0].shape[2], len(labels), options.head)
        train_states = [states[i] for i in train] + [copy[i] for copy in extra for i in train]
        train_targets = targets[train].tolist() * (1 + len(extra))
        report = train_head(head, train_states, train_targets, options=options,
                            dev_states=[states[i] for i in dev], dev_targets=targets[dev].tolist())
        stage = EmotionRecognizer(recognizer.encoder, recognizer.feature_extractor, head, labels, device="cpu")
        predicted[test] = stage.probabilities([states[i] for i in test]).argmax(-1)
        uar, wa = emotion_scores(targets[test], predicted[test])
        per_fold.append({"fold": number, "test_actors": test_actors,
                         "dev_actors": sorted({clips[i].speaker for i in dev}), "uar": uar, "wa": wa,
                         "best_epoch": report.best_epoch, "dev_uar": report.dev_uar,
                         "layer_weights": layer_weight_list(head), "seconds": time.perf_counter() - started})
        logger.info("%s fold %d (actors %s): UAR %.3f WA %.3f (epoch %d)", name, number, test_actors, uar, wa,
                    report.best_epoch)
    uar, wa = emotion_scores(targets, predicted)
    genders = {}
    for gender in sorted({str(clip.columns.get("gender", "")) for clip in clips}):
        chosen = [i for i, clip in enumerate(clips) if str(clip.columns.get("gender", "")) == gender]
        g_uar, g_wa = emotion_scores(targets[chosen], predicted[chosen])
        genders[gender] = {"clips": len(chosen), "uar": g_uar, "wa": g_wa}
    uars = [f["uar"] for f in per_fold]
    gaps = {m: max(g[m] for g in genders.values()) - min(g[m] for g in genders.values()) for m in ("uar", "wa")}
    return {"variant": name, "layers": layers, "pooling": pooling, "uar": uar, "wa": wa,
            "fold_uar_mean": float(np.mean(uars)), "fold_uar_std": float(np.std(uars)), "per_gender": genders,
            "gender_gap": gaps, "per_fold": per_fold, "labels": labels, "predicted": predicted.tolist(),
            "targets": targets.tolist()}


def confusion_png(result: Dict[str, Any], path: Path) -> Path:
    """The pooled confusion matrix (rows: true emotion, normalised per row) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axes = plt.subplots(figsize=(7.5, 6.5))
    ConfusionMatrixDisplay.from_predictions(result["targets"], result["predicted"], display_labels=result["labels"],
                                            normalize="true", values_format=".2f", ax=axes, colorbar=False,
                                            xticks_rotation=45)
    axes.set_title(f"RAVDESS, actor-independent ({result['variant']}): UAR {result['uar']:.1%}, "
                   f"WA {result['wa']:.1%}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def measure_cost(recognizer: Any, clips: Sequence[Any], count: int, batch_size: int) -> Dict[str, Any]:
    """Seconds on ``count`` clips: the default ASR stage, the emotion stage (encoder + head), the head
    alone (on states computed beforehand); each best of 2 runs after a warm-up."""
    import torch

    from speech_intent.asr import load_asr
    from speech_intent.audio import load_audio

    audios = [load_audio(clip.path) for clip in clips[:count]]
    asr = load_asr(None, device="cpu")
    states = recognizer.features(audios)

    def best(run) -> float:
        run()
        times = []
        for _ in range(2):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times)

    asr_s = best(lambda: asr.transcribe(audios, batch_size=batch_size))
    emotion_s = best(lambda: recognizer.recognise(audios))
    head_s = best(lambda: recognizer.recognise_states(states))
    return {"clips": len(audios), "audio_seconds": sum(len(a) for a in audios) / 16000, "threads":
            torch.get_num_threads(), "asr_backend": type(asr).__name__, "asr_s": asr_s, "emotion_s": emotion_s,
            "head_only_s": head_s, "emotion_share_of_asr": emotion_s / asr_s, "head_share_of_asr": head_s / asr_s}


def main(argv: Optional[List[str]] = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("data", type=Path, metavar="DATA_DIR", help="RAVDESS folder: labels.csv + Actor_XX/*.flac")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ravdess-out"), help="results.json and PNGs go here")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ravdess-emotion"), help="encoder-state cache")
    parser.add_argument("--speaker-column", default="actor")
    parser.add_argument("--folds", type=int, default=6, help="actor folds (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context-margin", default="1.0", help="seconds of encoder padding, or 'none' (30 s)")
    parser.add_argument("--variants", nargs="*", default=["weighted-attentive"], choices=sorted(VARIANTS))
    parser.add_argument("--cost", type=int, default=0, metavar="N", help="time the stages on N clips")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-clips", type=int, default=None, help="smoke runs: N evenly spaced clips only")
    parser.add_argument("--speeds", type=float, nargs="*", default=[],
                        help="training copies of the clips at these speed factors (e.g. 0.9 1.1; states cached)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--frame-pool", type=int, default=2)
    parser.add_argument("--tag", default="", help="added to the result file names")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from speech_intent.emotion import EmotionTrainingOptions, HeadConfig, read_emotion_labels

    margin = None if args.context_margin.lower() == "none" else float(args.context_margin)
    clips = read_emotion_labels(args.data / "labels.csv", speaker_column=args.speaker_column)
    if args.max_clips:  # an evenly spaced subset: every actor keeps some clips
        clips = clips[:: max(1, len(clips) // args.max_clips)][: args.max_clips]
    recognizer, states, extract_s = encoder_and_states(clips, args.cache, margin, args.batch_size)
    extra = [encoder_and_states(clips, args.cache, margin, args.batch_size, speed)[1] for speed in args.speeds]
    folds = actor_folds([clip.speaker for clip in clips], args.folds)
    options = EmotionTrainingOptions(epochs=args.epochs, seed=args.seed, learning_rate=args.lr,
                                     weight_decay=args.weight_decay,
                                     head=HeadConfig(hidden=args.hidden, dropout=args.dropout,
                                                     frame_pool=args.frame_pool))
    results: Dict[str, Any] = {"data": str(args.data), "clips": len(clips), "folds": folds,
                               "context_margin": margin, "training": options.to_dict(), "speeds": args.speeds,
                               "extract_seconds": extract_s,
                               "targets": TARGETS, "variants": {}}
    for name in args.variants:
        result = run_variant(name, recognizer, clips, states, folds, options, extra)
        confusion_png(result, args.out / f"confusion-{name}{args.tag}.png")
        results["variants"][name] = result
        print(f"{name}: UAR {result['uar']:.1%}  WA {result['wa']:.1%}  (folds {result['fold_uar_mean']:.1%} ± "
              f"{result['fold_uar_std']:.1%}); " + ", ".join(
                  f"{g}: UAR {v['uar']:.1%} WA {v['wa']:.1%}" for g, v in result["per_gender"].items())
              + f"; gap UAR {result['gender_gap']['uar']:.1%}")
    if args.cost:
        results["cost"] = measure_cost(recognizer, clips, args.cost, args.batch_size)
        print("cost (under load):", {k: round(v, 3) if isinstance(v, float) else v
                                     for k, v in results["cost"].items()})
    suffix = "" if margin == 1.0 else f"-margin-{args.context_margin}"
    if args.variants != ["weighted-attentive"]:
        suffix += "-" + "+".join(args.variants) if args.variants else "-cost"
    write_json(args.out / f"results{suffix}{args.tag}.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
