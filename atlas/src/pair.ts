// A pair: the relation card, the score over time, and the record of events with their
// precision, sources, characterisations, and retractions struck through. Refreshes itself
// when an event concerning the pair is applied.
import { ApiProblem, getJson } from "./api";
import { scoreChart } from "./chart";
import { nameOf } from "./countries";
import { instantText, spanOf, whenText } from "./dates";
import { announce, h, replace } from "./dom";
import { actorsOf, characterisations, sourceUrl, summary, typeLabel } from "./events";
import { climateLabel, scoreText, STATUS_LABEL } from "./palette";
import { link, type Route, type Times } from "./router";
import type { Contact, PairRecord, RecordItem, Relation, ScoreSeries } from "./types";
import { loading, notFound, problemPanel, type View, type ViewContext } from "./view";

const QUADS: [keyof Relation["quad_counts"], string][] = [
  ["1", "Verbal cooperation"],
  ["2", "Material cooperation"],
  ["3", "Verbal conflict"],
  ["4", "Material conflict"],
];
const KIND: Record<Contact["kind"], string> = { meeting: "meeting", phone: "phone call", video: "video call", visit: "visit" };
const PRECISION: Record<string, string> = {
  day: "day",
  month: "month",
  week: "week",
  interval: "interval",
  datetime: "date and time",
};
const PAGE = 50;

function card(title: string, ...body: (Node | string | null)[]): HTMLElement {
  return h("section", { class: "card" }, h("h3", null, title), ...body);
}

function contactCard(title: string, contact: Contact | null, none: string): HTMLElement {
  return card(
    title,
    contact ? h("p", { class: "big" }, whenText(contact.when, false)) : h("p", { class: "big muted" }, none),
    contact ? h("p", null, KIND[contact.kind], " · ", h("code", null, contact.event.id)) : null,
  );
}

export function relationCards(r: Relation): HTMLElement {
  const total = Math.max(1, ...QUADS.map(([q]) => r.quad_counts[q]));
  const mark = h("span", { class: "scale-mark" });
  mark.style.left = `${((r.score + 10) / 20) * 100}%`; // CSSOM: allowed where inline styles are not
  return h(
    "div",
    { class: "cards" },
    card(
      "Diplomatic status",
      h("p", { class: `big status-${r.status}` }, STATUS_LABEL[r.status]),
      r.status_since ? h("p", null, "since ", whenText(r.status_since)) : h("p", { class: "muted" }, "no event says"),
      r.mediator ? h("p", null, "mediated by ", nameOf(r.mediator)) : null,
    ),
    card(
      "Partnership",
      r.partnership ? h("p", { class: "big" }, `“${r.partnership.label}”`) : h("p", { class: "big muted" }, "none declared"),
      r.partnership ? h("p", null, "declared ", whenText(r.partnership.since)) : null,
    ),
    card(
      "Score and climate",
      h("p", { class: "big" }, h("span", { class: "score" }, scoreText(r.score)), " ", h("span", { class: `chip climate-${r.climate}` }), climateLabel(r.climate)),
      h(
        "div",
        { class: "scale", role: "img", "aria-label": `${scoreText(r.score)} on a scale from −10 to +10` },
        mark,
      ),
      h("p", { class: "hint" }, `${r.event_count} event${r.event_count === 1 ? "" : "s"}, as of ${whenText(r.as_of)}`),
    ),
    contactCard("Last contact", r.last_contact, "none yet"),
    contactCard("Next contact", r.next_contact, "none planned"),
    card(
      "Events by kind",
      h(
        "ul",
        { class: "quads" },
        QUADS.map(([q, label]) =>
          h(
            "li",
            null,
            h("span", { class: "quad-label" }, label),
            h("meter", { min: 0, max: total, value: r.quad_counts[q], "aria-label": `${label}: ${r.quad_counts[q]}` }),
            h("span", { class: "num" }, String(r.quad_counts[q])),
          ),
        ),
      ),
    ),
  );
}

