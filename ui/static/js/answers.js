// One answer card per intent: shows queue position while waiting, streams text as markdown,
// then who answered, the time and the cost, and a notice when the answer hit its token limit.
// Used by chat, vision, voice and the wake word.

import { errorNode, explain } from "./errors.js";
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
  const card = el("div", { class: "msg user" }, el("span", { class: "text", text }), extra || null);
  log.append(card);
  log.scrollTop = log.scrollHeight;
  return card;
}

// The result event's facts worth keeping with a message.
export function metaOf(ev, maxTokens) {
  const units = Number.isFinite(ev.units) ? ev.units : null;
  return {
    peer: ev.peer || null, cost: ev.cost ?? 0, duration_ms: ev.duration_ms ?? null, units,
    truncated: ev.finish_reason === "length" || (!ev.finish_reason && !!maxTokens && units !== null && units >= maxTokens),
    max_tokens: maxTokens || null,
  };
}

function shell(log) {
  const body = el("div", { class: "body" });
  const status = el("span", { class: "status" });
  const time = el("span", { class: "time" });
  const cost = el("span", { class: "cost" });
  const actions = el("span", { class: "actions" });
  const card = el("div", { class: "msg answer", dataset: { state: "pending" } }, body, el("div", { class: "meta" }, status, time, cost, actions));
  log.append(card);
  return { card, body, status, time, cost, actions };
}

function showMeta(parts, meta, onContinue) {
  parts.status.textContent = meta.peer ? `answered by ${String(meta.peer).slice(0, 12)}…` : "answered";
  parts.status.title = meta.peer || "this node";
  parts.time.textContent = `time ${seconds(meta.duration_ms)}`;
  parts.cost.textContent = `cost ${tokens(meta.cost ?? 0)}`;
  parts.card.querySelector(".notice")?.remove();
  if (meta.truncated) {
    const notice = el("div", { class: "notice", role: "note" },
      `The answer stopped at its limit of ${meta.max_tokens || meta.units} tokens. `,
      onContinue ? el("button", { type: "button", class: "continue", text: "Continue", onclick: onContinue }) : null,
      " or raise “max tokens” in Settings.");
    parts.body.after(notice);
  }
}

// A stored answer (after a reload): the same card, already done.
export function staticAnswer(log, msg, { onContinue } = {}) {
  const parts = shell(log);
  parts.body.append(renderMarkdown(msg.content));
  if (msg.meta && msg.meta.error) {
    const stopped = msg.meta.error === "stopped";
    parts.card.classList.add("error");
    parts.card.dataset.state = stopped ? "cancelled" : "error";
    if (stopped) parts.status.textContent = "stopped";
    else parts.body.after(errorNode({ title: msg.meta.error, why: null, fix: msg.meta.fix || null, raw: null }));
  } else {
    parts.card.dataset.state = "done";
    showMeta(parts, msg.meta || {}, onContinue);
  }
  return parts;
}

// Returns {card, body, actions, handlers}; pass handlers to socket.submit. onDone(resultEvent|null, text, meta).
// Pass `card` to stream into an existing card (continue).
export function answerCard(log, { onDone, onText, maxTokens, kind = "chat", model = null, onContinue, prefix = "" } = {}) {
  const parts = shell(log);
  const { card, body, status, time } = parts;
  status.textContent = "sending…";
  let text = prefix;
  let frame = 0;
  const t0 = performance.now();
  const paint = () => {
    clearTimeout(frame);
    frame = 0;
    clear(body).append(renderMarkdown(text));
    log.scrollTop = log.scrollHeight;
  };
  if (prefix) paint();
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
      if (typeof ev.text === "string") text = prefix + ev.text;
      paint();
      const meta = metaOf({ ...ev, duration_ms: ev.duration_ms ?? Math.round(performance.now() - t0) }, maxTokens);
      showMeta(parts, meta, onContinue);
      finish("done");
      if (onDone) onDone(ev, text, meta);
    },
    error: (ev) => {
      card.classList.add("error");
      if (text) paint();
      const info = explain(ev, { kind, model });
      status.textContent = ev.code === "cancelled" ? "stopped" : "";
      if (ev.code !== "cancelled") body.after(errorNode(info));
      time.textContent = `time ${seconds(Math.round(performance.now() - t0))}`;
      finish(ev.code === "cancelled" ? "cancelled" : "error");
      if (onDone) onDone(null, text, ev.code === "cancelled" ? { error: "stopped" } : { error: info.title, fix: info.fix });
    },
  };
  return { card, body, actions: parts.actions, handlers };
}
