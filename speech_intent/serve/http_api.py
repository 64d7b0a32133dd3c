"""The HTTP API: ``/v1/predict``, ``/v1/classify``, ``/v1/audio/transcriptions`` (OpenAI-compatible).

Uploaded files are decoded from memory (a client's file name is only a label, never opened) on a
thread of the server's pool, then recognised by the micro-batching worker. ``/v1/predict?segment=true``
reads each file block by block and splits it into utterances with the VAD (any length; one row per
utterance). In a request of several files a bad file is a row with ``error``; the request fails (4xx)
only when no file can be used.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import List, Optional, Union

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from ..audio import SAMPLE_RATE, BlockReader, load_audio
from ..errors import AudioError
from ..longform import segment_results
from ..results import PipelineResult
from .batcher import ARRIVAL_KEY

router = APIRouter(tags=["recognition"])

RESPONSE_FORMATS = ("json", "text", "verbose_json")


class ClassifyRequest(BaseModel):
    texts: List[str] = Field(..., min_length=1, description="texts to classify")
    top_k: int = Field(3, ge=1, le=50, description="how many labels each prediction lists")

    @field_validator("texts")
    @classmethod
    def _unicode(cls, texts: List[str]) -> List[str]:
        for i, text in enumerate(texts):  # JSON can escape a lone surrogate, which no tokenizer takes
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(f"text {i} is not valid Unicode ({error.reason} at character {error.start})") from None
        return texts


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


def _arrival(request: Request):
    """The request's :class:`~speech_intent.serve.batcher.Arrival` (set by the app's middleware), if any."""
    return request.scope.get(ARRIVAL_KEY)


def _check_count(request: Request, uploads: List[UploadFile]) -> None:
    limit = _service(request).config.max_files
    if len(uploads) > limit:
        raise HTTPException(413, f"{len(uploads)} files in one request, over the limit of {limit}")


async def _recognise(request: Request, uploads: List[UploadFile]):
    """Every upload recognised; the first that cannot be decoded raises its :class:`AudioError`."""
    _check_count(request, uploads)
    decoded = [await _decode(request, upload, i) for i, upload in enumerate(uploads)]
    names: List[str] = [name for name, _ in decoded]
    arrays: List[np.ndarray] = [audio for _, audio in decoded]
    return await asyncio.wrap_future(_service(request).batcher.submit_audio(arrays, names, _arrival(request)))


Outcome = Union[AudioError, List[PipelineResult]]  # a file that cannot be used, or its results


async def _whole_files(request: Request, uploads: List[UploadFile]) -> List[Outcome]:
    """Each upload's one result, or its decoding error; the usable ones go to the worker as one job."""
    decoded: List[Union[AudioError, tuple]] = []
    for i, upload in enumerate(uploads):
        try:
            decoded.append(await _decode(request, upload, i))
        except AudioError as error:
            decoded.append(error)
    good = [item for item in decoded if not isinstance(item, AudioError)]
    if not good:
        return decoded  # type: ignore[return-value]
    results = iter(await asyncio.wrap_future(_service(request).batcher.submit_audio(
        [audio for _, audio in good], [name for name, _ in good], _arrival(request))))
    return [item if isinstance(item, AudioError) else [next(results)] for item in decoded]


def _segment_file(service, data: bytes, name: str, arrival=None) -> List[PipelineResult]:
    """One file split into utterances, recognised by the worker ``max_batch`` utterances at a time."""
    BlockReader(data, name=name).close()  # an unusable file raises here, like an undecodable whole file
    vad = service.config.vad
    if vad.max_utterance > service.max_audio_seconds:
        vad = replace(vad, max_utterance=service.max_audio_seconds)

    def recognise(arrays: list) -> List[PipelineResult]:
        return service.batcher.submit_audio(arrays, [name] * len(arrays), arrival).result()

    return list(segment_results(data, recognise, options=vad, batch_size=service.config.max_batch, name=name))


async def _segmented_files(request: Request, uploads: List[UploadFile]) -> List[Outcome]:
    outcomes: List[Outcome] = []
    for i, upload in enumerate(uploads):
        name = _label(upload, i)
        data = await upload.read()
        try:
            if not data:
                raise AudioError(name, "empty upload")
            outcomes.append(await run_in_threadpool(_segment_file, _service(request), data, name, _arrival(request)))
        except AudioError as error:
            outcomes.append(error)
    return outcomes


def _none_usable(errors: List[AudioError]) -> JSONResponse:
    files = [{"file": e.source, "reason": e.reason, "message": str(e)} for e in errors]
    message = f"none of the {len(errors)} files could be used: " + "; ".join(str(e) for e in errors)
    return JSONResponse({"error": {"type": "AudioError", "message": message, "files": files}}, status_code=422)


@router.post("/predict")
async def predict(request: Request, files: List[UploadFile] = File(..., description="audio files (wav, flac, ogg, mp3)"),
                  segment: bool = Query(False, description="split each file into utterances with the VAD (any "
                                        "length): one row per utterance, with segment, start, end and last")):
    """Audio files -> one result row per file (the rows of ``speech-intent predict``: transcript, intent,
    confidence, slots, ...); ``?segment=true``: one row per utterance (``predict --segment``).
    A file that cannot be used is a row with ``error`` when other files can; a request whose one file
    cannot be used is a 400 naming it (413: too long); several files, none usable: 422 listing each."""
    _check_count(request, files)
    outcomes = await (_segmented_files(request, files) if segment else _whole_files(request, files))
    errors = [outcome for outcome in outcomes if isinstance(outcome, AudioError)]
    if errors and len(errors) == len(outcomes):
        if len(errors) == 1:
            raise errors[0]
        return _none_usable(errors)
    rows = []
    for outcome in outcomes:
        if isinstance(outcome, AudioError):
            rows.append(PipelineResult(path=outcome.source, error=str(outcome), last=True if segment else None,
                                       affect=_service(request).pipeline.affect.keys).to_dict())
        else:
            rows.extend(_service(request).redact(result).to_dict() for result in outcome)
    return {"results": rows}


@router.post("/classify")
async def classify(request: Request, body: ClassifyRequest):
    """Texts -> intent predictions (intent, confidence, top-k, slots)."""
    config = _service(request).config
    if len(body.texts) > config.max_texts:
        raise HTTPException(413, f"{len(body.texts)} texts in one request, over the limit of {config.max_texts}")
    longest = max(len(text) for text in body.texts)
    if longest > config.max_text_chars:
        raise HTTPException(413, f"a text of {longest} characters, over the limit of {config.max_text_chars}")
    predictions = await asyncio.wrap_future(_service(request).batcher.submit_texts(body.texts, top_k=body.top_k,
                                                                                   arrival=_arrival(request)))
    service = _service(request)
    return {"predictions": [service.redact(p, source=text).to_dict() for p, text in zip(predictions, body.texts)]}


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
    result = _service(request).redact((await _recognise(request, [file]))[0])
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
