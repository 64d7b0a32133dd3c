"""The service as a real process (uvicorn on a free loopback port, tiny Whisper + tiny BERT): HTTP API,
WebSocket streaming of real recordings, limits, bad input, fuzzing; plus in-process checks of the
API key, CORS and the 503 of a full queue."""
from __future__ import annotations

import asyncio
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import pytest
import soundfile as sf

from speech_intent.errors import OverloadedError
from tests.serving import AUDIO, pcm16, recording, with_silences

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
websockets = pytest.importorskip("websockets")

ROW_KEYS = {"path", "transcript", "transcript_confidence", "duration", "in_grammar", "grammar_margin", "text",
            "intent", "confidence", "top_k", "slots", "slot_spans", "error"}
LABELS = ["get_weather", "play_music", "set_alarm"]
LOCAL = "http://127.0.0.1"  # in-process clients: a loopback Host, as a browser on this machine sends
STREAM = "ws://127.0.0.1/v1/stream"  # (the test client gives WebSockets its own host unless the URL names one)


def _wav(audio: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _files(*names):
    return [("files", (name, (AUDIO / name).read_bytes(), "audio/wav")) for name in names]


# ---------------------------------------------------------------------------- HTTP
def test_health_info_docs_and_demo_page(server):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    info = httpx.get(server.url + "/v1/info").json()
    assert info["labels"] == LABELS and info["asr"]["backend"] == "whisper" and info["device"]["asr"] == "cpu"
    assert info["versions"]["fastapi"] and info["limits"]["max_audio_seconds"] == 10.0
    assert info["device"]["threads"] == 1  # --threads 1
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/classify", "/v1/audio/transcriptions", "/v1/info", "/health"} <= set(paths)
    assert httpx.get(server.url + "/docs").status_code == 200
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "/static/app.js" in page.text and "://" not in page.text  # no CDN
    assert "registerProcessor" in httpx.get(server.url + "/static/worklet.js").text
    cors = httpx.get(server.url + "/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in cors.headers  # CORS off by default


def test_predict_gives_the_rows_of_the_predict_command(server):
    response = httpx.post(server.url + "/v1/predict", files=_files("001_set_alarm.wav", "007_get_weather.wav"),
                          timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    assert [r["path"] for r in rows] == ["001_set_alarm.wav", "007_get_weather.wav"]
    for row in rows:
        assert set(row) == ROW_KEYS and row["error"] is None and row["intent"] in LABELS
        assert row["duration"] == pytest.approx(len(recording(row["path"])) / 16000)


def test_several_files_some_bad_give_a_row_each_and_none_usable_a_422(server):
    url = server.url + "/v1/predict"
    mixed = (_files("001_set_alarm.wav") + [("files", ("notes.wav", b"this is not audio", "audio/wav")),
                                            ("files", ("empty.wav", b"", "audio/wav"))] + _files("007_get_weather.wav"))
    response = httpx.post(url, files=mixed, timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    assert [r["path"] for r in rows] == ["001_set_alarm.wav", "notes.wav", "empty.wav", "007_get_weather.wav"]
    assert all(set(row) == ROW_KEYS for row in rows)
    assert [r["error"] is None for r in rows] == [True, False, False, True]
    assert rows[0]["intent"] in LABELS and rows[3]["intent"] in LABELS
    assert rows[1]["error"].startswith("notes.wav: ") and "not a readable audio" in rows[1]["error"]
    assert rows[2]["error"] == "empty.wav: empty upload" and rows[2]["intent"] is None and rows[2]["transcript"] is None
    long = _wav(np.zeros(16000 * 12, np.float32) + 0.01)
    none = httpx.post(url, files=[("files", ("notes.wav", b"this is not audio", "audio/wav")),
                                  ("files", ("long.wav", long, "audio/wav"))])
    assert none.status_code == 422
    error = none.json()["error"]
    assert error["type"] == "AudioError" and [f["file"] for f in error["files"]] == ["notes.wav", "long.wav"]
    assert "not a readable audio" in error["files"][0]["reason"] and "limit" in error["files"][1]["reason"]
    assert "notes.wav" in error["message"] and "long.wav" in error["message"]


def test_predict_segment_splits_a_recording_over_max_duration_into_utterances(server):
    url = server.url + "/v1/predict"
    audio, spans = with_silences(["001_set_alarm.wav", "007_get_weather.wav"], gap=8.0, lead=2.0, tail=2.0)
    data = _wav(audio)  # 17 s: over the server's --max-duration 10
    assert httpx.post(url, files=[("files", ("call.wav", data, "audio/wav"))]).status_code == 413
    response = httpx.post(url, params={"segment": "true"}, timeout=60,
                          files=[("files", ("call.wav", data, "audio/wav")),
                                 ("files", ("bad.wav", b"RIFF....", "audio/wav"))])
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    assert [(r["path"], r["segment"], r["last"]) for r in rows] == [("call.wav", 0, False), ("call.wav", 1, True),
                                                                    ("bad.wav", None, True)]
    assert all(set(row) == ROW_KEYS | {"segment", "start", "end", "last"} for row in rows)
    for row, (start, end) in zip(rows, spans):
        assert abs(row["start"] - start) <= 0.3 and abs(row["end"] - end) <= 0.3, (row["start"], row["end"], start, end)
        assert row["error"] is None and row["intent"] in LABELS
    assert rows[2]["error"].startswith("bad.wav: ")
    alone = httpx.post(url, params={"segment": "true"}, files=[("files", ("bad.wav", b"RIFF....", "audio/wav"))])
    assert alone.status_code == 400 and alone.json()["error"]["file"] == "bad.wav"


def test_classify_and_its_validation(server):
    response = httpx.post(server.url + "/v1/classify", json={"texts": ["wake me at seven", "play jazz"], "top_k": 2})
    predictions = response.json()["predictions"]
    assert len(predictions) == 2 and all(len(p["top_k"]) == 2 and p["intent"] in LABELS for p in predictions)
    bad = httpx.post(server.url + "/v1/classify", json={"texts": []})
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "InvalidRequest"
    assert httpx.post(server.url + "/v1/classify", content=b"{not json",
                      headers={"content-type": "application/json"}).status_code == 422


def test_openai_compatible_transcriptions(server):
    url = server.url + "/v1/audio/transcriptions"
    data = (AUDIO / "001_set_alarm.wav").read_bytes()

    def post(fmt):
        return httpx.post(url, files={"file": ("a.wav", data, "audio/wav")},
                          data={"model": "whisper-1", "response_format": fmt}, timeout=60)

    plain = post("json").json()
    assert set(plain) == {"text"} and isinstance(plain["text"], str)
    assert post("text").text == plain["text"]
    verbose = post("verbose_json").json()
    assert verbose["text"] == plain["text"] and verbose["duration"] == pytest.approx(2.533, abs=0.01)
    assert verbose["segments"][0]["end"] == verbose["duration"] and verbose["intent"] in LABELS
    assert post("srt").status_code == 400


def test_bad_audio_and_limits_get_4xx_json_naming_the_problem(server):
    url = server.url + "/v1/predict"
    garbage = httpx.post(url, files=[("files", ("notes.wav", b"this is not audio", "audio/wav"))])
    assert garbage.status_code == 400
    error = garbage.json()["error"]
    assert error["type"] == "AudioError" and error["file"] == "notes.wav" and "not a readable audio" in error["message"]
    empty = httpx.post(url, files=[("files", ("empty.wav", b"", "audio/wav"))])
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
    short = httpx.post(url, files=[("files", ("short.wav", _wav(np.zeros(100, np.float32)), "audio/wav"))])
    assert short.status_code == 400 and "too short" in short.json()["error"]["message"]
    long = _wav(np.zeros(16000 * 12, np.float32) + 0.01)  # 12 s: over --max-duration 10 (and under 2 MB)
    too_long = httpx.post(url, files=[("files", ("long.wav", long, "audio/wav"))])
    assert too_long.status_code == 413 and too_long.json()["error"]["type"] == "AudioTooLongError"
    big = httpx.post(url, files=[("files", ("big.wav", b"\0" * (3 * 1024 * 1024), "audio/wav"))])
    assert big.status_code == 413 and big.json()["error"]["type"] == "RequestTooLarge"

    def chunked():  # a well-formed start, no Content-Length: counted as it arrives
        yield (b'--b\r\nContent-Disposition: form-data; name="files"; filename="x.wav"\r\n'
               b"Content-Type: audio/wav\r\n\r\n")
        for _ in range(40):
            yield b"x" * 100_000

    streamed = httpx.post(url, content=chunked(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert streamed.status_code == 413
    traversal = httpx.post(url, files=[("files", ("../../etc/passwd", (AUDIO / "014_lights_on.wav").read_bytes(),
                                                  "audio/wav"))], timeout=60)
    assert traversal.status_code == 200 and traversal.json()["results"][0]["path"] == "passwd"  # a label only
    assert httpx.get(server.url + "/health").status_code == 200


def test_concurrent_requests_are_micro_batched_and_independent(server):
    names = sorted(p.name for p in AUDIO.glob("*.wav"))[:8]
    before = httpx.get(server.url + "/v1/info").json()["batching"]

    def one(i):
        if i == 3:  # a bad request among good ones disturbs none of them
            return httpx.post(server.url + "/v1/predict", files=[("files", ("bad.wav", b"RIFF....", "audio/wav"))])
        return httpx.post(server.url + "/v1/predict", files=_files(names[i]), timeout=120)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(8)))
    assert [r.status_code for r in responses] == [200, 200, 200, 400, 200, 200, 200, 200]
    for i, response in enumerate(responses):
        if i != 3:
            assert response.json()["results"][0]["path"] == names[i]
    after = httpx.get(server.url + "/v1/info").json()["batching"]
    assert after["items"] - before["items"] == 7
    assert after["batches"] - before["batches"] < 7  # some requests shared a batch


def test_fuzzed_requests_leave_the_server_alive_with_flat_memory(server):
    psutil = pytest.importorskip("psutil")
    rng = np.random.default_rng(0)
    process = psutil.Process(server.process.pid)
    valid = (AUDIO / "022_get_time.wav").read_bytes()

    client = httpx.Client(timeout=60)  # thread-safe, reuses connections

    def request(i):
        kind = i % 6
        blob = rng.bytes(int(rng.integers(0, 4000)))
        if kind == 0:
            return client.post(server.url + "/v1/predict", files=[("files", (f"f{i}.wav", blob, "audio/wav"))])
        if kind == 1:  # a valid header, corrupted body
            cut = valid[:44] + blob
            return client.post(server.url + "/v1/predict", files=[("files", (f"c{i}.wav", cut, "audio/wav"))])
        if kind == 2:
            return client.post(server.url + "/v1/classify", content=blob, headers={"content-type": "application/json"})
        if kind == 3:
            texts = ["".join(chr(int(c)) for c in rng.integers(32, 0x2FFF, int(rng.integers(1, 60))))]
            return client.post(server.url + "/v1/classify", json={"texts": texts, "top_k": int(rng.integers(-2, 60))})
        if kind == 4:
            return client.post(server.url + "/v1/audio/transcriptions", content=blob,
                              headers={"content-type": "multipart/form-data; boundary=xyz"})
        return client.request(["GET", "POST", "PUT", "DELETE"][i % 4], server.url + "/v1/" + blob[:8].hex())

    def run(count, offset):
        with ThreadPoolExecutor(8) as pool:
            return [r.status_code for r in pool.map(request, range(offset, offset + count))]

    with client:
        run(60, 0)  # warm up the allocators
        rss_before = process.memory_info().rss
        codes = run(300, 60)
        rss_after = process.memory_info().rss
    assert server.alive() and httpx.get(server.url + "/health").status_code == 200
    assert all(code < 500 for code in codes), sorted(set(codes))
    assert rss_after - rss_before < 60 * 1024 * 1024, (rss_before, rss_after)


def test_binding_another_address_needs_an_api_key(capsys, monkeypatch):
    from speech_intent.cli import main

    monkeypatch.delenv("SPEECH_INTENT_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 1  # refused before any model loads
    assert "API key" in capsys.readouterr().err


# ---------------------------------------------------------------------------- WebSocket
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


# ---------------------------------------------------------------------------- in process: key, CORS, 503
@pytest.fixture(scope="module")
def tiny_pipe(tiny_whisper_pipeline_dir):
    from speech_intent import SpeechIntentPipeline

    return SpeechIntentPipeline.from_pretrained(tiny_whisper_pipeline_dir, device="cpu")


def test_api_key_cors_and_a_full_queue(tiny_pipe):
    from fastapi.testclient import TestClient

    from speech_intent.errors import ConfigError
    from speech_intent.serve import ServeOptions, create_app

    with pytest.raises(ConfigError, match="API key"):
        ServeOptions(host="0.0.0.0")
    config = ServeOptions(host="0.0.0.0", api_key="secret-key-1", cors_origins=("http://app.example",))
    app = create_app(tiny_pipe, config)
    with TestClient(app, base_url=LOCAL) as client:
        assert client.get("/health").status_code == 200  # open
        assert client.get("/v1/info").status_code == 401
        assert client.get("/v1/info", headers={"Authorization": "Bearer secret-key-1"}).status_code == 200
        assert client.get("/v1/info", headers={"X-API-Key": "wrong-key-00"}).status_code == 401
        assert client.get("/v1/info").json()["error"]["type"] == "Unauthorized"
        info = client.get("/v1/info", headers={"X-API-Key": "secret-key-1"}).json()
        assert "secret" not in json.dumps(info)
        preflight = client.options("/v1/predict", headers={"Origin": "http://app.example",
                                                           "Access-Control-Request-Method": "POST"})
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"

        def overloaded(*args, **kwargs):
            raise OverloadedError("the queue is full", retry_after=2.2)

        app.state.service.batcher.submit_texts = overloaded
        busy = client.post("/v1/classify", json={"texts": ["hi"]}, headers={"X-API-Key": "secret-key-1"})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "3"


def test_only_the_services_own_pages_and_configured_origins_may_open_a_stream(tiny_pipe):
    """Browsers apply no CORS to WebSockets: without this, any site the user visits could stream to the
    service on their machine. The demo (same origin), configured origins and non-browser clients may."""
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from speech_intent.serve import ServeOptions, create_app

    with TestClient(create_app(tiny_pipe, ServeOptions(cors_origins=("http://app.example",))), base_url=LOCAL) as client:
        for origin in (None, LOCAL, "http://app.example"):
            headers = {"origin": origin} if origin else {}
            with client.websocket_connect(STREAM, headers=headers) as ws:
                assert ws.receive_json()["type"] == "ready", origin
        for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example"):
            with pytest.raises(WebSocketDisconnect) as refused:
                with client.websocket_connect(STREAM, headers={"origin": origin}) as ws:
                    ws.receive_json()
            assert refused.value.code == 1008, origin


def test_a_service_on_loopback_answers_only_its_own_host_names(tiny_pipe):
    """A site whose domain is re-pointed at 127.0.0.1 (DNS rebinding) is same-origin to the browser: the
    ``Host`` it sends is the site's, not one of this machine's names, and is refused."""
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from speech_intent.serve import ServeOptions, create_app

    app = create_app(tiny_pipe, ServeOptions(allowed_hosts=("speech.internal",)))
    with TestClient(app, base_url=LOCAL) as client:
        for host in ("127.0.0.1:8000", "localhost", "[::1]:8000", "127.0.0.2", "speech.internal:8000",
                     "localhost.:8000", "Speech.Internal."):  # a name's fully qualified form: the same name
            assert client.get("/health", headers={"host": host}).status_code == 200, host
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "[::1", "", ".", "evil.example."):
            refused = client.get("/health", headers={"host": host})
            assert refused.status_code == 400 and refused.json()["error"]["type"] == "InvalidHost", host
        evil = {"host": "evil.example:8000", "origin": "http://evil.example:8000"}  # same-origin to the browser
        assert client.post("/v1/classify", json={"texts": ["hi"]}, headers=evil).status_code == 400
        with pytest.raises(WebSocketDisconnect) as closed:
            with client.websocket_connect(STREAM, headers=evil) as ws:
                ws.receive_json()
        assert closed.value.code == 1008
    keyed = create_app(tiny_pipe, ServeOptions(host="0.0.0.0", api_key="secret-key-1"))
    with TestClient(keyed, base_url="http://speech.example.com") as client:  # any name: the key guards it
        assert client.get("/health").status_code == 200


def test_allowed_hosts_on_any_address_add_to_this_machines_names(tiny_pipe):
    """Bound to all interfaces with ``--allowed-host``, a health check on the machine itself
    (``curl http://127.0.0.1:8000/health``, a container's HEALTHCHECK) is still answered."""
    from fastapi.testclient import TestClient

    from speech_intent.serve import ServeOptions, create_app

    config = ServeOptions(host="0.0.0.0", api_key="secret-key-1", allowed_hosts=("speech.example.com",))
    with TestClient(create_app(tiny_pipe, config), base_url=LOCAL) as client:
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "speech.example.com"):
            assert client.get("/health", headers={"host": host}).status_code == 200, host
        refused = client.get("/health", headers={"host": "evil.example"})
        assert refused.status_code == 400 and refused.json()["error"]["type"] == "InvalidHost"


def test_an_allowed_host_is_a_bare_name_or_address(tiny_pipe, capsys):
    """``--allowed-host`` is compared with the name in ``Host``: one given with a port or a scheme
    would never match, so it is refused before the models load; an IPv6 address may have brackets."""
    from fastapi.testclient import TestClient

    from speech_intent.cli import main
    from speech_intent.errors import ConfigError
    from speech_intent.serve import ServeOptions, create_app

    for wrong in ("speech.example.com:8443", "https://speech.example.com", "speech.example.com/", ""):
        with pytest.raises(ConfigError, match="allowed host"):
            ServeOptions(allowed_hosts=(wrong,))
    assert main(["serve", "--allowed-host", "speech.example.com:8443"]) == 1
    assert "speech.example.com:8443" in capsys.readouterr().err
    app = create_app(tiny_pipe, ServeOptions(allowed_hosts=("[fd00::1]", "fd00::2", "192.168.1.5")))
    with TestClient(app, base_url=LOCAL) as client:
        for host in ("[fd00::1]:8000", "[fd00::2]", "192.168.1.5:8000"):
            assert client.get("/health", headers={"host": host}).status_code == 200, host


def test_pages_of_other_sites_cannot_post_and_refused_bodies_are_never_read(tiny_pipe):
    """CORS only keeps a page from reading an answer; without this check any site could make a
    service without an API key run the models. And a request without the key gets its 401 before a
    byte of its body is read."""
    from fastapi.testclient import TestClient

    from speech_intent.serve import ServeOptions, create_app

    with TestClient(create_app(tiny_pipe, ServeOptions(cors_origins=("http://app.example",))), base_url=LOCAL) as client:
        for origin in (None, LOCAL, "http://app.example"):
            headers = {"origin": origin} if origin else {}
            assert client.post("/v1/classify", json={"texts": ["hi"]}, headers=headers).status_code == 200, origin
        for origin in ("http://evil.example", "null", "http://127.0.0.1:9999"):
            refused = client.post("/v1/classify", json={"texts": ["hi"]}, headers={"origin": origin})
            assert refused.status_code == 403 and refused.json()["error"]["type"] == "Forbidden", origin
        assert client.get("/v1/info", headers={"origin": "http://evil.example"}).status_code == 200  # nothing run

    app = create_app(tiny_pipe, ServeOptions(api_key="secret-key-1"))
    sent: list = []

    async def receive():
        raise AssertionError("the body was read before the API key was checked")

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "raw_path": b"/v1/predict",
             "query_string": b"", "root_path": "", "scheme": "http", "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 50000), "http_version": "1.1",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-length", b"1000000"),
                         (b"content-type", b"multipart/form-data; boundary=x"), (b"x-api-key", b"wrong-key-00")]}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 401
    assert json.loads(sent[1]["body"])["error"]["type"] == "Unauthorized"


