"""The service's settings, checked before any model is loaded."""
from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

from ..errors import ConfigError, check_int
from ..privacy.redact import RedactionOptions
from ..synthesis.speaker import SpeakerOptions
from ..vad import VADOptions

#: Environment variable the CLI reads the API key from when ``--api-key`` is not given.
API_KEY_ENV = "SPEECH_INTENT_API_KEY"


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_host_name(name: str) -> bool:
    """Whether ``name`` is a host name or an IP address alone (an IPv6 one may be in brackets): no
    scheme, port or path."""
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") and name.endswith("]") else name)
        return True
    except ValueError:
        return bool(name) and not any(c in name for c in ":/@?#[]\\ ")


@dataclass(frozen=True)
class ServeOptions:
    """How the service binds, authenticates, limits and batches.

    Attributes:
        host, port: where to listen. Any address but loopback needs ``api_key``.
        api_key: required on ``/v1/*`` (``Authorization: Bearer KEY`` or ``X-API-Key``; the
            WebSocket also takes ``?api_key=``) when set.
        cors_origins: origins allowed by CORS (none: CORS off); browser pages of other origins may
            not POST to ``/v1/*`` nor open the stream.
        allowed_hosts: ``Host`` names answered besides the loopback names and ``host`` (e.g. the name a
            reverse proxy forwards; names or addresses, without a port); ``"*"``: any. Bound to a
            non-loopback address with none given: any.
        max_body_bytes: largest request body (413 above it).
        max_audio_seconds: longest audio file accepted (413 above it).
        max_files: most files in one ``/v1/predict`` request.
        max_texts, max_text_chars: most texts in one ``/v1/classify`` request, longest text.
        max_batch: most inputs in one pipeline batch (1: micro-batching off).
        max_wait: seconds a batch may wait for requests still being received or decoded (a lone
            request never waits).
        queue_size: requests waiting for the worker at most (503 with ``Retry-After`` above it).
        max_streams: concurrent WebSocket streams at most.
        max_frame_bytes: largest WebSocket message.
        partial_interval: seconds of speech between partial transcripts (``None``: none).
        early_endpoint, early_confidence: end a stream's utterance after this many seconds of pause
            when it is a complete command of at least this confidence, without the whole trailing
            silence (:class:`~speech_intent.live.StreamingRecognizer`): with the service's end-of-turn
            detector, its P(complete) (``None``: its threshold) after ``early_endpoint`` (``None``:
            0.2 s); without one, the intent confidence (``None``: 0.9), and ``None`` is off.
        vad: the streams' :class:`~speech_intent.vad.VADOptions` (and those of ``/v1/predict?segment=true``).
        threads: torch intra-op threads of the model workers, pinned when the app starts, shared among
            ``workers`` (``None``: leave torch's setting; ``speech-intent serve`` passes the available cores).
        workers: batches run at once, each by its own worker thread on ``threads // workers`` threads
            (the pipeline's ASR should have as many workers: ``num_workers`` of faster-whisper). On a
            2-core CPU two single-thread workers answered lone and concurrent requests faster than one
            on both threads (benchmarks/README.md); with more cores or larger models, measure.
        redact: when set, every answer (``/v1/predict`` rows, ``/v1/classify`` predictions, transcriptions,
            stream events) is redacted (:class:`~speech_intent.privacy.redact.Redactor`; ``None``: off).
        speak: when set, the dialogue's answers are spoken with these
            :class:`~speech_intent.synthesis.speaker.SpeakerOptions` (``audio`` of ``POST /v1/dialogue/{session}``,
            ``audio`` events of ``WS /v1/dialogue/{session}/stream``; ``None``: text only).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: Optional[str] = None
    cors_origins: Tuple[str, ...] = ()
    allowed_hosts: Tuple[str, ...] = ()
    max_body_bytes: int = 25 * 1024 * 1024
    max_audio_seconds: float = 30.0
    max_files: int = 32
    max_texts: int = 256
    max_text_chars: int = 2000
    max_batch: int = 8
    max_wait: float = 0.05
    queue_size: int = 64
    max_streams: int = 32
    max_frame_bytes: int = 1024 * 1024
    partial_interval: Optional[float] = 1.0
    early_endpoint: Optional[float] = None
    early_confidence: Optional[float] = None
    vad: VADOptions = field(default_factory=VADOptions)
    threads: Optional[int] = None
    workers: int = 1
    redact: Optional[RedactionOptions] = None
    speak: Optional[SpeakerOptions] = None

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.api_key:
            raise ConfigError(f"binding {self.host} (not loopback) needs an API key: --api-key or ${API_KEY_ENV}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("the API key must be at least 8 characters long")
        check_int("port", self.port, minimum=0, maximum=65535)
        for name in ("max_body_bytes", "max_files", "max_texts", "max_text_chars", "max_batch", "queue_size",
                     "max_streams", "max_frame_bytes", "workers"):
            check_int(name, getattr(self, name))
        check_int("threads", self.threads, maximum=1024, optional=True)
        if not 0.1 <= self.max_audio_seconds <= 3600:
            raise ConfigError(f"max_audio_seconds must be from 0.1 to 3600, got {self.max_audio_seconds!r}")
        if not 0.0 <= self.max_wait <= 1.0:
            raise ConfigError(f"max_wait must be from 0 to 1 second, got {self.max_wait!r}")
        if self.partial_interval is not None and not 0.1 <= self.partial_interval <= 60:
            raise ConfigError(f"partial_interval must be from 0.1 to 60 seconds, got {self.partial_interval!r}")
        if self.early_endpoint is not None and not 0.0 <= self.early_endpoint <= self.vad.trailing_silence:
            raise ConfigError(f"early_endpoint must be from 0 to the trailing silence ({self.vad.trailing_silence} s), "
                              f"got {self.early_endpoint!r}")
        if self.early_confidence is not None and not 0.0 <= self.early_confidence <= 1.0:
            raise ConfigError(f"early_confidence must be from 0 to 1, got {self.early_confidence!r}")
        for name in self.allowed_hosts:
            if name != "*" and not _is_host_name(name):
                raise ConfigError(f"allowed host {name!r} must be a name or address alone, without a scheme, "
                                  "port or path (e.g. speech.example.com)")
        if self.redact is not None and not isinstance(self.redact, RedactionOptions):
            raise ConfigError(f"redact must be RedactionOptions or None, got {type(self.redact).__name__}")
        if self.speak is not None and not isinstance(self.speak, SpeakerOptions):
            raise ConfigError(f"speak must be SpeakerOptions or None, got {type(self.speak).__name__}")
        if "*" in self.cors_origins and self.api_key:
            raise ConfigError("CORS origin '*' together with an API key would expose the key to any page; "
                              "list the allowed origins")

    @property
    def micro_batching(self) -> bool:
        return self.max_batch > 1

    def to_dict(self) -> Dict[str, Any]:
        """The settings, without the API key (only whether one is set)."""
        out = asdict(self)
        out["api_key"] = self.api_key is not None
        out["cors_origins"] = list(self.cors_origins)
        out["allowed_hosts"] = list(self.allowed_hosts)
        return out
