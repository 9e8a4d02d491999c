// The sysop's console in the Sysop tab: the watchdog's alerts (pushed over the WebSocket to pages
// that know the sysop token, and read once from /api/v1/sysop/alerts), the node's models (add,
// load, unload, remove at run time), lifetime stats per kind, and the live log (level, search,
// follow). Routes: docs/api.md "Sysop console" and "Models at run time".

import { api, sysopToken } from "./api.js";
import { $, el, clear, emptyRow, seconds, tokens } from "./util.js";

const LOG_POLL_MS = 2000;
const LOG_KEEP = 500; // lines kept on the page

export function initSysopConsole(ctx, { call, say }) {
  const alerts = new Map(); // about -> the latest alert
  let lastSeq = 0;
  let polling = null;

  // ---- alerts --------------------------------------------------------------------------------
  function drawAlerts() {
    const list = clear($("#sysop-alerts"));
    if (!alerts.size) list.append(el("li", { class: "muted", dataset: { severity: "ok" }, text: "No alerts: chat and imagine are served." }));
    for (const a of alerts.values()) {
      const when = a.at ? new Date(a.at * 1000).toLocaleTimeString() : "";
      list.append(el("li", { dataset: { severity: a.severity, about: a.about } }, `${when} ${a.message}`));
    }
  }
  function onAlert(a) {
    if (a.severity === "error") alerts.set(a.about, a); else alerts.delete(a.about);
    drawAlerts();
    ctx.notify(`watchdog: ${a.message}`);
  }
  async function refreshAlerts() {
    const r = await api("/api/v1/sysop/alerts", { sysop: true });
    alerts.clear();
    for (const a of r.alerts || []) alerts.set(a.about, a);
    drawAlerts();
  }

  // ---- models --------------------------------------------------------------------------------
  async function refreshModels() {
    const s = await api("/api/v1/status");
    const body = clear($("#sysop-models tbody"));
    const models = s.models || [];
    if (!models.length) emptyRow(body, "This node runs no models: add one below, or start it as a worker.");
    for (const m of models) {
      const state = m.status === "failed" || m.status === "unavailable" ? `${m.status}: ${m.error || ""}` : m.progress && m.status === "loading" ? `loading ${m.progress}` : m.status;
      const act = (verb, label, cls = "") => el("button", { type: "button", class: cls, text: label, "aria-label": `${label} ${m.name}`,
        onclick: async () => {
          say(`${label} ${m.name}…`);
          const r = verb === "remove" ? await call(`/api/v1/models/${encodeURIComponent(m.name)}`, undefined, "DELETE")
            : await call(`/api/v1/models/${encodeURIComponent(m.name)}/${verb}`);
          if (r) { say(`${m.name}: ${verb === "remove" ? "removed" : r.model?.status || "done"}`); refreshModels(); }
        } });
      body.append(el("tr", { dataset: { model: m.name } }, el("td", { class: "mono", text: m.name }), el("td", { text: m.kind }),
        el("td", { text: m.backend }), el("td", { class: m.status === "ready" ? "" : "muted", text: state }),
        el("td", {}, m.status === "ready" ? act("unload", "unload") : act("load", "load"), " ", act("remove", "remove", "danger"))));
    }
  }
  $("#model-add").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: $("#model-name").value.trim(), kind: $("#model-kind").value, backend: $("#model-backend").value.trim() };
    const source = $("#model-source").value.trim();
    if (source) body.source = source;
    const r = await call("/api/v1/models", body);
    if (r) { say(`model ${r.model?.name || body.name} added`); e.target.reset(); refreshModels(); }
  });

  // ---- stats ---------------------------------------------------------------------------------
  async function refreshLifetime() {
    const st = await api("/api/v1/sysop/stats", { sysop: true });
    const most = st.most_users_at_once || {};
    $("#stats-lifetime").textContent = `${st.lifetime.queries} queries ever · ${st.lifetime.users_ever} users ever · `
      + `most at once ${most.count ?? 0}${most.at ? ` (${new Date(most.at * 1000).toLocaleString()})` : ""} · `
      + `now ${st.now?.pages ?? 0} page(s), ${st.now?.queue ?? 0} in the queue`;
    const body = clear($("#stats-kinds tbody"));
    const kinds = Object.entries(st.per_kind || {});
    if (!kinds.length) emptyRow(body, "Nothing asked yet.");
    for (const [kind, k] of kinds) {
      body.append(el("tr", {}, el("td", { text: kind }), el("td", { text: String(k.total) }), el("td", { text: String(k.failed) }),
        el("td", { text: k.avg_ms === null ? "—" : seconds(k.avg_ms) }), el("td", { text: tokens(k.cost || 0) })));
    }
  }

  // ---- live log ------------------------------------------------------------------------------
  const log = $("#sysop-log");
  function params(after) {
    const q = new URLSearchParams({ level: $("#log-level").value, after: String(after), limit: "200" });
    const search = $("#log-search").value.trim();
    if (search) q.set("search", search);
    return q;
  }
  async function pollLog(restart = false) {
    if (restart) { lastSeq = 0; clear(log); }
    const r = await api(`/api/v1/sysop/logs?${params(lastSeq)}`, { sysop: true });
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    for (const x of r.logs) {
      const t = new Date(x.t * 1000).toLocaleTimeString();
      log.append(el("li", { dataset: { level: x.level, seq: x.seq } }, `${t} ${x.level} ${x.logger}: ${x.msg}`));
    }
    lastSeq = Math.max(lastSeq, r.last || 0);
    while (log.children.length > LOG_KEEP) log.firstElementChild.remove();
    if (!log.children.length) log.append(el("li", { class: "muted empty", text: "No log lines match." }));
    else log.querySelector("li.empty")?.remove();
    if (stick || restart) log.scrollTop = log.scrollHeight;
  }
  function follow(on) {
    clearInterval(polling);
    polling = on ? setInterval(() => pollLog().catch(() => {}), LOG_POLL_MS) : null;
  }
  $("#log-level").addEventListener("change", () => pollLog(true).catch((e) => say(e.message, true)));
  $("#log-search").addEventListener("input", () => pollLog(true).catch((e) => say(e.message, true)));
  $("#log-follow").addEventListener("change", (e) => follow(e.target.checked && ctx.currentTab() === "sysop"));

  ctx.socket.addEventListener("message", (e) => { if (e.detail.type === "alert") onAlert(e.detail); });
  ctx.onTab((name) => follow(name === "sysop" && $("#log-follow").checked && !!sysopToken()));

  async function refresh() {
    await Promise.all([refreshAlerts(), refreshModels(), refreshLifetime(), pollLog(true)]);
    follow(ctx.currentTab() === "sysop" && $("#log-follow").checked);
  }
  return { refresh };
}