export function recordItem(item: RecordItem, fresh: Set<string>): HTMLElement {
  const e = item.event;
  const span = spanOf(item.occurred);
  const text = summary(e);
  const source = sourceUrl(e);
  const chips = characterisations(e);
  return h(
    "li",
    { class: `record-item${item.retracted ? " retracted" : ""}${fresh.has(e.id) ? " fresh" : ""}`, "data-event-id": e.id },
    h(
      "div",
      { class: "record-when" },
      h("time", { datetime: item.occurred }, whenText(item.occurred)),
      span ? h("span", { class: "precision" }, PRECISION[span.precision]) : null,
    ),
    h(
      "div",
      { class: "record-body" },
      h(
        "p",
        { class: "record-type" },
        h("span", { class: "type-chip" }, typeLabel(e.type)),
        item.retracted ? h("span", { class: "retracted-chip" }, "Retracted") : null,
      ),
      h("p", { class: "record-summary" }, item.retracted ? h("del", null, text) : text),
      chips.length ? h("ul", { class: "chips", "aria-label": "Characterised as" }, chips.map((c) => h("li", null, c))) : null,
      item.retraction
        ? h(
            "p",
            { class: "retraction" },
            `Retracted: recorded ${instantText(item.retraction.recorded_at)}`,
            item.retraction.reason ? ` — ${item.retraction.reason}` : "",
          )
        : null,
      h(
        "p",
        { class: "record-meta" },
        `Recorded ${instantText(item.recorded_at)} · `,
        source ? h("a", { href: source, target: "_blank", rel: "noopener noreferrer" }, "source") : "no source link",
        " · ",
        h("code", null, e.id),
      ),
    ),
  );
}

