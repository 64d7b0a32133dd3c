"""The WebSocket stream (``speech_intent/serve/ws.py``): real recordings streamed to a real
``speech-intent serve`` process in 20 ms frames, in real time and faster, at 16 and 48 kHz, bad input
and vanishing clients; in process: the early endpoint, a recognition that fails, the audio limit."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Optional

import numpy as np
import pytest

from tests.conftest import LABELS
from tests.serving import LOCAL, STREAM, pcm16, recording, with_silences

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
websockets = pytest.importorskip("websockets")


async def _stream(url, audio, *, rate=16000, frame_ms=20, realtime=False, config=True):
    events = []
    async with websockets.connect(url + "/v1/stream", max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        if config:
            await ws.send(json.dumps({"type": "config", "sample_rate": rate}))
            assert json.loads(await ws.recv())["sample_rate"] == rate

        async def receive():
            async for message in ws:
                event = json.loads(message)
                events.append(event)
                if event["type"] == "end":
                    return

        reader = asyncio.create_task(receive())
        data, step = pcm16(audio), 2 * int(rate * frame_ms / 1000)
        began = time.monotonic()
        for i, start in enumerate(range(0, len(data), step)):
            await ws.send(data[start: start + step])
            if realtime:
                await asyncio.sleep(max(0.0, began + (i + 1) * frame_ms / 1000 - time.monotonic()))
            elif i % 10 == 0:
                await asyncio.sleep(0)
        await ws.send(json.dumps({"type": "end"}))
        await asyncio.wait_for(reader, 60)
    return events


def test_stream_a_real_recording_in_20ms_frames_in_real_time(server):
    audio, spans = with_silences(["014_lights_on.wav"], lead=0.5, tail=1.2)
    events = asyncio.run(_stream(server.ws_url, audio, realtime=True))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "speech_start" and "partial" in kinds and kinds.count("final") == 1 and kinds[-1] == "end"
    final = next(e for e in events if e["type"] == "final")
    assert abs(final["start"] - spans[0][0]) < 0.45 and abs(final["end"] - spans[0][1]) < 0.45
    assert final["intent"] in LABELS and final["result"]["error"] is None and final["reason"] == "silence"


def test_stream_faster_than_real_time_two_utterances_and_48k(server):
    import soxr

    audio, _ = with_silences(["001_set_alarm.wav", "007_get_weather.wav"])
    events = asyncio.run(_stream(server.ws_url, audio, config=False))  # no config message: 16 kHz
    assert [e["type"] for e in events].count("final") == 2
    resampled = soxr.resample(audio, 16000, 48000)
    events = asyncio.run(_stream(server.ws_url, resampled, rate=48000, frame_ms=40))
    assert [e["utterance"] for e in events if e["type"] == "final"] == [0, 1]


def test_stream_bad_input_wrong_rate_garbage_and_a_vanishing_client(server):
    async def scenario():
        async with websockets.connect(server.ws_url + "/v1/stream") as ws:  # wrong rate: error, then closed
            await ws.recv()
            await ws.send(json.dumps({"sample_rate": 123}))
            assert "sample_rate" in json.loads(await ws.recv())["message"]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1008
        async with websockets.connect(server.ws_url + "/v1/stream") as ws:  # garbage: errors, stream goes on
            await ws.recv()
            await ws.send("{nonsense")
            assert json.loads(await ws.recv())["type"] == "error"
            await ws.send(json.dumps({"type": "dance"}))
            assert json.loads(await ws.recv())["type"] == "error"
            rng = np.random.default_rng(1)
            for size in (1, 3, 777, 4001, 2):
                await ws.send(rng.bytes(size))
            await ws.send(json.dumps({"type": "end"}))
            while json.loads(await ws.recv())["type"] != "end":
                pass
        ws = await websockets.connect(server.ws_url + "/v1/stream")  # vanishes mid-utterance
        await ws.recv()
        audio, _ = with_silences(["010_play_music.wav"], lead=0.3, tail=0.0)
        data = pcm16(audio[: int(len(audio) * 0.7)])
        for start in range(0, len(data), 640):
            await ws.send(data[start: start + 640])
        ws.transport.abort()
        async with websockets.connect(server.ws_url + "/v1/stream") as ws:  # oversized frame: 1009
            await ws.recv()
            await ws.send(b"\0" * (1024 * 1024 + 10))
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await ws.recv()

    asyncio.run(scenario())
    deadline = time.monotonic() + 30
    while httpx.get(server.url + "/health").json()["streams"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.alive() and httpx.get(server.url + "/health").json()["streams"] == 0


def _replay(ws, data: bytes, frame: int = 640, events: Optional[list] = None) -> list:
    """Through an in-process WebSocket: expect ``ready``, send ``data`` in frames (640 bytes: 20 ms),
    then ``end``; every event up to the service's ``end``, appended to ``events`` as they come."""
    assert ws.receive_json()["type"] == "ready"
    for start in range(0, len(data), frame):
        ws.send_bytes(data[start: start + frame])
    ws.send_text(json.dumps({"type": "end"}))
    events = [] if events is None else events
    while not events or events[-1]["type"] != "end":
        events.append(ws.receive_json())
    return events


