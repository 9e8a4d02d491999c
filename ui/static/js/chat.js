// Chat: conversations kept in this browser (convstore.js), a sidebar to find them again, the
// composer docked at the bottom; regenerate, edit-and-resend, continue and stop; per-chat model,
// system prompt, temperature and max tokens.

import { answerCard, staticAnswer } from "./answers.js";
import { deleteConversation, download, fileName, listConversations, newConversation, saveConversation, toJson, toMarkdown } from "./convstore.js";
import { $, el, clear } from "./util.js";

const MAX_CONTEXT_CHARS = 30_000; // the node refuses conversations over 32,000 characters
const MAX_CONTEXT_MESSAGES = 60;
const CONTINUE = "Continue exactly where you stopped, without repeating anything.";

export function initChat(ctx) {
  const log = $("#chat-log");
  const input = $("#chat-input");
  const hint = $("#chat-hint");
  let convs = [];
  let conv = newConversation();
  let job = null;
  let saving = Promise.resolve();

  // ---- persistence ------------------------------------------------------------------------
  function persist() {
    if (!conv.messages.length) return saving;
    const snapshot = conv;
    saving = saving.then(() => saveConversation(snapshot)).catch((e) => ctx.notify(`could not save the chat: ${e.message}`))
      .then(refreshList);
    localStorage.setItem("mtor.conv", conv.id);
    return saving;
  }

  async function refreshList() {
    convs = await listConversations();
    renderList();
  }

  function renderList() {
    const q = $("#conv-search").value.trim().toLowerCase();
    const list = clear($("#conv-list"));
    const shown = convs.filter((c) => !q || c.title.toLowerCase().includes(q) || c.messages.some((m) => m.content.toLowerCase().includes(q)));
    for (const c of shown) {
      list.append(el("li", {}, el("button", { type: "button", "aria-current": String(c.id === conv.id), dataset: { id: c.id }, title: c.title,
        onclick: () => { open(c.id); $("#conv-side").classList.remove("open"); $("#conv-toggle").setAttribute("aria-expanded", "false"); } },
      c.title, el("span", { class: "when", text: new Date(c.updated).toLocaleString() }))));
    }
    const empty = $("#conv-empty");
    empty.hidden = shown.length > 0;
    empty.textContent = q ? `No chat mentions “${q}”.` : "No saved chats yet. Ask something: each chat is kept in this browser.";
  }

  function open(id) {
    if (job) stop();
    const found = convs.find((c) => c.id === id);
    if (!found) return;
    conv = structuredClone(found);
    localStorage.setItem("mtor.conv", conv.id);
    render();
    renderList();
  }

  function fresh() {
    if (job) stop();
    conv = newConversation({ model: $("#chat-model").value, max_tokens: conv.settings.max_tokens, temperature: conv.settings.temperature });
    localStorage.removeItem("mtor.conv");
    render();
    renderList();
    input.focus();
  }

  // ---- rendering --------------------------------------------------------------------------
  function render() {
    clear(log);
    $("#conv-title").textContent = conv.title;
    $("#chat-welcome").hidden = conv.messages.length > 0;
    const s = conv.settings;
    $("#chat-model").value = s.model || "";
    if ($("#chat-model").value !== (s.model || "")) { // a model this node no longer lists: keep it selectable
      $("#chat-model").append(el("option", { value: s.model, text: `${s.model} (not listed now)` }));
      $("#chat-model").value = s.model;
    }
    $("#chat-system").value = s.system || "";
    $("#chat-temperature").value = s.temperature;
    $("#chat-max-tokens").value = s.max_tokens;
    conv.messages.forEach((m, i) => (m.role === "user" ? userTurn(i) : assistantTurn(i)));
    log.scrollTop = log.scrollHeight;
  }

  function userTurn(i) {
    const card = el("div", { class: "msg user", dataset: { index: i } }, el("span", { class: "text", text: conv.messages[i].content }));
    const actions = el("div", { class: "turn-actions" },
      el("button", { type: "button", class: "icon edit-btn", title: "edit and resend", "aria-label": "edit and resend", text: "✎", onclick: () => startEdit(i, card) }));
    log.append(el("div", { class: "turn user-turn" }, card, actions));
  }

  function assistantTurn(i) {
    const m = conv.messages[i];
    const last = i === conv.messages.length - 1;
    const { card, actions } = staticAnswer(log, m, { onContinue: last ? () => continueAnswer() : null });
    card.dataset.index = i;
    addAnswerActions(actions, i, m.content);
  }

  function addAnswerActions(actions, i, text) {
    clear(actions);
    actions.append(
      el("button", { type: "button", class: "copy-answer", title: "copy the answer", text: "copy", onclick: () => navigator.clipboard?.writeText(text) }),
      el("button", { type: "button", class: "regenerate", title: "answer this again", text: "regenerate", onclick: () => regenerate(i) }));
    if (i === conv.messages.length - 1) actions.append(el("button", { type: "button", class: "continue", title: "ask for more of this answer", text: "continue", onclick: () => continueAnswer() }));
  }

  function startEdit(i, card) {
    if (job) { say("Stop the running answer first (Esc)."); return; }
    const box = el("textarea", { class: "edit", "aria-label": "edit your message" });
    box.value = conv.messages[i].content;
    const save = el("button", { type: "button", class: "primary save-edit", text: "Save & send", onclick: () => {
      const text = box.value.trim();
      if (!text) { box.setAttribute("aria-invalid", "true"); return; }
      conv.messages = conv.messages.slice(0, i);
      conv.messages.push({ role: "user", content: text, at: Date.now() });
      render();
      persist();
      ask();
    } });
    const cancel = el("button", { type: "button", text: "Cancel", onclick: render });
    clear(card).append(box, el("div", { class: "row" }, save, cancel));
    box.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); save.click(); } });
    box.focus();
  }

  // ---- asking -----------------------------------------------------------------------------
  function context(extra = []) {
    const msgs = [...conv.messages.filter((m) => !(m.meta && m.meta.error)).map((m) => ({ role: m.role, content: m.content })), ...extra];
    let picked = msgs.slice(-MAX_CONTEXT_MESSAGES);
    const budget = MAX_CONTEXT_CHARS - (conv.settings.system || "").length;
    while (picked.length > 1 && picked.reduce((n, m) => n + m.content.length, 0) > budget) picked = picked.slice(1);
    if (conv.settings.system) picked.unshift({ role: "system", content: conv.settings.system });
    return picked;
  }

  function submit(messages, { prefix = "", onDone }) {
    const s = conv.settings;
    const model = s.model || null;
    const maxTokens = Number(s.max_tokens) || 512;
    const view = conv;
    const live = answerCard(log, { maxTokens, kind: "chat", model, prefix,
      onDone: (result, text, meta) => {
        job = null;
        running(false);
        if (view !== conv) return; // the user switched chats meanwhile: nothing to show here
        onDone(result, text, meta);
        if (result && $("#speak-answers").checked) ctx.speak(text.slice(prefix.length));
      } });
    job = ctx.track(ctx.socket.submit({ kind: "chat", messages, model,
      params: { temperature: Number(s.temperature), max_tokens: maxTokens } }, live.handlers), "chat");
    running(true);
    return live;
  }

  function ask() {
    submit(context(), { onDone: (result, text, meta) => {
      conv.messages.push({ role: "assistant", content: text, meta });
      render();
      persist();
    } });
  }

  function send(text = input.value) {
    text = String(text).trim();
    if (!text) {
      input.setAttribute("aria-invalid", "true");
      say("Type a message first.");
      input.focus();
      return false;
    }
    if (job) { say("An answer is still coming: wait for it, or stop it (Esc)."); return false; }
    say("");
    input.value = "";
    if (!conv.messages.length && conv.title === "New chat") conv.title = text.replace(/\s+/g, " ").slice(0, 60);
    conv.messages.push({ role: "user", content: text, at: Date.now() });
    render();
    persist();
    ask();
    return true;
  }

  function regenerate(i) {
    if (job) { say("Stop the running answer first (Esc)."); return; }
    conv.messages = conv.messages.slice(0, i);
    render();
    ask();
  }

  function continueAnswer() {
    if (job) return;
    const i = conv.messages.length - 1;
    const last = conv.messages[i];
    if (!last || last.role !== "assistant") return;
    const before = last.content;
    const prevMeta = last.meta || {};
    log.querySelector(`.msg.answer[data-index="${i}"]`)?.remove();
    submit(context([{ role: "user", content: CONTINUE }]), { prefix: before + (before && !/\s$/.test(before) ? " " : ""), onDone: (result, text, meta) => {
      if (!result) { render(); return; }
      last.content = text;
      last.meta = { ...meta, cost: (prevMeta.cost || 0) + (meta.cost || 0) };
      render();
      persist();
    } });
  }

  function stop() { if (job) job.cancel(); }

  function running(on) {
    $("#chat-stop").hidden = !on;
    $("#chat-send").disabled = on || document.body.dataset.queueFull === "1";
  }

  function say(text) {
    hint.textContent = text;
    if (!text) input.removeAttribute("aria-invalid");
  }

  // ---- wiring -----------------------------------------------------------------------------
  $("#chat-form").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.ctrlKey && !e.metaKey && !e.altKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  input.addEventListener("input", () => { if (input.value.trim()) say(""); });
  $("#chat-stop").addEventListener("click", stop);
  $("#chat-clear").addEventListener("click", fresh);
  $("#conv-search").addEventListener("input", renderList);
  for (const b of document.querySelectorAll("#chat-welcome .suggest")) b.addEventListener("click", () => send(b.textContent));
  $("#conv-toggle").addEventListener("click", () => {
    const side = $("#conv-side");
    const open = side.classList.toggle("open");
    $("#conv-toggle").setAttribute("aria-expanded", String(open));
    if (open) $("#conv-search").focus();
  });
  function closeDrawer() {
    $("#conv-side").classList.remove("open");
    $("#conv-toggle").setAttribute("aria-expanded", "false");
    $("#conv-toggle").focus();
  }
  $("#conv-close").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (e) => { // Esc also closes the chat drawer on a phone
    if (e.key === "Escape" && $("#conv-side").classList.contains("open")) closeDrawer();
  });
  $("#settings-toggle").addEventListener("click", () => {
    const form = $("#chat-settings");
    form.hidden = !form.hidden;
    $("#settings-toggle").setAttribute("aria-expanded", String(!form.hidden));
  });
  $("#chat-settings").addEventListener("submit", (e) => e.preventDefault());
  $("#chat-settings").addEventListener("change", () => {
    const t = Number($("#chat-temperature").value);
    const n = Math.round(Number($("#chat-max-tokens").value));
    conv.settings = { model: $("#chat-model").value, system: $("#chat-system").value.slice(0, 8000),
      temperature: Number.isFinite(t) ? Math.min(2, Math.max(0, t)) : 0.7, max_tokens: Number.isFinite(n) ? Math.min(4096, Math.max(1, n)) : 512 };
    persist();
  });
  $("#conv-rename").addEventListener("click", () => {
    const title = $("#conv-title");
    const box = el("input", { class: "full", "aria-label": "chat title", maxlength: 120, value: conv.title });
    let finished = false;
    const done = (keep) => {
      if (finished) return;
      finished = true;
      if (keep && box.value.trim()) { conv.title = box.value.trim(); persist(); }
      box.replaceWith(title);
      title.textContent = conv.title;
      $("#conv-rename").focus();
    };
    box.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); done(true); } else if (e.key === "Escape") { e.stopPropagation(); done(false); } });
    box.addEventListener("blur", () => done(true));
    title.replaceWith(box);
    box.focus();
    box.select();
  });
  let confirmTimer = 0;
  $("#conv-delete").addEventListener("click", async () => {
    const b = $("#conv-delete");
    if (!b.dataset.confirm) { // two clicks: no modal dialog, nothing lost by a slip
      b.dataset.confirm = "1";
      b.textContent = "delete?";
      b.setAttribute("aria-label", "click again to delete this chat");
      confirmTimer = setTimeout(() => { delete b.dataset.confirm; b.textContent = "✕"; b.setAttribute("aria-label", "delete this chat"); }, 4000);
      return;
    }
    clearTimeout(confirmTimer);
    delete b.dataset.confirm;
    b.textContent = "✕";
    b.setAttribute("aria-label", "delete this chat");
    const id = conv.id;
    await saving;
    await deleteConversation(id);
    ctx.notify(`deleted “${conv.title}”`);
    fresh();
    await refreshList();
  });
  $("#export-md").addEventListener("click", () => download(fileName(conv, "md"), toMarkdown(conv), "text/markdown"));
  $("#export-json").addEventListener("click", () => download(fileName(conv, "json"), toJson(conv), "application/json"));
  ctx.onSend("chat", () => send());

  refreshList().then(() => {
    const last = localStorage.getItem("mtor.conv");
    if (last && convs.some((c) => c.id === last)) open(last);
    else render();
  });
  render();

  return {
    send, stop, open, fresh,
    flush: () => saving,
    current: () => structuredClone(conv),
    // this node's chat models, then those its peers serve (the broker routes to them)
    setModels(models, peers = []) {
      const sel = $("#chat-model");
      const keep = conv.settings.model || "";
      const names = new Set(models.filter((m) => m.kind === "chat").map((m) => m.name));
      for (const p of peers) if (p && p.models && !Array.isArray(p.models)) for (const n of [].concat(p.models.chat || [])) if (typeof n === "string") names.add(n);
      clear(sel).append(el("option", { value: "", text: "default model" }));
      for (const name of [...names].slice(0, 200)) sel.append(el("option", { value: name, text: name }));
      sel.value = keep;
      if (sel.value !== keep) { sel.append(el("option", { value: keep, text: `${keep} (not listed now)` })); sel.value = keep; }
    },
  };
}