def test_the_services_own_pages_pass_whether_or_not_the_host_names_the_default_port(tiny_pipe):
    """A reverse proxy may forward ``Host: NAME:443`` (nginx ``$host:$server_port``) while the browser's
    ``Origin`` leaves the default port out: the demo page behind it is still the service's own page."""
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from speech_intent.serve import ServeOptions, create_app

    app = create_app(tiny_pipe, ServeOptions(allowed_hosts=("speech.example.com",)))
    texts = {"texts": ["hi"]}
    with TestClient(app, base_url=LOCAL) as client:
        for host, origin in (("speech.example.com:443", "https://speech.example.com"),
                             ("speech.example.com", "https://speech.example.com:443"),
                             ("127.0.0.1:80", "http://127.0.0.1"), ("[::1]:8000", "http://[::1]:8000")):
            page = {"host": host, "origin": origin}
            assert client.post("/v1/classify", json=texts, headers=page).status_code == 200, page
            with client.websocket_connect(STREAM, headers=page) as ws:
                assert ws.receive_json()["type"] == "ready", page
        for host, origin in (("127.0.0.1:8000", "http://127.0.0.1"), ("127.0.0.1", "http://127.0.0.1:8000"),
                             ("speech.example.com:443", "https://speech.example.com:8443")):
            page = {"host": host, "origin": origin}
            assert client.post("/v1/classify", json=texts, headers=page).status_code == 403, page
            with pytest.raises(WebSocketDisconnect):
                with client.websocket_connect(STREAM, headers=page) as ws:
                    ws.receive_json()


