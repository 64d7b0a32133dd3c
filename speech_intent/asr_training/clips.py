"""Clips, augmentation and batches for Whisper fine-tuning.

- :class:`ClipSource`: the clean 16 kHz clip of an :class:`~.material.ASRExample` (a recording loaded, or
  a sentence spoken by the synthesizer).
- :class:`ClipAugmenter`: speed perturbation (resampling, so the pitch moves with the speed, as in
  Kaldi's recipe) and training noise at a random SNR (:func:`~speech_intent.synthesis.noise.mix_at_snr`).
  Drawn afresh every time a clip is used, so each epoch hears different versions.
- :class:`WhisperCollator`: a batch for ``Seq2SeqTrainer``: 30 s log-Mel features (the
  checkpoint's feature extractor, as both inference backends expect), decoder inputs and labels.
  With a prompt, a share of the clips is decoded after ``<|startofprev|>`` + prompt (the way
  the pipeline's domain prompt reaches Whisper); no loss on the prompt.

SpecAugment is not here: transformers' Whisper applies it to the features inside the model
during training (``config.apply_spec_augment``), see :mod:`.trainer`.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..audio import SAMPLE_RATE, load_audio, resample
from ..device import available_cpus
from ..errors import ConfigError
from ..synthesis.noise import mix_at_snr
from ..synthesis.tts import EspeakSynthesizer, Synthesizer, as_mono
from .material import ASRExample

logger = logging.getLogger(__name__)

__all__ = ["ClipAugmenter", "ClipSource", "TokenizedDataset", "WhisperCollator"]

#: Label value the loss ignores.
IGNORE = -100


class ClipSource:
    """Clean float32 clips at ``sampling_rate`` for examples (recordings longer than 30 s are refused).

    Synthesised clips are kept in ``cache_dir`` (float16 ``.npy`` files) once made, so every epoch after
    the first reads them instead of running the synthesizer again; :meth:`prepare` makes them all
    up front, espeak-ng in parallel threads.
    """

    def __init__(self, synthesizer: Optional[Synthesizer] = None, *, sampling_rate: int = SAMPLE_RATE,
                 cache_dir: Optional[Path] = None) -> None:
        self.synthesizer, self.sampling_rate = synthesizer, sampling_rate
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def _cached(self, example: ASRExample) -> Optional[Path]:
        if self.cache_dir is None or self.synthesizer is None:
            return None
        voice = example.voice % max(1, int(self.synthesizer.num_voices))
        key = hashlib.sha1(f"{voice}\0{example.speak}".encode("utf-8")).hexdigest()
        return self.cache_dir / f"{key}.npy"

    def _synthesise(self, example: ASRExample) -> np.ndarray:
        if self.synthesizer is None:
            raise ConfigError("synthesised examples need a synthesizer")
        cached = self._cached(example)
        if cached is not None and cached.is_file():
            return np.load(cached).astype(np.float32)
        clip = self.synthesizer.synthesize(example.speak, voice=example.voice)
        clip = as_mono(clip, self.synthesizer.sampling_rate, self.sampling_rate)
        if cached is not None:
            tmp = cached.with_suffix(f".{threading.get_ident()}.tmp.npy")
            np.save(tmp, clip.astype(np.float16))
            tmp.replace(cached)
        return clip

    def prepare(self, examples: Sequence[ASRExample]) -> None:
        """Synthesise (into the cache) every synthesised example's clip not made yet."""
        todo = [ex for ex in examples if ex.synthesised and (path := self._cached(ex)) is not None
                and not path.is_file()]
        if not todo:
            return
        started = time.perf_counter()
        workers = available_cpus() if isinstance(self.synthesizer, EspeakSynthesizer) else 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(self._synthesise, todo):
                pass
        logger.info("synthesised %d clips in %.0f s (%d threads)", len(todo), time.perf_counter() - started, workers)

    def __call__(self, example: ASRExample) -> np.ndarray:
        if example.audio is None:
            return self._synthesise(example)
        if isinstance(example.audio, np.ndarray):
            return np.asarray(example.audio, dtype=np.float32)
        return load_audio(example.audio, sampling_rate=self.sampling_rate, max_duration=30.0,
                          name=example.source)


