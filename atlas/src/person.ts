// A person: who they are, and each trip with its legs in order on a map and on a timeline (a
// leg known only to the week is a band over that week), and the trip's status history.
import { ApiProblem, getJson } from "./api";
import { nameOf, theWorld } from "./countries";
import { DAY_MS, instantText, shortDay, spanOf, whenText, type Span } from "./dates";
import { announce, h, replace, s } from "./dom";
import { actorsOf, typeLabel } from "./events";
import { tripMap } from "./map";
import { link, pairPath, type Route, type Times } from "./router";
import type { Itinerary, Leg, PersonBody, Trip } from "./types";
import { loading, notFound, problemPanel, type View, type ViewContext } from "./view";

const TRIP_STATUS: Record<Trip["status"], string> = {
  announced: "Announced",
  postponed: "Postponed",
  rescheduled: "Rescheduled",
  in_progress: "In progress",
  completed: "Completed",
  cancelled: "Cancelled",
};
const LEG_STATUS: Record<Leg["status"], string> = {
  planned: "planned",
  postponed: "postponed",
  in_progress: "in progress",
  completed: "completed",
  cancelled: "cancelled",
};

/** The date a leg is known by (the API's Trip.leg_date): started, else planned, else the trip's. */
export function legDate(trip: Trip, leg: Leg): string | null {
  return leg.started ?? leg.planned ?? trip.planned ?? trip.history[0]?.when ?? null;
}

function timeline(trip: Trip, asOf: string | null): SVGSVGElement | null {
  const rows = trip.legs
    .map((leg) => ({ leg, when: legDate(trip, leg) }))
    .map((r) => ({ ...r, span: r.when ? spanOf(r.when) : null }))
    .filter((r): r is { leg: Leg; when: string; span: Span } => r.span !== null);
  if (!rows.length) return null;
  const start = Math.min(...rows.map((r) => r.span.start.getTime())) - 2 * DAY_MS;
  const end = Math.max(...rows.map((r) => r.span.end.getTime())) + 2 * DAY_MS;
  const W = 640;
  const rowH = 26;
  const left = 120;
  const top = 8;
  const H = top + rows.length * rowH + 28;
  const x = (t: number) => left + ((t - start) / (end - start)) * (W - left - 28);
  const days = (end - start) / DAY_MS;
  const step = days <= 24 ? 1 : days <= 120 ? 7 : 30;
  const ticks: SVGElement[] = [];
  for (let t = start + (step === 1 ? 0 : 0); t <= end; t += step * DAY_MS) {
    const d = new Date(t);
    const label = step === 30 ? shortDay(d).replace(/^\d+ /, "") : `${d.getUTCDate()} ${shortDay(d).split(" ")[1]}`;
    ticks.push(
      s("line", { x1: x(t), x2: x(t), y1: top, y2: H - 22, class: "grid vertical" }),
      s("text", { x: x(t), y: H - 8, class: "tick", "text-anchor": "middle" }, label),
    );
  }
  const bands = rows.map((r, i) => {
    const y = top + i * rowH;
    const x0 = x(r.span.start.getTime());
    const x1 = Math.max(x0 + 4, x(r.span.end.getTime()));
    return s(
      "g",
      null,
      s("text", { x: left - 8, y: y + rowH / 2 + 4, class: "row-label", "text-anchor": "end" }, `${trip.legs.indexOf(r.leg) + 1}. ${nameOf(r.leg.country)}`),
      s("rect", { x: x0, y: y + 4, width: x1 - x0, height: rowH - 8, rx: 4, class: `band leg-${r.leg.status} precision-${r.span.precision}` }),
    );
  });
  const marks: SVGElement[] = [];
  if (asOf) {
    const t = Date.parse(`${asOf}T23:59:59Z`);
    if (t >= start && t <= end) {
      marks.push(s("line", { x1: x(t), x2: x(t), y1: top, y2: H - 22, class: "as-of" }), s("text", { x: x(t) + 3, y: top + 8, class: "tick" }, "as of"));
    }
  }
  const described = rows.map((r) => `${nameOf(r.leg.country)}: ${whenText(r.when)}`).join("; ");
  return s(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "trip-timeline", role: "img", "aria-label": `Timeline of the legs. ${described}.` },
    s("g", { "aria-hidden": "true" }, ticks, bands, marks),
  );
}

