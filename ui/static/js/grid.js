// Grid and Wallet: read from /api/v1/status, refreshed live while either tab is visible.
// Federation and the ledger may be absent: their panels then say so instead of inventing data.

import { api, sysopToken } from "./api.js";
import { lineChart } from "./charts.js";
import { $, el, clear, dash, short, tokens } from "./util.js";

const REFRESH_MS = 3000;
const PRICE_POINTS = 120; // ~6 minutes of history at one point per refresh

export function initGrid(ctx) {
  const priceHistory = {}; // peer -> [[t, price]]
  let timer = null;

  function renderPeers(peers) {
    const table = $("#peers");
    const body = clear($("tbody", table));
    $("#grid-empty").hidden = peers.length > 0;
    table.hidden = peers.length === 0;
    const now = Date.now() / 1000;
    for (const p of peers) {
      const id = p.peer_id || p.id || "?";
      const gpus = (p.gpus || []).map((g) => `${g.name || "GPU"}${g.vram_total ? ` ${(g.vram_total / 2 ** 30).toFixed(0)} GiB` : ""}`).join(", ")
        || (p.cpu && p.cpu.cores ? `CPU ×${p.cpu.cores}` : "CPU");
      const models = Array.isArray(p.models) ? p.models.join(", ")
        : Object.entries(p.models || {}).map(([k, v]) => `${k}: ${[].concat(v).join(", ")}`).join("; ");
      const prices = { ...(p.prices || {}) };
      const peak = prices.peak; // the peaking threshold rides in the price map, in thousandths
      delete prices.peak;
      const price = Object.entries(prices).map(([k, v]) => `${k} ${tokens(v)}`).join(", ") + (peak ? ` · peaking ≥ ×${peak / 1000}` : "");
      const health = Number.isFinite(p.health) ? p.health : null;
      const blocked = !!p.blocked;
      const block = el("button", { type: "button", class: blocked ? "" : "danger", text: blocked ? "unblock" : "block",
        title: "needs the sysop token", onclick: () => ctx.blockPeer(id, !blocked) });
      body.append(el("tr", { class: blocked ? "blocked" : "", dataset: { peer: id } },
        el("td", { class: "mono", title: id }, short(id, 14), p.nickname ? ` (${p.nickname})` : "", p.connected === false ? " · offline" : ""),
        el("td", { text: gpus }), el("td", { text: models || "—" }), el("td", { text: price || "—" }),
        el("td", { text: Number.isFinite(p.surge) ? `×${p.surge}` : "—" }),
        el("td", {}, health === null ? "—" : healthBar(health), health === null ? "" : ` ${health}`),
        el("td", { text: Number.isFinite(p.rtt_ms) ? `${Math.round(p.rtt_ms)} ms` : "—" }),
        el("td", {}, sysopToken() ? block : "")));
      const chat = prices.chat;
      if (Number.isFinite(chat)) {
        const eff = Number.isFinite(p.surge) ? chat * p.surge : chat;
        (priceHistory[short(id, 10)] ||= []).push([now, eff]);
        priceHistory[short(id, 10)].splice(0, Math.max(0, priceHistory[short(id, 10)].length - PRICE_POINTS));
      }
    }
    lineChart($("#price-chart"), priceHistory, { unit: "µ" });
  }

  function renderModels(models) {
    const body = clear($("#models tbody"));
    for (const m of models) {
      body.append(el("tr", {}, el("td", { text: m.name }), el("td", { text: m.kind }), el("td", { text: m.backend }),
        el("td", { text: m.status + (m.error ? `: ${m.error}` : "") }), el("td", { text: `${m.inflight}/${m.concurrency}` }),
        el("td", { text: dash(m.served) })));
    }
  }

  async function renderWallet(summary) {
    const has = summary && typeof summary === "object";
    $("#wallet-empty").hidden = has;
    $("#wallet-body").hidden = !has;
    if (!has) return;
    let wallet = summary;
    if (ctx.currentTab() === "wallet") {
      try { wallet = { ...summary, ...(await api("/api/v1/wallet?limit=100")) }; } catch { /* the summary will do */ }
    }
    $("#wallet-balance").textContent = Number.isFinite(wallet.balance) ? (wallet.balance / 1e6).toFixed(6) : "—";
    if (Number.isFinite(wallet.held) && wallet.held > 0) $("#wallet-balance").title = `${tokens(wallet.held)} held for running queries`;
    $("#wallet-address").textContent = wallet.address || "";
    const body = clear($("#ledger tbody"));
    for (const e of (wallet.recent || wallet.entries || []).slice(0, 200)) {
      const ms = e.time > 1e12 ? e.time : e.time * 1000; // the ledger keeps milliseconds; accept seconds too
      const when = Number.isFinite(e.time) ? new Date(ms).toLocaleString() : dash(e.time);
      const detail = e.detail || e.peer || e.job || e.tx || "";
      const amount = Number.isFinite(e.delta) ? e.delta : e.amount;
      body.append(el("tr", {}, el("td", { text: dash(e.seq) }), el("td", { text: when }), el("td", { text: dash(e.kind) }),
        el("td", { text: Number.isFinite(amount) ? (amount === 0 ? "0" : amount < 0 ? "−" + tokens(-amount) : "+" + tokens(amount)) : "—" }), el("td", { class: "mono", text: short(detail, 24) })));
    }
  }

  async function refresh() {
    try {
      const s = await api("/api/v1/status");
      ctx.onStatus(s);
      renderPeers(Array.isArray(s.peers) ? s.peers : []);
      renderModels(s.models || []);
      renderWallet(s.wallet);
    } catch { /* the connection badge already says the node is away */ }
  }

  function schedule() {
    clearInterval(timer);
    timer = null;
    if (["grid", "wallet"].includes(ctx.currentTab())) timer = setInterval(refresh, REFRESH_MS);
  }

  ctx.onTab(() => { schedule(); if (["grid", "wallet"].includes(ctx.currentTab())) refresh(); });
  return { refresh };
}

function healthBar(health) {
  const bar = el("span", { class: "health" });
  bar.style.width = `${Math.max(2, health / 2)}px`; // CSSOM, not a style attribute: allowed by the CSP
  return bar;
}