class ClipAugmenter:
    """Random speed perturbation and training noise (ranges and probability from the options)."""

    def __init__(self, *, speed_range=(1.0, 1.0), noise: Optional[np.ndarray] = None, noise_probability: float = 0.0,
                 snr_range=(0.0, 25.0), sampling_rate: int = SAMPLE_RATE) -> None:
        self.speed_range, self.noise, self.noise_probability = tuple(speed_range), noise, noise_probability
        self.snr_range, self.sampling_rate = tuple(snr_range), sampling_rate

    def __call__(self, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        low, high = self.speed_range
        speed = float(rng.uniform(low, high)) if high > low else low
        if speed != 1.0 and len(clip):
            # read as if recorded at rate * speed, played at rate: ``speed`` times faster
            clip = resample(clip, int(round(self.sampling_rate * speed)), self.sampling_rate)
        if self.noise is not None and rng.random() < self.noise_probability:
            snr = float(rng.uniform(*self.snr_range))
            clip = mix_at_snr(clip, self.noise, snr, seed=int(rng.integers(0, 2**31 - 1)), index=0)
        return clip


class TokenizedDataset(torch.utils.data.Dataset):
    """Examples with their target token ids. Items name an example (index and data set); the collator
    makes the batch: augmented with prompts for a ``training`` set, as they are for a dev set."""

    def __init__(self, examples: Sequence[ASRExample], targets: Sequence[List[int]], *, training: bool) -> None:
        if len(examples) != len(targets):
            raise ValueError("one target per example")
        self.examples, self.targets, self.training = list(examples), [list(t) for t in targets], training

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return {"index": index, "dataset": self}


class WhisperCollator:
    """Builds ``{"input_features", "attention_mask", "decoder_input_ids", "labels"}`` batches.

    Items of a training set are augmented (``augmenter``) and get the prompt with probability
    ``prompt_probability``; items of a dev set are used as they are, mixed with ``dev_noise`` at
    ``dev_snr`` when both are given (deterministic per clip), without prompt.

    Args:
        processor: the checkpoint's ``WhisperProcessor`` (feature extractor).
        source: gives each example's clean clip.
        prefix: decoder prefix token ids (``<|startoftranscript|>`` ... ``<|notimestamps|>``).
        eos_token_id / pad_token_id: end of text and decoder padding.
        prompt_ids: ``<|startofprev|>`` + prompt tokens.
        seed: the random draws (augmentation, prompt) and the dev noise segments.
    """

    def __init__(self, processor: Any, source: ClipSource, *, prefix: Sequence[int], eos_token_id: int,
                 pad_token_id: int, augmenter: Optional[ClipAugmenter] = None, prompt_ids: Sequence[int] = (),
                 prompt_probability: float = 0.0, dev_noise: Optional[np.ndarray] = None,
                 dev_snr: Optional[float] = None, seed: int = 0) -> None:
        self.processor, self.source = processor, source
        self.prefix, self.eos, self.pad = list(prefix), int(eos_token_id), int(pad_token_id)
        self.augmenter, self.prompt_ids, self.prompt_probability = augmenter, list(prompt_ids), prompt_probability
        self.dev_noise, self.dev_snr, self.seed = dev_noise, dev_snr, seed
        self.rng = np.random.default_rng([seed, 3])

    def clip(self, dataset: TokenizedDataset, index: int) -> np.ndarray:
        """The clip of example ``index``: augmented for training, as it is (or with the dev noise) for dev."""
        clip = self.source(dataset.examples[index])
        if dataset.training and self.augmenter is not None:
            clip = self.augmenter(clip, self.rng)
        elif not dataset.training and self.dev_noise is not None and self.dev_snr is not None:
            clip = mix_at_snr(clip, self.dev_noise, self.dev_snr, seed=self.seed, index=index)
        return clip

    def sequence(self, dataset: TokenizedDataset, index: int) -> tuple:
        """``(decoder input ids, labels)``: [prompt] prefix text <|endoftext|>, shifted by one."""
        use_prompt = dataset.training and self.prompt_ids and self.rng.random() < self.prompt_probability
        prompt = self.prompt_ids if use_prompt else []
        tokens = prompt + self.prefix + dataset.targets[index] + [self.eos]
        labels = tokens[1:]
        labels[: len(prompt)] = [IGNORE] * len(prompt)  # no loss on the prompt and on <|startoftranscript|>
        return tokens[:-1], labels

    def __call__(self, items: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        extractor = self.processor.feature_extractor
        clips = [self.clip(item["dataset"], int(item["index"])) for item in items]
        features = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt",
                             return_attention_mask=True)
        pairs = [self.sequence(item["dataset"], int(item["index"])) for item in items]
        width = max(len(inputs) for inputs, _ in pairs)
        decoder_input_ids = torch.full((len(pairs), width), self.pad, dtype=torch.long)
        labels = torch.full((len(pairs), width), IGNORE, dtype=torch.long)
        for row, (inputs, targets) in enumerate(pairs):
            decoder_input_ids[row, : len(inputs)] = torch.tensor(inputs)
            labels[row, : len(targets)] = torch.tensor(targets)
        return {"input_features": features.input_features, "attention_mask": features.attention_mask,
                "decoder_input_ids": decoder_input_ids, "labels": labels}
