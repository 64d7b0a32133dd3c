"""The HTTP API: ``/v1/predict``, ``/v1/classify``, ``/v1/audio/transcriptions`` (OpenAI-compatible).

Uploaded files are decoded from memory (a client's file name is only a label, never opened) on a
thread of the server's pool, then recognised by the micro-batching worker.
"""
from __future__ import annotations

import asyncio
from typing import List, Optional

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..audio import SAMPLE_RATE, load_audio
from ..errors import AudioError

router = APIRouter(tags=["recognition"])

RESPONSE_FORMATS = ("json", "text", "verbose_json")


class ClassifyRequest(BaseModel):
    texts: List[str] = Field(..., min_length=1, description="texts to classify")
    top_k: int = Field(3, ge=1, le=50, description="how many labels each prediction lists")


def _service(request: Request):
    return request.app.state.service


def _label(upload: UploadFile, index: int) -> str:
    name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1]  # a label only: no directories
    return name[:200] or f"<upload #{index}>"


async def _decode(request: Request, upload: UploadFile, index: int) -> tuple:
    service = _service(request)
    name = _label(upload, index)
    data = await upload.read()
    if not data:
        raise AudioError(name, "empty upload")
    audio = await run_in_threadpool(load_audio, data, sampling_rate=SAMPLE_RATE,
                                    max_duration=service.max_audio_seconds,
                                    min_duration=service.pipeline.min_duration, name=name)
    return name, audio


async def _recognise(request: Request, uploads: List[UploadFile]):
    service = _service(request)
    if len(uploads) > service.config.max_files:
        raise HTTPException(413, f"{len(uploads)} files in one request, over the limit of {service.config.max_files}")
    decoded = [await _decode(request, upload, i) for i, upload in enumerate(uploads)]
    names: List[str] = [name for name, _ in decoded]
    arrays: List[np.ndarray] = [audio for _, audio in decoded]
    return await asyncio.wrap_future(service.batcher.submit_audio(arrays, names))


@router.post("/predict")
async def predict(request: Request, files: List[UploadFile] = File(..., description="audio files (wav, flac, ogg, mp3)")):
    """Audio files -> one result row per file (the rows of ``speech-intent predict``: transcript, intent,
    confidence, slots, ...). Undecodable audio: 400 naming the file; too long: 413."""
    results = await _recognise(request, files)
    return {"results": [result.to_dict() for result in results]}


@router.post("/classify")
async def classify(request: Request, body: ClassifyRequest):
    """Texts -> intent predictions (intent, confidence, top-k, slots)."""
    config = _service(request).config
    if len(body.texts) > config.max_texts:
        raise HTTPException(413, f"{len(body.texts)} texts in one request, over the limit of {config.max_texts}")
    longest = max(len(text) for text in body.texts)
    if longest > config.max_text_chars:
        raise HTTPException(413, f"a text of {longest} characters, over the limit of {config.max_text_chars}")
    predictions = await asyncio.wrap_future(_service(request).batcher.submit_texts(body.texts, top_k=body.top_k))
    return {"predictions": [p.to_dict() for p in predictions]}


@router.post("/audio/transcriptions")
async def transcriptions(request: Request, file: UploadFile = File(..., description="the audio file"),
                         model: Optional[str] = Form(None, description="ignored: the server's pipeline is used"),
                         response_format: str = Form("json", description="json, text or verbose_json"),
                         language: Optional[str] = Form(None, description="ignored (the model's language)"),
                         prompt: Optional[str] = Form(None, description="ignored (the domain prompt is used)"),
                         temperature: Optional[float] = Form(None, description="ignored (deterministic)")):
    """OpenAI-compatible transcription. ``verbose_json`` adds the duration, one segment and this
    service's ``intent``, ``confidence`` and ``slots``."""
    if response_format not in RESPONSE_FORMATS:
        raise HTTPException(400, f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, "
                                 f"got {response_format!r}")
    result = (await _recognise(request, [file]))[0]
    if result.error:
        raise HTTPException(500, result.error)
    text = result.transcript or ""
    if response_format == "text":
        return PlainTextResponse(text)
    if response_format == "json":
        return {"text": text}
    duration = result.duration or 0.0
    confidence = result.transcript_confidence or 0.0
    return {
        "task": "transcribe", "language": "english", "duration": duration, "text": text,
        "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": text,
                      "avg_logprob": float(np.log(confidence)) if confidence > 0 else None}],
        "intent": result.intent, "confidence": result.confidence, "slots": result.slots,
    }
