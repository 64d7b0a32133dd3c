"""``WS /v1/dialogue/{session}/stream``: a spoken conversation with the session's assistant.

The stream protocol of ``/v1/stream`` (:mod:`.ws`: ``ready``, an optional ``{"sample_rate": N}`` config, binary
little-endian 16-bit mono PCM, ``{"type": "end"}``), and on each utterance's ``final`` the service's
:class:`~speech_intent.dialogue.Assistant` (the one of ``POST /v1/dialogue/{session}``, :mod:`.dialogue_api`)
answers it. Events, in order for one turn:

- ``speech_start``, ``partial`` (the transcript so far), ``final`` (the transcript and the pipeline's ``result``:
  intent, slots), as on ``/v1/stream``;
- ``response``: ``reply`` (its number on this connection), ``utterance``, ``text`` (what the assistant says),
  ``heard``, ``action``, ``decision``, ``state``, ``facts``, ``error``, ``sentences`` (how many ``audio`` events
  will follow; 0 when the service does not speak);
- ``audio``, one per sentence as soon as it is spoken: ``reply``, ``index``, ``text``, ``sample_rate``,
  ``duration_s``, ``format: "wav"`` and ``data`` (a base64 16-bit WAV);
- ``audio_end``: ``reply``, ``sent`` (audio events sent), ``interrupted`` (the rest was dropped).

The client may also send ``{"type": "text", "text": "..."}`` (a typed turn, answered the same way) and
``{"type": "barge_in"}`` when the user speaks over the answer: the server drops the reply's sentences not sent
yet, answers ``{"type": "interrupted", "reply": N, "pending": bool}`` (``pending``: audio was still being made)
and ends that reply with ``audio_end`` ``interrupted: true``. A new turn interrupts the previous reply the same
way. Revisions (``{"revisions": true}`` on ``/v1/stream``) are not offered: an answered turn stays answered.
The service speaks when it runs with ``--speak`` (:class:`~speech_intent.synthesis.speaker.ResponseSynthesizer`)
or the application's assistant has a synthesiser. Key, origin and host checks, redaction and the stream limit
are those of ``/v1/stream``; bad input is an ``error`` event and the socket stays usable.
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any, Optional, Tuple

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ..errors import OverloadedError, SpeechIntentError
from ..synthesis.speaker import sentences
from .dialogue_api import _SESSION, _wav_base64, assistant_of
from .ws import _Session, refused, run_socket

logger = logging.getLogger(__name__)

router = APIRouter(tags=["dialogue"])


def _quiet(app) -> Tuple[Any, Any]:
    """(the application's assistant without its synthesiser, that synthesiser): the socket speaks the reply
    sentence by sentence itself. The quiet copy shares the assistant's store, policy, handlers and locks."""
    assistant = assistant_of(app)
    cached = getattr(app.state, "dialogue_quiet", None)
    if cached is None or cached[0] is not assistant:
        quiet = copy.copy(assistant)
        quiet.synthesizer = None
        cached = app.state.dialogue_quiet = (assistant, quiet)
    return cached[1], assistant.synthesizer


def _spoken(synthesizer, sentence: str) -> Tuple[np.ndarray, int]:
    """One sentence spoken: ``synthesize`` may answer (samples, rate), samples, or (samples, rate) pieces."""
    spoken = synthesizer.synthesize(sentence)
    rate = getattr(synthesizer, "sample_rate", None) or getattr(synthesizer, "sampling_rate", None)
    if isinstance(spoken, tuple):
        audio, rate = spoken
    elif isinstance(spoken, np.ndarray):
        audio = spoken
    else:
        pieces = list(spoken)
        audio = np.concatenate([np.asarray(p[0], np.float32) for p in pieces]) if pieces else np.zeros(0, np.float32)
        rate = pieces[0][1] if pieces else rate
    if not rate:
        raise SpeechIntentError("the synthesiser gave no sample rate")
    return np.asarray(audio, np.float32), int(rate)


class _Conversation(_Session):
    """One connection: the stream session of :mod:`.ws`, plus the assistant's answers and their audio."""

    def __init__(self, websocket: WebSocket, service, session: str) -> None:
        super().__init__(websocket, service)
        self.session = session
        self.quiet, self.synthesizer = _quiet(websocket.app)
        self.sending = asyncio.Lock()
        self.replies = 0
        self.speaking: Optional[asyncio.Task] = None
        self.speaking_reply: Optional[int] = None
        self.stopped: set = set()

    async def send(self, payload: dict) -> None:
        async with self.sending:  # the speaking task and the receive loop share the socket
            await self.ws.send_text(json.dumps(payload))

    async def emit(self, events) -> None:
        for event in events:
            await self.send(event.to_dict())
            if event.type == "final":
                await self.answer(event.result, utterance=event.utterance)

    async def on_text(self, text: str) -> bool:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "barge_in":
            pending = self.interrupt()
            await self.send({"type": "interrupted", "reply": self.speaking_reply, "pending": pending})
            return True
        if kind == "text":
            await self.text_turn(message.get("text"))
            return True
        if isinstance(message, dict) and message.get("revisions"):  # an answered turn is not taken back
            await self.error("revisions are not offered on the dialogue stream")
            return True
        return await super().on_text(text)

    # ------------------------------------------------------------------ turns
    async def text_turn(self, text: Any) -> None:
        limit = self.service.config.max_text_chars
        if not isinstance(text, str) or not text.strip():
            await self.error('a text turn is {"type": "text", "text": "..."} with a non-empty text')
            return
        if len(text) > limit:
            await self.error(f"a text of {len(text)} characters, over the limit of {limit}")
            return
        try:
            predictions = await asyncio.wrap_future(self.service.batcher.submit_texts([text]))
        except (OverloadedError, SpeechIntentError) as error:
            await self.error(str(error))
            return
        await self.answer(self.service.redact(predictions[0], source=text))

    async def answer(self, understood, utterance: Optional[int] = None) -> None:
        """The assistant's answer to one understood turn: a ``response`` event, then its audio in the background."""
        self.interrupt()  # a new turn: the previous reply's unsent sentences are dropped
        number = self.replies
        self.replies += 1
        try:
            turn = await run_in_threadpool(self.quiet.respond, understood, self.session)
        except Exception as error:  # one failing turn never ends the conversation
            logger.exception("dialogue turn failed")
            await self.error(f"the assistant failed ({type(error).__name__}: {error})")
            return
        said = sentences(turn.response) if self.synthesizer is not None and turn.response else []
        await self.send({"type": "response", "reply": number, "utterance": utterance, "text": turn.response,
                         "heard": turn.text, "action": turn.action, "decision": turn.decision.to_dict(),
                         "state": turn.state.to_dict(), "facts": turn.to_dict()["facts"], "error": turn.error,
                         "sentences": len(said)})
        if said:
            self.speaking_reply = number
            self.speaking = asyncio.create_task(self._speak(number, said))

    def interrupt(self) -> bool:
        """Drop the current reply's unsent sentences; whether audio was still being made."""
        if self.speaking is None or self.speaking.done():
            return False
        self.stopped.add(self.speaking_reply)
        return True

    async def _speak(self, number: int, said: list) -> None:
        sent, interrupted = 0, False
        try:
            for index, sentence in enumerate(said):
                if number in self.stopped:
                    interrupted = True
                    break
                audio, rate = await run_in_threadpool(_spoken, self.synthesizer, sentence)
                if number in self.stopped:
                    interrupted = True
                    break
                await self.send({"type": "audio", "reply": number, "index": index, "text": sentence,
                                 "sample_rate": rate, "duration_s": round(audio.size / rate, 3), "format": "wav",
                                 "data": await run_in_threadpool(_wav_base64, audio, rate)})
                sent += 1
            await self.send({"type": "audio_end", "reply": number, "sent": sent, "interrupted": interrupted})
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away
        except Exception as error:  # the text answer stands without (the rest of) its audio
            logger.warning("speaking reply %d failed: %s", number, error)
            try:
                await self.error(f"the synthesiser failed ({type(error).__name__}: {error})")
                await self.send({"type": "audio_end", "reply": number, "sent": sent, "interrupted": True})
            except Exception:
                pass
        finally:
            self.stopped.discard(number)


@router.websocket("/dialogue/{session}/stream")
async def conversation(websocket: WebSocket, session: str) -> None:
    if await refused(websocket):
        return
    if not _SESSION.match(session):
        await websocket.close(code=1008, reason="a session id is 1-128 characters of letters, digits and . _ : -")
        return
    service = websocket.app.state.service
    await run_socket(websocket, service, lambda: _Conversation(websocket, service, session),
                     lambda talk: {"type": "ready", "sample_rate": talk.sample_rate, "format": "pcm_s16le",
                                   "session": session, "speaks": talk.synthesizer is not None},
                     what="conversation", finish=_stop_speaking)


async def _stop_speaking(talk: "_Conversation") -> None:
    """The end of a conversation: a reply still being spoken is interrupted and awaited."""
    if talk.speaking is not None and not talk.speaking.done():
        talk.interrupt()
        try:
            await talk.speaking
        except Exception:
            pass
