// A small Markdown renderer that builds DOM nodes directly (never innerHTML), so model output
// cannot inject markup whatever it contains. Covers what chat models write: fenced code, inline
// code, headings, lists, quotes, rules, bold, italics and http(s) links. Streaming-friendly: an
// unterminated code fence renders as code so far.

import { el } from "./util.js";

export function renderMarkdown(src) {
  const root = document.createDocumentFragment();
  const lines = String(src).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```+|~~~+)\s*([\w+#.-]*)\s*$/);
    if (fence) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++; // the closing fence (or the end while streaming)
      root.append(codeBlock(body.join("\n"), fence[2]));
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      root.append(el("h" + Math.min(heading[1].length + 2, 6), {}, inline(heading[2])));
      i++;
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      root.append(el("hr"));
      i++;
      continue;
    }
    if (/^\s*>/.test(line)) {
      const body = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
      root.append(el("blockquote", {}, renderMarkdown(body.join("\n"))));
      continue;
    }
    const bullet = /^\s*[-*+]\s+/;
    const number = /^\s*\d{1,9}[.)]\s+/;
    if (bullet.test(line) || number.test(line)) {
      const ordered = number.test(line);
      const re = ordered ? number : bullet;
      const list = el(ordered ? "ol" : "ul");
      while (i < lines.length && re.test(lines[i])) {
        let item = lines[i++].replace(re, "");
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !re.test(lines[i])) item += " " + lines[i++].trim();
        list.append(el("li", {}, inline(item)));
      }
      root.append(list);
      continue;
    }
    if (!line.trim()) { i++; continue; }
    const para = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(lines[i++]);
    const p = el("p");
    para.forEach((l, n) => { if (n) p.append(el("br")); p.append(inline(l)); });
    root.append(p);
  }
  return root;
}

function startsBlock(line) {
  return /^\s*(```|~~~)/.test(line) || /^#{1,6}\s/.test(line) || /^\s*>/.test(line) ||
    /^\s*[-*+]\s+/.test(line) || /^\s*\d{1,9}[.)]\s+/.test(line);
}

function codeBlock(code, lang) {
  const copy = el("button", { class: "copy", type: "button", text: "copy", title: "copy the code" });
  copy.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(code));
  return el("pre", { dataset: { lang: lang || "" } }, lang ? el("span", { class: "lang", text: lang }) : null,
    el("code", { text: code }), copy);
}

// Inline spans, earliest match first: `code`, [text](http…), **bold**, *em* / _em_.
const INLINE = /`([^`\n]+)`|\[([^\]\n]+)\]\(([^)\s]+)\)|\*\*([^*\n]+)\*\*|__([^_\n]+)__|\*([^*\n]+)\*|(?<![\w])_([^_\n]+)_(?![\w])/;

export function inline(text) {
  const frag = document.createDocumentFragment();
  let rest = String(text);
  while (rest) {
    const m = rest.match(INLINE);
    if (!m) { frag.append(rest); break; }
    if (m.index) frag.append(rest.slice(0, m.index));
    if (m[1] !== undefined) frag.append(el("code", { text: m[1] }));
    else if (m[2] !== undefined) frag.append(link(m[2], m[3]));
    else if (m[4] !== undefined || m[5] !== undefined) frag.append(el("strong", {}, inline(m[4] ?? m[5])));
    else frag.append(el("em", {}, inline(m[6] ?? m[7])));
    rest = rest.slice(m.index + m[0].length);
  }
  return frag;
}

function link(label, href) {
  let url;
  try { url = new URL(href); } catch { return document.createTextNode(`[${label}](${href})`); }
  if (url.protocol !== "http:" && url.protocol !== "https:") return document.createTextNode(label); // no javascript:
  return el("a", { href: url.href, target: "_blank", rel: "noopener noreferrer nofollow" }, inline(label));
}
