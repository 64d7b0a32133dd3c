"""``speech-intent serve``: the HTTP + WebSocket service and its browser demo (FastAPI + uvicorn).

Loopback only unless an API key is set (``--api-key`` or ``$SPEECH_INTENT_API_KEY``); the settings
are checked before any model is loaded.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..device import available_cpus, default_workers
from ..errors import ConfigError
from ..serve import API_KEY_ENV, ServeOptions
from ..synthesis.speaker import SpeakerOptions
from ..vad import VADOptions
from .affect import add_affect_args, check_affect_args, with_affect
from .options import add_model_args, add_vad_args, build_pipeline, vad_options
from .redaction import add_redact_args, redaction_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="HTTP + WebSocket service with a browser demo at /")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (not loopback: needs an API key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help=f"required on /v1/* (default: ${API_KEY_ENV})")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow this origin by CORS (repeatable; default: CORS off)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="also answer requests for this Host name (no port), e.g. one a reverse proxy forwards (repeatable; "
                        "'*': any; default: the loopback names and --host)")
    p.add_argument("--max-body-mb", type=float, default=25.0, help="largest request body (413 above it)")
    p.add_argument("--max-wait-ms", type=float, default=50.0,
                   help="how long a batch may wait for requests still being received (a lone request never waits)")
    p.add_argument("--queue-size", type=int, default=64, help="requests waiting at most (503 above it)")
    p.add_argument("--no-micro-batching", action="store_true", help="run each request alone (each worker one at a time; with --workers 1: one request at a time)")
    p.add_argument("--max-streams", type=int, default=32, help="concurrent WebSocket streams at most")
    p.add_argument("--partial-interval", type=float, default=1.0, help="seconds between partials (0: none)")
    p.add_argument("--early-endpoint", type=float, default=None, metavar="SECONDS",
                   help="end an utterance after this much pause when it is a complete, confident command, without "
                        "waiting for the whole --trailing-silence (default: 0.2 with an end-of-turn detector, else off)")
    p.add_argument("--early-confidence", type=float, default=None,
                   help="what an early end needs: the end-of-turn detector's P(complete) (default: its threshold), "
                        "without one the intent confidence (default: 0.9)")
    p.add_argument("--turn", default=None, metavar="DIR|none",
                   help="end-of-turn detector (speech-intent train-turn; default: the intent model's turn/ when it "
                        "has one; none: off)")
    p.add_argument("--workers", type=int, default=None,
                   help="batches run at once, each on its share of --threads (default: 2 on a CPU with 2 or more "
                        "cores, where one batch's decoding and text work overlap the other's model time; else 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads shared by the model workers (each pins --threads // --workers), and "
                        "ONNX Runtime's with --nlu-runtime onnx / onnx-int8 (default: the cores this process may use)")
    p.add_argument("--speak", nargs="?", const="hibari", default=None, choices=("hibari", "espeak"),
                   help="speak the dialogue's answers (POST /v1/dialogue/..., WS /v1/dialogue/SESSION/stream, the "
                        "/chat demo): hibari-tts's default voice (espeak-ng when hibari is missing), or espeak")
    p.add_argument("--speak-voice", default=None, metavar="VOICE",
                   help="the --speak voice (hibari: heart; espeak-ng: en-us, ...; default: the backend's)")
    p.add_argument("--speak-speed", type=float, default=1.0, help="the --speak speaking speed (0.5 to 2; 1: normal)")
    add_vad_args(p)
    add_model_args(p)
    add_affect_args(p)
    add_redact_args(p)
    p.set_defaults(func=run, trailing_silence=None)  # resolved in config_from_args: longer with a turn detector
    return p


def _has_turn(args: argparse.Namespace) -> bool:
    """Whether the streams will have an end-of-turn detector (``--turn``, or one saved with the model)."""
    from pathlib import Path

    from ..turn import SUBDIR

    if args.turn is not None:
        return args.turn != "none"
    return any(d and ((Path(d) / SUBDIR).is_dir() or (Path(d) / "intent" / SUBDIR).is_dir())
               for d in (args.intent, args.pipeline))


def config_from_args(args: argparse.Namespace) -> ServeOptions:
    from ..live import TURN_TRAILING_SILENCE

    if args.trailing_silence is None:  # an unfinished turn may pause longer when a detector ends finished ones
        args.trailing_silence = TURN_TRAILING_SILENCE if _has_turn(args) else VADOptions().trailing_silence
    threads = args.threads if args.threads is not None else available_cpus()
    return ServeOptions(
        host=args.host, port=args.port, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        cors_origins=tuple(args.cors_origin), allowed_hosts=tuple(args.allowed_host), max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_audio_seconds=args.max_duration, max_batch=1 if args.no_micro_batching else args.batch_size,
        max_wait=args.max_wait_ms / 1000.0, queue_size=args.queue_size, max_streams=args.max_streams,
        partial_interval=args.partial_interval or None, vad=vad_options(args),
        early_endpoint=args.early_endpoint, early_confidence=args.early_confidence,
        threads=threads, workers=args.workers if args.workers is not None else default_workers(args.device, threads),
        redact=redaction_options(args),
        speak=(SpeakerOptions(backend=args.speak, voice=args.speak_voice, speed=args.speak_speed)
               if args.speak else None),
    )


def _turn(args: argparse.Namespace):
    """``--turn DIR``, else the detector saved with the intent model or pipeline (``None``: none, or ``none``)."""
    from ..turn import EndOfTurnDetector, load_turn_detector

    if args.turn == "none":
        return None
    if args.turn is not None:
        return EndOfTurnDetector.from_pretrained(args.turn)
    found = next((load_turn_detector(d) for d in (args.intent, args.pipeline) if d), None)
    if found is not None:
        print("end-of-turn detector loaded: a complete command ends after a short pause", file=sys.stderr)
    return found


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)  # refuses unsafe settings before the models load
    check_affect_args(args)
    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError as error:
        raise ConfigError(f"the serve command needs FastAPI and uvicorn ({error}): "
                          "pip install 'speech-intent[serve]'") from error
    turn = _turn(args)
    pipeline = with_affect(args, build_pipeline(args, num_workers=config.workers))
    app = create_app(pipeline, config)
    app.state.service.turn = turn  # the streams' end-of-turn detector (serve/ws.py)
    if config.redact is not None:  # log lines too: the root logger's handlers and uvicorn's loggers
        log_filter = app.state.service.redactor.log_filter().install()
        for name in ("uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).addFilter(log_filter)
    print(f"speech-intent serving on http://{config.host}:{config.port} (demo at /, docs at /docs)", file=sys.stderr)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", ws_max_size=config.max_frame_bytes + 1024,
                timeout_graceful_shutdown=5)
    return 0
