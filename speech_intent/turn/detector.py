"""The end-of-turn detector: P(the user has finished | the partial transcript [, the domain's state]).

The model is a logistic regression over hashed word and character n-grams of the normalised
transcript (scikit-learn's ``HashingVectorizer`` + ``LogisticRegression``), fitted by supervised
learning on the domain's own sentences against their truncations (:mod:`.examples`). The features
say what a turn's end looks like: every word and word pair, the last one, two and three words, the
first word, the length, and the last word's character trigrams (what a misheard last word still
shares with the right one). On the coffee domain it separates finished from unfinished held-out
texts as well as MiniLM features with the same head, at about 0.1 ms a text on one CPU thread
instead of several milliseconds (``benchmarks/turn.py``).

The model's probability is then moved by what the domain knows (:mod:`.completeness`): a grammar
saved with the detector (the words so far are a prefix, a sentence, or a sentence nothing can
continue) and, from the NLU's intent and slots, the slots each intent requires.

Saved as ``turn.safetensors`` (the weights) and ``turn.json`` (settings, normaliser, grammar,
required slots, held-out metrics) in one directory: ``speech-intent train`` writes it into the
intent model's directory as ``turn/``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import ConfigError, ModelLoadError, check_int
from ..normalize import TextNormalizer
from ..results import LabelScores
from .completeness import UNKNOWN, DomainState, GrammarCompleteness, GrammarSource, SlotCompleteness, combine
from .examples import COMPLETE, INCOMPLETE, turn_examples

FORMAT = "speech-intent-turn/1"
WEIGHTS, CONFIG = "turn.safetensors", "turn.json"
#: Where ``speech-intent train`` saves the detector, inside the intent model's directory.
SUBDIR = "turn"


def turn_features(text: str) -> List[str]:
    """The n-gram features of one normalised text (see the module notes)."""
    words = text.split()
    if not words:
        return ["n:0"]
    out = [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in zip(words, words[1:])]
    out += [f"e{k}:{' '.join(words[-k:])}" for k in (1, 2, 3) if len(words) >= k]
    out += [f"s:{words[0]}", f"n:{min(len(words), 16)}"]
    last = f"<{words[-1]}>"
    out += [f"c:{last[i:i + 3]}" for i in range(len(last) - 2)]
    return out


def _vectorizer(n_features: int):
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(analyzer=turn_features, n_features=n_features, alternate_sign=False, norm="l2")


@dataclass(frozen=True)
class TurnTrainingOptions:
    """How the end-of-turn model is fitted.

    Attributes:
        n_features: hashed feature space (2 ** 18: 1 MB of weights).
        c: inverse regularisation strength of the logistic regression.
        noise: share of the texts that also get an ASR-noisy copy.
        max_sentences: domain sentences used at most (each gives its truncations too).
        dev_share: share of the sentences held out (with their truncations) to pick the threshold and
            report the metrics.
        precision: the threshold is the lowest at which this share of held-out texts called complete
            really are (at least 0.5).
        seed: sampling, noise and split seed.
    """

    n_features: int = 2 ** 18
    c: float = 4.0
    noise: float = 0.5
    max_sentences: Optional[int] = 5000
    dev_share: float = 0.1
    precision: float = 0.98
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n_features", self.n_features, minimum=16, maximum=2 ** 24)
        if not self.c > 0:
            raise ConfigError(f"c must be positive, got {self.c!r}")
        if not 0.0 <= self.dev_share < 1.0:
            raise ConfigError(f"dev_share must be in [0, 1), got {self.dev_share!r}")
        if not 0.5 <= self.precision <= 1.0:
            raise ConfigError(f"precision must be between 0.5 and 1, got {self.precision!r}")


@dataclass
class EndOfTurnDetector:
    """P(complete) of partial transcripts, batched; see the module notes.

    Attributes:
        coef, intercept: the logistic regression over :func:`turn_features` hashed into
            ``len(coef)`` buckets.
        normalizer: the text normaliser (the intent model's by default), applied to every text.
        threshold: P(complete) from which a text is labelled ``complete``.
        grammar: the domain's grammar (:class:`GrammarCompleteness`), or ``None``.
        required_slots: the slots each intent needs (:class:`SlotCompleteness`), or ``None``.
        metrics: held-out accuracy, AUC, F1, precision and the texts they were measured on.
    """

    coef: np.ndarray = field(repr=False)
    intercept: float
    normalizer: Optional[TextNormalizer] = field(default_factory=TextNormalizer, repr=False)
    threshold: float = 0.5
    grammar: Optional[GrammarCompleteness] = None
    required_slots: Optional[SlotCompleteness] = None
    metrics: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.coef = np.asarray(self.coef, dtype=np.float32).reshape(-1)
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be between 0 and 1, got {self.threshold!r}")
        self._hasher = _vectorizer(len(self.coef))

    labels = (INCOMPLETE, COMPLETE)

    # ---------------------------------------------------------------- inference
    def normalize(self, text: Optional[str]) -> str:
        text = text if isinstance(text, str) else ""
        return " ".join((self.normalizer(text) if self.normalizer is not None else text.lower()).split())

    def model_probabilities(self, texts: Sequence[Optional[str]]) -> np.ndarray:
        """The model's P(complete) of each text, without the domain (an empty text: 0)."""
        if not len(texts):
            return np.zeros(0, dtype=np.float64)
        normalised = [self.normalize(t) for t in texts]
        logits = self._hasher.transform(normalised) @ self.coef + self.intercept
        probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
        return np.where([bool(t) for t in normalised], probabilities, 0.0)

    def domain_state(self, text: str) -> DomainState:
        """What the grammar says about a normalised text (unknown without a grammar)."""
        return self.grammar.state(text) if self.grammar is not None else UNKNOWN

    def probabilities(self, texts: Sequence[Optional[str]], intents: Optional[Sequence[Optional[str]]] = None,
                      slots: Optional[Sequence[Optional[Mapping[str, Any]]]] = None) -> List[float]:
        """P(complete) of each text with the domain's evidence (``intents`` / ``slots``: what the NLU
        found in each, for the required slots)."""
        model = self.model_probabilities(texts)
        out = []
        for i, text in enumerate(texts):
            normalised = self.normalize(text)
            if not normalised:
                out.append(0.0)
                continue
            states = [self.domain_state(normalised)]
            if self.required_slots is not None and intents is not None:
                states.append(self.required_slots.state(intents[i], slots[i] if slots is not None else None))
            out.append(combine(float(model[i]), *states))
        return out

    def predict(self, texts: Sequence[Optional[str]], intents: Optional[Sequence[Optional[str]]] = None,
                slots: Optional[Sequence[Optional[Mapping[str, Any]]]] = None) -> List[LabelScores]:
        """``complete`` / ``incomplete`` of each text (``complete`` from :attr:`threshold`), with both scores."""
        answers = []
        for p in self.probabilities(texts, intents, slots):
            scores = {COMPLETE: p, INCOMPLETE: 1.0 - p}
            label = COMPLETE if p >= self.threshold else INCOMPLETE
            answers.append(LabelScores(label=label, score=scores[label], scores=scores))
        return answers

    def __call__(self, texts: Sequence[Optional[str]]) -> List[LabelScores]:
        return self.predict(texts)

    def predict_results(self, results: Sequence[Any]) -> List[LabelScores]:
        """The same for pipeline results: their normalised text, intent and slots."""
        texts = [getattr(r, "text", None) or getattr(r, "transcript", None) or "" for r in results]
        return self.predict(texts, [getattr(r, "intent", None) for r in results],
                            [getattr(r, "slots", None) for r in results])

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, directory: Union[str, Path]) -> None:
        """Write ``turn.safetensors`` and ``turn.json`` into ``directory``."""
        from safetensors.numpy import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"coef": self.coef, "intercept": np.asarray([self.intercept], dtype=np.float32)}, str(out / WEIGHTS))
        config = {"format": FORMAT, "n_features": len(self.coef), "threshold": self.threshold,
                  "normalizer": self.normalizer.to_dict() if self.normalizer is not None else None,
                  "grammar": self.grammar.to_dict() if self.grammar is not None else None,
                  "required_slots": self.required_slots.to_dict() if self.required_slots is not None else None,
                  "metrics": self.metrics}
        (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path], **overrides: Any) -> "EndOfTurnDetector":
        """Load a saved detector (``overrides``: ``threshold``, ``required_slots``, ...)."""
        from safetensors.numpy import load_file

        path = Path(directory).expanduser()
        if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
            raise ModelLoadError(path, f"not an end-of-turn detector directory (needs {CONFIG} and {WEIGHTS})")
        try:
            config = json.loads((path / CONFIG).read_text())
            weights = load_file(str(path / WEIGHTS))
            coef, intercept = weights["coef"], float(weights["intercept"][0])
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(path, f"cannot read the end-of-turn detector: {error}") from error
        if config.get("format") != FORMAT or len(coef) != config.get("n_features"):
            raise ModelLoadError(path, f"unknown end-of-turn detector format {config.get('format')!r}")
        normalizer = TextNormalizer.from_dict(config["normalizer"]) if config.get("normalizer") else None
        kwargs: Dict[str, Any] = {
            "normalizer": normalizer, "threshold": config.get("threshold", 0.5), "metrics": config.get("metrics", {}),
            "grammar": GrammarCompleteness(config["grammar"], normalizer) if config.get("grammar") else None,
            "required_slots": SlotCompleteness(config["required_slots"]) if config.get("required_slots") else None}
        if isinstance(overrides.get("required_slots"), Mapping):
            overrides["required_slots"] = SlotCompleteness(overrides["required_slots"])
        kwargs.update(overrides)
        return cls(coef, intercept, **kwargs)


