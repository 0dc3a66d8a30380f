// The world: choose a country (click it, or type its name or code) and every other country is
// coloured by the climate of their relation, with the pairs listed beside the map (the map's
// text alternative), sortable by score, last contact and event count.
import { ApiProblem, getJson } from "./api";
import { choices, isCountryCode, nameOf, resolve, shapeOf, theWorld } from "./countries";
import { spanOf, whenText } from "./dates";
import { announce, h, replace, s } from "./dom";
import { actorsOf } from "./events";
import { markPatterns, WorldMap } from "./map";
import {
  CLIMATES,
  CLIMATE_FILL,
  climateLabel,
  isMarked,
  NO_RELATION,
  scoreText,
  SELECTED,
  STATUS_LABEL,
  STATUS_MARKS,
  type MarkedStatus,
} from "./palette";
import { link, navigate, pairPath, type Route, type Times } from "./router";
import type { CountryRelations, Relation } from "./types";
import { loading, notFound, problemPanel, type View, type ViewContext } from "./view";

type SortKey = "score" | "last_contact" | "event_count";
const SORTS: { key: SortKey; label: string }[] = [
  { key: "score", label: "Score" },
  { key: "last_contact", label: "Last contact" },
  { key: "event_count", label: "Events" },
];
const QUICK = ["CHN", "USA", "RUS", "IRN", "SAU", "UKR"];

function partnerOf(relation: Relation, country: string): string {
  return relation.parties[0] === country ? relation.parties[1] : relation.parties[0];
}

function sortValue(relation: Relation, key: SortKey): number {
  if (key === "score") return relation.score;
  if (key === "event_count") return relation.event_count;
  const span = relation.last_contact ? spanOf(relation.last_contact.when) : null;
  return span ? span.start.getTime() : -Infinity;
}

/** "Russia: cordial, score +3.48; partnership “no limits”; 5 events" */
export function describe(relation: Relation, partner: string): string {
  const parts = [`${nameOf(partner)}: ${climateLabel(relation.climate).toLowerCase()}, score ${scoreText(relation.score)}`];
  if (relation.status !== "unknown") parts.push(`relations ${STATUS_LABEL[relation.status].toLowerCase()}`);
  if (relation.partnership) parts.push(`partnership “${relation.partnership.label}”`);
  parts.push(`${relation.event_count} event${relation.event_count === 1 ? "" : "s"}`);
  return parts.join("; ");
}

function legend(): HTMLElement {
  const swatch = (fill: string) =>
    s("svg", { class: "swatch", viewBox: "0 0 16 16", "aria-hidden": "true" }, s("rect", { width: 16, height: 16, rx: 3, fill }));
  const pattern = (key: MarkedStatus) =>
    s(
      "svg",
      { class: "swatch", viewBox: "0 0 16 16", "aria-hidden": "true" },
      s("rect", { width: 16, height: 16, rx: 3, fill: "#f1f5f9" }),
      s("rect", { width: 16, height: 16, rx: 3, fill: `url(#legend-${key})` }),
    );
  return h(
    "section",
    { class: "legend", "aria-labelledby": "legend-title" },
    s("svg", { width: 0, height: 0, class: "defs", "aria-hidden": "true" }, markPatterns("legend-")),
    h("h3", { id: "legend-title" }, "Climate of the relation"),
    h(
      "ul",
      null,
      CLIMATES.map((c) => h("li", null, swatch(c.fill), h("span", null, h("b", null, c.label), " ", c.range))),
      h("li", null, swatch(NO_RELATION), h("span", null, "No relation recorded")),
      h("li", null, swatch(SELECTED), h("span", null, "The chosen country")),
    ),
    h("h3", null, "Marked over the colour"),
    h("ul", null, STATUS_MARKS.map((m) => h("li", null, pattern(m.key), h("span", null, m.label)))),
    h(
      "p",
      { class: "hint" },
      "The score is the decayed mean Goldstein value of the pair's events (−10 to 10), each weighing half as much every 90 days.",
    ),
  );
}

