"""The session dialogue API: ``POST /v1/dialogue/{session}`` answers one user turn of a session.

The body is JSON ``{"text": "..."}`` or a multipart upload ``file`` (audio). The turn is understood by the
service's micro-batching worker (like ``/v1/classify`` and ``/v1/predict``), then the service's
:class:`~speech_intent.dialogue.Assistant` decides and answers; the reply is the turn's ``to_dict()``
(``text``, ``result``, ``decision``, ``response``, ``state``, ...) and, when the assistant speaks, ``audio``: the
response as a base64 WAV. ``DELETE /v1/dialogue/{session}`` forgets a session.

The assistant is ``app.state.assistant`` when the application set one (its own handlers, store, responses,
synthesiser); else one over the service's pipeline and the demo domain (templates, sessions in memory, the
service's speaker of ``--speak`` when set) is made on the first dialogue request.
"""
from __future__ import annotations

import asyncio
import base64
import io
import re
import threading

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from .http_api import _arrival, _recognise, _service

router = APIRouter(tags=["dialogue"])

_SESSION = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_LOCK = threading.Lock()


def assistant_of(app):
    """The application's assistant (made on first use over the service's pipeline and the demo domain)."""
    assistant = getattr(app.state, "assistant", None)
    if assistant is None:
        with _LOCK:
            assistant = getattr(app.state, "assistant", None)
            if assistant is None:
                from ..demo_model import demo_domain_path
                from ..dialogue import Assistant

                assistant = Assistant(app.state.service.pipeline, demo_domain_path(),
                                      synthesizer=getattr(app.state, "speaker", None))
                app.state.assistant = assistant
    return assistant


def _check_session(session: str) -> str:
    if not _SESSION.match(session):
        raise HTTPException(400, "a session id is 1-128 characters of letters, digits and . _ : -")
    return session


async def _understood(request: Request):
    """The turn of the request understood by the worker (a PipelineResult of audio, an IntentPrediction of text)
    and the user's text (None for audio)."""
    kind = request.headers.get("content-type", "")
    service = _service(request)
    if kind.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, "a multipart turn needs an audio 'file' field")
        return service.redact((await _recognise(request, [upload]))[0]), None
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, 'the body is JSON {"text": "..."} or a multipart audio "file"') from None
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str):
        raise HTTPException(400, 'the JSON body needs a "text" string')
    if len(text) > service.config.max_text_chars:
        raise HTTPException(413, f"a text of {len(text)} characters, over the limit of {service.config.max_text_chars}")
    predictions = await asyncio.wrap_future(service.batcher.submit_texts([text], arrival=_arrival(request)))
    return predictions[0], text


def _wav_base64(audio, rate: int) -> str:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@router.post("/dialogue/{session}")
async def dialogue_turn(request: Request, session: str):
    """One user turn (JSON ``{"text": ...}`` or a multipart audio ``file``) -> the assistant's turn: what it heard,
    the NLU result, its decision (``act``, ``execute``, ``slots``, ``reason``), the ``response`` text, the session's
    ``state`` and, when it speaks, ``audio`` (base64 WAV)."""
    _check_session(session)
    understood, said = await _understood(request)
    assistant = assistant_of(request.app)
    turn = await run_in_threadpool(lambda: assistant.respond(understood, session, said=said))
    reply = turn.to_dict()
    reply["audio"] = _wav_base64(turn.audio, turn.sample_rate) if turn.audio is not None else None
    return reply


@router.delete("/dialogue/{session}")
async def dialogue_reset(request: Request, session: str):
    """Forget the session's state."""
    _check_session(session)
    await run_in_threadpool(assistant_of(request.app).reset, session)
    return {"session": session, "reset": True}