def test_the_service_streams_with_an_early_endpoint(tiny_pipe):
    from fastapi.testclient import TestClient

    from speech_intent.errors import ConfigError
    from speech_intent.serve import ServeOptions, create_app

    with pytest.raises(ConfigError, match="early_endpoint"):
        ServeOptions(early_endpoint=1.0)  # over the 0.6 s trailing silence
    audio, _ = with_silences(["001_set_alarm.wav"], lead=0.5, tail=1.0)
    data = pcm16(audio)
    with TestClient(create_app(tiny_pipe, ServeOptions(early_endpoint=0.25, early_confidence=0.0)), base_url=LOCAL) as client:
        assert client.get("/v1/info").json()["stream"]["early_endpoint"] == 0.25
        with client.websocket_connect(STREAM) as ws:
            events = _replay(ws, data)
    finals = [e for e in events if e["type"] == "final"]
    assert len(finals) == 1 and finals[0]["result"]["error"] is None
    text = (finals[0]["transcript"] or "").rstrip()
    assert finals[0]["reason"] == "early_endpoint" or not text or text.endswith((",", ";", ":", "-", "..."))
    assert finals[0]["timings"]["endpoint_delay"] < 0.5 or finals[0]["reason"] != "early_endpoint"


def test_a_stream_whose_recognition_fails_gets_error_finals_and_goes_on(tiny_pipe):
    """A batch that raises (a lost device, a model bug) gives the utterance a final with the error; the
    stream stays open for the next one (it was closed silently, as if the client had gone)."""
    from fastapi.testclient import TestClient

    from speech_intent.serve import ServeOptions, create_app

    class Failing:
        def __init__(self, pipe) -> None:
            self._pipe = pipe

        def __getattr__(self, name):
            return getattr(self._pipe, name)

        def recognise(self, items, names=None, batch_size=8):
            raise RuntimeError("device lost")

    import threading

    audio, _ = with_silences(["001_set_alarm.wav", "014_lights_on.wav"], lead=0.5, tail=1.0)
    data = pcm16(audio)
    events: list = []
    health: list = []

    def talk() -> None:  # in a thread: a stream closed without a word would block receive_json for ever
        with TestClient(create_app(Failing(tiny_pipe), ServeOptions(partial_interval=None)), base_url=LOCAL) as client:
            with client.websocket_connect(STREAM) as ws:
                _replay(ws, data, events=events)
            health.append(client.get("/health").status_code)

    talker = threading.Thread(target=talk, daemon=True)
    talker.start()
    talker.join(120)
    assert health == [200], f"the stream stopped answering after {[e['type'] for e in events]}"
    finals = [e for e in events if e["type"] == "final"]
    assert len(finals) == 2
    assert all("recognition failed (RuntimeError: device lost)" in f["error"] for f in finals)


def test_stream_utterances_are_cut_at_the_services_audio_limit(tiny_whisper_pipeline_dir):
    from fastapi.testclient import TestClient

    from speech_intent import SpeechIntentPipeline
    from speech_intent.serve import ServeOptions, create_app
    from speech_intent.vad import VADOptions

    short = SpeechIntentPipeline.from_pretrained(tiny_whisper_pipeline_dir, device="cpu", max_duration=2.0)
    speech = np.concatenate([recording(n) for n in ("001_set_alarm.wav", "004_set_timer.wav")])
    config = ServeOptions(vad=VADOptions(max_utterance=3.0), partial_interval=None)  # like --max-duration 2
    with TestClient(create_app(short, config), base_url=LOCAL) as client, client.websocket_connect(STREAM) as ws:
        data = pcm16(speech)
        events = _replay(ws, data, frame=len(data))  # one message
    finals = [e for e in events if e["type"] == "final"]
    assert finals and "max_utterance" in {f["reason"] for f in finals}
    assert all(f["error"] is None for f in finals), [f["error"] for f in finals]  # as /v1/predict?segment=true
    assert all(f["end"] - f["start"] <= 2.0 + 1e-6 for f in finals)


def test_a_stream_asks_for_revisions_and_the_services_turn_detector_judges_its_finals(tiny_pipe):
    from fastapi.testclient import TestClient

    from speech_intent.serve import ServeOptions, create_app
    from speech_intent.turn import TurnTrainingOptions, train_turn_detector

    turn = train_turn_detector(["set an alarm for seven", "what is the weather today", "play some music now"],
                               options=TurnTrainingOptions(n_features=2 ** 10, noise=0.0))
    audio, _ = with_silences(("001_set_alarm.wav",))
    app = create_app(tiny_pipe, ServeOptions(partial_interval=None))
    app.state.service.turn = turn  # as speech-intent serve does with the intent model's turn/
    with TestClient(app, base_url=LOCAL) as client:
        with client.websocket_connect(STREAM) as ws:
            assert ws.receive_json()["type"] == "ready"
            ws.send_text(json.dumps({"revisions": True}))
            assert ws.receive_json() == {"type": "config", "sample_rate": 16000, "format": "pcm_s16le", "revisions": True}
            ws.send_bytes(pcm16(audio))
            ws.send_text(json.dumps({"type": "end"}))
            events = []
            while not events or events[-1]["type"] != "end":
                events.append(ws.receive_json())
        finals = [e for e in events if e["type"] == "final"]
        assert finals and all(f["reason"] in ("end_of_turn", "silence") and "turn" in f for f in finals)
        assert all(f["turn"]["label"] in ("complete", "incomplete") for f in finals)
        with client.websocket_connect(STREAM) as ws:
            assert ws.receive_json()["type"] == "ready"
            ws.send_text(json.dumps({"revisions": "yes"}))
            assert "revisions" in ws.receive_json()["message"]
