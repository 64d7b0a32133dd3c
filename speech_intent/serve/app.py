"""The FastAPI application: assembly, errors, health, info and the demo page (the host, key, origin and
size checks in front of the routes: :mod:`.middleware`).

Routes: ``GET /`` (browser demo), ``GET /health``, ``GET /v1/info``, the HTTP API
(:mod:`.http_api`: ``/v1/predict``, ``/v1/classify``, ``/v1/audio/transcriptions``) and the
WebSocket stream (:mod:`.ws`: ``/v1/stream``), the session dialogue (:mod:`.dialogue_api`:
``/v1/dialogue/{session}``) and the spoken conversation (:mod:`.dialogue_ws`:
``/v1/dialogue/{session}/stream``); the conversation demo at ``/chat``; OpenAPI docs at ``/docs`` and ``/openapi.json``.
Errors are JSON: ``{"error": {"type": ..., "message": ...}}``.
"""
from __future__ import annotations

import logging
import platform
from contextlib import asynccontextmanager
from importlib import metadata, resources
from typing import Any, Dict, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException  # FastAPI's subclasses it; the router raises this one

from ..device import set_torch_threads
from ..errors import AudioError, AudioTooLongError, ConfigError, OverloadedError, SpeechIntentError
from ..pipeline import SpeechIntentPipeline
from ..privacy.redact import Redactor
from .batcher import MicroBatcher
from .middleware import BodyLimit, CountArrivals, RequestGuard, error_response
from .options import ServeOptions

logger = logging.getLogger(__name__)

STATIC = resources.files("speech_intent") / "serve" / "static"


class Service:
    """What the routes share: the pipeline, its worker, the settings and the open streams."""

    def __init__(self, pipeline: SpeechIntentPipeline, config: ServeOptions) -> None:
        self.pipeline = pipeline
        self.config = config
        self.batcher = MicroBatcher(pipeline, max_batch=config.max_batch, max_wait=config.max_wait,
                                    queue_size=config.queue_size, threads=config.threads, workers=config.workers)
        self.streams = 0
        self.max_audio_seconds = min(config.max_audio_seconds, pipeline.max_duration or config.max_audio_seconds)
        self.redactor = (Redactor(config.redact, normalizer=getattr(pipeline.intent, "normalize", None))
                         if config.redact is not None else None)

    def redact(self, item, source=None):
        """``item`` (a result, prediction or row) redacted when the service redacts, else as it is; ``source``:
        the text a prediction was made from."""
        if self.redactor is None:
            return item
        if source is not None:
            return self.redactor.prediction(item, source=source)
        return self.redactor(item)


# ---------------------------------------------------------------------------- errors
def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AudioError)
    async def audio_error(request: Request, error: AudioError):
        status = 413 if isinstance(error, AudioTooLongError) else 400
        return error_response(status, type(error).__name__, str(error), file=error.source, reason=error.reason)

    @app.exception_handler(OverloadedError)
    async def overloaded(request: Request, error: OverloadedError):
        return error_response(503, "Overloaded", str(error), headers={"Retry-After": str(int(error.retry_after + 0.999))})

    @app.exception_handler(ConfigError)
    async def config_error(request: Request, error: ConfigError):
        return error_response(400, "ConfigError", str(error))

    @app.exception_handler(SpeechIntentError)
    async def library_error(request: Request, error: SpeechIntentError):
        return error_response(500, type(error).__name__, str(error))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        kinds = {401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed", 413: "RequestTooLarge"}
        return error_response(error.status_code, kinds.get(error.status_code, "HTTPError"), str(error.detail),
                              headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in error.errors()]
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        message = f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"
        return error_response(422, "InvalidRequest", message, problems=problems)


# ---------------------------------------------------------------------------- info
def _version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def service_info(service: Service) -> Dict[str, Any]:
    pipe = service.pipeline
    asr, intent = pipe.asr, pipe.intent
    slots = sorted({label.split("-", 1)[1] for label in getattr(intent, "slot_labels", []) if "-" in label})
    options = getattr(asr, "options", None)
    return {
        "service": "speech-intent",
        "labels": list(getattr(intent, "labels", [])),
        "slots": slots,
        "asr": {"backend": getattr(asr, "backend", None), "sampling_rate": asr.sampling_rate,
                "options": options.to_dict() if hasattr(options, "to_dict") else None,
                "domain_prompt": pipe.prompt_text},
        "device": {"asr": str(getattr(asr, "device", None) or "cpu"), "intent": str(getattr(intent, "device", "cpu")),
                   "intent_runtime": getattr(intent, "runtime", "torch"),
                   "threads": service.config.threads},
        "limits": {"max_body_bytes": service.config.max_body_bytes, "max_audio_seconds": service.max_audio_seconds,
                   "max_files": service.config.max_files, "max_texts": service.config.max_texts,
                   "max_streams": service.config.max_streams, "queue_size": service.config.queue_size},
        "batching": {"max_batch": service.config.max_batch, "max_wait": service.config.max_wait,
                     "workers": service.config.workers,
                     **service.batcher.stats.to_dict()},
        "stream": {"partial_interval": service.config.partial_interval,
                   "early_endpoint": service.config.early_endpoint, "early_confidence": service.config.early_confidence,
                   "vad": service.config.vad.to_dict(),
                   "format": "pcm_s16le mono", "default_sample_rate": 16000},
        "versions": {name: _version(name) for name in ("speech-intent", "torch", "transformers", "faster-whisper",
                                                       "onnxruntime", "fastapi", "uvicorn")}
        | {"python": platform.python_version()},
    }


# ---------------------------------------------------------------------------- the app
def create_app(pipeline: SpeechIntentPipeline, config: Optional[ServeOptions] = None) -> FastAPI:
    """The service for ``pipeline``; its worker threads start and stop with the app (lifespan)."""
    from . import dialogue_api, dialogue_ws, http_api, ws

    config = config or ServeOptions()
    service = Service(pipeline, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if config.threads is not None:  # explicit, at startup only; each worker pins its own thread too
            set_torch_threads(config.threads)
        service.batcher.start()
        try:
            yield
        finally:
            service.batcher.stop()

    app = FastAPI(title="speech-intent", version=_version("speech-intent") or "0",
                  description="Speech in, voice-assistant commands out: transcript, intent, slots.", lifespan=lifespan)
    app.state.service = service
    if config.speak is not None:  # the dialogue's voice (serve --speak), loaded with the app, not on a first turn
        from ..synthesis.speaker import ResponseSynthesizer

        app.state.speaker = ResponseSynthesizer(config.speak).warmup()
    _install_error_handlers(app)
    app.add_middleware(CountArrivals, batcher=service.batcher)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(RequestGuard, config=config)  # outside the limit: a refused request's body is never read
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/chat", include_in_schema=False)
    async def chat():
        return FileResponse(str(STATIC / "chat.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/health", tags=["service"])
    async def health():
        """Liveness: ``{"status": "ok"}`` while the worker runs."""
        return {"status": "ok", "queue": service.batcher.depth, "streams": service.streams}

    @app.get("/v1/info", tags=["service"])
    async def info():
        """Labels, slots, ASR, device, limits, batching statistics and versions."""
        return service_info(service)

    app.include_router(http_api.router, prefix="/v1")
    app.include_router(ws.router, prefix="/v1")
    app.include_router(dialogue_api.router, prefix="/v1")
    app.include_router(dialogue_ws.router, prefix="/v1")
    return app
