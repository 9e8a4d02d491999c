// Small DOM helpers. Everything the page shows is built with textContent / DOM nodes:
// nothing from a model, a user or a peer is ever parsed as HTML.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const MICRO = 1_000_000; // 1 $9000 = 10^6 micro-tokens

export function tokens(micro) {
  if (micro === undefined || micro === null || Number.isNaN(Number(micro))) return "—";
  if (Number(micro) === 0) return "free";
  return (Number(micro) / MICRO).toFixed(6).replace(/\.?0+$/, "") + " $9000";
}

export function seconds(ms) {
  if (ms === undefined || ms === null) return "—";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function short(id, n = 10) {
  if (!id) return "—";
  const s = String(id);
  return s.length > n + 2 ? s.slice(0, n) + "…" : s;
}

export const dash = (v) => (v === undefined || v === null || v === "" ? "—" : String(v));

export async function fileToBase64(blob) {
  const buf = new Uint8Array(await blob.arrayBuffer());
  let bin = "";
  for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
  return btoa(bin);
}

export function b64ToBlob(b64, type) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type });
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// A table with nothing to show says so in one full-width row (never headers alone).
export function emptyRow(tbody, text) {
  const cols = tbody.closest("table")?.querySelectorAll("thead th").length || 1;
  tbody.append(el("tr", { class: "empty-row" }, el("td", { colspan: cols, class: "muted", text })));
}
