// Voice: push-to-talk (MediaRecorder -> transcribe intent), spoken answers (speak intent -> an
// audio queue with a stop button), and the wake word, heard on the node from streamed PCM so it
// works in any browser; the browser's own recognizer is an optional accelerator.

import { answerCard, userCard } from "./answers.js";
import { $, b64ToBlob, el, fileToBase64 } from "./util.js";

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

  // ---- the wake word ----------------------------------------------------------------------
  const stateEl = $("#wake-state");
  let wake = null; // {ctx: AudioContext, stream, node} or {recognizer}

  function showWake(state, mode, text) {
    stateEl.dataset.state = state;
    stateEl.textContent = { off: "off", sleeping: "listening for “Computer”", choosing: "what mode?", dictating: "dictating" }[state] || state;
    $("#wake-mode").textContent = mode ? `· ${mode}` : "";
    $("#wake-text").textContent = text || "";
  }

  async function startWake() {
    const Recognizer = window.SpeechRecognition || window.webkitSpeechRecognition;
    if ($("#wake-browser").checked && Recognizer) { // the accelerator: the browser hears, the node decides
      const r = new Recognizer();
      r.continuous = true;
      r.interimResults = false;
      r.lang = "en-US";
      r.onresult = (e) => {
        for (let i = e.resultIndex; i < e.results.length; i++) {
          if (e.results[i].isFinal) ctx.socket.send({ type: "heard", text: e.results[i][0].transcript });
        }
      };
      r.onend = () => { if (wake && wake.recognizer === r) r.start(); };
      r.start();
      wake = { recognizer: r };
      ctx.socket.send({ type: "wake_reset" });
    } else {
      let stream;
      try {
        // raw audio: the browser's noise suppression and gain control blur words that Whisper would hear
        stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
      } catch (err) { ctx.notify(`no microphone: ${err.message}`); return; }
      const ac = new AudioContext();
      await ac.audioWorklet.addModule("/static/js/pcm-worklet.js");
      const source = ac.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(ac, "pcm-downsampler");
      node.port.onmessage = (e) => ctx.socket.sendBinary(e.data);
      source.connect(node);
      wake = { ac, stream, node };
      ctx.socket.send({ type: "audio_start", sample_rate: 16000, language: "en" });
    }
    $("#wake-toggle").textContent = "Stop listening";
    $("#wake-toggle").setAttribute("aria-pressed", "true");
    showWake("sleeping");
  }

  function stopWake() {
    if (!wake) return;
    if (wake.recognizer) { const r = wake.recognizer; wake = null; r.stop(); }
    else {
      wake.node.disconnect();
      wake.stream.getTracks().forEach((t) => t.stop());
      wake.ac.close();
      wake = null;
      ctx.socket.send({ type: "audio_stop" });
    }
    $("#wake-toggle").textContent = "Start listening";
    $("#wake-toggle").setAttribute("aria-pressed", "false");
    showWake("off");
  }

  $("#wake-toggle").addEventListener("click", () => (wake ? stopWake() : startWake()));

  // after a reconnect the node has forgotten the stream: announce it again
  ctx.socket.addEventListener("state", (e) => {
    if (e.detail === "open" && wake && !wake.recognizer) ctx.socket.send({ type: "audio_start", sample_rate: 16000, language: "en" });
  });

  ctx.socket.addEventListener("message", (e) => {
    const m = e.detail;
    switch (m.type) {
      case "wake": if (wake) showWake(m.state, m.mode, m.text); break;
      case "heard": $("#wake-heard").textContent = `heard: “${m.text}”`; break;
      case "wake_prompt": say(m.say); break;
      case "wake_end": say("goodbye"); break;
      case "wake_send": {
        const mode = m.mode;
        ctx.showTab(mode);
        if (mode === "chat") ctx.chat.send(m.text);
        else if (mode === "vision") ctx.vision.send(m.text);
        else if (mode === "imagine") ctx.imagine.send(m.text);
        break;
      }
      case "wake_error": $("#wake-heard").textContent = `could not hear: ${m.message}`; break;
    }
  });

  function say(text) {
    // a short prompt: the browser's own voice if it has one, else the node's speak intent
    if ($("#speak-answers").checked) speak(text);
    else if (window.speechSynthesis && window.SpeechSynthesisUtterance) {
      try { speechSynthesis.speak(new SpeechSynthesisUtterance(text)); } catch { /* optional */ }
    }
  }

  return { speak, stopSpeaking, stopWake };
}

function isTyping(e) {
  const t = e.target;
  return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
}