def train_turn_detector(sentences: Sequence[str], *, grammar: Optional[GrammarSource] = None,
                        required_slots: Optional[Mapping[str, Sequence[str]]] = None,
                        normalizer: Optional[TextNormalizer] = None,
                        options: Optional[TurnTrainingOptions] = None,
                        output_dir: Union[str, Path, None] = None) -> EndOfTurnDetector:
    """Fit an end-of-turn detector on the domain's sentences (and save it to ``output_dir``).

    ``grammar``: the domain's grammar, used to label truncations that are sentences of it as finished
    and kept for :meth:`EndOfTurnDetector.probabilities`; ``required_slots``: intent -> the slots it
    needs; ``normalizer``: the intent model's (default: :class:`TextNormalizer`'s defaults).
    """
    import random

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_curve, roc_auc_score

    options = options or TurnTrainingOptions()
    normalizer = normalizer if normalizer is not None else TextNormalizer()
    completeness = GrammarCompleteness(grammar, normalizer) if grammar is not None else None
    clean = list(dict.fromkeys(" ".join(normalizer(s).split()) for s in sentences if isinstance(s, str)))
    clean = [s for s in clean if s]
    if len(clean) < 2:
        raise ConfigError(f"the end-of-turn model needs at least 2 distinct sentences, got {len(clean)}")
    random.Random(options.seed).shuffle(clean)
    held = int(round(len(clean) * options.dev_share)) if len(clean) >= 20 else 0
    dev_sentences, train_sentences = clean[:held], clean[held:]
    is_sentence = completeness.is_sentence if completeness is not None else None
    known = set(clean)

    def finished(text: str) -> bool:
        return text in known or (is_sentence is not None and is_sentence(text))

    started = time.perf_counter()
    train = turn_examples(train_sentences, normalizer=lambda s: s, is_sentence=finished, noise=options.noise,
                          max_sentences=options.max_sentences, seed=options.seed)
    labels = {e.label for e in train}
    if labels != {0, 1}:
        raise ConfigError("the end-of-turn model needs sentences of two words or more (their truncations are "
                          "the unfinished turns)")
    hasher = _vectorizer(options.n_features)
    model = LogisticRegression(C=options.c, class_weight="balanced", max_iter=2000)
    model.fit(hasher.transform([e.text for e in train]), [e.label for e in train])
    detector = EndOfTurnDetector(model.coef_[0], float(model.intercept_[0]), normalizer=normalizer,
                                 grammar=completeness,
                                 required_slots=SlotCompleteness(required_slots) if required_slots else None)
    metrics: Dict[str, Any] = {"train_texts": len(train), "train_sentences": len(train_sentences),
                               "fit_seconds": round(time.perf_counter() - started, 2)}
    if dev_sentences:
        dev = turn_examples(dev_sentences, normalizer=lambda s: s, is_sentence=finished, noise=options.noise,
                            max_sentences=None, seed=options.seed + 1)
        truth = np.array([e.label for e in dev])
        model_p = detector.model_probabilities([e.text for e in dev])
        combined = np.array(detector.probabilities([e.text for e in dev]))
        precision, _, thresholds = precision_recall_curve(truth, combined)
        good = [t for p, t in zip(precision[:-1], thresholds) if p >= options.precision and t >= 0.5]
        detector.threshold = float(min(good)) if good else 0.5
        chosen = combined >= detector.threshold
        metrics.update(dev_texts=len(dev), dev_sentences=len(dev_sentences),
                       model_auc=round(float(roc_auc_score(truth, model_p)), 4) if len(set(truth)) > 1 else None,
                       auc=round(float(roc_auc_score(truth, combined)), 4) if len(set(truth)) > 1 else None,
                       accuracy=round(float(accuracy_score(truth, chosen)), 4),
                       f1=round(float(f1_score(truth, chosen)), 4),
                       model_accuracy=round(float(accuracy_score(truth, model_p >= 0.5)), 4),
                       precision_at_threshold=round(float(truth[chosen].mean()) if chosen.any() else math.nan, 4),
                       threshold=round(detector.threshold, 4))
    detector.metrics = metrics
    if output_dir is not None:
        detector.save_pretrained(output_dir)
    return detector


def load_turn_detector(directory: Union[str, Path], **overrides: Any) -> Optional[EndOfTurnDetector]:
    """The detector saved in ``directory`` or in its ``turn/`` folder (an intent model's), else ``None``."""
    path = Path(directory).expanduser()
    for candidate in (path, path / SUBDIR, path / "intent" / SUBDIR):
        if (candidate / CONFIG).is_file():
            return EndOfTurnDetector.from_pretrained(candidate, **overrides)
    return None


__all__ = ["EndOfTurnDetector", "SUBDIR", "TurnTrainingOptions", "load_turn_detector", "train_turn_detector",
           "turn_features"]
