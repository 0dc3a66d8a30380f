// The world map: an SVG of the build's projected shapes. One country at a time takes the
// keyboard focus (arrow keys move it to the nearest country that way, Enter or Space chooses
// it); a pointer does the same by hovering and clicking. Colours are set per country; a
// pattern over the colour marks a severed, suspended or downgraded relation.
import type { Shape, World } from "./countries";
import { h, s } from "./dom";
import { NO_RELATION, type MarkedStatus } from "./palette";

export interface MapOptions {
  label: string;
  onChoose?: (code: string) => void;
  onPoint?: (code: string | null) => void;
}

/** The status patterns, under ids starting with `prefix` (one set per SVG: ids are unique). */
export function markPatterns(prefix: string): SVGDefsElement {
  const line = (d: string, width: number) =>
    s("path", { d, stroke: "#111827", "stroke-width": width, "stroke-linecap": "square" });
  return s(
    "defs",
    null,
    s(
      "pattern",
      { id: `${prefix}severed`, width: 5, height: 5, patternUnits: "userSpaceOnUse" },
      line("M0 0L5 5M5 0L0 5", 0.9),
    ),
    s(
      "pattern",
      { id: `${prefix}suspended`, width: 5, height: 5, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
      line("M0 0V5", 1.1),
    ),
    s(
      "pattern",
      { id: `${prefix}downgraded`, width: 4, height: 4, patternUnits: "userSpaceOnUse" },
      s("circle", { cx: 2, cy: 2, r: 0.8, fill: "#111827" }),
    ),
  );
}

const DIRECTIONS: Record<string, [number, number]> = {
  ArrowLeft: [-1, 0],
  ArrowRight: [1, 0],
  ArrowUp: [0, -1],
  ArrowDown: [0, 1],
};

/** The shape nearest `from` in direction `dir`, favouring those straight ahead. */
export function nearest(from: Shape, shapes: Shape[], dir: [number, number]): Shape | null {
  let best: Shape | null = null;
  let bestCost = Infinity;
  for (const shape of shapes) {
    if (shape === from || !shape.code) continue;
    const dx = shape.c[0] - from.c[0];
    const dy = shape.c[1] - from.c[1];
    const along = dx * dir[0] + dy * dir[1];
    const across = Math.abs(dx * dir[1] - dy * dir[0]);
    if (along <= 0 || across > 2.5 * along) continue;
    const cost = along + 2 * across;
    if (cost < bestCost) {
      best = shape;
      bestCost = cost;
    }
  }
  return best;
}

export class WorldMap {
  readonly element: HTMLDivElement;
  private readonly svg: SVGSVGElement;
  private readonly marks: SVGGElement;
  private readonly ring: SVGPathElement;
  private readonly paths = new Map<string, SVGPathElement>();
  private readonly shapes: Shape[];
  private readonly names = new Map<string, string>();
  private tabbable: string | null = null;

  constructor(world: World, private readonly options: MapOptions) {
    this.shapes = world.shapes;
    const countries = s("g", { class: "countries" });
    for (const shape of world.shapes) {
      const path = s("path", { d: shape.d, fill: NO_RELATION, class: shape.code ? "country" : "country nocode" });
      if (shape.code) {
        path.setAttribute("tabindex", "-1");
        path.setAttribute("role", "button");
        path.setAttribute("aria-label", shape.name);
        path.dataset["code"] = shape.code;
        this.paths.set(shape.code, path);
        this.names.set(shape.code, shape.name);
      } else {
        path.setAttribute("aria-hidden", "true");
      }
      countries.appendChild(path);
    }
    this.marks = s("g", { class: "marks", "aria-hidden": "true" });
    this.ring = s("path", { class: "ring", "aria-hidden": "true", d: "" });
    this.svg = s(
      "svg",
      { viewBox: `0 0 ${world.width} ${world.height}`, class: "map-svg", role: "group", "aria-label": options.label },
      markPatterns("mark-"),
      countries,
      this.marks,
      this.ring,
    );
    this.element = h("div", { class: "map" }, this.svg);
    countries.addEventListener("click", (event) => {
      const code = (event.target as SVGElement).dataset?.["code"];
      if (code) this.choose(code);
    });
    countries.addEventListener("pointerover", (event) => {
      const code = (event.target as SVGElement).dataset?.["code"] ?? null;
      this.point(code);
    });
    countries.addEventListener("pointerleave", () => this.point(null));
    countries.addEventListener("focusin", (event) => {
      const code = (event.target as SVGElement).dataset?.["code"] ?? null;
      this.point(code);
    });
    countries.addEventListener("focusout", () => this.point(null));
    countries.addEventListener("keydown", (event) => this.key(event));
    const first = this.shapes.find((sh) => sh.code === "USA") ?? this.shapes.find((sh) => sh.code);
    if (first?.code) this.makeTabbable(first.code);
  }

  private point(code: string | null): void {
    const path = code ? this.paths.get(code) : undefined;
    this.ring.setAttribute("d", path?.getAttribute("d") ?? "");
    this.options.onPoint?.(code);
  }

  private choose(code: string): void {
    this.makeTabbable(code);
    this.options.onChoose?.(code);
  }

  private makeTabbable(code: string): void {
    if (this.tabbable) this.paths.get(this.tabbable)?.setAttribute("tabindex", "-1");
    this.paths.get(code)?.setAttribute("tabindex", "0");
    this.tabbable = code;
  }

  private key(event: KeyboardEvent): void {
    const code = (event.target as SVGElement).dataset?.["code"];
    if (!code) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.choose(code);
      return;
    }
    const dir = DIRECTIONS[event.key];
    if (!dir) return;
    event.preventDefault();
    const from = this.shapes.find((sh) => sh.code === code);
    const to = from ? nearest(from, this.shapes, dir) : null;
    if (to?.code) this.focus(to.code);
  }

  /** Move the keyboard focus to a country (it becomes the map's one tab stop). */
  focus(code: string): void {
    const path = this.paths.get(code);
    if (!path) return;
    this.makeTabbable(code);
    path.focus();
  }

  has(code: string): boolean {
    return this.paths.has(code);
  }

  /** Colour every country (`fills`, the rest as having no relation), mark statuses, and name
   * each for assistive technology (`labels`). */
  paint(
    fills: Map<string, string>,
    marked: Map<string, MarkedStatus>,
    labels: Map<string, string>,
    selected: string | null,
  ): void {
    for (const [code, path] of this.paths) {
      path.setAttribute("fill", fills.get(code) ?? NO_RELATION);
      path.setAttribute("aria-label", labels.get(code) ?? this.names.get(code) ?? code);
      if (code === selected) path.setAttribute("aria-pressed", "true");
      else path.removeAttribute("aria-pressed");
    }
    const overlays: SVGPathElement[] = [];
    for (const [code, status] of marked) {
      const d = this.paths.get(code)?.getAttribute("d");
      if (d) overlays.push(s("path", { d, fill: `url(#mark-${status})`, class: "mark" }));
    }
    this.marks.replaceChildren(...overlays);
    if (selected && this.paths.has(selected) && this.tabbable !== selected) this.makeTabbable(selected);
  }
}

