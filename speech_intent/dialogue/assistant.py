"""``Assistant``: a pipeline (speech or text -> intent and slots) + the dialogue policy + handlers + responses
(+ speech out), one :class:`Turn` per user turn, per session.

Each session's state lives in a session store (:class:`~speech_intent.dialogue.stores.MemoryStore` by default);
turns of one session run one at a time (a lock per session), turns of different sessions at once. A batch of
turns runs the NLU (or the whole speech pipeline) once and the response generator once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.dialogue_domain import Domain, load_domain
from ..errors import ConfigError
from ..responses.base import ResponseGenerator, ResponseRequest
from ..responses.templates import TemplateResponses
from ..results import IntentPrediction, PipelineResult
from .policy import Decision, Policy, PolicyOptions
from .state import DialogueState
from .stores import MemoryStore, SessionStore

logger = logging.getLogger(__name__)

__all__ = ["Assistant", "Turn", "Action", "Handler"]

#: A handler: the action (intent, slots, session) -> facts for the response (or None).
Handler = Callable[["Action"], Optional[Mapping[str, Any]]]
TurnInput = Union[str, Path, bytes, bytearray, np.ndarray, Any]


@dataclass(frozen=True)
class Action:
    """What a handler is asked to do: the intent, its slot values, and the session."""

    intent: str
    slots: Dict[str, str]
    session: str

    def to_dict(self) -> Dict[str, Any]:
        return {"intent": self.intent, "slots": dict(self.slots), "session": self.session}


@dataclass
class Turn:
    """One user turn and the assistant's answer.

    Attributes:
        session: the session id.
        text: what the user said (the transcript for audio).
        result: the :class:`~speech_intent.results.PipelineResult` of an audio turn, or the
            :class:`~speech_intent.results.IntentPrediction` of a text turn.
        decision: the policy's :class:`~speech_intent.dialogue.policy.Decision` (``act``, ``execute``, ``slots``,
            ``reason``).
        response: the response text.
        facts: what the handler returned (empty when none ran).
        state: the session's state after the turn.
        audio, sample_rate: the spoken response (``None`` without a synthesiser).
        error: why the handler, the input or the synthesiser failed, else None.
    """

    session: str
    text: str
    result: Any
    decision: Decision
    response: str
    state: DialogueState
    facts: Dict[str, Any] = field(default_factory=dict)
    audio: Optional[np.ndarray] = None
    sample_rate: Optional[int] = None
    error: Optional[str] = None

    @property
    def action(self) -> str:
        """The response act (``set_alarm``, ``utter_ask_set_alarm_time``, ``confirm_send_message``, ``cancel``, ...)."""
        return self.decision.act

    def to_dict(self) -> Dict[str, Any]:
        result = self.result.to_dict() if hasattr(self.result, "to_dict") else None
        return {"session": self.session, "text": self.text, "result": result, "decision": self.decision.to_dict(),
                "response": self.response, "facts": _jsonable(self.facts), "state": self.state.to_dict(),
                "sample_rate": self.sample_rate, "error": self.error}


class Assistant:
    """Answer user turns, keeping each session's dialogue.

    Args:
        pipeline: a :class:`~speech_intent.pipeline.SpeechIntentPipeline` (audio and text turns; text goes to its
            ``intent`` stage) or an intent stage alone (a callable texts -> predictions; text turns only).
        domain: a :class:`~speech_intent.data.dialogue_domain.Domain` or a domain file path.
        responses: the response generator (default: the domain's :class:`TemplateResponses`).
        synthesizer: speech out, optional: ``synthesize(text)`` -> ``(samples, rate)``, samples with the
            synthesiser's ``sampling_rate``, or an iterator of ``(samples, rate)`` sentences (joined).
        store: the session store (default: a new :class:`MemoryStore`).
        handlers: intent -> handler; more with :meth:`handler` / :meth:`add_handler`.
        options: the policy's :class:`PolicyOptions`.
    """

    def __init__(self, pipeline: Any, domain: Union[Domain, str, Path], *, responses: Optional[ResponseGenerator] = None,
                 synthesizer: Any = None, store: Optional[SessionStore] = None,
                 handlers: Optional[Mapping[str, Handler]] = None, options: Optional[PolicyOptions] = None) -> None:
        self.domain = domain if isinstance(domain, Domain) else load_domain(domain)
        self.pipeline = pipeline
        self.nlu = getattr(pipeline, "intent", pipeline)
        if not callable(self.nlu):
            raise ConfigError("pipeline must be a SpeechIntentPipeline or a callable intent stage")
        self.responses = responses if responses is not None else TemplateResponses(self.domain)
        self.synthesizer = synthesizer
        self.store = store if store is not None else MemoryStore()
        self.policy = Policy(self.domain, options)
        self.handlers: Dict[str, Handler] = {}
        for intent, function in (handlers or {}).items():
            self.add_handler(intent, function)
        self._locks: Dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ------------------------------------------------------------------ handlers
    def add_handler(self, intent: str, function: Handler) -> None:
        if intent not in self.domain.intents:
            raise ConfigError(f"no intent {intent!r} in the domain ({', '.join(self.domain.intents)})")
        if not callable(function):
            raise ConfigError(f"the handler of {intent!r} is not callable")
        self.handlers[intent] = function

    def handler(self, intent: str) -> Callable[[Handler], Handler]:
        """Decorator: ``@assistant.handler("set_alarm")`` registers the function for that intent."""
        def register(function: Handler) -> Handler:
            self.add_handler(intent, function)
            return function
        return register

    # ------------------------------------------------------------------ sessions
    def state(self, session: str) -> DialogueState:
        """The session's current state (a new one when the store has none)."""
        data = self.store.load(session)
        return DialogueState.from_dict(data) if data is not None else DialogueState()

    def reset(self, session: str) -> None:
        self.store.delete(session)

    def _lock(self, session: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(session, threading.Lock())

    # ------------------------------------------------------------------ turns
    def respond(self, turn: TurnInput, session: str = "default", *, sentiment: Optional[str] = None,
                said: Optional[str] = None) -> Turn:
        """Answer one turn: text (``str``), audio (a path as ``Path``, bytes, a 16 kHz array), or a turn understood
        already (a :class:`~speech_intent.results.PipelineResult` or :class:`~speech_intent.results.IntentPrediction`;
        ``said``: the user's own text of it, whose case the slot values keep)."""
        return self.respond_batch([turn], [session], sentiments=[sentiment], said=[said])[0]

    def respond_batch(self, turns: Sequence[TurnInput], sessions: Sequence[str], *,
                      sentiments: Optional[Sequence[Optional[str]]] = None,
                      said: Optional[Sequence[Optional[str]]] = None) -> List[Turn]:
        """Answer several turns (one NLU / pipeline call, one generator call); a session's turns run in order."""
        if len(turns) != len(sessions):
            raise ConfigError(f"{len(turns)} turns for {len(sessions)} sessions")
        sentiments = list(sentiments) if sentiments is not None else [None] * len(turns)
        if len(sentiments) != len(turns):
            raise ConfigError(f"{len(sentiments)} sentiments for {len(turns)} turns")
        for session in sessions:
            if not isinstance(session, str) or not session:
                raise ConfigError(f"a session id is a non-empty string, got {session!r}")
        heard = self._understand(turns)
        if said is not None:  # the user's own text of turns understood already (a service's worker ran the NLU)
            if len(said) != len(turns):
                raise ConfigError(f"{len(said)} texts for {len(turns)} turns")
            heard = [(own or text, *rest) for (text, *rest), own in zip(heard, said)]
        ordered = sorted(set(sessions))  # one order: no deadlock between batches
        shared = getattr(self.store, "lock", None)  # a store shared between processes locks its sessions too
        with contextlib.ExitStack() as stack:
            for session in ordered:
                stack.enter_context(self._lock(session))
            for session in ordered if shared is not None else ():
                stack.enter_context(shared(session))
            states: Dict[str, DialogueState] = {s: self.state(s) for s in set(sessions)}
            steps = []
            for (text, result, prediction, error), session, sentiment in zip(heard, sessions, sentiments):
                state = states[session]
                decision = self.policy.step(state, _cased(prediction, text))
                facts, handler_error = self._run_handler(decision, session)
                if handler_error is not None:
                    decision = Decision("error", slots=decision.slots, reason=decision.reason)
                sentiment = sentiment or _sentiment_label(result)
                request = ResponseRequest(decision.act, dict(decision.slots), facts, text, sentiment)
                steps.append((session, text, result, prediction, decision, facts, error or handler_error, request))
            texts = self._generate([step[-1] for step in steps])
            out: List[Turn] = []
            for (session, text, result, prediction, decision, facts, error, _), reply in zip(steps, texts):
                state = states[session]
                state.record({"user": text, "intent": getattr(prediction, "intent", None),
                              "confidence": getattr(prediction, "confidence", None), "action": decision.act,
                              "response": reply})
                snapshot = DialogueState.from_dict(state.to_dict())
                out.append(Turn(session, text, result, decision, reply, snapshot, facts, error=error))
            for session, state in states.items():
                self.store.save(session, state.to_dict())
        for turn in out:
            self._speak(turn)
        return out

    # ------------------------------------------------------------------ stages
    def _understand(self, turns: Sequence[TurnInput]) -> List[Tuple[str, Any, Any, Optional[str]]]:
        """(text, result, prediction, error) per turn: text turns through the NLU, audio through the pipeline."""
        out: List[Any] = [None] * len(turns)
        for i, turn in enumerate(turns):  # understood already (a service's batcher ran the models)
            if isinstance(turn, PipelineResult):
                prediction = turn.prediction or IntentPrediction(text="", intent=None, confidence=0.0)
                out[i] = (turn.transcript or "", turn, prediction, turn.error)
            elif isinstance(turn, IntentPrediction):
                out[i] = (turn.text, turn, turn, None)
        texts = [(i, t) for i, t in enumerate(turns) if isinstance(t, str)]
        audio = [(i, t) for i, t in enumerate(turns) if out[i] is None and not isinstance(t, str)]
        if texts:
            predictions = self.nlu([t for _, t in texts])
            for (i, said), prediction in zip(texts, predictions):
                out[i] = (said.strip(), prediction, prediction, None)
        if audio:
            if self.pipeline is self.nlu:
                raise ConfigError("audio turns need a SpeechIntentPipeline (this assistant has an intent stage only)")
            results = self.pipeline([t for _, t in audio])
            for (i, _), result in zip(audio, results):
                prediction = result.prediction or IntentPrediction(text="", intent=None, confidence=0.0)
                out[i] = (result.transcript or "", result, prediction, result.error)
        return out

    def _run_handler(self, decision: Decision, session: str) -> Tuple[Dict[str, Any], Optional[str]]:
        function = self.handlers.get(decision.execute) if decision.execute else None
        if function is None:
            return {}, None
        try:
            facts = function(Action(decision.execute, dict(decision.slots), session))
        except Exception as error:  # one failing handler answers with utter_error; the session goes on
            logger.exception("handler of %r failed", decision.execute)
            return {}, f"handler {decision.execute!r} failed ({type(error).__name__}: {error})"
        if facts is not None and not isinstance(facts, Mapping):
            return {}, f"handler {decision.execute!r} returned {type(facts).__name__}, not a mapping of facts"
        return dict(facts or {}), None

    def _generate(self, requests: List[ResponseRequest]) -> List[str]:
        try:
            texts = list(self.responses.generate(requests))
            if len(texts) != len(requests):
                raise ConfigError(f"the response generator gave {len(texts)} texts for {len(requests)} requests")
            return texts
        except Exception:
            if isinstance(self.responses, TemplateResponses):
                raise
            logger.exception("response generator failed; answering with the domain's templates")
            return TemplateResponses(self.domain).generate(requests)

    def _speak(self, turn: Turn) -> None:
        if self.synthesizer is None or not turn.response:
            return
        try:
            spoken = self.synthesizer.synthesize(turn.response)
            rate = getattr(self.synthesizer, "sampling_rate", None)
            if isinstance(spoken, tuple):
                audio, rate = spoken
            elif isinstance(spoken, np.ndarray):
                audio = spoken
            else:  # sentence by sentence: (samples, rate) pieces, joined
                pieces = list(spoken)
                audio = np.concatenate([np.asarray(p[0], np.float32) for p in pieces]) if pieces else np.zeros(0)
                rate = pieces[0][1] if pieces else rate
            turn.audio, turn.sample_rate = np.asarray(audio, dtype=np.float32), int(rate) if rate else None
        except Exception as error:  # the text answer stands without its audio
            logger.warning("synthesiser failed: %s", error)
            turn.error = turn.error or f"synthesiser failed ({type(error).__name__}: {error})"


def _cased(prediction: Any, said: str) -> Any:
    """The prediction with each slot value as the user's text writes it ("chicago" -> "Chicago") when the text
    has it, ignoring case (values the normaliser rewrote, "7 am" -> "seven am", stay as they are); its text is the
    user's when only case and end punctuation differ (a bare answer keeps it: "I'm running late")."""
    if not said or not isinstance(prediction, IntentPrediction):
        return prediction
    own = said.strip().rstrip(" .?!")
    text = own if own.lower() == (prediction.text or "").lower() else prediction.text
    slots = dict(prediction.slots or {})
    cased = {}
    for name, value in slots.items():
        found = re.search(r"(?<!\w)" + re.escape(value) + r"(?!\w)", said, flags=re.IGNORECASE) if value else None
        cased[name] = found.group(0) if found else value
    return replace(prediction, text=text, slots=cased)


def _sentiment_label(result: Any) -> Optional[str]:
    sentiment = getattr(result, "sentiment", None)
    return getattr(sentiment, "label", sentiment) if isinstance(getattr(sentiment, "label", sentiment), str) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
