// The page: tabs, connection, nickname, dark mode, shortcuts, broadcasts; each tab is a module.

import { api } from "./api.js";
import { initChat } from "./chat.js";
import { modelNote } from "./errors.js";
import { initGrid } from "./grid.js";
import { initImagine } from "./imagine.js";
import { initSysop } from "./sysop.js";
import { $, $$, el, seconds, tokens } from "./util.js";
import { initVision } from "./vision.js";
import { initVoice } from "./voice.js";
import { initWallet } from "./wallet.js";
import { GridSocket } from "./ws.js";

const TABS = ["chat", "vision", "imagine", "voice", "grid", "wallet", "sysop"];

function userId() {
  let id = localStorage.getItem("mtor.user");
  if (!id) {
    id = "web-" + [...crypto.getRandomValues(new Uint8Array(6))].map((b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("mtor.user", id);
  }
  return id;
}

// ---- dark mode: remembered, else the system's preference -----------------------------------
function applyTheme(dark) {
  document.documentElement.classList.toggle("dark", dark);
  document.getElementById("dark")?.setAttribute("aria-pressed", String(dark));
  localStorage.setItem("mtor.dark", dark ? "1" : "0");
}
const storedTheme = localStorage.getItem("mtor.dark");
applyTheme(storedTheme === null ? matchMedia("(prefers-color-scheme: dark)").matches : storedTheme === "1");

const user = userId();
const socket = new GridSocket(user);
const tabListeners = [];
const senders = {};
const jobs = new Set();
let tab = null;

const ctx = {
  user,
  socket,
  currentTab: () => tab,
  onTab: (fn) => tabListeners.push(fn),
  onSend: (name, fn) => { senders[name] = fn; },
  showTab,
  track(job, where) { jobs.add(job); const forget = () => jobs.delete(job); job.handlers = wrapDone(job.handlers, forget); return job; },
  notify,
  speak: (text) => ctx.voice.speak(text),
  blockPeer: (id, block) => ctx.sysop.blockPeer(id, block),
  onStatus,
};

function wrapDone(handlers, fn) {
  const out = { ...handlers };
  for (const k of ["result", "error"]) {
    const inner = handlers[k];
    out[k] = (ev, job) => { fn(); if (inner) inner(ev, job); };
  }
  return out;
}

// Hash routing: each tab is #name, so Back and Forward move between tabs (hashchange below).
function showTab(name, { fromHistory = false } = {}) {
  if (!TABS.includes(name)) return;
  const changed = name !== tab;
  tab = name;
  for (const b of $$(".tabs button")) {
    const on = b.dataset.tab === name;
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1; // one tab stop for the tab list; arrows move within it
  }
  for (const t of TABS) $(`#${t}`).hidden = t !== name;
  if (!fromHistory && location.hash.slice(1) !== name) location.hash = name;
  if (changed || !fromHistory) tabListeners.forEach((fn) => fn(name));
}

function notify(text) {
  const box = el("div", { class: "broadcast", role: "status" }, text);
  $("#broadcasts").append(box);
  setTimeout(() => box.remove(), 6000);
}

const shownBroadcasts = new Set(); // a second hello (the sysop token was entered) repeats the recent ones
function showBroadcast(m) {
  const key = `${m.at}|${m.message}`;
  if (shownBroadcasts.has(key)) return;
  shownBroadcasts.add(key);
  const box = el("div", { class: "broadcast", role: "alert", dataset: { from: m.from || "sysop" } },
    el("b", { text: "Sysop: " }), m.message, el("button", { type: "button", text: "×", "aria-label": "dismiss", onclick: () => box.remove() }));
  $("#broadcasts").append(box);
}

// RENT-A-HAL's "welcome back" in the chat's welcome: your recent queries and lifetime cost, the
// system's total cost and average time per kind, users online now and the most ever
function showWelcome(w) {
  const mine = w.user.queries ? `Welcome back: ${w.user.queries} ${w.user.queries === 1 ? "query" : "queries"}, lifetime cost ${tokens(w.user.cost)}.`
    : "Welcome: nothing asked yet.";
  const avg = Object.entries(w.system.avg_ms).map(([k, ms]) => `${k} ${seconds(ms)}`).join(", ");
  const box = el("section", { id: "welcome-back", class: "small", "aria-label": "welcome back" },
    el("p", {}, el("b", { text: mine })),
    w.user.recent.length ? el("ul", {}, ...w.user.recent.map((q) => el("li", { text: `${q.kind}: ${q.prompt || "—"} (${tokens(q.cost)})` }))) : "",
    el("p", { class: "muted", text: `System: ${w.system.queries} queries, cost ${tokens(w.system.cost)}${avg ? ` · average ${avg}` : ""} · `
      + `${w.online_now} online now, most ever ${w.most_ever}` }));
  const old = $("#welcome-back");
  if (old) old.replaceWith(box); else $("#chat-welcome").append(box);
}

// the whole queue, live: a thermometer, the wait a new intent can expect, sending greyed when full
function showQueue(q) {
  const level = $("#queue-level");
  level.max = Math.max(1, q.max);
  level.value = q.queued;
  const wait = q.wait_s ? ` · ~${seconds(q.wait_s * 1000)} wait` : "";
  $("#queue-text").textContent = q.full ? "queue full" : `queue ${q.queued}${wait}`;
  $("#queue-meter").title = `${q.queued} waiting of at most ${q.max}, ${q.running} running (${q.slots} at once)` +
    (q.wait_s ? `; a new intent starts in about ${seconds(q.wait_s * 1000)}` : "");
  document.body.dataset.queueFull = q.full ? "1" : "";
  for (const id of ["#chat-send", "#vision-send", "#imagine-send"]) {
    const b = $(id);
    b.disabled = q.full || (id === "#chat-send" && !$("#chat-stop").hidden); // a running chat keeps Send off
    if (q.full) b.title = "the node's queue is full: it frees up as intents finish"; else b.removeAttribute("title");
  }
}

function stopAll() {
  for (const job of jobs) job.cancel();
  jobs.clear();
  ctx.voice.stopSpeaking();
}

// ---- status: quote, model lists, node id --------------------------------------------------
let quoteKind = "chat";
async function onStatus(s) {
  $("#node-id").textContent = s.peer_id ? `node ${s.peer_id}` : "";
  $("#tab-wallet").hidden = false;
  ctx.chat.setModels(s.models || [], Array.isArray(s.peers) ? s.peers : []);
  for (const kind of ["vision", "imagine"]) modelNote($(`#model-note-${kind}`), s.models || [], kind);
  refreshQuote();
}

async function refreshQuote() {
  try {
    const q = await api(`/api/v1/quote?kind=${quoteKind}`);
    $("#quote").textContent = q.ok || q.price !== null ? `next ${quoteKind}: ~${tokens(q.price ?? 0)}` : `next ${quoteKind}: ${q.message || "no offer"}`;
    $("#quote").title = q.message || (q.peer ? `best offer from ${q.peer}` : "");
  } catch { $("#quote").textContent = "—"; }
}

async function refreshStatus() {
  try { onStatus(await api("/api/v1/status")); } catch { /* offline: the badge says so */ }
}

// ---- wiring -------------------------------------------------------------------------------
ctx.chat = initChat(ctx);
ctx.vision = initVision(ctx);
ctx.imagine = initImagine(ctx);
ctx.voice = initVoice(ctx);
ctx.wallet = initWallet(ctx);
ctx.grid = initGrid(ctx);
ctx.sysop = initSysop(ctx);

for (const b of $$(".tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
$(".tabs").addEventListener("keydown", (e) => {
  const i = TABS.indexOf(tab);
  const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  showTab(TABS[(to + TABS.length) % TABS.length]);
  $(`#tab-${tab}`).focus();
});
addEventListener("hashchange", () => {
  const name = location.hash.slice(1) || "chat";
  if (TABS.includes(name)) showTab(name, { fromHistory: true });
});
ctx.onTab((name) => { if (["chat", "vision", "imagine"].includes(name)) { quoteKind = name; refreshStatus(); } });

socket.addEventListener("state", (e) => {
  const badge = $("#conn");
  badge.dataset.state = e.detail;
  badge.textContent = { open: "connected", connecting: "connecting…", closed: "reconnecting…" }[e.detail];
  if (e.detail === "open") refreshStatus();
});
socket.addEventListener("message", (e) => {
  const m = e.detail;
  if (m.type === "broadcast") showBroadcast(m);
  else if (m.type === "queue") showQueue(m);
  else if (m.type === "welcome") {
    if (m.summary) showWelcome(m.summary);
    for (const b of m.broadcasts || []) if (Date.now() / 1000 - b.at < 600) showBroadcast(b);
    if (m.banned) notify("this user is banned on this node");
  } else if (m.type === "error" && m.message) notify(m.message);
});

const nick = $("#nickname");
nick.value = localStorage.getItem("mtor.nickname") || "";
nick.addEventListener("change", async () => {
  const nickname = nick.value.trim();
  if (!nickname) return;
  try {
    await api("/api/v1/nickname", { method: "POST", body: { user, nickname } });
    localStorage.setItem("mtor.nickname", nickname);
    notify(`you are now ${nickname}`);
  } catch (err) { notify(err.message); }
});
socket.addEventListener("state", (e) => {
  const nickname = localStorage.getItem("mtor.nickname");
  if (e.detail === "open" && nickname) api("/api/v1/nickname", { method: "POST", body: { user, nickname } }).catch(() => {});
});

$("#dark").addEventListener("click", () => applyTheme(!document.documentElement.classList.contains("dark")));
$("#stop-all").addEventListener("click", stopAll);

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") { stopAll(); return; }
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    const send = senders[tab];
    if (send) { e.preventDefault(); send(); }
    return;
  }
  if (e.altKey && /^[1-7]$/.test(e.key)) { e.preventDefault(); showTab(TABS[Number(e.key) - 1]); return; }
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "d") { e.preventDefault(); $("#dark").click(); }
});

const first = TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "chat";
history.replaceState(null, "", `${location.pathname}${location.search}#${first}`);
tab = null;
showTab(first, { fromHistory: true });
socket.connect();
window.mtor = ctx; // for the curious, and for tests
performance.mark("mtor:interactive"); // every tab wired: what tests/benchmarks/bench_page.py measures
socket.addEventListener("state", (e) => { if (e.detail === "open" && !performance.getEntriesByName("mtor:connected").length) performance.mark("mtor:connected"); });