export function worldView(ctx: ViewContext, first: Extract<Route, { view: "world" }>): View {
  const world = theWorld();
  let country: string | null = null;
  let relations: Relation[] = [];
  let sort: SortKey = "score";
  let descending = true;
  let load: AbortController | null = null;
  let times: Times = ctx.times;

  const input = h("input", {
    id: "country-input",
    name: "country",
    list: "country-list",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "China, CHN, Saudi Arabia…",
    "aria-describedby": "country-problem",
  });
  const pickerProblem = h("p", { id: "country-problem", class: "picker-problem", "aria-live": "polite" });
  const picker = h(
    "form",
    {
      class: "picker",
      role: "search",
      "aria-label": "Choose a country",
      onsubmit: (event: Event) => {
        event.preventDefault();
        const code = resolve(input.value);
        if (!code) {
          announce(pickerProblem, `No country matches “${input.value.trim()}”: try its name or its ISO code (CHN).`);
          return;
        }
        pickerProblem.textContent = "";
        choose(code);
      },
    },
    h("label", { for: "country-input" }, "Country"),
    h("div", { class: "picker-row" }, input, h("button", { type: "submit" }, "Show")),
    pickerProblem,
    h("datalist", { id: "country-list" }, choices().map((c) => h("option", { value: c.label }))),
  );

  const info = h("p", { class: "map-info" }, "Point at a country, or move through them with the arrow keys.");
  const map = new WorldMap(world, {
    label: "World map. Arrow keys move between countries; Enter chooses one.",
    onChoose: (code) => choose(code),
    onPoint: (code) => pointAt(code),
  });
  const heading = h("h1", { id: "world-title" }, "World");
  const status = h("p", { class: "sr-only", role: "status" });
  const listPanel = h("section", { class: "list-panel", "aria-labelledby": "relations-title" });
  ctx.main.replaceChildren(
    h(
      "div",
      { class: "world" },
      h("div", { class: "world-head" }, heading, picker),
      h(
        "div",
        { class: "world-grid" },
        h("div", { class: "map-panel" }, map.element, info, legend()),
        listPanel,
      ),
      status,
    ),
  );

  function pointAt(code: string | null): void {
    if (!code) {
      info.textContent = country ? `${nameOf(country)}'s relations are coloured.` : "Point at a country, or move through them with the arrow keys.";
      return;
    }
    if (code === country) {
      replace(info, h("b", null, nameOf(code)), ` — the chosen country, ${relations.length} relation${relations.length === 1 ? "" : "s"}.`);
      return;
    }
    const relation = relations.find((r) => partnerOf(r, country ?? "") === code);
    if (country && relation) {
      replace(
        info,
        describe(relation, code) + " — ",
        h("a", { href: link(pairPath(country, code), times) }, `open ${nameOf(country)} – ${nameOf(code)}`),
      );
    } else if (country) {
      replace(info, h("b", null, nameOf(code)), `: no relation with ${nameOf(country)} recorded${times.asOf ? " by then" : ""}. Enter or click to choose it.`);
    } else {
      replace(info, h("b", null, nameOf(code)), " — Enter or click to see its relations.");
    }
  }

  function choose(code: string): void {
    performance.mark("atlas:choose");
    navigate(link("/", times, { country: code }));
  }

  function intro(): void {
    ctx.title("World");
    heading.textContent = "World";
    replace(
      listPanel,
      h("h2", { id: "relations-title" }, "Relations"),
      h("p", null, "Choose a country on the map, or type its name or ISO code, to colour the world by the climate of its relations and list them here."),
      h(
        "ul",
        { class: "quick" },
        QUICK.map((code) => h("li", null, h("a", { href: link("/", times, { country: code }) }, nameOf(code)))),
      ),
    );
    map.paint(new Map(), new Map(), new Map(), null);
  }

  function table(): HTMLElement {
    const sorted = [...relations].sort((x, y) => {
      const diff = sortValue(x, sort) - sortValue(y, sort);
      if (diff) return descending ? -diff : diff;
      return nameOf(partnerOf(x, country!)).localeCompare(nameOf(partnerOf(y, country!)), "en");
    });
    const header = (key: SortKey, label: string) =>
      h(
        "th",
        { scope: "col", class: "num", "aria-sort": sort === key ? (descending ? "descending" : "ascending") : "none" },
        h(
          "button",
          {
            type: "button",
            class: "sort",
            onclick: () => {
              descending = sort === key ? !descending : true;
              sort = key;
              renderList();
              listPanel.querySelector<HTMLButtonElement>(`button[data-sort="${key}"]`)?.focus();
            },
            "data-sort": key,
          },
          label,
          h("span", { class: "sort-mark", "aria-hidden": "true" }, sort === key ? (descending ? "▼" : "▲") : "↕"),
        ),
      );
    const row = (r: Relation) => {
      const partner = partnerOf(r, country!);
      const onMap = Boolean(shapeOf(partner));
      return h(
        "tr",
        null,
        h(
          "th",
          { scope: "row" },
          h("a", { href: link(pairPath(country!, partner), times) }, nameOf(partner)),
          h("span", { class: "code" }, partner),
          r.partnership ? h("span", { class: "badge" }, `“${r.partnership.label}”`) : null,
          onMap ? null : h("span", { class: "note" }, isCountryCode(partner) ? "too small for this map" : "organisation"),
        ),
        h("td", { class: "num" }, scoreText(r.score)),
        h("td", null, h("span", { class: `chip climate-${r.climate}` }), climateLabel(r.climate)),
        h("td", { class: isMarked(r.status) ? `status status-${r.status}` : "status" }, STATUS_LABEL[r.status]),
        h("td", { class: "num when" }, r.last_contact ? whenText(r.last_contact.when, false) : "—"),
        h("td", { class: "num" }, String(r.event_count)),
      );
    };
    return h(
      "div",
      { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "relations-title" },
      h(
        "table",
        { class: "relations" },
        h("caption", { class: "sr-only" }, `${nameOf(country!)}'s relations, sorted by ${SORTS.find((x) => x.key === sort)!.label.toLowerCase()}, ${descending ? "descending" : "ascending"}`),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", { scope: "col" }, "Partner"),
            header("score", "Score"),
            h("th", { scope: "col" }, "Climate"),
            h("th", { scope: "col" }, "Status"),
            header("last_contact", "Last contact"),
            header("event_count", "Events"),
          ),
        ),
        h("tbody", null, sorted.map(row)),
      ),
    );
  }

  function renderList(): void {
    if (!country) return;
    const counts = CLIMATES.map((c) => ({ c, n: relations.filter((r) => r.climate === c.key).length })).filter((x) => x.n);
    replace(
      listPanel,
      h("h2", { id: "relations-title" }, `${nameOf(country)}'s relations`, h("span", { class: "count" }, ` ${relations.length}`)),
      relations.length
        ? h(
            "p",
            { class: "summary" },
            counts.map(({ c, n }, i) => [i ? " · " : "", h("span", { class: `chip climate-${c.key}` }), `${n} ${c.label.toLowerCase()}`]),
          )
        : h("p", null, `No relation of ${nameOf(country)} is recorded${times.asOf || times.knownAt ? " for this time" : ""}.`),
      relations.length ? table() : null,
    );
  }

  function paint(): void {
    const started = performance.now();
    const fills = new Map<string, string>();
    const marked = new Map<string, MarkedStatus>();
    const labels = new Map<string, string>();
    for (const r of relations) {
      const partner = partnerOf(r, country!);
      fills.set(partner, CLIMATE_FILL[r.climate]);
      if (isMarked(r.status)) marked.set(partner, r.status);
      labels.set(partner, describe(r, partner));
    }
    if (country) {
      fills.set(country, SELECTED);
      labels.set(country, `${nameOf(country)}, the chosen country`);
    }
    map.paint(fills, marked, labels, country);
    performance.measure("atlas:paint", { start: started, end: performance.now() });
  }

  async function show(code: string): Promise<void> {
    load?.abort();
    const controller = new AbortController();
    load = controller;
    country = code;
    heading.textContent = `${nameOf(code)} and the world`;
    ctx.title(`${nameOf(code)} and the world`);
    input.value = isCountryCode(code) ? `${nameOf(code)} (${code})` : code;
    if (!relations.length) replace(listPanel, loading(`${nameOf(code)}'s relations`));
    try {
      const body = await getJson<CountryRelations>(
        `/v1/countries/${encodeURIComponent(code)}/relations`,
        { as_of: times.asOf, known_at: times.knownAt, sort: "score" },
        AbortSignal.any([controller.signal, ctx.signal]),
      );
      if (controller.signal.aborted) return;
      country = body.country;
      relations = body.items;
    } catch (error) {
      if (controller.signal.aborted || ctx.signal.aborted) return;
      relations = [];
      map.paint(new Map(), new Map(), new Map(), null);
      if (error instanceof ApiProblem && error.unknownActor) {
        ctx.title("Not found");
        heading.textContent = "World";
        replace(
          listPanel,
          notFound(`No country “${code}”`, `“${code}” is neither an ISO 3166-1 alpha-3 country code nor an organisation Chancery knows.`, {
            href: link("/", times),
            text: "Back to the world",
          }),
        );
      } else {
        replace(listPanel, problemPanel(error, () => void show(code)));
      }
      return;
    }
    paint();
    renderList();
    announce(status, `${nameOf(country)}: ${relations.length} relation${relations.length === 1 ? "" : "s"} coloured on the map.`);
    performance.mark("atlas:recoloured");
    if (performance.getEntriesByName("atlas:choose").length) {
      performance.measure("atlas:recolour", "atlas:choose", "atlas:recoloured");
    }
  }

  let refresh: number | undefined;
  ctx.live((event) => {
    if (!country || !actorsOf(event).codes.has(country)) return;
    window.clearTimeout(refresh);
    refresh = window.setTimeout(() => void show(country!), 200);
  });

  async function apply(route: Extract<Route, { view: "world" }>): Promise<void> {
    if (route.country) await show(route.country.toUpperCase());
    else {
      country = null;
      relations = [];
      intro();
    }
  }

  const ready = apply(first);
  void ready.then(() => {
    if (!performance.getEntriesByName("atlas:interactive").length) performance.mark("atlas:interactive");
  });

  return {
    update(route: Route, next: Times): boolean {
      if (route.view !== "world" || next.asOf !== times.asOf || next.knownAt !== times.knownAt) return false;
      times = next;
      void apply(route);
      return true;
    },
  };
}
