"""Differentially private training with Opacus: the options, the private wrapping of a model and its record.

DP-SGD as Opacus implements it (``PrivacyEngine.make_private_with_epsilon``):

- **Poisson sampling**: each step takes every training example independently with probability
  ``sample_rate = batch_size / N`` (the batch size is the *expected* logical batch size);
- **per-example clipping**: each example's gradient (over the trainable parameters, Opacus'
  ``GradSampleModule`` hooks) is scaled to an L2 norm of at most ``max_grad_norm``;
- **Gaussian noise** of standard deviation ``noise_multiplier * max_grad_norm`` is added to the sum of
  the clipped gradients; the noise multiplier is the smallest that keeps the whole run (its epochs at
  that sample rate) within ``(epsilon, delta)`` under the chosen accountant;
- the accountant reports the ``epsilon`` actually spent by the steps taken (:class:`PrivacyRecord`).

Large logical batches are split into physical ones of ``max_physical_batch_size`` (Opacus'
``BatchMemoryManager``): per-example gradients cost memory proportional to the batch times the
trainable parameters. The guarantee covers the training examples (example-level DP, add/remove
adjacency); the pretrained encoder, the label set and the text normaliser are public.
Needs ``pip install 'speech-intent[privacy]'`` (Opacus).
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from ..errors import ConfigError, check_int
from ..validation import read_json_object

__all__ = ["ACCOUNTANTS", "PRIVACY_FILE", "PrivacyOptions", "PrivacyRecord", "PrivateRun", "freeze_parameters",
           "make_private", "read_privacy"]

#: The record's file in a model directory.
PRIVACY_FILE = "privacy.json"
#: Opacus accountants: privacy random variables (tightest), Rényi DP, Gaussian DP.
ACCOUNTANTS = ("prv", "rdp", "gdp")


@dataclass(frozen=True)
class PrivacyOptions:
    """What a differentially private run must guarantee, and how it clips.

    Attributes:
        epsilon: the target ε of the whole run (> 0; smaller is more private). Non-private training is
            ``privacy=None``, not an infinite ε.
        delta: the target δ; ``None``: ``min(1e-5, 1 / (2 N))`` for ``N`` training examples, below the
            ``1 / N`` at which a mechanism could publish one whole example.
        max_grad_norm: per-example clipping norm ``C`` (L2 over all trainable parameters).
        accountant: ``"prv"`` (default, tightest), ``"rdp"`` or ``"gdp"`` (:data:`ACCOUNTANTS`).
        max_physical_batch_size: examples per forward/backward pass; a logical batch (the run's
            ``batch_size``) is accumulated from several of these (memory only; the guarantee is the same).
        freeze_embeddings: keep the encoder's embedding layer at its pretrained (public) weights. Per-example
            gradients of a 30k-word embedding table cost ``batch x 11.7M`` floats for MiniLM, and fewer noised
            parameters keep more signal; the transformer layers, norms and heads are trained.
        trainable_layers: train only the top ``trainable_layers`` transformer layers of the encoder (and the
            heads); ``None``: every layer. Fewer trained layers cost less time and memory per example (no
            per-example gradients, no backward pass below them) and put the noise on fewer parameters.
        secure_mode: Opacus' cryptographically secure noise and sampling (slower; not reproducible).
    """

    epsilon: float
    delta: Optional[float] = None
    max_grad_norm: float = 1.0
    accountant: str = "prv"
    max_physical_batch_size: int = 32
    freeze_embeddings: bool = True
    trainable_layers: Optional[int] = None
    secure_mode: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.epsilon, bool) or not isinstance(self.epsilon, (int, float)) \
                or not 0 < self.epsilon < math.inf:
            raise ConfigError(f"privacy epsilon must be a finite number > 0 (non-private training: privacy=None), "
                              f"got {self.epsilon!r}")
        if self.delta is not None and not (isinstance(self.delta, (int, float)) and 0 < self.delta < 1):
            raise ConfigError(f"privacy delta must be in (0, 1) or None, got {self.delta!r}")
        if not (isinstance(self.max_grad_norm, (int, float)) and 0 < self.max_grad_norm < math.inf):
            raise ConfigError(f"privacy max_grad_norm must be a finite number > 0, got {self.max_grad_norm!r}")
        if self.accountant not in ACCOUNTANTS:
            raise ConfigError(f"privacy accountant must be one of {ACCOUNTANTS}, not {self.accountant!r}")
        check_int("privacy max_physical_batch_size", self.max_physical_batch_size)
        check_int("privacy trainable_layers", self.trainable_layers, minimum=0, optional=True)

    def delta_for(self, examples: int) -> float:
        """The δ of a run on ``examples`` training examples (``delta``, or the default above)."""
        return float(self.delta) if self.delta is not None else min(1e-5, 1.0 / (2 * max(examples, 1)))


@dataclass
class PrivacyRecord:
    """What a private run guaranteed and how: saved as ``privacy.json`` beside the model.

    ``epsilon`` is the accountant's ε for the steps actually taken (at most ``target_epsilon``);
    ``noise_multiplier`` is the noise standard deviation over ``max_grad_norm``; ``sample_rate`` the
    Poisson sampling probability (``expected_batch_size / train_examples``); ``frozen`` the parameter
    name prefixes that were not trained (no per-example gradients, not noised).
    """

    target_epsilon: float
    epsilon: float
    delta: float
    max_grad_norm: float
    noise_multiplier: float
    sample_rate: float
    expected_batch_size: int
    steps: int
    epochs: int
    train_examples: int
    accountant: str
    trainable_parameters: int
    frozen: List[str] = field(default_factory=list)
    mechanism: str = "DP-SGD (Opacus): Poisson sampling, flat per-example L2 clipping, Gaussian noise"
    opacus_version: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "PrivacyRecord":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, model_dir: Union[str, Path]) -> Path:
        """Write ``privacy.json`` into ``model_dir``."""
        path = Path(model_dir) / PRIVACY_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def summary(self) -> str:
        """One line: ``ε=2.97 (target 3), δ=1e-05, C=1.0, noise σ/C=0.92, 480 steps``."""
        return (f"ε={self.epsilon:.3g} (target {self.target_epsilon:g}), δ={self.delta:.3g}, "
                f"C={self.max_grad_norm:g}, noise multiplier {self.noise_multiplier:.3g}, {self.steps} steps, "
                f"{self.epochs} epochs, sample rate {self.sample_rate:.3g}")


def read_privacy(model_dir: Union[str, Path]) -> Optional[PrivacyRecord]:
    """The :class:`PrivacyRecord` of a model directory; ``None`` when it was trained without privacy."""
    path = Path(model_dir) / PRIVACY_FILE
    if not path.is_file():
        return None
    return PrivacyRecord.from_dict(read_json_object(path))


def freeze_parameters(model: torch.nn.Module, prefixes: Sequence[str]) -> List[str]:
    """Stop training the parameters whose names start with any of ``prefixes``; the names frozen."""
    frozen = []
    for name, param in model.named_parameters():
        if any(name.startswith(prefix) for prefix in prefixes) and param.requires_grad:
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def _opacus():
    try:
        import opacus
    except ImportError as error:  # the extra is not installed
        raise ConfigError("differentially private training needs Opacus: pip install 'speech-intent[privacy]'") \
            from error
    return opacus


@dataclass
class PrivateRun:
    """A model, optimiser and data loader made private by :func:`make_private`.

    ``module`` is Opacus' ``GradSampleModule`` around the model (``module._module``), ``optimizer`` its
    ``DPOptimizer`` (clipping and noise in ``step``), ``loader`` the Poisson-sampling ``DPDataLoader``.
    """

    engine: Any
    module: Any
    optimizer: Any
    loader: Any
    options: PrivacyOptions
    delta: float
    epochs: int
    train_examples: int
    frozen: List[str]

    def physical_batches(self):
        """Opacus' ``BatchMemoryManager`` over ``loader``: physical batches of at most
        ``max_physical_batch_size``; the optimiser steps (and is accounted) once per logical batch."""
        from opacus.utils.batch_memory_manager import BatchMemoryManager

        return BatchMemoryManager(data_loader=self.loader, optimizer=self.optimizer,
                                  max_physical_batch_size=self.options.max_physical_batch_size)

    def epsilon(self) -> float:
        """The accountant's ε for the steps taken so far, at ``delta``."""
        with warnings.catch_warnings():  # the RDP accountant's note on its range of orders
            warnings.filterwarnings("ignore", message="Optimal order is the")
            return float(self.engine.get_epsilon(self.delta))

    def record(self, frozen_prefixes: Sequence[str] = ()) -> PrivacyRecord:
        """The run's :class:`PrivacyRecord` so far (ε of the steps taken)."""
        steps = sum(entry[-1] for entry in self.engine.accountant.history)  # (noise, sample rate, steps) runs
        trainable = sum(p.numel() for p in self.module._module.parameters() if p.requires_grad)
        return PrivacyRecord(
            target_epsilon=float(self.options.epsilon),
            epsilon=self.epsilon() if steps else 0.0,
            delta=self.delta, max_grad_norm=float(self.options.max_grad_norm),
            noise_multiplier=float(self.optimizer.noise_multiplier),
            sample_rate=float(self.loader.sample_rate), expected_batch_size=int(self.optimizer.expected_batch_size),
            steps=int(steps), epochs=self.epochs, train_examples=self.train_examples,
            accountant=self.options.accountant, trainable_parameters=int(trainable), frozen=list(frozen_prefixes),
            opacus_version=_opacus().__version__,
        )

    def release(self) -> torch.nn.Module:
        """The plain model back: Opacus' hooks removed, per-example gradients dropped, every parameter trainable."""
        model = self.module._module
        self.module._close()
        for param in model.parameters():
            for attr in ("grad_sample", "_forward_counter", "summed_grad"):
                if hasattr(param, attr):
                    delattr(param, attr)
            param.grad = None
            param.requires_grad_(True)
        return model