def test_the_guard_holds_when_the_service_is_served_under_a_path_prefix(tiny_pipe):
    """Behind ``uvicorn --root-path /speech`` (or mounted in a larger app) the request's path keeps the
    prefix: the key and origin checks still apply to the service's ``/v1/*``."""
    from fastapi.testclient import TestClient

    from speech_intent.serve import ServeOptions, create_app

    app = create_app(tiny_pipe, ServeOptions(api_key="secret-key-1"))
    with TestClient(app, base_url=LOCAL, root_path="/speech") as client:
        texts = {"texts": ["hi"]}
        refused = client.post("/speech/v1/classify", json=texts)
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "Unauthorized"
        assert client.get("/speech/v1/info").status_code == 401
        key = {"x-api-key": "secret-key-1"}
        assert client.post("/speech/v1/classify", json=texts, headers=key).status_code == 200
        other = client.post("/speech/v1/classify", json=texts, headers={**key, "origin": "http://evil.example"})
        assert other.status_code == 403 and other.json()["error"]["type"] == "Forbidden"


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


class _StubPipeline:
    """A stand-in for the pipeline behind the micro-batcher: records each batch's size and the torch
    threads it ran with; ``delay`` seconds per batch; with ``gate``, each batch first waits (up to 10 s)
    for it to be set; a batch holding a 3-sample clip raises."""

    max_duration = 30.0

    def __init__(self, delay: float = 0.0, gate=None) -> None:
        self.delay, self.gate, self.calls, self.threads = delay, gate, [], []

    def __call__(self, items, batch_size):
        import torch

        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append(len(items))
        self.threads.append(torch.get_num_threads())
        time.sleep(self.delay)
        if any(len(x) == 3 for x in items):
            raise RuntimeError("boom")
        return [type("R", (), {"error": None, "path": "<array #0>"})() for _ in items]


