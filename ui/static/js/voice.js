// Voice: push-to-talk (MediaRecorder -> transcribe intent), spoken answers (speak intent -> an
// audio queue with a stop button); the wake word is in voice-wake.js.

import { answerCard, userCard } from "./answers.js";
import { $, b64ToBlob, el, fileToBase64 } from "./util.js";
import { initWake } from "./voice-wake.js";

export function initVoice(ctx) {
  const log = $("#voice-log");

  // ---- spoken answers: one queue, one stop button -----------------------------------------
  const queue = [];
  let playing = null;
  const speakJobs = new Set();

  function playNext() {
    if (playing || !queue.length) return;
    const url = queue.shift();
    playing = new Audio(url);
    const done = () => { URL.revokeObjectURL(url); playing = null; playNext(); };
    playing.onended = done;
    playing.onerror = done;
    playing.play().catch(done);
  }

  function speak(text) {
    text = String(text || "").trim();
    if (!text) return;
    const job = ctx.socket.submit({ kind: "speak", prompt: text.slice(0, 10000) }, {
      result: (ev) => {
        speakJobs.delete(job);
        if (!ev.audio_wav_b64) return;
        queue.push(URL.createObjectURL(b64ToBlob(ev.audio_wav_b64, "audio/wav")));
        playNext();
      },
      error: () => speakJobs.delete(job),
    });
    speakJobs.add(job);
  }

  function stopSpeaking() {
    for (const job of speakJobs) job.cancel();
    speakJobs.clear();
    queue.splice(0).forEach((u) => URL.revokeObjectURL(u));
    if (playing) { playing.pause(); playing = null; }
  }
  $("#speech-stop").addEventListener("click", stopSpeaking);

  // ---- push-to-talk -----------------------------------------------------------------------
  const ptt = $("#ptt");
  let recorder = null;
  let micStream = null;

  async function startTalking() {
    if (recorder) return;
    try {
      micStream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) { ctx.notify(`no microphone: ${err.message}`); return; }
    const chunks = [];
    recorder = new MediaRecorder(micStream);
    recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
    recorder.onstop = async () => {
      micStream.getTracks().forEach((t) => t.stop());
      recorder = null;
      const blob = new Blob(chunks, { type: chunks[0]?.type || "audio/webm" });
      if (blob.size) transcribe(blob);
    };
    recorder.start();
    ptt.setAttribute("aria-pressed", "true");
    ptt.textContent = "Listening… release to send";
  }

  function stopTalking() {
    if (!recorder) return;
    ptt.setAttribute("aria-pressed", "false");
    ptt.textContent = "Hold to talk";
    if (recorder.state !== "inactive") recorder.stop();
  }

  async function transcribe(blob) {
    const audio_b64 = await fileToBase64(blob);
    const card = userCard(log, "🎤 …");
    ctx.track(ctx.socket.submit({ kind: "transcribe", audio_b64 }, {
      result: (ev) => {
        const text = (ev.text || "").trim();
        card.textContent = `🎤 ${text || "(nothing heard)"}`;
        if (!text) return;
        if ($("#ptt-autosend").checked) ctx.chat.send(text);
        else { $("#chat-input").value = text; }
      },
      error: (ev) => { card.textContent = `🎤 ${ev.message || ev.code}`; card.classList.add("error"); },
    }), "voice");
  }

  ptt.addEventListener("pointerdown", (e) => { e.preventDefault(); startTalking(); });
  ptt.addEventListener("pointerup", stopTalking);
  ptt.addEventListener("pointerleave", stopTalking);
  document.addEventListener("keydown", (e) => {
    if (e.code === "Space" && ctx.currentTab() === "voice" && !e.repeat && !isTyping(e)) { e.preventDefault(); startTalking(); }
  });
  document.addEventListener("keyup", (e) => { if (e.code === "Space" && ctx.currentTab() === "voice" && !isTyping(e)) stopTalking(); });

  // ---- the wake word (voice-wake.js) ------------------------------------------------------
  // a short prompt or answer: the browser's own voice when it has one, else the node's speak intent
  function speakOrVoice(text) {
    const synth = window.speechSynthesis;
    if (!$("#speak-answers").checked && synth && window.SpeechSynthesisUtterance && synth.getVoices().length) {
      try { synth.speak(new SpeechSynthesisUtterance(text)); return; } catch { /* fall through to the node */ }
    }
    speak(text);
  }
  const wake = initWake(ctx, { speakOrVoice, stopSpeaking });

  return { speak, stopSpeaking, stopWake: wake.stop, say: wake.say };
}

function isTyping(e) {
  const t = e.target;
  return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
}
