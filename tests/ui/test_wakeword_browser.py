"""The whole wake-word flow in chromium, by voice: espeak-ng speaks into chromium's fake
microphone, the node segments and transcribes (packaged Whisper base), the server-side state
machine greets, wakes on "Computer", runs the weather app (against the Open-Meteo stand-in on
127.0.0.1, see tests/apps/open_meteo_standin.py), speaks its answer, stops speaking on "shut up",
and after two silent periods goes back to sleep. The waveform shows that the page hears."""

from __future__ import annotations

import pytest

from tests.apps.open_meteo_standin import open_meteo
from tests.conftest import running_node
from tests.ui.conftest import FAKE_MEDIA, in_browser
from tests.ui.test_wake_browser import speech_file, whisper_base_dir  # noqa: F401  (a fixture)
from ui.wakeword import ASLEEP, GREETING, STILL_THERE

pytestmark = pytest.mark.slow

# Two wordings, one per attempt: Whisper once heard "What is the weapon Berlin?" in the page's audio
# path on a loaded machine, twice in a row with the same recording.
SCRIPTS = [["Computer.", "What is the weather in Berlin?", "Shut up.", "Computer."],
           ["Computer.", "Weather forecast for Berlin.", "Shut up.", "Computer."]]
SILENCE_S = 5  # the page's silence period, shortened from 15 s (two of them end the conversation)


def with_silence(path, lead_s: float, tail_s: float) -> None:
    """More quiet first (a loaded machine takes a while to start the page's audio worklet, and the
    fake microphone plays from the moment it is opened) and at the end, for the silence timer."""
    import wave

    with wave.open(str(path)) as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(b"\x00\x00" * int(lead_s * params.framerate) + frames + b"\x00\x00" * int(tail_s * params.framerate))


async def test_wake_word_weather_shut_up_and_sleep(tmp_path, whisper_base_dir):  # noqa: F811
    wavs = [tmp_path / f"wake-weather-{i}.wav" for i in range(len(SCRIPTS))]
    for wav, script in zip(wavs, SCRIPTS):
        speech_file(wav, script)
        with_silence(wav, lead_s=3, tail_s=4 * SILENCE_S)
    models = {
        "echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 4, "default": True},
        "echo-speak": {"kind": "speak", "backend": "echo", "default": True},
        "whisper-base": {"kind": "transcribe", "backend": "faster-whisper", "source": f"path:{whisper_base_dir}",
                         "default": True, "preload": True, "options": {"cpu_threads": 2}},
    }
    with open_meteo() as (srv, urls):
        async with running_node(tmp_path / "node", models, weather={"enabled": True, **urls}) as node:
            def scenario(page):
                try:
                    flow(page)
                except Exception as e:  # say what the node heard: most failures are Whisper hearing otherwise
                    heard = page.get_attribute("#wake-heard", "data-all")
                    said = page.get_attribute("#wake-said", "data-all")
                    raise AssertionError(f"{e}\nheard: {heard}\nsaid: {said}") from e

            def flow(page):
                page.evaluate(f"localStorage.setItem('mtor.wake.silence_s', '{SILENCE_S}')")
                page.click("button[data-tab=voice]")
                page.click("#wake-toggle")
                page.wait_for_selector(f"#wake-said[data-all^='{GREETING}']")  # the greeting first
                page.wait_for_selector("#wake-state[data-state=choosing]", timeout=60_000)  # heard "Computer"
                assert float(page.get_attribute("#wake-wave", "data-peak")) > 0.05  # the waveform saw the speech
                answer = page.wait_for_selector("#voice-log .msg.answer[data-app=weather]", timeout=60_000)
                assert answer.inner_text().startswith("Berlin, Germany: 3°C, light rain")
                page.wait_for_selector("#wake-said[data-hushed='1']", timeout=60_000)  # "shut up"
                page.wait_for_selector("#wake-state[data-state=choosing]", timeout=60_000)  # "Computer" again
                # then nothing more is said: asked once, then asleep
                page.wait_for_selector(f"#wake-said[data-last='{ASLEEP}']", timeout=60_000)
                assert page.get_attribute("#wake-state", "data-state") == "sleeping"
                said = page.get_attribute("#wake-said", "data-all").split(" | ")
                weather = [s for s in said if s.startswith("In Berlin, it is 3 degrees with light rain")]
                assert weather and said.index(weather[0]) < said.index(ASLEEP)
                assert said[-2:] == [STILL_THERE, ASLEEP], said
                page.click("#wake-toggle")
                page.wait_for_selector("#wake-state[data-state=off]")

            # Where the audio chunks fall depends on timing, and so does what Whisper hears: one more
            # run on a fresh page, with the other wording, is allowed, not more (as in test_wake_browser.py).
            for attempt, wav in enumerate(wavs, 1):
                try:
                    await in_browser(node.http_url, scenario, f"wakeword-weather-{attempt}",
                                     FAKE_MEDIA + [f"--use-file-for-fake-audio-capture={wav}%noloop"], timeout_s=180)
                    break
                except Exception as e:
                    print(f"attempt {attempt} failed: {e!r}"[:2000])
                    if attempt == len(wavs):
                        raise
            assert any(path == "/v1/forecast" for path, _ in srv.requests)
            spoken = [h["prompt"] for h in node.store.history(None, 50) if h["kind"] == "speak"]
            assert any(p.startswith("In Berlin") for p in spoken), spoken  # spoken by the node's speak model
