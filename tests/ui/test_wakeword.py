"""The wake-word state machine and the energy segmenter, as pure units."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from ui.vad import Segmenter, wav_bytes
from ui.wakeword import CHOOSING, DICTATING, SLEEPING, WakeWord, words_of


def types(events):
    return [e["type"] for e in events if e["type"] != "wake"]


def test_full_conversation_across_utterances():
    w = WakeWord()
    assert types(w.hear("Hello everyone.")) == [] and w.state == SLEEPING  # no wake word: ignored
    assert types(w.hear("Computer.")) == ["wake_prompt"] and w.state == CHOOSING
    ev = w.hear("Chat.")
    assert types(ev) == ["wake_mode"] and ev[0]["mode"] == "chat" and w.state == DICTATING
    ev = w.hear("Hello there.")
    assert ev[0] == {"type": "wake_text", "mode": "chat", "text": "Hello there."}
    ev = w.hear("How are you?")
    assert ev[0]["text"] == "Hello there. How are you?"
    ev = w.hear("Computer!")
    assert ev[0] == {"type": "wake_send", "mode": "chat", "text": "Hello there. How are you?"}
    assert w.state == SLEEPING and w.text == ""
    assert ev[-1] == {"type": "wake", "state": SLEEPING, "mode": None, "text": ""}


def test_everything_in_one_breath():
    w = WakeWord()
    ev = w.hear("Computer, imagine a red bicycle on the moon, computer.")
    assert types(ev) == ["wake_prompt", "wake_mode", "wake_send"]
    assert ev[2] == {"type": "wake_send", "mode": "imagine", "text": "a red bicycle on the moon"}


def test_backspace_clears_and_goodbye_ends():
    w = WakeWord()
    w.hear("computer")
    w.hear("vision")
    w.hear("what is the")
    assert types(w.hear("back space")) == ["wake_cleared"] and w.text == "" and w.state == DICTATING
    w.hear("what colour is this")
    assert w.text == "what colour is this"
    assert types(w.hear("Goodbye.")) == ["wake_end"] and w.state == SLEEPING and w.text == ""
    assert types(w.hear("goodbye")) == []  # already asleep: nothing to end


def test_mode_choice_reprompts_and_synonyms():
    w = WakeWord()
    w.hear("Computer")
    assert types(w.hear("Banana.")) == ["wake_prompt"] and w.state == CHOOSING
    ev = w.hear("Draw.")
    assert ev[0]["mode"] == "imagine"
    w.reset()
    w.hear("computer")
    assert w.hear("I'd like to look")[0]["mode"] == "vision"


def test_mode_word_after_the_mode_is_not_dictated():
    w = WakeWord()
    w.hear("Computer.")
    assert types(w.hear("Chat mode.")) == ["wake_mode"] and w.text == ""
    assert w.hear("mode is a word too")[0]["text"] == "mode is a word too"


def test_empty_dictation_is_not_sent():
    w = WakeWord()
    w.hear("computer chat")
    assert types(w.hear("computer")) == ["wake_prompt"] and w.state == DICTATING


def test_words_of():
    assert words_of("Back space, GOOD bye!") == ["back-space", "good-bye"]
    assert words_of("Compute her!") == ["computer"] and types(WakeWord().hear("Compute her!")) == ["wake_prompt"]
    assert words_of("Computer.") == ["computer"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=12))
def test_any_speech_keeps_a_valid_state(utterances):
    w = WakeWord()
    for u in utterances:
        ev = w.hear(u)
        assert ev[-1]["type"] == "wake" and ev[-1]["state"] in (SLEEPING, CHOOSING, DICTATING)
        assert (w.mode is None) == (w.state != DICTATING)
        for e in ev:
            if e["type"] == "wake_send":
                assert e["text"].strip()


# ---- the segmenter ------------------------------------------------------------------------

RATE = 16000


def tone(seconds: float, amp: float = 8000, freq: float = 220) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def quiet(seconds: float, amp: float = 30) -> np.ndarray:
    return np.random.default_rng(0).normal(0, amp, int(seconds * RATE)).astype(np.int16)


def feed_in_chunks(seg: Segmenter, pcm: np.ndarray, chunk: int = 1600) -> list[bytes]:
    data, out = pcm.tobytes(), []
    for i in range(0, len(data), chunk * 2 + 1):  # odd sizes: frames must be reassembled across chunks
        out += seg.feed(data[i:i + chunk * 2 + 1])
    return out


def test_segmenter_cuts_utterances_at_pauses():
    pcm = np.concatenate([quiet(0.5), tone(0.6), quiet(1.0), tone(0.4), quiet(1.0), tone(0.05), quiet(1.0)])
    out = feed_in_chunks(Segmenter(), pcm)
    assert len(out) == 2  # the 50 ms click is not speech
    first = np.frombuffer(out[0], dtype="<i2")
    assert 0.6 <= len(first) / RATE <= 0.6 + 0.24 + 0.7  # the speech, pre-roll and the closing quiet


def test_segmenter_flush_and_max_length():
    seg = Segmenter(max_utterance_s=1.0)
    out = seg.feed(np.concatenate([quiet(0.3), tone(2.5)]).tobytes())
    assert len(out) == 2  # a monologue is cut so transcription can keep up
    assert len(seg.flush()) == 1


def test_wav_bytes():
    import io
    import wave

    with wave.open(io.BytesIO(wav_bytes(tone(0.1).tobytes()))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (RATE, 1, 1600)


def test_ws_coalesce_merges_only_what_is_safe():
    from ui.ws import coalesce

    batch = [{"type": "queued", "id": "a", "position": 3}, {"type": "queued", "id": "a", "position": 2},
             {"type": "chunk", "id": "a", "text": "he"}, {"type": "chunk", "id": "a", "text": "llo"},
             {"type": "chunk", "id": "b", "text": "x"}, {"type": "chunk", "id": "a", "text": "!"},
             {"type": "chunk", "id": "a", "audio_b64": "AA=="}, {"type": "result", "id": "a", "text": "hello!"}]
    assert coalesce(batch) == [{"type": "queued", "id": "a", "position": 2}, {"type": "chunk", "id": "a", "text": "hello"},
                               {"type": "chunk", "id": "b", "text": "x"}, {"type": "chunk", "id": "a", "text": "!"},
                               {"type": "chunk", "id": "a", "audio_b64": "AA=="}, {"type": "result", "id": "a", "text": "hello!"}]


# ---- the whole flow: apps, greeting, silence, "shut up" --------------------------------------

def test_apps_in_the_mode_menu_get_the_rest_of_the_utterance():
    from ui.wakeword import GREETING

    w = WakeWord()
    assert w.greeting()[0] == {"type": "wake_prompt", "say": GREETING} and GREETING == "9000 ready. Say the wake word."
    w.hear("Computer.")
    ev = w.hear("Weather in Berlin.")
    assert ev[0] == {"type": "wake_app", "app": "weather", "text": "in Berlin"} and w.state == SLEEPING
    ev = w.hear("Computer, whether")  # Whisper's spelling of a lone "weather"
    assert types(ev) == ["wake_prompt", "wake_app"] and ev[1]["app"] == "weather" and ev[1]["text"] == ""
    w.hear("computer")
    assert w.hear("read my Gmail")[0] == {"type": "wake_app", "app": "mail", "text": ""}
    w.hear("computer chat")  # while dictating, app words are words
    assert w.hear("the weather is nice")[0]["text"] == "the weather is nice"


def test_two_silent_periods_put_it_to_sleep_speech_in_between_restarts_the_count():
    from ui.wakeword import ASLEEP, STILL_THERE

    w = WakeWord()
    assert types(w.silence()) == [] and w.state == SLEEPING  # asleep: nothing to do
    w.hear("Computer")
    assert w.silence()[0] == {"type": "wake_prompt", "say": STILL_THERE} and w.state == CHOOSING
    w.hear("chat")  # speech: the count starts again
    assert types(w.silence()) == ["wake_prompt"] and w.state == DICTATING
    ev = w.silence()
    assert ev[0] == {"type": "wake_sleep", "say": ASLEEP} and w.state == SLEEPING and w.text == ""


def test_shut_up_stops_speech_in_any_state_and_is_not_dictated():
    w = WakeWord()
    assert types(w.hear("Shut up!")) == ["wake_hush"] and w.state == SLEEPING
    w.hear("computer chat")
    ev = w.hear("hello, shut up, there")
    assert types(ev) == ["wake_hush", "wake_text"] and w.text == "hello, there"
    assert "shut" not in w.text
