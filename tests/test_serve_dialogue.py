"""The session dialogue API (``speech_intent/serve/dialogue_api.py``) through the real application: text turns
(JSON) and audio turns (multipart) understood by the service's worker, answered by the assistant; sessions
independent; an application's own assistant with handlers; bad requests as JSON errors."""
from __future__ import annotations

import pytest

from speech_intent.dialogue import Assistant
from speech_intent.pipeline import SpeechIntentPipeline
from tests.serving import LOCAL, wav_bytes

from .test_dialogue import DOMAIN, TableNLU

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


@pytest.fixture()
def client(tiny_pipe):
    from fastapi.testclient import TestClient

    from speech_intent.serve import create_app

    pipeline = SpeechIntentPipeline(tiny_pipe.asr, TableNLU())  # tiny Whisper for audio, the table NLU for text
    app = create_app(pipeline)
    with TestClient(app, base_url=LOCAL) as test_client:
        test_client.app_ref = app
        yield test_client


def test_text_turns_keep_each_session(client):
    first = client.post("/v1/dialogue/alice", json={"text": "set an alarm"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["response"] == "For what time?" and body["decision"]["act"] == "utter_ask_set_alarm_time"
    assert body["state"]["requested_slot"] == "time" and body["audio"] is None
    other = client.post("/v1/dialogue/bob", json={"text": "seven thirty"}).json()
    assert other["decision"]["act"] == "set_alarm"  # bob has no question pending: a new request, complete
    done = client.post("/v1/dialogue/alice", json={"text": "seven thirty"}).json()
    assert done["response"] == "Alarm set for seven thirty." and done["state"]["active_intent"] is None
    assert client.delete("/v1/dialogue/alice").json() == {"session": "alice", "reset": True}
    assert client.post("/v1/dialogue/alice", json={"text": "yes"}).json()["state"]["turns"] == 1


def test_an_audio_turn_goes_through_the_pipeline(client, sine):
    reply = client.post("/v1/dialogue/carol", files={"file": ("turn.wav", wav_bytes(sine), "audio/wav")})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["result"]["path"] == "turn.wav" and "transcript" in body["result"]
    assert body["decision"]["act"] == "fallback"  # random tiny Whisper: nothing the table NLU understands


def test_the_application_assistant_runs_its_handlers_and_speaks(client):
    import numpy as np

    calls = []

    class Voice:
        def synthesize(self, text):
            return np.zeros(1600, np.float32), 16000

    assistant = Assistant(client.app_ref.state.service.pipeline, DOMAIN, synthesizer=Voice())
    assistant.add_handler("get_weather", lambda action: calls.append(action.slots) or {"forecast": "sunny"})
    client.app_ref.state.assistant = assistant
    body = client.post("/v1/dialogue/dave", json={"text": "what's the weather in Chicago"}).json()
    assert calls == [{"city": "Chicago"}] and body["response"] == "The weather in Chicago: sunny."
    import base64
    import io

    import soundfile as sf

    audio, rate = sf.read(io.BytesIO(base64.b64decode(body["audio"])))
    assert rate == 16000 and len(audio) == 1600


def test_bad_requests_are_json_errors(client):
    assert client.post("/v1/dialogue/bad%20id", json={"text": "hi"}).status_code == 400
    no_text = client.post("/v1/dialogue/x", json={"words": "hi"})
    assert no_text.status_code == 400 and "text" in no_text.json()["error"]["message"]
    not_json = client.post("/v1/dialogue/x", content=b"hello", headers={"content-type": "text/plain"})
    assert not_json.status_code == 400
    no_file = client.post("/v1/dialogue/x", files={"other": ("a.txt", b"x", "text/plain")})
    assert no_file.status_code == 400 and "file" in no_file.json()["error"]["message"]
