// Imagine: a prompt becomes a PNG in the gallery, each card with its prompt, seed, time and cost;
// progress events drive the bar. A failed picture says why and what fixes it: no broken image.

import { showQueuePosition } from "./answers.js";
import { errorNode, explain } from "./errors.js";
import { $, el, seconds, tokens } from "./util.js";

const MAX_CARDS = 60; // older pictures leave the page (their object URLs with them)

export function initImagine(ctx) {
  const bar = $("#imagine-progress");
  const gallery = $("#gallery");

  function progress(fraction, label) {
    bar.hidden = fraction === null;
    if (fraction === null) return;
    $(".bar", bar).style.width = `${Math.round(fraction * 100)}%`;
    bar.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
    $(".label", bar).textContent = label;
  }

  function trim() {
    while (gallery.children.length > MAX_CARDS) {
      const img = gallery.lastElementChild.querySelector("img");
      if (img && img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
      gallery.lastElementChild.remove();
    }
  }

  function send(prompt = $("#imagine-prompt").value) {
    prompt = String(prompt).trim();
    const input = $("#imagine-prompt");
    if (!prompt) { input.setAttribute("aria-invalid", "true"); input.focus(); ctx.notify("say what to imagine"); return; }
    input.removeAttribute("aria-invalid");
    const [width, height] = $("#imagine-size").value.split("x").map(Number);
    const steps = Number($("#imagine-steps").value) || 20;
    const seedText = $("#imagine-seed").value.trim();
    const params = { width, height, steps };
    if (seedText && Number.isInteger(Number(seedText))) params.seed = Number(seedText);
    const slot = el("div", { class: "placeholder", text: "queued…" });
    const facts = el("div", { class: "facts" }, el("span", { text: `${width}×${height} · ${steps} steps` }));
    const caption = el("figcaption", {}, el("span", { class: "prompt", text: prompt }), facts);
    const fig = el("figure", { class: "pending", "aria-busy": "true" }, slot, caption);
    gallery.prepend(fig);
    $("#gallery-empty").hidden = true;
    trim();
    progress(0, "sending…");
    const job = ctx.socket.submit({ kind: "imagine", prompt, params }, {
      queued: (ev) => { progress(0, `queued · position ${ev.position}`); slot.textContent = `queued · position ${ev.position}`; showQueuePosition(ev.position); },
      started: () => { progress(0, "starting…"); slot.textContent = "painting…"; showQueuePosition(null); },
      progress: (ev) => progress(ev.total ? ev.step / ev.total : 0, `step ${ev.step} of ${ev.total}`),
      result: (ev) => {
        progress(null);
        const img = el("img", { alt: prompt, width: ev.width || width, height: ev.height || height });
        img.src = `data:image/png;base64,${ev.image_png_b64}`;
        slot.replaceWith(img);
        fig.classList.remove("pending");
        fig.removeAttribute("aria-busy");
        if (ev.seed !== undefined) facts.append(el("span", { class: "seed", text: `seed ${ev.seed}` }));
        facts.append(el("span", { text: seconds(ev.duration_ms) }), el("span", { class: "cost", text: `cost ${tokens(ev.cost ?? 0)}` }));
        if (ev.seed !== undefined) {
          facts.append(el("button", { type: "button", class: "reuse", text: "same seed", "aria-label": `use seed ${ev.seed} again`,
            onclick: () => { $("#imagine-prompt").value = prompt; $("#imagine-seed").value = ev.seed; $("#imagine-prompt").focus(); } }));
        }
      },
      error: (ev) => {
        progress(null);
        fig.classList.add("error");
        fig.removeAttribute("aria-busy");
        slot.textContent = ev.code === "cancelled" ? "stopped" : "no picture";
        if (ev.code !== "cancelled") caption.append(errorNode(explain(ev, { kind: "imagine" })));
      },
    });
    ctx.track(job, "imagine");
  }

  $("#imagine-send").addEventListener("click", () => send());
  $("#imagine-prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.ctrlKey) { e.preventDefault(); send(); } });
  ctx.onSend("imagine", () => send());
  return { send };
}
