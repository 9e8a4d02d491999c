// Grid: the realm at a glance (an SVG map, per-peer sparklines of price, health and RTT, the
// cheapest price per kind over time) and this node's models. History is kept in the page from
// the live refreshes (nothing on the node remembers it), bounded per peer.

import { api, sysopToken } from "./api.js";
import { healthColour, lineChart, PALETTE, realmMap, sparkline } from "./svg.js";
import { $, el, clear, dash, emptyRow, short, tokens } from "./util.js";

const REFRESH_MS = 3000;
const POINTS = 120; // ~6 minutes of history at one point per refresh
const MAX_PEERS_KEPT = 500;

const push = (list, v) => { list.push(v); if (list.length > POINTS) list.splice(0, list.length - POINTS); };

export function initGrid(ctx) {
  const history = new Map(); // peer -> {price: [], health: [], rtt: []}
  const kindPrices = {}; // kind -> [[t, cheapest]]
  let timer = null;

  function peerHistory(id) {
    if (!history.has(id)) {
      if (history.size >= MAX_PEERS_KEPT) history.delete(history.keys().next().value);
      history.set(id, { price: [], health: [], rtt: [] });
    }
    return history.get(id);
  }

  function effective(p, kind) {
    const v = (p.prices || {})[kind];
    if (!Number.isFinite(v)) return null;
    return Number.isFinite(p.surge) ? v * p.surge : v;
  }

  function renderPeers(peers, self) {
    const table = $("#peers");
    const body = clear($("tbody", table));
    $("#grid-empty").hidden = peers.length > 0;
    table.hidden = peers.length === 0;
    const now = Date.now() / 1000;
    const cheapest = {};
    for (const [k, v] of Object.entries(self.prices || {})) if (k !== "peak" && Number.isFinite(v)) cheapest[k] = v;
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
      const h = peerHistory(id);
      push(h.price, effective(p, "chat"));
      push(h.health, health);
      push(h.rtt, Number.isFinite(p.rtt_ms) ? p.rtt_ms : null);
      if (p.fresh !== false && !blocked) {
        for (const k of Object.keys(prices)) {
          const e = effective(p, k);
          if (e !== null && (cheapest[k] === undefined || e < cheapest[k])) cheapest[k] = e;
        }
      }
      const block = el("button", { type: "button", class: blocked ? "" : "danger", text: blocked ? "unblock" : "block",
        title: "needs the sysop token", "aria-label": `${blocked ? "unblock" : "block"} peer ${short(id, 14)}`, onclick: () => ctx.blockPeer(id, !blocked) });
      body.append(el("tr", { class: blocked ? "blocked" : "", dataset: { peer: id } },
        el("td", { class: "mono", title: id }, short(id, 14), p.nickname ? ` (${p.nickname})` : "", p.connected === false ? " · offline" : ""),
        el("td", { text: gpus }), el("td", { text: models || "—" }), el("td", { text: price || "—" }),
        el("td", { text: Number.isFinite(p.surge) ? `×${p.surge}` : "—" }),
        el("td", {}, health === null ? "—" : healthBar(health), health === null ? "" : ` ${health}`),
        el("td", { text: Number.isFinite(p.rtt_ms) ? `${Math.round(p.rtt_ms)} ms` : "—" }),
        el("td", { class: "sparks" },
          sparkline(h.price, { colour: PALETTE[0], label: `chat price history of ${short(id, 10)}` }),
          sparkline(h.health, { colour: PALETTE[1], label: `health history of ${short(id, 10)}` }),
          sparkline(h.rtt, { colour: PALETTE[2], label: `round-trip time history of ${short(id, 10)}` })),
        el("td", {}, sysopToken() ? block : "")));
    }
    for (const [k, v] of Object.entries(cheapest)) push(kindPrices[k] ||= [], [now, v]);
    lineChart($("#price-chart"), kindPrices, { format: (v) => tokens(Math.round(v)).replace(" $9000", ""),
      emptyText: "no prices yet: this node and its peers set none" });
    const kindsOf = (p) => (Array.isArray(p.models) ? [] : Object.keys(p.models || {}));
    realmMap($("#realm-map"), [
      { id: self.peer_id || "self", label: "this node", self: true, models: (self.models || []).length, health: 100,
        gpu: !!(self.hardware && self.hardware.gpus && self.hardware.gpus.length),
        vram: ((self.hardware && self.hardware.gpus) || []).reduce((n, g) => n + (Number.isFinite(g.vram_total) ? g.vram_total : 0), 0) || null, kinds: [...new Set((self.models || []).map((m) => m.kind))],
        detail: `this node ${self.peer_id || ""}` },
      ...peers.map((p) => {
        const id = p.peer_id || p.id || "?";
        const models = Array.isArray(p.models) ? p.models.length : Object.values(p.models || {}).flat().length;
        const vram = (p.gpus || []).reduce((n, g) => n + (Number.isFinite(g.vram_total) ? g.vram_total : 0), 0);
        return { id, label: short(id, 10), models, health: p.health, gpu: (p.gpus || []).length > 0, vram: vram || null, kinds: kindsOf(p),
          offline: p.connected === false || p.fresh === false,
          detail: `${id}\nhealth ${dash(p.health)} · RTT ${Number.isFinite(p.rtt_ms) ? Math.round(p.rtt_ms) + " ms" : "—"}` };
      }),
    ]);
  }

  function renderModels(models) {
    const body = clear($("#models tbody"));
    if (!models.length) emptyRow(body, "This node serves no models itself (a broker only): its peers answer.");
    for (const m of models) {
      body.append(el("tr", {}, el("td", { text: m.name }), el("td", { text: m.kind }), el("td", { text: m.backend }),
        el("td", { text: m.status + (m.error ? `: ${m.error}` : "") }), el("td", { text: `${m.inflight}/${m.concurrency}` }),
        el("td", { text: dash(m.served) })));
    }
  }

  async function refresh() {
    try {
      const s = await api("/api/v1/status");
      ctx.onStatus(s);
      if (ctx.currentTab() === "grid") {
        let prices = {};
        try {
          const r = await api("/api/v1/prices");
          const surge = Number.isFinite(r.surge) ? r.surge : 1;
          for (const [k, v] of Object.entries(r.prices || {})) if (Number.isFinite(v)) prices[k] = v * surge;
        } catch { /* no price service: peers' prices only */ }
        renderPeers(Array.isArray(s.peers) ? s.peers : [], { ...s, prices });
        renderModels(s.models || []);
      }
      ctx.wallet.render(s.wallet);
    } catch { /* the connection badge already says the node is away */ }
  }

  function schedule() {
    clearInterval(timer);
    timer = null;
    if (["grid", "wallet"].includes(ctx.currentTab())) timer = setInterval(refresh, REFRESH_MS);
  }

  ctx.onTab(() => { schedule(); if (["grid", "wallet"].includes(ctx.currentTab())) refresh(); });
  return { refresh, history };
}

function healthBar(health) {
  const bar = el("span", { class: "health" });
  bar.style.width = `${Math.max(2, health / 2)}px`; // CSSOM, not a style attribute: allowed by the CSP
  bar.style.background = healthColour(health);
  return bar;
}
