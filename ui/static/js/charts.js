// Two tiny canvas charts (no library): a line chart of series over time, and a bar chart.

const PALETTE = ["#0a66c2", "#2e7d32", "#c62828", "#b26a00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f"];

function colours(canvas) {
  const css = getComputedStyle(document.documentElement);
  return { fg: css.getPropertyValue("--fg").trim() || "#000", muted: css.getPropertyValue("--muted").trim() || "#888",
    line: css.getPropertyValue("--line").trim() || "#ccc" };
}

// series: {name: [[t, value], ...]}
export function lineChart(canvas, series, { unit = "" } = {}) {
  const g = canvas.getContext("2d");
  const { width: W, height: H } = canvas;
  const c = colours(canvas);
  g.clearRect(0, 0, W, H);
  const pts = Object.values(series).flat();
  g.font = "11px sans-serif";
  g.fillStyle = c.muted;
  if (!pts.length) { g.fillText("no prices yet", 10, H / 2); return; }
  const t0 = Math.min(...pts.map((p) => p[0])), t1 = Math.max(...pts.map((p) => p[0]));
  const vmax = Math.max(1, ...pts.map((p) => p[1]));
  const L = 50, R = 110, T = 10, B = 20;
  const x = (t) => L + (t1 === t0 ? 0 : ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => H - B - (v / vmax) * (H - T - B);
  g.strokeStyle = c.line;
  g.beginPath(); g.moveTo(L, T); g.lineTo(L, H - B); g.lineTo(W - R, H - B); g.stroke();
  g.fillText(`${vmax}${unit}`, 2, T + 8);
  g.fillText(`0`, 2, H - B);
  Object.entries(series).forEach(([name, data], i) => {
    g.strokeStyle = g.fillStyle = PALETTE[i % PALETTE.length];
    g.beginPath();
    data.forEach(([t, v], j) => (j ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
    g.fillText(name.slice(0, 16), W - R + 6, T + 12 + i * 13);
  });
}

// bars: [[label, value], ...]
export function barChart(canvas, bars) {
  const g = canvas.getContext("2d");
  const { width: W, height: H } = canvas;
  const c = colours(canvas);
  g.clearRect(0, 0, W, H);
  g.font = "11px sans-serif";
  g.fillStyle = c.muted;
  if (!bars.length) { g.fillText("no queries yet", 10, H / 2); return; }
  const vmax = Math.max(1, ...bars.map((b) => b[1]));
  const bw = (W - 20) / bars.length;
  bars.forEach(([label, v], i) => {
    const h = (v / vmax) * (H - 40);
    g.fillStyle = PALETTE[i % PALETTE.length];
    g.fillRect(10 + i * bw + 4, H - 20 - h, bw - 8, h);
    g.fillStyle = c.fg;
    g.fillText(String(v), 10 + i * bw + 6, H - 24 - h);
    g.fillStyle = c.muted;
    g.fillText(label.slice(0, Math.max(4, Math.floor(bw / 6))), 10 + i * bw + 4, H - 6);
  });
}
