// The wake word, page side: streams the microphone as 16 kHz PCM to the node (which segments,
// transcribes and runs the state machine in ui/wakeword.py) and acts on its events: speaks the
// prompts, sends the dictation, runs realm apps (weather, mail), speaks every answer while in wake
// mode, "shut up" stops speech, and a silence timer lets the node put it back to sleep.

import { api } from "./api.js";
import { userCard } from "./answers.js";
import { $, el } from "./util.js";
import { initApps } from "./apps.js";
import { waveform } from "./voice-wave.js";

const PCM = { type: "audio_start", sample_rate: 16000, language: "en" };
const LABELS = { off: "off", sleeping: "listening for “Computer”", choosing: "what mode?", dictating: "dictating" };

// 15 s as in the original; a test may shorten it (localStorage "mtor.wake.silence_s")
function silenceMs() {
  const s = Number(localStorage.getItem("mtor.wake.silence_s"));
  return (Number.isFinite(s) && s > 0 ? s : 15) * 1000;
}

export function initWake(ctx, voice) {
  const stateEl = $("#wake-state");
  const log = $("#voice-log");
  const said = el("div", { id: "wake-said", class: "heard", "aria-live": "polite" });
  said.dataset.count = "0";
  said.dataset.hushed = "0";
  $("#wake-heard").after(said);
  let wake = null; // {ac, stream, node, wave} or {recognizer}
  let state = "off";
  let silenceTimer = null;
  let answerNext = null; // the mode of the intent a wake_send is about to submit: its answer is spoken

  // every answer of a wake-word intent is spoken, whatever the "speak answers" box says
  const submit = ctx.socket.submit.bind(ctx.socket);
  ctx.socket.submit = (intent, handlers = {}) => {
    if (answerNext && intent && intent.kind === answerNext) {
      answerNext = null;
      const { result, error } = handlers;
      handlers = { ...handlers,
        result: (ev, job) => {
          if (intent.kind === "imagine") say("Image generated successfully");
          else if (intent.kind !== "chat" || !$("#speak-answers").checked) say(ev.text || "");
          return result && result(ev, job);
        },
        error: (ev, job) => { say(`sorry: ${ev.message || ev.code}`); return error && error(ev, job); },
      };
    }
    return submit(intent, handlers);
  };

  function say(text) {
    text = String(text || "").trim();
    if (!text) return;
    said.textContent = `🔊 ${text}`;
    said.dataset.count = String(Number(said.dataset.count) + 1);
    said.dataset.last = text;
    said.dataset.all = [...(said.dataset.all ? said.dataset.all.split(" | ") : []), text].slice(-20).join(" | ");
    voice.speakOrVoice(text);
  }

  function hush() {
    voice.stopSpeaking();
    if (window.speechSynthesis) try { speechSynthesis.cancel(); } catch { /* optional */ }
    said.dataset.hushed = String(Number(said.dataset.hushed) + 1);
  }

  // the node decides what silence means; the page only says how long it has been quiet
  function armSilence() {
    clearTimeout(silenceTimer);
    silenceTimer = null;
    if (!wake || (state !== "choosing" && state !== "dictating")) return;
    silenceTimer = setTimeout(() => { ctx.socket.send({ type: "wake_silence" }); armSilence(); }, silenceMs());
  }

  // speech is not silence, even before the node has transcribed it
  let lastVoice = 0;
  function onVoice() {
    const now = Date.now();
    if (silenceTimer && now - lastVoice > 250) { lastVoice = now; armSilence(); }
  }

  function show(s, mode, text) {
    state = s;
    stateEl.dataset.state = s;
    stateEl.textContent = LABELS[s] || s;
    $("#wake-mode").textContent = mode ? `· ${mode}` : "";
    $("#wake-text").textContent = text || "";
  }

  // vision by voice looks through the webcam itself, as in the original (no camera: the tab's image)
  async function lookNow(text) {
    const toggle = $("#webcam-toggle");
    const video = $("#webcam");
    if (toggle && video && toggle.getAttribute("aria-pressed") !== "true") {
      toggle.click();
      await new Promise((resolve) => {
        if (video.videoWidth) return resolve();
        const timer = setTimeout(resolve, 5000); // no camera, or a slow one: send with what there is
        video.addEventListener("loadeddata", () => { clearTimeout(timer); resolve(); }, { once: true });
      });
    }
    ctx.vision.send(text);
  }

  // spoken always in wake mode; from the Apps buttons when "speak answers" is ticked
  async function runApp(app, text, spoken = true) {
    const say_ = (t) => { if (spoken || $("#speak-answers").checked) say(t); };
    const card = userCard(log, `🗣 ${app}${text ? `: ${text}` : ""}`);
    try {
      const a = await api(`/api/v1/apps/${encodeURIComponent(app)}`, { method: "POST", body: { text } });
      const out = el("div", { class: "msg answer" }, a.text.split("\n").map((line) => el("div", { text: line })));
      out.dataset.app = app;
      out.dataset.state = "done";
      card.after(out);
      say_(a.say);
    } catch (err) {
      const out = el("div", { class: "msg answer error", text: err.message });
      out.dataset.app = app;
      out.dataset.state = "error";
      card.after(out);
      say_(err.message);
    }
  }

  async function start() {
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
      wake = { ac, stream, node, wave: waveform(ac, source, stateEl.parentElement, onVoice) };
      ctx.socket.send(PCM);
    }
    $("#wake-toggle").textContent = "Stop listening";
    $("#wake-toggle").setAttribute("aria-pressed", "true");
    show("sleeping");
    ctx.socket.send({ type: "wake_greet" });
  }

  function stop() {
    if (!wake) return;
    clearTimeout(silenceTimer);
    if (wake.recognizer) { const r = wake.recognizer; wake = null; r.stop(); }
    else {
      wake.wave.stop();
      wake.node.disconnect();
      wake.stream.getTracks().forEach((t) => t.stop());
      wake.ac.close();
      wake = null;
      ctx.socket.send({ type: "audio_stop" });
    }
    $("#wake-toggle").textContent = "Start listening";
    $("#wake-toggle").setAttribute("aria-pressed", "false");
    show("off");
  }

  $("#wake-toggle").addEventListener("click", () => (wake ? stop() : start()));

  // after a reconnect the node has forgotten the stream: announce it again
  ctx.socket.addEventListener("state", (e) => {
    if (e.detail === "open" && wake && !wake.recognizer) ctx.socket.send(PCM);
  });

  ctx.socket.addEventListener("message", (e) => {
    const m = e.detail;
    if (!wake && m.type && m.type.startsWith("wake")) return; // a late event after "Stop listening"
    switch (m.type) {
      case "wake": show(m.state, m.mode, m.text); armSilence(); break;
      case "heard": {
        const h = $("#wake-heard");
        h.textContent = `heard: “${m.text}”`;
        h.dataset.all = [...(h.dataset.all ? h.dataset.all.split(" | ") : []), m.text].slice(-20).join(" | ");
        armSilence();
        break;
      }
      case "wake_prompt": case "wake_sleep": say(m.say); break;
      case "wake_end": say("goodbye"); break;
      case "wake_hush": hush(); break;
      case "wake_app": runApp(m.app, m.text); break;
      case "wake_send": {
        const mode = m.mode;
        ctx.showTab(mode);
        answerNext = mode;
        if (mode === "chat") ctx.chat.send(m.text);
        else if (mode === "vision") lookNow(m.text);
        else if (mode === "imagine") ctx.imagine.send(m.text);
        break;
      }
      case "wake_error": $("#wake-heard").textContent = `could not hear: ${m.message}`; break;
    }
  });

  initApps(runApp);
  return { stop, say };
}
