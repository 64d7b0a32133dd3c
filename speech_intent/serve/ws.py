"""``WS /v1/stream``: PCM16 frames in, streaming events out.

Protocol (JSON text messages, binary audio):

- the server sends ``{"type": "ready", "sample_rate": 16000, "format": "pcm_s16le"}`` on connect;
- the client may first send ``{"sample_rate": 48000}`` (any rate from 8 to 96 kHz) and / or
  ``{"revisions": true}`` (premature ends repaired: see below), answered with ``{"type": "config", ...}``,
  then binary frames of little-endian signed 16-bit mono PCM, any size;
- the server sends ``speech_start``, ``partial`` and ``final`` events
  (:class:`~speech_intent.live.StreamEvent`), any number of utterances; with the service's end-of-turn
  detector a complete command ends after a short pause (``reason: "end_of_turn"``), and a client that
  asked for revisions gets, when speech resumes within the trailing silence after such an end, events
  with ``revises: N``: the utterance goes on, and its new ``final`` replaces final ``N``;
- ``{"type": "end"}`` ends the stream: the utterance in progress gets its ``final``, then
  ``{"type": "end"}``; the connection stays open for a new stream.

Problems are ``{"type": "error", "message": ...}`` events; a bad configuration or an oversized
frame also closes the connection (1008 / 1009); 1013 when the server has too many streams.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, Awaitable, Callable, Dict, Optional

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ..errors import OverloadedError, SpeechIntentError, check_int
from ..live import StreamingRecognizer
from ..results import PipelineResult
from .auth import websocket_key_ok, websocket_origin_ok

logger = logging.getLogger(__name__)

router = APIRouter()

MIN_STREAM_RATE, MAX_STREAM_RATE = 8_000, 96_000


def _recognizer(service, sample_rate: int, revisions: bool = False) -> StreamingRecognizer:
    def recognize(audio: np.ndarray) -> PipelineResult:
        try:
            return service.redact(service.batcher.submit_audio([audio], ["<stream>"]).result()[0])
        except OverloadedError as error:
            return PipelineResult(path="<stream>", error=str(error))
        except Exception as error:  # the batch failed (logged by the batcher): this utterance's result says so
            return PipelineResult(path="<stream>", error=f"recognition failed ({type(error).__name__}: {error})")

    vad = service.config.vad
    if vad.max_utterance > service.max_audio_seconds:  # as /v1/predict?segment=true: no utterance the pipeline refuses
        vad = replace(vad, max_utterance=service.max_audio_seconds)
    return StreamingRecognizer(sample_rate=sample_rate, vad=vad,
                               partial_interval=service.config.partial_interval, recognize=recognize,
                               early_endpoint=service.config.early_endpoint,
                               early_confidence=service.config.early_confidence,
                               turn=getattr(service, "turn", None), revisions=revisions)


def _rate(message: dict) -> int:
    rate = message.get("sample_rate", message.get("rate"))
    check_int("sample_rate", rate, minimum=MIN_STREAM_RATE, maximum=MAX_STREAM_RATE)
    return rate


class _Session:
    def __init__(self, websocket: WebSocket, service) -> None:
        self.ws, self.service = websocket, service
        self.recognizer: Optional[StreamingRecognizer] = None
        self.sample_rate = 16_000
        self.revisions = False
        self.audio_started = False

    async def send(self, payload: dict) -> None:
        await self.ws.send_text(json.dumps(payload))

    async def error(self, message: str, close: Optional[int] = None) -> None:
        await self.send({"type": "error", "message": message})
        if close is not None:
            await self.ws.close(code=close, reason=message[:120])

    async def emit(self, events) -> None:
        for event in events:
            await self.send(event.to_dict())

    async def on_text(self, text: str) -> bool:
        """Handle a JSON message; False when the connection was closed."""
        try:
            message = json.loads(text)
            if not isinstance(message, dict):
                raise ValueError("expected a JSON object")
        except ValueError as error:
            await self.error(f"invalid JSON message ({error})")
            return True
        configures = any(k in message for k in ("sample_rate", "rate", "revisions"))
        kind = message.get("type", "config" if configures else None)
        if kind == "config":
            if self.audio_started:
                await self.error("the sample rate can only be set before the audio")
                return True
            try:
                if "sample_rate" in message or "rate" in message or "revisions" not in message:
                    self.sample_rate = _rate(message)
                if not isinstance(message.get("revisions", False), bool):
                    raise ValueError(f"revisions must be true or false, got {message['revisions']!r}")
                self.revisions = message.get("revisions", self.revisions)
            except ValueError as error:
                await self.error(str(error), close=1008)
                return False
            await self.send({"type": "config", "sample_rate": self.sample_rate, "format": "pcm_s16le",
                             "revisions": self.revisions})
        elif kind == "end":
            if self.recognizer is not None:
                await self.emit(await run_in_threadpool(self.recognizer.close))
            self.recognizer, self.audio_started = None, False
            await self.send({"type": "end"})
        else:
            await self.error(f"unknown message type {kind!r} (config or end)")
        return True

    async def on_audio(self, data: bytes) -> bool:
        if len(data) > self.service.config.max_frame_bytes:
            await self.error(f"a frame of {len(data)} bytes, over the {self.service.config.max_frame_bytes} byte "
                             "limit", close=1009)
            return False
        if self.recognizer is None:
            self.recognizer = _recognizer(self.service, self.sample_rate, self.revisions)
        self.audio_started = True
        try:
            events = await run_in_threadpool(self.recognizer.feed, data)
        except SpeechIntentError as error:
            await self.error(str(error))
            return True
        await self.emit(events)
        return True


async def refused(websocket: WebSocket) -> bool:
    """Close a socket without a valid API key or from a foreign origin (1008); ``True`` when it was refused."""
    if not websocket_key_ok(websocket):
        await websocket.close(code=1008, reason="a valid API key is required")
        return True
    if not websocket_origin_ok(websocket):
        await websocket.close(code=1008, reason="this origin may not open a stream (see --cors-origin)")
        return True
    return False


async def run_socket(websocket: WebSocket, service, open_session: Callable[[], Any],
                     ready: Callable[[Any], Dict[str, Any]], *, what: str = "stream",
                     finish: Optional[Callable[[Any], Awaitable[None]]] = None) -> None:
    """Accept ``websocket`` as one of the service's ``--max-streams`` streams (1013 beyond them), send the
    session's ``ready`` event, then hand it each binary (``on_audio``) and text (``on_text``) message until
    the client leaves or the session says stop; a failure of one session closes its socket (1011), never the
    server. ``finish(session)`` runs at the end whatever happened."""
    await websocket.accept()
    if service.streams >= service.config.max_streams:
        await websocket.close(code=1013, reason="too many streams; try again later")
        return
    service.streams += 1
    session = None
    try:
        session = open_session()
        await session.send(ready(session))
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes") is not None:
                going = await session.on_audio(message["bytes"])
            elif message.get("text") is not None:
                going = await session.on_text(message["text"])
            else:
                going = True
            if not going:
                break
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away (mid-utterance too): nothing to clean but the stream itself
    except Exception:  # never let one stream take the server down
        logger.exception("%s failed", what)
        try:
            await websocket.close(code=1011)
        except Exception:
            pass
    finally:
        if session is not None and finish is not None:
            await finish(session)
        service.streams -= 1


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    if await refused(websocket):
        return
    service = websocket.app.state.service
    await run_socket(websocket, service, lambda: _Session(websocket, service),
                     lambda session: {"type": "ready", "sample_rate": session.sample_rate, "format": "pcm_s16le"})
