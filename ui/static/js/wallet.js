// Wallet: the balance, a chart of it over the entries shown, and the ledger entries with search.

import { api } from "./api.js";
import { lineChart } from "./svg.js";
import { $, el, clear, dash, emptyRow, short, tokens } from "./util.js";

const MAX_ROWS = 200;

export function initWallet(ctx) {
  let entries = [];

  const when = (e) => (e.time > 1e12 ? e.time : e.time * 1000); // the ledger keeps milliseconds; accept seconds too
  const amountOf = (e) => (Number.isFinite(e.delta) ? e.delta : e.amount);
  const signed = (a) => (Number.isFinite(a) ? (a === 0 ? "0" : a < 0 ? "−" + tokens(-a) : "+" + tokens(a)) : "—");

  function renderRows() {
    const q = $("#ledger-search").value.trim().toLowerCase();
    const body = clear($("#ledger tbody"));
    let shown = 0;
    for (const e of entries) {
      const time = Number.isFinite(e.time) ? new Date(when(e)).toLocaleString() : dash(e.time);
      const detail = e.detail || e.peer || e.job || e.tx || "";
      const cells = [dash(e.seq), time, dash(e.kind), signed(amountOf(e)), String(detail)];
      if (q && !cells.some((c) => c.toLowerCase().includes(q))) continue;
      if (++shown > MAX_ROWS) break;
      body.append(el("tr", {}, el("td", { text: cells[0] }), el("td", { text: cells[1] }), el("td", { text: cells[2] }),
        el("td", { text: cells[3] }), el("td", { class: "mono", title: detail, text: short(detail, 24) })));
    }
    if (!shown) emptyRow(body, q ? `No entry matches “${q}”.` : "No entries yet.");
    $("#ledger-count").textContent = q ? `${Math.min(shown, MAX_ROWS)} of ${entries.length} entries match` : `${entries.length} entries`;
  }

  function renderChart(balance) {
    // walk back from the balance now: the balance after each entry, oldest first; one step per
    // entry (entries often share a second, so the x axis counts entries, labelled with their times)
    const sorted = [...entries].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    let b = balance;
    const pts = [];
    for (let i = sorted.length - 1; i >= 0; i--) {
      pts.unshift([i + 1, b / 1e6]);
      const a = amountOf(sorted[i]);
      if (Number.isFinite(a)) b -= a;
    }
    if (pts.length) {
      pts.unshift([0, b / 1e6]); // before the oldest entry shown
      pts.push([pts.length, balance / 1e6]); // the balance now holds after the newest entry
    }
    const label = (i) => {
      const e = sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(i) - 1))];
      return e && Number.isFinite(e.time) ? `#${dash(e.seq)} · ${new Date(when(e)).toLocaleString()}` : "";
    };
    lineChart($("#balance-chart"), pts.length ? { balance: pts } : {}, { format: (v) => v.toFixed(2), emptyText: "no entries yet", step: true, xLabel: label });
  }

  async function render(summary) {
    const has = summary && typeof summary === "object";
    $("#wallet-empty").hidden = has;
    $("#wallet-body").hidden = !has;
    if (!has) return;
    let wallet = summary;
    if (ctx.currentTab() === "wallet") {
      try { wallet = { ...summary, ...(await api("/api/v1/wallet?limit=500")) }; } catch { /* the summary will do */ }
    }
    $("#wallet-balance").textContent = Number.isFinite(wallet.balance) ? (wallet.balance / 1e6).toFixed(6) : "—";
    if (Number.isFinite(wallet.held) && wallet.held > 0) $("#wallet-balance").title = `${tokens(wallet.held)} held for running queries`;
    $("#wallet-address").textContent = wallet.address || "";
    entries = wallet.recent || wallet.entries || [];
    renderRows();
    if (Number.isFinite(wallet.balance)) renderChart(wallet.balance);
  }

  $("#ledger-search").addEventListener("input", renderRows);
  return { render };
}
