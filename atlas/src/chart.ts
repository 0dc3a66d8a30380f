// The score over time: a step line over the climate bands (the score scale is fixed, −10 to 10,
// so two pairs' charts read alike), with the events of each period as bars beneath. The same
// numbers are in a table under it, for whoever cannot see the chart.
import { parseDay, whenText, MONTHS } from "./dates";
import { h, s } from "./dom";
import { CLIMATE_FILL, CLIMATES, climateLabel, scoreText } from "./palette";
import type { Climate, ScorePoint, ScoreSeries } from "./types";

const W = 720;
const H = 250;
const M = { left: 34, right: 10, top: 10, bottom: 22 };
const BARS = 40;
const BANDS: [Climate, number, number][] = [
  ["close", 5, 10],
  ["cordial", 1, 5],
  ["neutral", -1, 1],
  ["strained", -5, -1],
  ["hostile", -10, -5],
];

function summaryOf(series: ScoreSeries): string {
  const scored = series.points.filter((p) => p.score !== null);
  const period = series.bucket === "week" ? "week" : "month";
  if (!scored.length) return `No event of the pair by ${whenText(series.end)}: no score to chart.`;
  const first = scored[0]!;
  const last = scored[scored.length - 1]!;
  const scores = scored.map((p) => p.score!);
  const low = Math.min(...scores);
  const high = Math.max(...scores);
  return (
    `Score by ${period}, ${whenText(first.period, false)} to ${whenText(last.period, false)}: ` +
    `from ${scoreText(first.score)} (${climateLabel(first.climate).toLowerCase()}) to ${scoreText(last.score)} ` +
    `(${climateLabel(last.climate).toLowerCase()}); lowest ${scoreText(low)}, highest ${scoreText(high)}; ` +
    `${last.events_to_date} events in all.`
  );
}

export function scoreChart(series: ScoreSeries): HTMLElement {
  const points = series.points;
  const t0 = parseDay(points[0]?.start ?? series.start).getTime();
  const t1 = parseDay(points[points.length - 1]?.end ?? series.end).getTime() + 86_400_000;
  const plotBottom = H - M.bottom - BARS - 8;
  const x = (t: number) => M.left + ((t - t0) / Math.max(1, t1 - t0)) * (W - M.left - M.right);
  const y = (score: number) => M.top + ((10 - score) / 20) * (plotBottom - M.top);
  const maxEvents = Math.max(1, ...points.map((p) => p.events));

  const bands = BANDS.map(([climate, lo, hi]) =>
    s("rect", {
      x: M.left,
      y: y(hi),
      width: W - M.left - M.right,
      height: y(lo) - y(hi),
      fill: CLIMATE_FILL[climate],
      "fill-opacity": 0.22,
    }),
  );
  const gridlines = [-10, -5, -1, 0, 1, 5, 10].map((v) =>
    s(
      "g",
      null,
      s("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: v === 0 ? "axis zero" : "grid" }),
      s("text", { x: M.left - 5, y: y(v) + 3.5, class: "tick", "text-anchor": "end" }, v > 0 ? `+${v}` : v < 0 ? `−${-v}` : "0"),
    ),
  );

  // The score holds from the end of one period to the end of the next: a step line.
  let d = "";
  let open = false;
  for (const p of points) {
    if (p.score === null) {
      open = false;
      continue;
    }
    const xs = x(parseDay(p.start).getTime());
    const xe = x(parseDay(p.end).getTime() + 86_400_000);
    d += open ? `H${xs.toFixed(1)}V${y(p.score).toFixed(1)}H${xe.toFixed(1)}` : `M${xs.toFixed(1)} ${y(p.score).toFixed(1)}H${xe.toFixed(1)}`;
    open = true;
  }

  const barTop = H - M.bottom - BARS;
  const bars = points
    .filter((p) => p.events > 0)
    .map((p) => {
      const xs = x(parseDay(p.start).getTime());
      const xe = x(parseDay(p.end).getTime() + 86_400_000);
      const bh = (p.events / maxEvents) * BARS;
      return s(
        "rect",
        { x: xs + 0.5, y: barTop + BARS - bh, width: Math.max(1, xe - xs - 1), height: bh, class: "bar" },
        s("title", null, `${whenText(p.period, false)}: ${p.events} event${p.events === 1 ? "" : "s"}`),
      );
    });

  // Month (or year) ticks along the bottom.
  const ticks: SVGElement[] = [];
  const start = new Date(t0);
  const spanDays = (t1 - t0) / 86_400_000;
  const stepMonths = spanDays > 1500 ? 12 : spanDays > 400 ? 3 : 1;
  const cursor = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), 1));
  while (cursor.getTime() < t1) {
    if (cursor.getTime() >= t0 && cursor.getUTCMonth() % stepMonths === 0) {
      const label = stepMonths === 12 || cursor.getUTCMonth() === 0 ? String(cursor.getUTCFullYear()) : MONTHS[cursor.getUTCMonth()]!.slice(0, 3);
      const xt = x(cursor.getTime());
      ticks.push(
        s("line", { x1: xt, x2: xt, y1: M.top, y2: H - M.bottom, class: "grid vertical" }),
        s("text", { x: xt + 2, y: H - 6, class: "tick" }, label),
      );
    }
    cursor.setUTCMonth(cursor.getUTCMonth() + 1);
  }

  const dots = points
    .filter((p): p is ScorePoint & { score: number; climate: Climate } => p.score !== null && p.events > 0)
    .map((p) =>
      s(
        "circle",
        { cx: x(parseDay(p.end).getTime() + 86_400_000), cy: y(p.score), r: 3.2, fill: CLIMATE_FILL[p.climate], class: "dot" },
        s("title", null, `${whenText(p.period, false)}: ${scoreText(p.score)} (${climateLabel(p.climate)})`),
      ),
    );

  const summary = summaryOf(series);
  const svg = s(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": summary },
    s("g", { "aria-hidden": "true" }, bands, ticks, gridlines, s("path", { d, class: "line" }), dots, bars,
      s("text", { x: W - M.right - 2, y: barTop - 3, class: "tick", "text-anchor": "end" }, `events per ${series.bucket}`)),
  );
  const rows = points.map((p) =>
    h(
      "tr",
      null,
      h("th", { scope: "row" }, whenText(p.period)),
      h("td", { class: "num" }, scoreText(p.score)),
      h("td", null, climateLabel(p.climate)),
      h("td", { class: "num" }, String(p.events)),
    ),
  );
  return h(
    "figure",
    { class: "chart-figure" },
    svg,
    h(
      "figcaption",
      null,
      summary,
      h(
        "span",
        { class: "bands" },
        CLIMATES.map((c) => h("span", null, h("span", { class: `chip climate-${c.key}` }), c.label)),
      ),
    ),
    h(
      "details",
      { class: "chart-data" },
      h("summary", null, "The numbers"),
      h(
        "div",
        { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Score by period" },
        h(
          "table",
          null,
          h("thead", null, h("tr", null, h("th", { scope: "col" }, "Period"), h("th", { scope: "col", class: "num" }, "Score"), h("th", { scope: "col" }, "Climate"), h("th", { scope: "col", class: "num" }, "Events"))),
          h("tbody", null, rows),
        ),
      ),
    ),
  );
}