export function pairView(ctx: ViewContext, route: Extract<Route, { view: "pair" }>): View {
  const times: Times = ctx.times;
  const a = route.a.toUpperCase();
  const b = route.b.toUpperCase();
  const title = `${nameOf(a)} – ${nameOf(b)}`;
  ctx.title(title);
  let bucket: "week" | "month" | null = null;
  const fresh = new Set<string>();
  const base = `/v1/relations/${encodeURIComponent(a)}/${encodeURIComponent(b)}`;
  const when = { as_of: times.asOf, known_at: times.knownAt };

  const cards = h("div", { class: "cards-slot" }, loading("the relation"));
  const chart = h("div", { class: "chart-slot" }, loading("the score over time"));
  const record = h("div", { class: "record-slot" }, loading("the events"));
  const bucketButtons = h("div", { class: "segmented", role: "group", "aria-label": "Periods of the chart" });
  const status = h("p", { class: "sr-only", role: "status" });
  ctx.main.replaceChildren(
    h(
      "article",
      { class: "pair", "aria-labelledby": "pair-title" },
      h(
        "nav",
        { class: "crumbs", "aria-label": "Breadcrumb" },
        h("a", { href: link("/", times) }, "World"),
        " › ",
        h("a", { href: link("/", times, { country: a }) }, nameOf(a)),
        " › ",
        h("span", { "aria-current": "page" }, title),
      ),
      h("h1", { id: "pair-title" }, title, h("span", { class: "codes" }, `${a} · ${b}`)),
      cards,
      h("section", { class: "panel", "aria-labelledby": "chart-title" }, h("div", { class: "panel-head" }, h("h2", { id: "chart-title" }, "Score over time"), bucketButtons), chart),
      h("section", { class: "panel", "aria-labelledby": "record-title" }, h("h2", { id: "record-title" }, "Events"), record),
      status,
    ),
  );

  async function loadSeries(minPosition?: string): Promise<void> {
    try {
      let series = await getJson<ScoreSeries>(`${base}/scores`, { ...when, bucket: bucket ?? "month", min_position: minPosition }, ctx.signal);
      if (bucket === null && series.points.length <= 8) {
        series = await getJson<ScoreSeries>(`${base}/scores`, { ...when, bucket: "week", min_position: minPosition }, ctx.signal);
      }
      bucket = series.bucket;
      replace(chart, scoreChart(series));
      replace(
        bucketButtons,
        (["week", "month"] as const).map((choice) =>
          h(
            "button",
            {
              type: "button",
              "aria-pressed": bucket === choice ? "true" : "false",
              onclick: () => {
                bucket = choice;
                void loadSeries();
              },
            },
            choice === "week" ? "Weeks" : "Months",
          ),
        ),
      );
    } catch (error) {
      if (!ctx.signal.aborted) replace(chart, problemPanel(error, () => void loadSeries()));
    }
  }

  async function loadRecord(minPosition?: string): Promise<void> {
    try {
      const first = await getJson<PairRecord>(`${base}/record`, { ...when, limit: String(PAGE), min_position: minPosition }, ctx.signal);
      const list = h("ol", { class: "record", reversed: true }, first.items.map((item) => recordItem(item, fresh)));
      const more = h("div", { class: "more" });
      const showMore = (cursor: string | null) => {
        replace(
          more,
          cursor
            ? h(
                "button",
                {
                  type: "button",
                  onclick: async () => {
                    try {
                      const page = await getJson<PairRecord>(`${base}/record`, { ...when, limit: String(PAGE), cursor }, ctx.signal);
                      for (const item of page.items) list.appendChild(recordItem(item, fresh));
                      showMore(page.next_cursor);
                    } catch (error) {
                      replace(more, problemPanel(error));
                    }
                  },
                },
                "Show older events",
              )
            : null,
        );
      };
      showMore(first.next_cursor);
      replace(
        record,
        h(
          "p",
          { class: "hint" },
          `${first.total} event${first.total === 1 ? "" : "s"}`,
          first.retracted ? `, ${first.retracted} of them retracted (struck through)` : "",
          times.knownAt ? `, as Chancery knew them at ${instantText(times.knownAt)}` : "",
          times.asOf ? `, that occurred by ${whenText(times.asOf)}` : "",
          ". Newest first.",
        ),
        first.items.length ? list : h("p", null, "No event of this pair is recorded for this time."),
        more,
      );
    } catch (error) {
      if (!ctx.signal.aborted) replace(record, problemPanel(error, () => void loadRecord()));
    }
  }

  async function loadRelation(minPosition?: string): Promise<boolean> {
    try {
      const relation = await getJson<Relation>(base, { ...when, min_position: minPosition }, ctx.signal);
      replace(cards, relationCards(relation));
      return true;
    } catch (error) {
      if (ctx.signal.aborted) return false;
      if (error instanceof ApiProblem && error.unknownActor) {
        const unknown = error.errors.find((e) => e.type === "unknown_actor");
        const code = unknown?.field === "b" ? b : a;
        ctx.title("Not found");
        ctx.main.replaceChildren(
          notFound(`No country “${code}”`, `“${code}” is neither an ISO 3166-1 alpha-3 country code nor an organisation Chancery knows, so there is no relation to show.`, {
            href: link("/", times),
            text: "Back to the world",
          }),
        );
        ctx.main.querySelector<HTMLElement>("h1")?.focus();
        return false;
      }
      replace(cards, problemPanel(error, () => void loadRelation()));
      return false;
    }
  }

  async function loadAll(minPosition?: string): Promise<void> {
    const [ok] = await Promise.all([loadRelation(minPosition), loadSeries(minPosition), loadRecord(minPosition)]);
    if (ok && minPosition) announce(status, "Updated with a new event.");
  }

  void loadAll();

  let pending: string | null = null;
  let timer: number | undefined;
  ctx.live((event, position) => {
    const { codes } = actorsOf(event);
    if (!codes.has(a) || !codes.has(b)) return;
    fresh.add(event.id);
    pending = position;
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void loadAll(pending ?? undefined), 60);
  });
  return {};
}