def test_the_worker_pins_its_torch_threads_and_serve_defaults_to_the_cores(monkeypatch):
    import torch

    from speech_intent.cli import build_parser
    from speech_intent.cli.serve import config_from_args
    from speech_intent.device import available_cpus
    from speech_intent.serve.batcher import MicroBatcher

    probe = _StubPipeline()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for threads in (None, 1):  # unset: what a new thread gets (here 2); pinned in the worker: 1
            batcher = MicroBatcher(probe, threads=threads).start()  # type: ignore[arg-type]
            try:
                batcher.submit_audio([np.zeros(5)]).result(5)
            finally:
                batcher.stop()
    finally:
        torch.set_num_threads(before)
    assert probe.threads == [2, 1]
    monkeypatch.delenv("SPEECH_INTENT_API_KEY", raising=False)
    assert config_from_args(build_parser().parse_args(["serve"])).threads == available_cpus()
    assert config_from_args(build_parser().parse_args(["serve", "--threads", "3"])).threads == 3
    workers = {tuple(flags): config_from_args(build_parser().parse_args(["serve", *flags])).workers
               for flags in (["--threads", "1"], ["--threads", "2", "--device", "cpu"], ["--workers", "3"])}
    assert workers == {("--threads", "1"): 1, ("--threads", "2", "--device", "cpu"): 2, ("--workers", "3"): 3}
    from speech_intent.errors import ConfigError
    from speech_intent.serve import ServeOptions

    with pytest.raises(ConfigError, match="threads"):
        ServeOptions(threads=0)
    with pytest.raises(ConfigError, match="workers"):
        ServeOptions(workers=0)


