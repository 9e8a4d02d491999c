// One answer card per intent: shows queue position while waiting, streams text as markdown,
// then the time and cost of the answer. Used by chat, vision, voice and the wake word.

import { renderMarkdown } from "./markdown.js";
import { el, clear, seconds, tokens } from "./util.js";

const queueBadge = () => document.getElementById("queue-pos");

export function showQueuePosition(pos) {
  const b = queueBadge();
  if (pos === null || pos === undefined) { b.hidden = true; return; }
  b.hidden = false;
  b.textContent = `queue position ${pos}`;
}

export function userCard(log, text, extra) {
  const card = el("div", { class: "msg user" }, text, extra || null);
  log.append(card);
  log.scrollTop = log.scrollHeight;
  return card;
}

// Returns {card, handlers}; pass handlers to socket.submit. onDone(resultEvent|null, text).
export function answerCard(log, { onDone, onText } = {}) {
  const body = el("div", { class: "body" });
  const status = el("span", { class: "status", text: "sending…" });
  const time = el("span", { class: "time" });
  const cost = el("span", { class: "cost" });
  const card = el("div", { class: "msg answer", dataset: { state: "pending" } }, body, el("div", { class: "meta" }, status, time, cost));
  log.append(card);
  let text = "";
  let frame = 0;
  const t0 = performance.now();
  const paint = () => {
    clearTimeout(frame);
    frame = 0;
    clear(body).append(renderMarkdown(text));
    log.scrollTop = log.scrollHeight;
  };
  const finish = (state) => {
    card.dataset.state = state;
    showQueuePosition(null);
  };
  const handlers = {
    queued: (ev) => { status.textContent = `queued · position ${ev.position}`; showQueuePosition(ev.position); },
    started: () => { status.textContent = "answering…"; showQueuePosition(null); },
    chunk: (ev) => {
      if (typeof ev.text !== "string") return;
      text += ev.text;
      if (onText) onText(text);
      if (!frame) frame = setTimeout(paint, 40); // not rAF: it stops in background tabs and headless pages
    },
    result: (ev) => {
      if (typeof ev.text === "string") text = ev.text;
      paint();
      status.textContent = ev.peer ? `answered by ${String(ev.peer).slice(0, 12)}…` : "answered";
      time.textContent = `time ${seconds(ev.duration_ms ?? Math.round(performance.now() - t0))}`;
      cost.textContent = `cost ${tokens(ev.cost ?? 0)}`;
      finish("done");
      if (onDone) onDone(ev, text);
    },
    error: (ev) => {
      card.classList.add("error");
      if (text) paint();
      status.textContent = ev.code === "cancelled" ? "stopped" : `error: ${ev.message || ev.code}`;
      time.textContent = `time ${seconds(Math.round(performance.now() - t0))}`;
      finish(ev.code === "cancelled" ? "cancelled" : "error");
      if (onDone) onDone(null, text);
    },
  };
  return { card, body, handlers };
}