def make_private(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: torch.utils.data.DataLoader,
                 options: PrivacyOptions, *, epochs: int, seed: Optional[int] = None) -> PrivateRun:
    """Opacus' DP-SGD around ``model`` / ``optimizer`` / ``loader`` for ``epochs`` epochs at ``options``' (ε, δ).

    ``loader.batch_size`` becomes the expected batch size of Poisson sampling. Raises ConfigError for a
    model Opacus cannot compute per-example gradients of (e.g. BatchNorm), naming the layers.
    """
    opacus = _opacus()
    from opacus.validators import ModuleValidator

    check_int("epochs", epochs)
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise ConfigError(f"Opacus cannot train this model privately: {'; '.join(map(str, errors[:3]))}")
    n = len(loader.dataset)
    delta = options.delta_for(n)
    noise = None
    if not options.secure_mode and seed is not None:
        noise = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    with warnings.catch_warnings():  # "Secure RNG turned off" (documented: secure_mode), the RDP search's alphas
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Optimal order is the")
        engine = opacus.PrivacyEngine(accountant=options.accountant, secure_mode=options.secure_mode)
        module, dp_optimizer, dp_loader = engine.make_private_with_epsilon(
            module=model, optimizer=optimizer, data_loader=loader, target_epsilon=float(options.epsilon),
            target_delta=delta, epochs=epochs, max_grad_norm=float(options.max_grad_norm), poisson_sampling=True,
            grad_sample_mode="hooks", noise_generator=noise, loss_reduction="mean",
        )
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    return PrivateRun(engine=engine, module=module, optimizer=dp_optimizer, loader=dp_loader, options=options,
                      delta=delta, epochs=epochs, train_examples=n, frozen=frozen)
