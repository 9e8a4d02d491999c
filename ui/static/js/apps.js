// Realm apps in the page (weather, mail): one row per app the node offers, beside the wake word.
// The same apps answer "Computer — weather in Berlin" (voice-wake.js) and `mtor-node app`.

import { api } from "./api.js";
import { $, el } from "./util.js";

const HINTS = { weather: "a place, e.g. Berlin (empty: the configured one)", mail: "how many, e.g. 3 (optional)" };

export async function initApps(run) {
  let apps = [];
  try { ({ apps } = await api("/api/v1/apps")); } catch { return; } // an older node: no apps
  const box = el("fieldset", { class: "apps", id: "apps" }, el("legend", { text: "Apps" }));
  for (const a of apps) {
    const input = el("input", { class: "grow", placeholder: HINTS[a.name] || a.description, "aria-label": `${a.name}: what to ask` });
    const go = el("button", { type: "button", text: a.name, title: a.description, disabled: !a.available });
    go.dataset.app = a.name;
    go.addEventListener("click", () => run(a.name, input.value.trim(), false));
    input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !go.disabled) go.click(); });
    const state = a.available ? `say “Computer”, then “${a.triggers[0]}”` : (a.configured ? "off: this realm is air-gapped" : `off: configure [${a.name}] in mtor.toml`);
    box.append(el("div", { class: "row" }, go, input, el("span", { class: "muted", text: state })));
  }
  $("fieldset.wake").after(box);
}
