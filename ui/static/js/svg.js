// The page's own SVG charts (no library, no CDN): a line chart of series over time, sparklines,
// and the realm map. Everything is built with createElementNS and textContent: no markup parsing.

const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2f81f7", "#1f9d55", "#d9480f", "#ae3ec9", "#0c8599", "#e8590c", "#c2255c", "#5c940d"];

export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function empty(box, W, H, text) {
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "presentation" }, s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "none" }, text));
  box.replaceChildren(svg);
}

const hhmm = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

// series: {name: [[t_seconds, value], ...]}
// Drawn at the box's own width, so text stays at its CSS size whatever the screen.
const widthOf = (box, fallback) => Math.max(240, Math.round(box.clientWidth || fallback));

export function lineChart(box, series, { format = String, emptyText = "nothing to draw yet", W = widthOf(box, 640), H = 200, step = false, xLabel = hhmm } = {}) {
  const entries = Object.entries(series).filter(([, d]) => d.length);
  const pts = entries.flatMap(([, d]) => d);
  if (!pts.length) { empty(box, W, H, emptyText); return; }
  const t0 = Math.min(...pts.map((p) => p[0])), t1 = Math.max(...pts.map((p) => p[0]));
  const vmin = Math.min(0, ...pts.map((p) => p[1])), vmax = Math.max(1e-9, ...pts.map((p) => p[1]));
  const L = 70, R = 10, T = 10, B = 40;
  const x = (t) => L + (t1 === t0 ? (W - L - R) / 2 : ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => H - B - ((v - vmin) / (vmax - vmin || 1)) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "presentation" },
    s("path", { class: "axis", d: `M${L} ${T}V${H - B}H${W - R}`, fill: "none" }),
    s("text", { x: L - 6, y: T + 10, "text-anchor": "end" }, format(vmax)),
    s("text", { x: L - 6, y: H - B, "text-anchor": "end" }, format(vmin)),
    s("text", { x: L, y: H - B + 14 }, xLabel(t0)),
    s("text", { x: W - R, y: H - B + 14, "text-anchor": "end" }, xLabel(t1)));
  let lx = L;
  entries.forEach(([name, data], i) => {
    const colour = PALETTE[i % PALETTE.length];
    // step: the value holds until the next point (a balance), else straight segments (a price)
    const d = data.map(([t, v], j) => (j ? (step ? `H${x(t).toFixed(1)}V${y(v).toFixed(1)}` : `L${x(t).toFixed(1)} ${y(v).toFixed(1)}`)
      : `M${x(t).toFixed(1)} ${y(v).toFixed(1)}`)).join("") + (step ? `H${W - R}` : "");
    svg.append(s("path", { d, fill: "none", stroke: colour, "stroke-width": 2 }, s("title", {}, name)));
    if (data.length === 1) svg.append(s("circle", { cx: x(data[0][0]), cy: y(data[0][1]), r: 3, fill: colour }));
    const label = name.slice(0, 18);
    svg.append(s("rect", { x: lx, y: H - 14, width: 10, height: 10, fill: colour }), s("text", { x: lx + 14, y: H - 5, class: "legend" }, label));
    lx += 24 + label.length * 6.5;
  });
  box.replaceChildren(svg);
}

// A small inline chart of the last values; null gaps are skipped.
export function sparkline(values, { colour = PALETTE[0], W = 60, H = 18, label = "" } = {}) {
  const v = values.filter((n) => Number.isFinite(n));
  const svg = s("svg", { class: "spark", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label || "history" });
  svg.append(s("title", {}, label));
  if (v.length < 2) { svg.append(s("path", { d: `M0 ${H / 2}H${W}`, stroke: "currentColor", opacity: .3 })); return svg; }
  const lo = Math.min(...v), hi = Math.max(...v);
  const d = v.map((n, i) => `${i ? "L" : "M"}${((i / (v.length - 1)) * (W - 2) + 1).toFixed(1)} ${(H - 2 - ((n - lo) / (hi - lo || 1)) * (H - 4)).toFixed(1)}`).join("");
  svg.append(s("path", { d, stroke: colour }));
  return svg;
}

// health 0..100 -> red..amber..green
export function healthColour(h) {
  if (!Number.isFinite(h)) return "#8b949e";
  const hue = Math.round(Math.max(0, Math.min(100, h)) * 1.2);
  return `hsl(${hue} 70% 42%)`;
}

// GPU tier as ring width: up to 8 GiB, up to 24 GiB, more
const gpuTier = (bytes) => (!Number.isFinite(bytes) ? 2 : bytes > 24 * 2 ** 30 ? 6 : bytes > 8 * 2 ** 30 ? 4 : 2);

// nodes: [{id, label, self?, models: n, health, gpu: bool, vram: bytes, kinds: [..], detail, offline?}]
export function realmMap(box, nodes, { W = widthOf(box, 640), H = 280 } = {}) {
  if (!nodes.length) { empty(box, W, H, "no nodes known"); return; }
  const cx = W / 2, cy = H / 2;
  const self = nodes.find((n) => n.self) || nodes[0];
  const others = nodes.filter((n) => n !== self);
  const radius = Math.min(W, H) / 2 - 46;
  const place = new Map([[self, [cx, cy]]]);
  others.forEach((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, others.length) + Math.PI; // the first peer on the left: wide boxes
    place.set(n, [cx + Math.cos(a) * Math.min(radius * 1.6, W / 2 - 60), cy + Math.sin(a) * radius]);
  });
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "presentation" });
  for (const n of others) {
    const [x, y] = place.get(n);
    svg.append(s("line", { x1: cx, y1: cy, x2: x, y2: y, stroke: healthColour(n.health), "stroke-width": n.offline ? 1 : 2,
      "stroke-dasharray": n.offline ? "4 4" : null, opacity: .6 }));
  }
  for (const n of nodes) {
    const [x, y] = place.get(n);
    const r = 12 + Math.min(14, (n.models || 0) * 3);
    const g = s("g", { class: "map-node", "data-peer": n.id },
      s("title", {}, n.detail || n.label),
      n.gpu ? s("circle", { cx: x, cy: y, r: r + 5, fill: "none", stroke: "#ae3ec9", "stroke-width": gpuTier(n.vram) }) : null,
      s("circle", { cx: x, cy: y, r, fill: healthColour(n.health), opacity: n.offline ? .4 : 1 }),
      s("text", { x, y: y + 4, "text-anchor": "middle", class: "map-in" }, n.self ? "you" : String(n.models || 0)),
      s("text", { x, y: y + r + 14, "text-anchor": "middle" }, n.label),
      n.kinds && n.kinds.length ? s("text", { x, y: y + r + 26, "text-anchor": "middle" }, n.kinds.length > 3 ? `${n.kinds.length} kinds` : n.kinds.join(" · ")) : null);
    svg.append(g);
  }
  box.replaceChildren(svg);
}
