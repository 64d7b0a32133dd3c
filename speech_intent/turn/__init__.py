"""End of turn: whether the user has finished speaking, from the partial transcript and the domain.

- :class:`EndOfTurnDetector` (:mod:`.detector`): P(complete | partial transcript), a hashed n-gram
  logistic regression fitted on the domain's sentences against their truncations
  (:func:`train_turn_detector`), moved by the domain's evidence; batched ``predict(texts)`` ->
  :class:`~speech_intent.results.LabelScores` (``complete`` / ``incomplete``).
- :class:`GrammarCompleteness`, :class:`SlotCompleteness` (:mod:`.completeness`): what a grammar or
  the required slots say about the words so far.
- :func:`turn_examples` (:mod:`.examples`): the labelled training texts.

The streaming recogniser (:mod:`speech_intent.live`) asks it whether a pause ends the turn.
"""
from .completeness import DomainState, GrammarCompleteness, SlotCompleteness, combine
from .detector import SUBDIR, EndOfTurnDetector, TurnTrainingOptions, load_turn_detector, train_turn_detector
from .examples import COMPLETE, INCOMPLETE, TurnExample, turn_examples

__all__ = ["COMPLETE", "INCOMPLETE", "SUBDIR", "DomainState", "EndOfTurnDetector", "GrammarCompleteness",
           "SlotCompleteness", "TurnExample", "TurnTrainingOptions", "combine", "load_turn_detector",
           "train_turn_detector", "turn_examples"]
