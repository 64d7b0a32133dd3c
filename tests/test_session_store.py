"""Session stores: in memory, and Redis against a real ``redis-server`` started here (skipped without one)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from speech_intent.dialogue import Assistant, MemoryStore, RedisStore, SessionStore
from speech_intent.errors import ConfigError

from .test_dialogue import DOMAIN, TableNLU


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A redis-server on a free port in a temp dir, no persistence; stopped after the module."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not on PATH (apt-get install redis-server)")
    pytest.importorskip("redis")
    import redis

    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer within 5 s")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def test_memory_store_round_trip_copy_and_expiry():
    store = MemoryStore(ttl=0.2)
    assert isinstance(store, SessionStore)
    data = {"slots": {"time": "seven"}}
    store.save("a", data)
    data["slots"]["time"] = "changed"  # the store keeps its own copy
    assert store.load("a") == {"slots": {"time": "seven"}}
    assert store.load("missing") is None
    time.sleep(0.3)
    assert store.load("a") is None and len(store) == 0
    with pytest.raises(ConfigError, match="ttl"):
        MemoryStore(ttl=0)


def test_redis_store_round_trip_delete_and_expiry(redis_url):
    store = RedisStore(redis_url, ttl=0.3, prefix="test-expiry:")
    store.save("s1", {"active_intent": "set_alarm", "slots": {"time": "seven"}})
    assert store.load("s1") == {"active_intent": "set_alarm", "slots": {"time": "seven"}}
    assert 0 < store.client.pttl("test-expiry:s1") <= 300
    store.save("s2", {"turns": 1})
    store.delete("s2")
    assert store.load("s2") is None
    time.sleep(0.5)
    assert store.load("s1") is None  # idle past its ttl: expired by Redis


def test_a_session_continues_across_assistants_sharing_redis(redis_url):
    """Two service replicas: the second answers the follow-up the first one asked for."""
    first = Assistant(TableNLU(), DOMAIN, store=RedisStore(redis_url, prefix="replica:"))
    second = Assistant(TableNLU(), DOMAIN, store=RedisStore(redis_url, prefix="replica:"))
    assert first.respond("set an alarm", session="u1").action == "utter_ask_set_alarm_time"
    turn = second.respond("seven thirty", session="u1")
    assert turn.action == "set_alarm" and turn.decision.slots == {"time": "seven thirty"}
    assert first.state("u1").turns == 2
    second.reset("u1")
    assert first.state("u1").turns == 0


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_sessions_are_independent_in_every_store(kind, request):
    store = MemoryStore() if kind == "memory" else RedisStore(request.getfixturevalue("redis_url"), prefix=f"{kind}:")
    bot = Assistant(TableNLU(), DOMAIN, store=store)
    bot.respond("set an alarm", session="x")
    bot.respond("set a timer", session="y")
    assert bot.state("x").requested_slot == "time"
    assert bot.state("y").requested_slot == "duration"
    assert bot.respond("seven thirty", session="x").action == "set_alarm"
    assert bot.state("y").active_intent == "set_timer"


def test_replicas_take_a_shared_session_one_turn_at_a_time(redis_url):
    """Two assistants (replicas) on one Redis answer turns of the same session from many threads: the Redis lock
    serialises them, so no turn is lost (the count of turns is exact)."""
    import threading

    replicas = [Assistant(TableNLU(), DOMAIN, store=RedisStore(redis_url, prefix="locked:")) for _ in range(2)]
    errors = []

    def worker(i):
        try:
            for _ in range(5):
                replicas[i % 2].respond("set a timer", session="shared")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert replicas[0].state("shared").turns == 20
    assert not replicas[0].store.client.exists("locked:shared:lock")
