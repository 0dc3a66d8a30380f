// The Atlas: boots the page, draws the header (time travel, sign-out) and the live feed, and
// shows the view the address names, again on every navigation.
import "./styles.css";

import { getJson, signIn } from "./api";
import { setWorld, type World } from "./countries";
import { instantText, whenText } from "./dates";
import { h, replace } from "./dom";
import { LiveFeed } from "./feed";
import { pairView } from "./pair";
import { personView } from "./person";
import { interceptLinks, link, navigate, onNavigate, routeOf, timesOf, type Route, type Times } from "./router";
import type { SessionInfo } from "./types";
import { notFound, problemPanel, type View, type ViewContext } from "./view";
import { worldView } from "./world";

performance.mark("atlas:start");

const worldUrl = document.querySelector<HTMLMetaElement>('meta[name="atlas-world"]')?.content ?? "";
const worldLoad = fetch(worldUrl).then((response) => {
  if (!response.ok) throw new Error(`the world's shapes did not load (${response.status})`);
  return response.json() as Promise<World>;
});
const sessionLoad = getJson<SessionInfo>("/atlas/session").catch(() => null);

const main = document.getElementById("main") as HTMLElement;
const banner = document.getElementById("time-banner") as HTMLElement;
const sessionSlot = document.getElementById("session") as HTMLElement;
const asOfInput = document.getElementById("as-of") as HTMLInputElement;
const knownAtInput = document.getElementById("known-at") as HTMLInputElement;
const timeForm = document.getElementById("times") as HTMLFormElement;
const feed = new LiveFeed();
document.getElementById("feed-slot")?.replaceWith(feed.element);

/** An RFC 3339 instant as the datetime-local control shows it (in UTC). */
function toLocalInput(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString().slice(0, 19);
}

function setControls(times: Times): void {
  asOfInput.value = times.asOf && !times.problems.some((p) => p.startsWith("as_of")) ? times.asOf : "";
  knownAtInput.value = times.knownAt ? toLocalInput(times.knownAt) : "";
}

function currentTimesFromControls(): { asOf: string | null; knownAt: string | null } {
  const asOf = asOfInput.value || null;
  let knownAt: string | null = null;
  if (knownAtInput.value) {
    const value = knownAtInput.value.length === 16 ? `${knownAtInput.value}:00` : knownAtInput.value;
    knownAt = `${value}Z`;
  }
  return { asOf, knownAt };
}

function withTimes(times: { asOf: string | null; knownAt: string | null }): string {
  const here = new URL(location.href);
  here.searchParams.delete("as_of");
  here.searchParams.delete("known_at");
  const rest = Object.fromEntries(here.searchParams.entries());
  return link(here.pathname, times, rest);
}

timeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  navigate(withTimes(currentTimesFromControls()));
});
document.getElementById("now")?.addEventListener("click", () => navigate(withTimes({ asOf: null, knownAt: null })));

function showBanner(times: Times): void {
  if (!times.asOf && !times.knownAt) {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  banner.hidden = false;
  replace(
    banner,
    h("span", { class: "banner-icon", "aria-hidden": "true" }, "⟲"),
    h(
      "span",
      null,
      "Travelling in time: ",
      times.asOf ? ["what had occurred by ", h("b", null, whenText(times.asOf))] : null,
      times.asOf && times.knownAt ? ", " : null,
      times.knownAt ? ["as Chancery knew it at ", h("b", null, instantText(times.knownAt))] : null,
      ". ",
    ),
    h("a", { href: withTimes({ asOf: null, knownAt: null }) }, "Back to now"),
  );
}

function badAddress(times: Times): HTMLElement {
  return h(
    "section",
    { class: "problem", role: "alert", "aria-labelledby": "bad-address" },
    h("h1", { id: "bad-address", tabindex: "-1" }, "This address asks for a time that is not one"),
    h("ul", null, times.problems.map((p) => h("li", null, p))),
    h(
      "p",
      null,
      h("a", { href: withTimes({ asOf: times.problems.some((p) => p.startsWith("as_of")) ? null : times.asOf, knownAt: times.problems.some((p) => p.startsWith("known_at")) ? null : times.knownAt }) }, "Show the page without it"),
    ),
  );
}

let current: { view: View; controller: AbortController } | null = null;
let first = true;

function render(): void {
  const route: Route = routeOf(location);
  const times = timesOf(new URLSearchParams(location.search));
  setControls(times);
  showBanner(times);
  feed.setTimes(times);
  if (!times.problems.length && current?.view.update?.(route, times)) return;
  current?.controller.abort();
  const controller = new AbortController();
  const ctx: ViewContext = {
    main,
    times,
    signal: controller.signal,
    live(listener) {
      const off = feed.subscribe(listener);
      controller.signal.addEventListener("abort", off);
    },
    title(text) {
      document.title = `${text} · Chancery Atlas`;
    },
  };
  let view: View = {};
  if (times.problems.length) {
    ctx.title("Bad address");
    main.replaceChildren(badAddress(times));
  } else if (route.view === "world") {
    view = worldView(ctx, route);
  } else if (route.view === "pair") {
    view = pairView(ctx, route);
  } else if (route.view === "person") {
    view = personView(ctx, route);
  } else {
    ctx.title("Not found");
    main.replaceChildren(
      notFound("No such page", `Nothing is at ${route.path}. The Atlas has the world (/), pairs (/relations/CHN/USA) and people (/people/li-hui).`, {
        href: link("/", times),
        text: "Go to the world",
      }),
    );
  }
  current = { view, controller };
  if (!first) main.focus({ preventScroll: false });
  first = false;
}

function showSession(session: SessionInfo | null): void {
  if (!session) return;
  if (!session.auth_enabled) {
    replace(sessionSlot, h("span", { class: "hint" }, "Open access (auth disabled)"));
    return;
  }
  replace(
    sessionSlot,
    h("span", null, "Signed in as ", h("b", null, session.subject ?? "?")),
    h("form", { method: "post", action: "/logout", class: "signout" }, h("button", { type: "submit", class: "link" }, "Sign out")),
  );
}

async function boot(): Promise<void> {
  try {
    const [world, session] = await Promise.all([worldLoad, sessionLoad]);
    if (session && session.auth_enabled && !session.signed_in) {
      signIn();
      return;
    }
    setWorld(world);
    showSession(session);
  } catch (error) {
    main.replaceChildren(problemPanel(error));
    return;
  }
  interceptLinks(document);
  onNavigate(render);
  render();
  feed.start();
}

void boot();
