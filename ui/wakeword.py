"""The wake-word conversation, as a pure state machine fed with transcribed utterances.

    "Computer"          -> asks "what mode?"
    "chat" | "vision" | "imagine"  -> dictation in that mode
    ... words ...       -> appended to the dictation
    "backspace"         -> clears the dictation
    "Computer"          -> sends the dictation (words before it in the same utterance count)
    "goodbye"           -> ends the conversation at any point
    "weather" | "mail"  -> (instead of a mode) runs that realm app with the rest of the utterance
    "shut up"           -> stops the speech now playing, in any state
    15 s silence, twice -> back to sleep (the page's timer calls `silence()`)

It knows nothing of audio, sockets or models: whatever hears (server-side Whisper, or the
browser's Web Speech API where it exists) calls `hear(text)` and acts on the events returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

WAKE_WORDS = {"computer", "computers"}
END_WORDS = {"goodbye", "good-bye"}
CLEAR_WORDS = {"backspace", "back-space"}
# What a person may say to pick a mode; Whisper tends to hear one of these for each.
MODE_WORDS = {
    # Whisper base often hears "chat" as one of these (measured on espeak-ng speech). They count only
    # while a mode is being chosen, where no other answer sounds like them.
    "chat": "chat", "chats": "chat", "chad": "chat", "chart": "chat", "chert": "chat", "cat": "chat", "cut": "chat",
    "shot": "chat", "talk": "chat",
    "vision": "vision", "look": "vision", "see": "vision", "camera": "vision",
    "imagine": "imagine", "image": "imagine", "picture": "imagine", "draw": "imagine", "paint": "imagine",
}
MODE_PROMPT = "what mode?"
MODE_REPROMPT = "what mode? say chat, vision, imagine, weather or mail"
GREETING = "9000 ready. Say the wake word."
STILL_THERE = "are you still there?"
ASLEEP = "going to sleep. Say the wake word."
HUSH = {("shut", "up"), ("shush",), ("hush",), ("stop", "talking"), ("be", "quiet")}
SILENCES_TO_SLEEP = 2


# How Whisper tends to write the app words when they are said alone (only while choosing a mode)
APP_SOUNDALIKES = {"whether": "weather", "wether": "weather", "weathers": "weather",
                   "male": "mail", "mails": "mail", "emails": "email", "g-mail": "gmail"}


def _app_words() -> dict[str, str]:
    from mtor_node.apps import trigger_words

    words = trigger_words()
    return {**{w: words[t] for w, t in APP_SOUNDALIKES.items() if t in words}, **words}

SLEEPING, CHOOSING, DICTATING = "sleeping", "choosing", "dictating"


def words_of(text: str) -> list[str]:
    """Lower-case words without punctuation; "back space" and "good bye" become one word."""
    words = re.findall(r"[a-z0-9']+(?:-[a-z0-9']+)*", text.lower())
    out: list[str] = []
    for w in words:
        if out and (out[-1], w) in (("back", "space"), ("good", "bye")):
            out[-1] += "-" + w
        elif out and (out[-1], w) == ("compute", "her"):  # Whisper's first hearing of "Computer." (measured)
            out[-1] = "computer"
        else:
            out.append(w)
    return out


@dataclass
class WakeWord:
    state: str = SLEEPING
    mode: str | None = None
    dictation: list[str] = field(default_factory=list)  # the original text pieces, punctuation kept
    apps: dict[str, str] = field(default_factory=_app_words)  # spoken word -> realm app name
    silences: int = 0  # silent periods in a row while awake

    @property
    def text(self) -> str:
        # "hello there, computer": the comma belonged to the pause before the wake word
        return " ".join(self.dictation).strip().rstrip(",;:-–— ")

    def snapshot(self) -> dict:
        return {"type": "wake", "state": self.state, "mode": self.mode, "text": self.text}

    def reset(self) -> None:
        self.state, self.mode, self.dictation, self.silences = SLEEPING, None, [], 0

    def greeting(self) -> list[dict]:
        return [{"type": "wake_prompt", "say": GREETING}, self.snapshot()]

    def silence(self) -> list[dict]:
        """A silent period (15 s) passed: the first asks, the second puts it back to sleep."""
        if self.state == SLEEPING:
            return [self.snapshot()]
        self.silences += 1
        if self.silences >= SILENCES_TO_SLEEP:
            self.reset()
            return [{"type": "wake_sleep", "say": ASLEEP}, self.snapshot()]
        return [{"type": "wake_prompt", "say": STILL_THERE}, self.snapshot()]

    def hear(self, text: str) -> list[dict]:
        """Feed one utterance; returns the events for the page, in order."""
        events: list[dict] = []
        if text.strip():
            self.silences = 0
        all_words = words_of(text)
        if any(tuple(all_words[i:i + len(h)]) == h for h in HUSH for i in range(len(all_words))):
            # "shut up" is for the speech now playing, not part of any dictation
            events.append({"type": "wake_hush"})
            text = re.sub(r"\b(shut\W+up|shush|hush|stop\W+talking|be\W+quiet)\b\W*", " ", text, flags=re.I)
        pieces = text.split()
        just_chose = False  # "chat mode": the word "mode" right after the mode is not dictation
        i = 0
        while i < len(pieces):
            piece = pieces[i]
            words = words_of(piece)
            word = words[0] if len(words) == 1 else None
            pair = words_of(" ".join(pieces[i:i + 2])) if i + 1 < len(pieces) else []
            if len(pair) == 1 and pair[0] in END_WORDS | CLEAR_WORDS | WAKE_WORDS:  # "good bye", "back space", "compute her"
                word, i = pair[0], i + 1
            i += 1
            if word in END_WORDS:
                had = self.state != SLEEPING
                self.reset()
                if had:
                    events.append({"type": "wake_end", "say": "goodbye"})
                continue
            if self.state == SLEEPING:
                if word in WAKE_WORDS:
                    self.state = CHOOSING
                    events.append({"type": "wake_prompt", "say": MODE_PROMPT})
            elif self.state == CHOOSING:
                if word in MODE_WORDS:
                    self.state, self.mode, self.dictation = DICTATING, MODE_WORDS[word], []
                    events.append({"type": "wake_mode", "mode": self.mode})
                    just_chose = True
                    continue
                elif word in self.apps:
                    # the rest of the utterance is what the app gets: "weather in Berlin"
                    rest = " ".join(pieces[i:])
                    events.append({"type": "wake_app", "app": self.apps[word], "text": rest.strip(" ,.")})
                    self.reset()
                    break
                elif word in WAKE_WORDS:
                    events.append({"type": "wake_prompt", "say": MODE_PROMPT})
            elif self.state == DICTATING:
                if just_chose and word == "mode":
                    just_chose = False
                    continue
                if word in CLEAR_WORDS:
                    self.dictation = []
                    events.append({"type": "wake_cleared"})
                elif word in WAKE_WORDS:
                    if self.text:
                        events.append({"type": "wake_send", "mode": self.mode, "text": self.text})
                        self.reset()
                    else:
                        events.append({"type": "wake_prompt", "say": f"say what to send in {self.mode} mode"})
                else:
                    self.dictation.append(piece)
            just_chose = False
        if self.state == CHOOSING and not events and text.strip():
            events.append({"type": "wake_prompt", "say": MODE_REPROMPT})
        if self.state == DICTATING and self.dictation:
            events.append({"type": "wake_text", "mode": self.mode, "text": self.text})
        events.append(self.snapshot())
        return events