def test_several_workers_run_batches_at_once_each_on_its_share_of_the_threads():
    import threading

    from speech_intent.serve.batcher import MicroBatcher

    class Meeting(_StubPipeline):  # each batch waits until two batches run at once
        def __init__(self) -> None:
            super().__init__()
            self.meet = threading.Barrier(2, timeout=3)

        def __call__(self, items, batch_size):
            self.meet.wait()
            return super().__call__(items, batch_size)

    for workers in (2, 1):
        pipe = Meeting()
        batcher = MicroBatcher(pipe, max_batch=1, threads=2, workers=workers).start()  # type: ignore[arg-type]
        try:
            jobs = [batcher.submit_audio([np.zeros(5)]) for _ in range(2)]
            if workers == 2:
                assert all(len(job.result(10)) == 1 for job in jobs)
                assert pipe.threads == [1, 1] and batcher.stats.batches == 2  # 2 threads shared by 2 workers
            else:  # one worker: the first batch waits alone for a second that cannot start
                with pytest.raises(threading.BrokenBarrierError):
                    jobs[0].result(10)
        finally:
            batcher.stop()
        assert not [t for t in threading.enumerate() if t.name.startswith("speech-intent-worker")]


def test_requests_go_to_idle_workers_first_and_are_batched_when_all_are_busy():
    from speech_intent.serve.batcher import MicroBatcher

    slow = _StubPipeline(delay=0.4)
    batcher = MicroBatcher(slow, max_batch=4, max_wait=1.0, workers=2).start()  # type: ignore[arg-type]
    try:
        coming = batcher.arrival()  # on its way: a lone worker would wait for it (up to max_wait) ...
        first = batcher.submit_audio([np.zeros(5)])
        time.sleep(0.2)
        assert slow.calls == [1]  # ... but the other worker is idle: the batch ran at once, alone
        second = batcher.submit_audio([np.zeros(5)], arrival=coming)
        time.sleep(0.1)  # both workers busy now
        queued = [batcher.submit_audio([np.zeros(5)]) for _ in range(4)]
        assert all(len(job.result(10)) == 1 for job in [first, second, *queued])
        assert slow.calls == [1, 1, 4]  # the four that queued while both were busy: one batch
    finally:
        batcher.stop()


