// Where the page is: the view its path names and the two times its query asks for. Every
// link keeps `as_of` and `known_at`, so an address reproduces exactly what was seen.

export type Route =
  | { view: "world"; country: string | null }
  | { view: "pair"; a: string; b: string }
  | { view: "person"; id: string }
  | { view: "missing"; path: string };

export interface Times {
  asOf: string | null;
  knownAt: string | null;
  problems: string[]; // what is wrong with the address's times, for a reader
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$/i;

export function dayProblem(value: string): string | null {
  const m = DAY.exec(value);
  if (m) {
    const [y, mo, d] = [+m[1]!, +m[2]!, +m[3]!];
    const date = new Date(Date.UTC(y, mo - 1, d));
    if (y < 1000 || y > 9998) return `as_of “${value}” is out of range: years 1000 to 9998.`;
    if (date.getUTCMonth() === mo - 1 && date.getUTCDate() === d) return null;
    return `as_of “${value}” is not a day of the calendar (${mo > 12 ? "no month " + mo : "that month has no day " + d}).`;
  }
  return `as_of “${value.slice(0, 40)}” is not a day: write it as YYYY-MM-DD, like 2023-02-28.`;
}

export function instantProblem(value: string): string | null {
  if (INSTANT.test(value) && !Number.isNaN(new Date(value).getTime())) return null;
  return (
    `known_at “${value.slice(0, 40)}” is not an instant: write a date, a time and an offset, ` +
    "like 2023-05-12T09:00:00Z."
  );
}

export function timesOf(search: URLSearchParams): Times {
  const problems: string[] = [];
  let asOf = search.get("as_of");
  let knownAt = search.get("known_at");
  if (asOf === "") asOf = null;
  if (knownAt === "") knownAt = null;
  if (asOf !== null) {
    const problem = dayProblem(asOf);
    if (problem) problems.push(problem);
  }
  if (knownAt !== null) {
    const problem = instantProblem(knownAt);
    if (problem) problems.push(problem);
  }
  return { asOf, knownAt, problems };
}

function segment(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

export function routeOf(location: Location | URL): Route {
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const search = new URLSearchParams(location.search);
  if (path === "/") {
    const country = search.get("country");
    return { view: "world", country: country ? country.trim() : null };
  }
  const parts = path.split("/").slice(1);
  if (parts[0] === "relations" && parts.length === 3) {
    const a = segment(parts[1]!);
    const b = segment(parts[2]!);
    if (a && b) return { view: "pair", a, b };
  }
  if (parts[0] === "people" && parts.length === 2) {
    const id = segment(parts[1]!);
    if (id) return { view: "person", id };
  }
  return { view: "missing", path };
}

/** A path on this site with the current times kept (and `extra` query parameters). */
export function link(path: string, times: Pick<Times, "asOf" | "knownAt">, extra: Record<string, string> = {}): string {
  const query = new URLSearchParams(extra);
  if (times.asOf) query.set("as_of", times.asOf);
  if (times.knownAt) query.set("known_at", times.knownAt);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export function pairPath(a: string, b: string): string {
  return `/relations/${encodeURIComponent(a)}/${encodeURIComponent(b)}`;
}

export function personPath(id: string): string {
  return `/people/${encodeURIComponent(id)}`;
}

type Listener = () => void;
const listeners: Listener[] = [];

export function onNavigate(listener: Listener): void {
  listeners.push(listener);
}

export function navigate(url: string, replace = false): void {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  for (const listener of listeners) listener();
}

/** Same-origin links of the page's own views navigate without a reload. */
export function interceptLinks(root: Document): void {
  root.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const anchor = (event.target as Element | null)?.closest("a");
    if (!anchor || anchor.target || anchor.hasAttribute("download")) return;
    const url = new URL(anchor.href, location.href);
    if (url.origin !== location.origin) return;
    const route = routeOf(url);
    if (route.view === "missing") return;
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", () => {
    for (const listener of listeners) listener();
  });
}
