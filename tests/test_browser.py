"""The browser demo in headless Chromium: a fake microphone fed from a recording streams over the
WebSocket and the page shows the final result with an intent; a file posted from the drop zone's input too.
Writes only under the test's tmp_path: the fake microphone's recording and a small screenshot (copied to the
path in SPEECH_INTENT_SCREENSHOT when that is set, e.g. docs/serve-demo.png to refresh the README's)."""
from __future__ import annotations

import os
import shutil

import pytest
import soundfile as sf

from tests.conftest import LABELS
from tests.serving import REPO, with_silences

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
    if not CHROMIUM:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    return sync_api


def test_microphone_stream_and_file_drop_show_results(browser, server, tmp_path):
    audio, _ = with_silences(["014_lights_on.wav"], lead=0.6, tail=2.5)
    capture = tmp_path / "mic.wav"
    sf.write(capture, audio, 16000, subtype="PCM_16")
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={capture}", "--autoplay-policy=no-user-gesture-required",
            "--no-sandbox"]
    with browser.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = chromium.new_page(viewport={"width": 720, "height": 560})
            problems = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(server.url + "/")
            page.click("#mic")
            page.wait_for_selector("#results li.result .intent", timeout=45_000)
            first = page.inner_text("#results li.result")
            assert page.get_attribute("#results li.result", "data-intent") in LABELS, first  # not "(no intent)"
            assert "(no intent)" not in first and any(label in first for label in LABELS), first
            assert "%" in first  # the confidence
            page.click("#mic")  # stop
            page.set_input_files("#file", str(REPO / "assets" / "audio" / "007_get_weather.wav"))
            page.wait_for_selector("text=007_get_weather.wav", timeout=45_000)
            assert page.locator("#results li.result").count() >= 2
            intents = page.eval_on_selector_all("#results li.result", "items => items.map(li => li.dataset.intent)")
            assert all(intent in LABELS for intent in intents), intents  # the file's command has an intent too
            assert not problems, problems
            assert page.evaluate("document.querySelectorAll('script[src*=\"//\"]').length") == 0  # nothing from a CDN
            out = tmp_path / "serve-demo.png"
            page.screenshot(path=str(out), type="png")
            assert 0 < out.stat().st_size < 200_000
            if os.environ.get("SPEECH_INTENT_SCREENSHOT"):  # asked for by name: never by default
                shutil.copyfile(out, os.environ["SPEECH_INTENT_SCREENSHOT"])
        finally:
            chromium.close()

