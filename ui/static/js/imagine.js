// Imagine: a prompt becomes a PNG in the gallery; progress events drive the bar.

import { $, el } from "./util.js";
import { seconds, tokens } from "./util.js";
import { showQueuePosition } from "./answers.js";

export function initImagine(ctx) {
  const bar = $("#imagine-progress");
  const gallery = $("#gallery");

  function progress(fraction, label) {
    bar.hidden = fraction === null;
    if (fraction === null) return;
    $(".bar", bar).style.width = `${Math.round(fraction * 100)}%`;
    $(".label", bar).textContent = label;
  }

  function send(prompt = $("#imagine-prompt").value) {
    prompt = prompt.trim();
    if (!prompt) { ctx.notify("say what to imagine"); return; }
    const [width, height] = $("#imagine-size").value.split("x").map(Number);
    const steps = Number($("#imagine-steps").value) || 20;
    const caption = el("figcaption", { text: `${prompt} — queued` });
    const fig = el("figure", { class: "pending" }, el("img", { alt: prompt }), caption);
    gallery.prepend(fig);
    progress(0, "sending…");
    const job = ctx.socket.submit({ kind: "imagine", prompt, params: { width, height, steps } }, {
      queued: (ev) => { progress(0, `queued · position ${ev.position}`); showQueuePosition(ev.position); },
      started: () => { progress(0, "starting…"); showQueuePosition(null); },
      progress: (ev) => progress(ev.total ? ev.step / ev.total : 0, `step ${ev.step} of ${ev.total}`),
      result: (ev) => {
        progress(null);
        const img = $("img", fig);
        img.src = `data:image/png;base64,${ev.image_png_b64}`;
        fig.classList.remove("pending");
        caption.textContent = `${prompt} — ${seconds(ev.duration_ms)} · ${tokens(ev.cost ?? 0)}`;
      },
      error: (ev) => {
        progress(null);
        fig.classList.add("error");
        caption.textContent = `${prompt} — ${ev.code === "cancelled" ? "stopped" : ev.message || ev.code}`;
      },
    });
    ctx.track(job, "imagine");
  }

  $("#imagine-send").addEventListener("click", () => send());
  $("#imagine-prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.ctrlKey) { e.preventDefault(); send(); } });
  ctx.onSend("imagine", () => send());
  return { send };
}