def test_a_service_with_two_workers_answers_concurrent_requests_as_one_does(tiny_pipe):
    from fastapi.testclient import TestClient

    from speech_intent.serve import ServeOptions, create_app

    names = ["001_set_alarm.wav", "007_get_weather.wav", "002_set_alarm.wav"] * 2
    answers = {}
    for workers in (1, 2):
        with TestClient(create_app(tiny_pipe, ServeOptions(workers=workers, threads=2)), base_url=LOCAL) as client:
            with ThreadPoolExecutor(6) as pool:
                responses = list(pool.map(lambda name: client.post("/v1/predict", files=_files(name)), names))
            assert all(r.status_code == 200 for r in responses)
            answers[workers] = [(r.json()["results"][0]["path"], r.json()["results"][0]["transcript"])
                                for r in responses]
            assert client.get("/v1/info").json()["batching"]["workers"] == workers
    assert answers[2] == answers[1] and [path for path, _ in answers[2]] == names


def test_the_batcher_queue_is_bounded_and_a_failing_batch_fails_only_its_jobs(tiny_pipe):
    from speech_intent.serve.batcher import MicroBatcher

    slow = _StubPipeline(delay=0.3)
    batcher = MicroBatcher(slow, max_batch=4, max_wait=0.05, queue_size=2).start()  # type: ignore[arg-type]
    try:
        first = batcher.submit_audio([np.zeros(5)])
        time.sleep(0.1)  # the worker is busy with it
        waiting = [batcher.submit_audio([np.zeros(5)]), batcher.submit_audio([np.zeros(5)])]
        with pytest.raises(OverloadedError) as full:
            batcher.submit_audio([np.zeros(5)])
        assert full.value.retry_after >= 1
        assert len(first.result(5)) == 1 and all(len(f.result(5)) == 1 for f in waiting)
        assert slow.calls == [1, 2]  # the two waiting requests shared a batch
        bad = batcher.submit_audio([np.zeros(3)])
        with pytest.raises(RuntimeError):
            bad.result(5)
        assert len(batcher.submit_audio([np.zeros(5)]).result(5)) == 1  # the worker survived
    finally:
        batcher.stop()


