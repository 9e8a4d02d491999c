// A waveform of the microphone, so that a person sees the node hears them. Draws the newest
// samples from an AnalyserNode 20 times a second; data-level holds the peak (0..1).

import { el } from "./util.js";

const VOICE_LEVEL = 0.05; // a peak above this is someone speaking, not the room

export function waveform(ac, source, anchor, onVoice = () => {}) {
  const canvas = el("canvas", { id: "wake-wave", class: "wake-wave", width: 320, height: 48 });
  canvas.dataset.level = "0";
  canvas.dataset.peak = "0";
  anchor.after(canvas);
  const analyser = ac.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const g = canvas.getContext("2d");
  let peakSeen = 0;
  function draw() {
    analyser.getFloatTimeDomainData(buf);
    let peak = 0;
    for (const v of buf) peak = Math.max(peak, Math.abs(v));
    peakSeen = Math.max(peakSeen, peak);
    canvas.dataset.level = peak.toFixed(3);
    canvas.dataset.peak = peakSeen.toFixed(3); // the loudest so far: tests and people can tell it heard something
    if (peak > VOICE_LEVEL) onVoice();
    const { width: w, height: h } = canvas;
    g.clearRect(0, 0, w, h);
    g.strokeStyle = peak > 0.02 ? "#2a7" : "#999";
    g.beginPath();
    for (let x = 0; x < w; x++) {
      const y = h / 2 - buf[Math.floor((x / w) * buf.length)] * (h / 2);
      if (x) g.lineTo(x, y); else g.moveTo(x, y);
    }
    g.stroke();
  }
  // a timer, not requestAnimationFrame: it keeps drawing in a background tab or a headless browser
  const timer = setInterval(draw, 50);
  return { stop() { clearInterval(timer); source.disconnect(analyser); canvas.remove(); } };
}
