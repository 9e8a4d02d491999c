// The sysop's bar chart on a canvas (no library); the other charts are SVG, in svg.js.

const PALETTE = ["#0a66c2", "#2e7d32", "#c62828", "#b26a00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f"];

function colours(canvas) {
  const css = getComputedStyle(document.documentElement);
  return { fg: css.getPropertyValue("--fg").trim() || "#000", muted: css.getPropertyValue("--muted").trim() || "#888",
    line: css.getPropertyValue("--line").trim() || "#ccc" };
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
