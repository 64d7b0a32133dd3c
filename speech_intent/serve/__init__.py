"""The live voice-assistant service: HTTP + WebSocket API over a pipeline, with a browser demo.

``create_app(pipeline, ServeOptions(...))`` (in :mod:`.app`) builds the FastAPI application;
``speech-intent serve`` runs it with uvicorn. FastAPI and uvicorn come with the ``serve`` extra
(``pip install 'speech-intent[serve]'``); importing this package does not need them.
"""
from __future__ import annotations

from .options import API_KEY_ENV, ServeOptions, is_loopback

__all__ = ["API_KEY_ENV", "ServeOptions", "create_app", "is_loopback"]


def create_app(pipeline, config=None):
    """See :func:`speech_intent.serve.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(pipeline, config)