/** A map of one trip: the traveller's home, each leg's country in order, joined by a line. */
export function tripMap(world: World, home: string | null, legs: string[], label: string): SVGSVGElement {
  const byCode = new Map(world.shapes.filter((sh) => sh.code).map((sh) => [sh.code!, sh]));
  const stops = [home, ...legs].filter((c): c is string => Boolean(c && byCode.has(c)));
  const points = stops.map((c) => byCode.get(c)!.c);
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const pad = 45;
  let x0 = Math.min(...xs) - pad;
  let x1 = Math.max(...xs) + pad;
  let y0 = Math.min(...ys) - pad;
  let y1 = Math.max(...ys) + pad;
  const minW = 260;
  if (!points.length) [x0, x1, y0, y1] = [0, world.width, 0, world.height];
  if (x1 - x0 < minW) [x0, x1] = [(x0 + x1) / 2 - minW / 2, (x0 + x1) / 2 + minW / 2];
  const height = Math.max(y1 - y0, (x1 - x0) / 2.2);
  [y0, y1] = [(y0 + y1) / 2 - height / 2, (y0 + y1) / 2 + height / 2];
  const scale = (x1 - x0) / 960;
  const legSet = new Set(legs);
  const countries = world.shapes.map((sh) =>
    s("path", {
      d: sh.d,
      class: "country",
      fill: sh.code === home ? "#475569" : sh.code && legSet.has(sh.code) ? "#91bfdb" : NO_RELATION,
    }),
  );
  const route = s("polyline", {
    points: points.map((p) => p.join(",")).join(" "),
    class: "route",
    "stroke-width": Math.max(0.8, 2.2 * scale),
  });
  const r = Math.max(3.5, 9 * scale);
  const markers = legs
    .map((code, i) => ({ code, i, shape: byCode.get(code) }))
    .filter((m) => m.shape)
    .map((m) =>
      s(
        "g",
        { class: "stop", transform: `translate(${m.shape!.c[0]},${m.shape!.c[1]})` },
        s("circle", { r }),
        s("text", { "font-size": r * 1.25, dy: r * 0.42 }, String(m.i + 1)),
      ),
    );
  return s(
    "svg",
    {
      viewBox: `${x0.toFixed(1)} ${y0.toFixed(1)} ${(x1 - x0).toFixed(1)} ${(y1 - y0).toFixed(1)}`,
      class: "trip-map",
      role: "img",
      "aria-label": label,
      preserveAspectRatio: "xMidYMid meet",
    },
    s("g", { "aria-hidden": "true" }, countries, route, markers),
  );
}
