// Imagine: a prompt becomes a PNG in the gallery, each card with its prompt, seed, time and cost;
// progress events drive the bar. The gallery is kept in this browser (convstore.js, the last 40).
// A failed picture says why and what fixes it: no broken image.

import { showQueuePosition } from "./answers.js";
import { deleteImage, listImages, saveImage } from "./convstore.js";
import { errorNode, explain } from "./errors.js";
import { $, el, seconds, tokens } from "./util.js";

const MAX_CARDS = 60; // older pictures leave the page

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
    while (gallery.children.length > MAX_CARDS) gallery.lastElementChild.remove();
    $("#gallery-empty").hidden = gallery.children.length > 0;
  }

  function card({ prompt, width, height, steps }, { append = false } = {}) {
    const slot = el("div", { class: "placeholder", text: "queued…" });
    const facts = el("div", { class: "facts" }, el("span", { text: `${width}×${height} · ${steps} steps` }));
    const caption = el("figcaption", {}, el("span", { class: "prompt", text: prompt }), facts);
    const fig = el("figure", { class: "pending", "aria-busy": "true" }, slot, caption);
    if (append) gallery.append(fig); else gallery.prepend(fig);
    trim();
    return { fig, slot, facts, caption };
  }

  function showPicture(parts, rec) {
    const img = el("img", { alt: rec.prompt, width: rec.width, height: rec.height });
    img.src = `data:image/png;base64,${rec.png_b64}`;
    parts.slot.replaceWith(img);
    parts.fig.classList.remove("pending");
    parts.fig.removeAttribute("aria-busy");
    parts.fig.dataset.id = rec.id;
    const f = parts.facts;
    if (rec.seed !== undefined && rec.seed !== null) f.append(el("span", { class: "seed", text: `seed ${rec.seed}` }));
    f.append(el("span", { text: seconds(rec.duration_ms) }), el("span", { class: "cost", text: `cost ${tokens(rec.cost ?? 0)}` }));
    if (rec.seed !== undefined && rec.seed !== null) {
      f.append(el("button", { type: "button", class: "reuse", text: "same seed", "aria-label": `use seed ${rec.seed} again`,
        onclick: () => { $("#imagine-prompt").value = rec.prompt; $("#imagine-seed").value = rec.seed; $("#imagine-prompt").focus(); } }));
    }
    f.append(el("button", { type: "button", class: "remove", text: "remove", "aria-label": `remove the picture of ${rec.prompt.slice(0, 40)}`,
      // the picture leaves the page once it is gone from storage, after its own save (else a save
      // still in flight would write it back)
      onclick: async () => { await parts.saved; await deleteImage(rec.id); parts.fig.remove(); trim(); } }));
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
    const parts = card({ prompt, width, height, steps });
    progress(0, "sending…");
    const job = ctx.socket.submit({ kind: "imagine", prompt, params }, {
      queued: (ev) => { progress(0, `queued · position ${ev.position}`); parts.slot.textContent = `queued · position ${ev.position}`; showQueuePosition(ev.position); },
      started: () => { progress(0, "starting…"); parts.slot.textContent = "painting…"; showQueuePosition(null); },
      progress: (ev) => progress(ev.total ? ev.step / ev.total : 0, `step ${ev.step} of ${ev.total}`),
      result: (ev) => {
        progress(null);
        const rec = { id: "i-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6), at: Date.now(), prompt,
          width: ev.width || width, height: ev.height || height, steps: ev.steps || steps, seed: ev.seed ?? params.seed ?? null,
          cost: ev.cost ?? 0, duration_ms: ev.duration_ms ?? null, png_b64: String(ev.image_png_b64 || "") };
        parts.saved = saveImage(rec).catch((e) => ctx.notify(`could not keep the picture: ${e.message}`));
        showPicture(parts, rec);
      },
      error: (ev) => {
        progress(null);
        parts.fig.classList.add("error");
        parts.fig.removeAttribute("aria-busy");
        parts.slot.textContent = ev.code === "cancelled" ? "stopped" : "no picture";
        if (ev.code !== "cancelled") parts.caption.append(errorNode(explain(ev, { kind: "imagine" })));
      },
    });
    ctx.track(job, "imagine");
  }

  $("#imagine-send").addEventListener("click", () => send());
  $("#imagine-prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.ctrlKey) { e.preventDefault(); send(); } });
  ctx.onSend("imagine", () => send());
  listImages().then((images) => { for (const rec of images) showPicture(card(rec, { append: true }), rec); })
    .catch(() => { /* an unreadable store: the gallery starts empty */ });
  return { send };
}