def test_a_batch_waits_only_for_requests_on_their_way():
    from speech_intent.serve.batcher import MicroBatcher

    record = _StubPipeline()
    batcher = MicroBatcher(record, max_batch=4, max_wait=30.0).start()  # type: ignore[arg-type]
    try:
        lone = batcher.submit_audio([np.zeros(5)])
        assert len(lone.result(10)) == 1  # nothing else on its way: no 30 s wait
        coming = batcher.arrival()  # a request still being received ...
        first = batcher.submit_audio([np.zeros(5)], arrival=batcher.arrival())
        time.sleep(0.3)
        assert not first.done() and batcher.arriving == 1  # ... so the batch waits for it
        second = batcher.submit_audio([np.zeros(5)], arrival=coming)
        assert len(first.result(10)) == 1 and len(second.result(10)) == 1 and batcher.arriving == 0
        assert record.calls == [1, 2]  # the second joined the first's batch
        gone = batcher.arrival()
        late = batcher.submit_audio([np.zeros(5)])
        time.sleep(0.1)
        gone.done()  # a request that ended without a job (e.g. undecodable audio) stops the wait
        assert len(late.result(10)) == 1 and record.calls == [1, 2, 1]
    finally:
        batcher.stop()


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

        def __call__(self, items, batch_size=8):
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


