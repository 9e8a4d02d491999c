// Sysop: users and bans, the queue with cancel, broadcast, prices, peer blocks, anchoring, stats;
// alerts, models and the live log are sysop-console.js.
// Every call carries X-Sysop-Token; features the node lacks answer 501 and the message is shown.

import { api, setSysopToken, sysopToken } from "./api.js";
import { barChart } from "./charts.js";
import { initSysopConsole } from "./sysop-console.js";
import { $, el, clear, emptyRow, short } from "./util.js";

export function initSysop(ctx) {
  const msg = $("#sysop-msg");
  const say = (text, bad = false) => { msg.textContent = text; msg.style.color = bad ? "var(--danger)" : ""; };
  const tokenInput = $("#sysop-token");
  tokenInput.value = sysopToken();
  tokenInput.addEventListener("change", () => { setSysopToken(tokenInput.value.trim()); ctx.socket.hello(); refresh(); });

  async function call(path, body, method = "POST") {
    try {
      const r = await api(path, { method, body: method === "DELETE" ? undefined : body ?? {}, sysop: true });
      return r;
    } catch (e) {
      say(e.status === 501 || e.status === 409 ? `not available: ${e.message}` : e.message, true);
      return null;
    }
  }

  async function refreshUsers() {
    const { users } = await api("/api/v1/users", { sysop: true });
    const body = clear($("#users tbody"));
    if (!users.length) emptyRow(body, "No users yet: a browser or client that asks something appears here.");
    for (const u of users) {
      const banned = !!u.banned;
      body.append(el("tr", { dataset: { user: u.id } }, el("td", { class: "mono", text: u.id }), el("td", { text: u.nickname || "—" }),
        el("td", { class: banned ? "blocked" : "", text: banned ? "banned" : "ok" }),
        el("td", {}, el("button", { type: "button", class: banned ? "" : "danger", text: banned ? "unban" : "ban",
          onclick: async () => { if (await call(`/api/v1/users/${encodeURIComponent(u.id)}/${banned ? "unban" : "ban"}`)) { say(`${u.id} ${banned ? "unbanned" : "banned"}`); refresh(); } } }))));
    }
  }

  async function refreshQueue() {
    const { queue } = await api("/api/v1/queue", { sysop: true }); // ids and users of others: the sysop only
    const body = clear($("#sysop-queue tbody"));
    if (!queue.length) emptyRow(body, "The queue is empty: nothing waiting or running.");
    for (const q of queue) {
      body.append(el("tr", {}, el("td", { class: "mono", title: q.id, text: short(q.id, 8) }), el("td", { text: q.user }),
        el("td", { text: q.kind }), el("td", { text: q.state }), el("td", { text: q.position ?? "—" }),
        el("td", {}, el("button", { type: "button", class: "danger", text: "cancel",
          onclick: async () => { if (await call(`/api/v1/queue/${encodeURIComponent(q.id)}/cancel`, { reason: "cancelled by the sysop" })) refresh(); } }))));
    }
  }

  async function refreshStats() {
    const stats = await api("/api/v1/stats");
    const byKind = {};
    for (const q of stats.queries || []) byKind[`${q.kind} ${q.status}`] = (byKind[`${q.kind} ${q.status}`] || 0) + q.count;
    barChart($("#stats-chart"), Object.entries(byKind));
  }

  async function refreshPrices() {
    const p = await api("/api/v1/prices");
    if (Number.isFinite(p.prices.chat)) $("#price-chat").value = p.prices.chat;
    $("#peaking").value = p.peaking ?? 0;
  }

  async function refresh() {
    if (!sysopToken()) {
      say("Enter the sysop token to manage this node: it is in sysop.token in the node's data dir.");
      for (const sel of ["#users tbody", "#sysop-queue tbody"]) emptyRow(clear($(sel)), "needs the sysop token");
      return;
    }
    refreshPrices().catch(() => {});
    try {
      await Promise.all([refreshUsers(), refreshQueue(), refreshStats(), consoleParts.refresh()]);
      say("");
    } catch (e) { say(e.message, true); }
  }

  const consoleParts = initSysopConsole(ctx, { call, say });
  $("#sysop-refresh").addEventListener("click", refresh);
  $("#broadcast-send").addEventListener("click", async () => {
    const text = $("#broadcast-text").value.trim();
    if (!text) return;
    const r = await call("/api/v1/broadcast", { message: text });
    if (r) { say(`sent to ${r.delivered} page(s)`); $("#broadcast-text").value = ""; }
  });
  $("#prices-set").addEventListener("click", async () => {
    const r = await call("/api/v1/prices", { prices: { chat: Math.max(0, Math.round(Number($("#price-chat").value) || 0)) },
      peaking: Number($("#peaking").value) || 0 });
    if (r) say(`prices set: ${Object.entries(r.prices).map(([k, v]) => `${k} ${v}`).join(", ")}${r.peaking ? ` · peaking ≥ ×${r.peaking}` : ""}`);
  });
  $("#block-send").addEventListener("click", () => blockPeer($("#block-peer").value.trim(), true));
  $("#anchor-now").addEventListener("click", async () => {
    const r = await call("/api/v1/ledger/anchor");
    if (r) say(r.anchored ? `anchored entries ${r.first}–${r.last} in ${short(r.tx, 16)}` : r.reason || "nothing to anchor");
  });

  async function blockPeer(id, block) {
    if (!id) return;
    if (!sysopToken()) { ctx.showTab("sysop"); say("enter the sysop token first", true); return; }
    const r = await call(`/api/v1/peers/${encodeURIComponent(id)}/${block ? "block" : "unblock"}`);
    if (r) say(`${short(id, 12)} ${block ? "blocked" : "unblocked"}`);
  }

  ctx.onTab(() => { if (ctx.currentTab() === "sysop") refresh(); });
  return { refresh, blockPeer };
}