function tripSection(trip: Trip, times: Times, index: number): HTMLElement {
  const home = trip.traveller.country ?? null;
  const legs = trip.legs.map((leg) => leg.country);
  const id = `trip-${index}`;
  const mapLabel = `Map of the trip: ${[home ? `from ${nameOf(home)}` : null, `to ${legs.map(nameOf).join(", then ")}`].filter(Boolean).join(" ")}.`;
  return h(
    "section",
    { class: "trip panel", "aria-labelledby": id },
    h(
      "div",
      { class: "panel-head" },
      h("h2", { id }, trip.purpose ? `Trip ${trip.purpose}` : `Trip ${trip.trip_id}`),
      h("span", { class: `trip-status trip-${trip.status}` }, TRIP_STATUS[trip.status]),
    ),
    h(
      "p",
      { class: "trip-when" },
      trip.planned ? ["Planned for ", h("b", null, whenText(trip.planned))] : "No dates given",
      ` · ${trip.legs.length} ${trip.legs.length === 1 ? "country" : "countries"}`,
    ),
    h(
      "div",
      { class: "trip-grid" },
      h("div", { class: "trip-map-wrap" }, tripMap(theWorld(), home, legs, mapLabel)),
      h(
        "ol",
        { class: "legs", "aria-label": "Legs, in order" },
        trip.legs.map((leg, i) =>
          h(
            "li",
            null,
            h("span", { class: "stop-number", "aria-hidden": "true" }, String(i + 1)),
            h(
              "div",
              null,
              home ? h("a", { href: link(pairPath(home, leg.country), times) }, nameOf(leg.country)) : nameOf(leg.country),
              leg.city ? `, ${leg.city}` : "",
              h("span", { class: "leg-when" }, `${LEG_STATUS[leg.status]} · ${whenText(legDate(trip, leg))}`),
            ),
          ),
        ),
      ),
    ),
    timeline(trip, times.asOf),
    h("h3", null, "Status history"),
    h(
      "ol",
      { class: "history" },
      trip.history.map((change) =>
        h(
          "li",
          null,
          h("time", { datetime: change.when }, whenText(change.when)),
          h("span", { class: `trip-status trip-${change.status}` }, TRIP_STATUS[change.status as Trip["status"]] ?? change.status),
          h("span", null, typeLabel(change.type), change.detail ? ` — ${change.detail}` : ""),
        ),
      ),
    ),
  );
}

export function personView(ctx: ViewContext, route: Extract<Route, { view: "person" }>): View {
  const times = ctx.times;
  const id = route.id;
  const status = h("p", { class: "sr-only", role: "status" });
  const slot = h("div", null, loading("the person"));
  ctx.main.replaceChildren(slot, status);
  ctx.title(id);

  async function load(minPosition?: string): Promise<void> {
    let who: PersonBody;
    let itinerary: Itinerary;
    try {
      [who, itinerary] = await Promise.all([
        getJson<PersonBody>(`/v1/people/${encodeURIComponent(id)}`, { min_position: minPosition }, ctx.signal),
        getJson<Itinerary>(`/v1/itineraries/${encodeURIComponent(id)}`, { as_of: times.asOf, known_at: times.knownAt, min_position: minPosition }, ctx.signal),
      ]);
    } catch (error) {
      if (ctx.signal.aborted) return;
      if (error instanceof ApiProblem && (error.status === 404 || (error.status === 422 && error.errors.some((e) => e.field === "person_id")))) {
        ctx.title("Not found");
        replace(
          slot,
          notFound(`No person “${id}”`, "No event Chancery holds names this person (ids are the lowercase slug of the name, like li-hui).", {
            href: link("/", times),
            text: "Back to the world",
          }),
        );
        return;
      }
      replace(slot, problemPanel(error, () => void load()));
      return;
    }
    const person = who.person ?? itinerary.person;
    const name = person?.name ?? id;
    ctx.title(name);
    const trips = [...itinerary.trips].reverse(); // the latest first
    replace(
      slot,
      h(
        "article",
        { class: "person", "aria-labelledby": "person-title" },
        h(
          "nav",
          { class: "crumbs", "aria-label": "Breadcrumb" },
          h("a", { href: link("/", times) }, "World"),
          person?.country ? [" › ", h("a", { href: link("/", times, { country: person.country }) }, nameOf(person.country))] : null,
          " › ",
          h("span", { "aria-current": "page" }, name),
        ),
        h("h1", { id: "person-title" }, name),
        h("p", { class: "lede" }, [person?.role, person?.country ? nameOf(person.country) : person?.organisation].filter(Boolean).join(" · ")),
        who.appointments.length
          ? h(
              "section",
              { class: "panel", "aria-labelledby": "appointments-title" },
              h("h2", { id: "appointments-title" }, "Appointments"),
              h(
                "ul",
                { class: "appointments" },
                who.appointments.map((a) =>
                  h(
                    "li",
                    null,
                    h("b", null, a.role),
                    `, appointed by ${nameOf(a.appointed_by)}, ${whenText(a.occurred)}`,
                    a.previous_roles.length ? `; previously ${a.previous_roles.join(", ")}` : "",
                    a.mandate ? h("p", { class: "hint" }, `Mandate: ${a.mandate}`) : null,
                  ),
                ),
              ),
            )
          : null,
        trips.length
          ? trips.map((trip, i) => tripSection(trip, times, i))
          : h("p", { class: "panel" }, `No trip of ${name} is recorded${times.asOf || times.knownAt ? " for this time" : ""}.`),
        times.knownAt ? h("p", { class: "hint" }, `Trips as Chancery knew them at ${instantText(times.knownAt)}.`) : null,
      ),
    );
    if (minPosition) announce(status, "Updated with a new event.");
  }

  void load();
  let timer: number | undefined;
  ctx.live((event, position) => {
    if (!actorsOf(event).people.has(id)) return;
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void load(position), 60);
  });
  return {};
}