def test_a_cancelled_request_does_not_kill_the_worker():
    import threading

    from speech_intent.serve.batcher import MicroBatcher

    gate = threading.Event()
    held = _StubPipeline(gate=gate)
    batcher = MicroBatcher(held, max_batch=1).start()  # type: ignore[arg-type]
    try:
        running = batcher.submit_audio([np.zeros(5)])
        gone = batcher.submit_audio([np.zeros(5)])
        assert gone.cancel()  # its client went away (asyncio.wrap_future cancels it with the request's task)
        gate.set()
        assert len(running.result(10)) == 1
        assert len(batcher.submit_audio([np.zeros(5)]).result(10)) == 1  # the worker still runs
        assert held.calls == [1, 1]  # the cancelled job was not run
    finally:
        batcher.stop()


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


def test_unknown_routes_and_methods_get_the_json_error_shape(tiny_pipe):
    from fastapi.testclient import TestClient

    from speech_intent.serve import create_app

    with TestClient(create_app(tiny_pipe), base_url=LOCAL) as client:
        missing = client.get("/v1/nothing")
        wrong = client.get("/v1/predict")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "MethodNotAllowed"
    assert "POST" in wrong.headers["allow"]


def test_a_job_submitted_while_the_worker_stops_is_answered():
    import threading

    from speech_intent.serve.batcher import MicroBatcher

    gate = threading.Event()
    batcher = MicroBatcher(_StubPipeline(gate=gate), max_batch=1).start()  # type: ignore[arg-type]
    running = batcher.submit_audio([np.zeros(5)])
    for _ in range(1000):  # until the worker holds it
        if batcher.depth == 0:
            break
        time.sleep(0.01)
    stopping = threading.Thread(target=batcher.stop)
    stopping.start()  # a server shutting down while a request (e.g. a segmented file) still submits
    for _ in range(1000):
        if batcher.depth == 1:  # the stop is queued
            break
        time.sleep(0.01)
    try:
        late = batcher.submit_audio([np.zeros(5)])
    except OverloadedError:
        late = None  # refused at once: fine
    gate.set()
    stopping.join(20)
    assert len(running.result(10)) == 1
    assert late is None or late.done()  # never a future nobody will resolve (its caller would wait forever)


def test_a_text_the_classifier_cannot_take_fails_only_its_own_request(tiny_pipe):
    from speech_intent.serve.batcher import MicroBatcher

    batcher = MicroBatcher(tiny_pipe, max_batch=4, max_wait=30.0).start()
    try:
        coming = batcher.arrival()  # the good request is on its way: the bad one's batch waits for it
        bad = batcher.submit_texts(["play \ud800 jazz"], arrival=batcher.arrival())  # a lone surrogate
        good = batcher.submit_texts(["play some jazz"], arrival=coming)
        assert good.result(30)[0].text == "play some jazz"  # not failed with its batch-mate
        with pytest.raises(Exception):
            bad.result(30)
    finally:
        batcher.stop()


def test_a_text_that_is_not_valid_unicode_is_a_json_422(tiny_pipe):
    from fastapi.testclient import TestClient

    from speech_intent.serve import create_app

    with TestClient(create_app(tiny_pipe), raise_server_exceptions=False, base_url=LOCAL) as client:
        bad = client.post("/v1/classify", content=b'{"texts": ["play \\ud800 jazz"]}',  # valid JSON, a lone surrogate
                          headers={"content-type": "application/json"})
        assert bad.status_code == 422 and bad.json()["error"]["type"] == "InvalidRequest"
        assert "texts" in bad.json()["error"]["message"]
        assert client.post("/v1/classify", json={"texts": ["play jazz"]}).status_code == 200


def test_a_request_that_does_not_fit_a_batch_goes_to_the_next_free_worker():
    from speech_intent.serve.batcher import MicroBatcher

    class Timed(_StubPipeline):  # a batch takes (its longest clip's samples) / 100 seconds
        def __call__(self, items, batch_size):
            self.delay = max(len(x) for x in items) / 100
            return super().__call__(items, batch_size)

    batcher = MicroBatcher(Timed(), max_batch=2, max_wait=3.0, workers=2).start()  # type: ignore[arg-type]
    try:
        short = batcher.submit_audio([np.zeros(30)])  # one worker busy for 0.3 s
        time.sleep(0.1)
        coming = batcher.arrival()
        long = batcher.submit_audio([np.zeros(200)])  # the other waits for what is on its way ...
        time.sleep(0.1)
        pair = batcher.submit_audio([np.zeros(5), np.zeros(5)], arrival=coming)  # ... which does not fit: 1 + 2 > 2
        assert len(pair.result(10)) == 2
        assert short.done() and not long.done()  # run by the first worker once free, not after the 2 s batch
        assert len(long.result(10)) == 1
    finally:
        batcher.stop()
