// Chat: a conversation streamed into markdown cards, with the previous queries beside it.

import { api } from "./api.js";
import { answerCard, userCard } from "./answers.js";
import { $, el, clear } from "./util.js";

const MAX_TURNS = 20; // messages of context sent with each query

export function initChat(ctx) {
  const log = $("#chat-log");
  const input = $("#chat-input");
  let conversation = [];

  async function send(text = input.value) {
    text = text.trim();
    if (!text) return;
    input.value = "";
    userCard(log, text);
    conversation.push({ role: "user", content: text });
    const messages = conversation.slice(-MAX_TURNS);
    const { handlers } = answerCard(log, {
      onDone: (result, answer) => {
        if (result) {
          conversation.push({ role: "assistant", content: answer });
          if ($("#speak-answers").checked) ctx.speak(answer);
        }
        refreshHistory();
      },
    });
    const model = $("#chat-model").value || null;
    ctx.track(ctx.socket.submit({ kind: "chat", messages, model }, handlers), "chat");
  }

  async function refreshHistory() {
    try {
      const { history } = await api(`/api/v1/history?user=${encodeURIComponent(ctx.user)}&limit=30`);
      const list = clear($("#history"));
      for (const h of history) {
        list.append(el("li", { title: `${h.kind} · ${h.status} · ${h.duration_ms} ms`, onclick: () => { ctx.showTab(h.kind === "imagine" ? "imagine" : "chat"); input.value = h.prompt; input.focus(); } },
          h.prompt.slice(0, 80) || "(no text)", " ", el("span", { class: "st", text: `${h.kind} · ${h.status}` })));
      }
    } catch { /* history is a nicety */ }
  }

  $("#chat-form").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("#chat-clear").addEventListener("click", () => { conversation = []; clear(log); });
  ctx.onSend("chat", () => send());
  ctx.socket.addEventListener("state", (e) => { if (e.detail === "open") refreshHistory(); });
  return { send, refreshHistory, setModels(models) {
    const sel = $("#chat-model");
    const keep = sel.value;
    clear(sel).append(el("option", { value: "", text: "default model" }));
    for (const m of models.filter((m) => m.kind === "chat")) sel.append(el("option", { value: m.name, text: m.name }));
    sel.value = keep;
  } };
}
