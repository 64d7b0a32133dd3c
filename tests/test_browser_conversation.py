"""The conversation demo (``/chat``) in headless Chromium against ``speech-intent serve --speak`` with the default
pipeline: a fake microphone says a command that lacks its city ("Is it going to snow this weekend?"), the page
shows the transcript and the assistant's question, plays the spoken question through Web Audio, and the user's
next command, spoken while the answer plays (the speech slowed to half speed so it lasts), stops the playback
(barge-in). Writes only under the test's tmp_path."""
from __future__ import annotations

import os
import shutil

import pytest
import soundfile as sf

from tests.serving import with_silences

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ASK_CITY = ("For which city?", "Which city do you mean?")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
    if not CHROMIUM:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    return sync_api


@pytest.fixture(scope="module")
def speaking_server(tmp_path_factory):
    pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")
    pytest.importorskip("uvicorn", reason="the serve extra (fastapi, uvicorn) is not installed")
    pytest.importorskip("httpx", reason="httpx (test extra) is not installed")
    from tests.serving import serve

    log = tmp_path_factory.mktemp("chat-server") / "server.log"
    with serve(None, log, "--speak", "--speak-speed", "0.5", "--threads", "1", "--partial-interval", "0.5") as running:
        yield running


def _wait(page, condition: str, timeout: int) -> None:
    """Wait for ``condition``; on a timeout, fail with the page's timeline (events and playback, seconds)."""
    try:
        page.wait_for_function(condition, timeout=timeout)
    except Exception as error:
        timeline = page.evaluate("(() => { const c = window.speechIntentChat; const t0 = c.events.length ? c.events[0].t : 0;"
                                 " return [...c.events, ...c.playback.log].map(e => [((e.t - t0) / 1000).toFixed(2),"
                                 " e.type || e.kind, e.reply]).sort((a, b) => a[0] - b[0]); })()")
        raise AssertionError(f"{condition} not met in {timeout} ms; the page's timeline: {timeline}") from error


@pytest.mark.slow
def test_the_spoken_answer_plays_and_speaking_over_it_stops_it(browser, speaking_server, tmp_path):
    # the question, a pause that ends it (the VAD's 0.6 s), and the next command, 3.3 s of speech with partials
    # every 0.5 s: the answer (1.8 s) starts playing during it whether the server answers in 0.5 s or in 3
    audio, spans = with_silences(["009_get_weather.wav", "014_lights_on.wav"], gap=1.0, lead=0.6, tail=4.0)
    capture = tmp_path / "mic.wav"
    sf.write(capture, audio, 16000, subtype="PCM_16")
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={capture}%noloop", "--autoplay-policy=no-user-gesture-required",
            "--no-sandbox"]
    with browser.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = chromium.new_page(viewport={"width": 720, "height": 640})
            problems = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(speaking_server.url + "/chat")
            page.click("#mic")
            page.wait_for_selector("#turns li.assistant", timeout=45_000)
            heard = page.inner_text("#turns li.user")
            assert "snow" in heard.lower() and page.get_attribute("#turns li.user", "data-intent") == "get_weather", heard
            assert page.inner_text("#turns li.assistant .says") in ASK_CITY
            _wait(page, "window.speechIntentChat.playback.log.some(e => e.kind === 'audio-played')", 20_000)
            _wait(page, "window.speechIntentChat.playback.log.some(e => e.kind === 'interrupted')", 30_000)
            log = page.evaluate("window.speechIntentChat.playback.log")
            played = next(e for e in log if e["kind"] == "audio-played")
            assert played["reply"] == 0 and played["duration"] > 1.0, log  # "For which city?" at half speed
            stopped = next(e for e in log if e["kind"] == "interrupted")
            assert stopped["reply"] == 0 and stopped["t"] > played["t"], log
            assert not any(e["kind"] == "audio-ended" and e["reply"] == 0 for e in log), log  # cut, never finished
            assert "interrupted" in page.get_attribute("#turns li.assistant", "class")
            _wait(page, "window.speechIntentChat.playback.log.some(e => e.kind === 'barge-in-acknowledged')", 10_000)
            _wait(page, "document.querySelectorAll('#turns li.assistant').length >= 2", 45_000)
            second = page.locator("#turns li.user").nth(1).inner_text()
            assert "lamp" in second.lower() or "light" in second.lower(), second
            assert not problems, problems
            assert page.evaluate("document.querySelectorAll('script[src*=\"//\"], link[href*=\"//\"]').length") == 0
        finally:
            chromium.close()
