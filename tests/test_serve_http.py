"""The HTTP API (``speech_intent/serve/http_api.py``, the errors of ``app.py``): a real ``speech-intent serve``
process (uvicorn on a free loopback port, tiny Whisper + tiny BERT) answering ``/health``, ``/v1/info``,
``/v1/predict``, ``/v1/classify`` and ``/v1/audio/transcriptions``, its limits, bad input and fuzzing; plus
in-process checks of the JSON error shape."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.conftest import LABELS
from tests.serving import AUDIO, LOCAL, recording, uploads, wav_bytes, with_silences

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

ROW_KEYS = {"path", "transcript", "transcript_confidence", "duration", "in_grammar", "grammar_margin", "text",
            "intent", "confidence", "top_k", "slots", "slot_spans", "error"}


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
    response = httpx.post(server.url + "/v1/predict", files=uploads("001_set_alarm.wav", "007_get_weather.wav"),
                          timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    assert [r["path"] for r in rows] == ["001_set_alarm.wav", "007_get_weather.wav"]
    for row in rows:
        assert set(row) == ROW_KEYS and row["error"] is None and row["intent"] in LABELS
        assert row["duration"] == pytest.approx(len(recording(row["path"])) / 16000)


def test_several_files_some_bad_give_a_row_each_and_none_usable_a_422(server):
    url = server.url + "/v1/predict"
    mixed = (uploads("001_set_alarm.wav") + [("files", ("notes.wav", b"this is not audio", "audio/wav")),
                                            ("files", ("empty.wav", b"", "audio/wav"))] + uploads("007_get_weather.wav"))
    response = httpx.post(url, files=mixed, timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    assert [r["path"] for r in rows] == ["001_set_alarm.wav", "notes.wav", "empty.wav", "007_get_weather.wav"]
    assert all(set(row) == ROW_KEYS for row in rows)
    assert [r["error"] is None for r in rows] == [True, False, False, True]
    assert rows[0]["intent"] in LABELS and rows[3]["intent"] in LABELS
    assert rows[1]["error"].startswith("notes.wav: ") and "not a readable audio" in rows[1]["error"]
    assert rows[2]["error"] == "empty.wav: empty upload" and rows[2]["intent"] is None and rows[2]["transcript"] is None
    long = wav_bytes(np.zeros(16000 * 12, np.float32) + 0.01)
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
    data = wav_bytes(audio)  # 17 s: over the server's --max-duration 10
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
    short = httpx.post(url, files=[("files", ("short.wav", wav_bytes(np.zeros(100, np.float32)), "audio/wav"))])
    assert short.status_code == 400 and "too short" in short.json()["error"]["message"]
    long = wav_bytes(np.zeros(16000 * 12, np.float32) + 0.01)  # 12 s: over --max-duration 10 (and under 2 MB)
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
        return httpx.post(server.url + "/v1/predict", files=uploads(names[i]), timeout=120)

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


def test_unknown_routes_and_methods_get_the_json_error_shape(tiny_pipe):
    from fastapi.testclient import TestClient

    from speech_intent.serve import create_app

    with TestClient(create_app(tiny_pipe), base_url=LOCAL) as client:
        missing = client.get("/v1/nothing")
        wrong = client.get("/v1/predict")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "MethodNotAllowed"
    assert "POST" in wrong.headers["allow"]


def test_a_text_that_is_not_valid_unicode_is_a_json_422(tiny_pipe):
    from fastapi.testclient import TestClient

    from speech_intent.serve import create_app

    with TestClient(create_app(tiny_pipe), raise_server_exceptions=False, base_url=LOCAL) as client:
        bad = client.post("/v1/classify", content=b'{"texts": ["play \\ud800 jazz"]}',  # valid JSON, a lone surrogate
                          headers={"content-type": "application/json"})
        assert bad.status_code == 422 and bad.json()["error"]["type"] == "InvalidRequest"
        assert "texts" in bad.json()["error"]["message"]
        assert client.post("/v1/classify", json={"texts": ["play jazz"]}).status_code == 200
