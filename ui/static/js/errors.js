// Errors people can act on: which model, why, and the command that fixes it. The node's own
// message (often a Hugging Face loader's) stays available under "details", never up front.

import { el } from "./util.js";

const KIND_NAMES = { chat: "Chat", vision: "Vision", imagine: "Imagine", transcribe: "Speech recognition", speak: "Speech" };
const QUOTED = /'([^']{1,200})'/;
const REPO = /^[\w.-]+\/[\w.-]+$/;

// -> {title, why, fix (a shell command or null), raw}
export function explain(ev, { kind = "chat", model = null } = {}) {
  const raw = String(ev.message || ev.code || "error");
  const code = ev.code || "";
  const what = KIND_NAMES[kind] || kind;
  const named = model ? `the ${kind} model “${model}”` : `the default ${kind} model`;
  const inner = raw.replace(/^model '[^']*' is unavailable: /, "");
  const quoted = (inner.match(QUOTED) || inner.match(/^([\w.-]+\/[\w.-]+) /) || [])[1];
  if (code === "cancelled") return { title: "Stopped.", why: null, fix: null, raw: null };
  if (code === "no_model") {
    return { title: `${what} is not available: no node of this realm serves ${named}.`,
      why: "Nobody here has loaded a model of this kind yet.",
      fix: `mtor-node models pull <hub-id>   # then add it under models: in the node's config`, raw };
  }
  if (/not in the local (model )?cache and the node is offline/.test(inner)) {
    return { title: `${what} needs ${quoted ? `“${quoted}”` : named}, which is not downloaded on this node.`,
      why: "The node is offline (HF_HUB_OFFLINE) and has no cached copy of the weights.",
      fix: `mtor-node models pull ${quoted && REPO.test(quoted) ? quoted : "<hub-id>"}`, raw };
  }
  if (/could not download/.test(inner)) {
    return { title: `${what} could not fetch ${quoted ? `“${quoted}”` : named}.`,
      why: "The download failed (no internet from the node, or the name is wrong).",
      fix: `mtor-node models pull ${quoted && REPO.test(quoted) ? quoted : "<hub-id>"}`, raw };
  }
  if (/model path .* does not exist/.test(inner)) {
    const path = inner.replace(/^.*model path (.*) does not exist.*$/, "$1");
    return { title: `${what} needs files at ${path}, which are not there.`, why: "The config points the model at a folder that is missing.",
      fix: `mtor-node models import ${path}   # or fix the path under models: in the config`, raw };
  }
  if (/could not load/.test(inner) || code === "unavailable") {
    return { title: `${what} cannot load ${named}.`, why: "Its files are incomplete or in a format this backend cannot read.",
      fix: "mtor-node models list   # see what is installed; pull it again if it is incomplete", raw };
  }
  if (code === "banned") return { title: "This node has banned this user.", why: raw, fix: null, raw: null };
  if (code === "disconnected" || code === "offline") return { title: "Not connected to the node.", why: "The page reconnects by itself; try again in a moment.", fix: null, raw: null };
  return { title: `error: ${raw}`, why: null, fix: null, raw: null };
}

export function errorNode(info) {
  const box = el("div", { class: "fix" }, el("strong", { text: info.title }));
  if (info.why) box.append(" ", info.why);
  if (info.fix) box.append(el("div", {}, "Fix it on the node: ", el("code", { text: info.fix })));
  if (info.raw) box.append(el("details", {}, el("summary", { text: "details" }), el("span", { class: "mono", text: info.raw })));
  return box;
}

// Before anyone asks: say so when this node's model for a kind cannot load.
export function modelNote(box, models, kind) {
  const mine = models.filter((m) => m.kind === kind);
  const broken = mine.length && mine.every((m) => m.status === "unavailable" || m.status === "failed") ? mine[0] : null;
  box.hidden = !broken;
  if (broken) box.replaceChildren(errorNode(explain({ code: "unavailable", message: broken.error || "" }, { kind, model: broken.name })));
}
