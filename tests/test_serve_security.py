"""Who may use the service (``speech_intent/serve/auth.py`` and the guard of ``middleware.py``), in
process: the API key, CORS, the origins that may post or open a stream, the ``Host`` names answered
(DNS rebinding), a path prefix; and the 503 of a full queue behind the key."""
from __future__ import annotations

import asyncio
import json

import pytest

from speech_intent.errors import OverloadedError
from tests.serving import LOCAL, STREAM

pytest.importorskip("httpx")  # the in-process test client
pytest.importorskip("fastapi")


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
