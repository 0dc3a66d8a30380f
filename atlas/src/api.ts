// The JSON API, from the same origin. The browser sends the session cookie by itself; a 401
// means the session is gone (sign in again); every other error answer is kept whole, as the
// API wrote it (RFC 9457 problem details), so a view can show it instead of swallowing it.

export interface FieldError {
  field: string;
  message: string;
  type: string;
}

export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly errors: FieldError[],
    readonly url: string,
  ) {
    super(`${status} ${title}: ${detail}`);
  }

  /** The API's way of saying an address names no such country or organisation. */
  get unknownActor(): boolean {
    return this.status === 422 && this.errors.some((e) => e.type === "unknown_actor");
  }
}

type Query = Record<string, string | null | undefined>;

export function url(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") params.set(name, value);
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export function signIn(): void {
  const next = location.pathname + location.search;
  location.assign(`/login?${new URLSearchParams({ next }).toString()}`);
}

export async function getJson<T>(path: string, query: Query = {}, signal?: AbortSignal): Promise<T> {
  const target = url(path, query);
  let response: Response;
  try {
    response = await fetch(target, { headers: { Accept: "application/json" }, signal: signal ?? null });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiProblem(0, "Unreachable", "the API did not answer (is it running?)", [], target);
  }
  if (response.ok) return (await response.json()) as T;
  if (response.status === 401) signIn();
  let body: { title?: string; detail?: string; errors?: FieldError[] } = {};
  try {
    body = await response.json();
  } catch {
    // not a problem document: the status says enough
  }
  throw new ApiProblem(
    response.status,
    body.title ?? response.statusText ?? "Error",
    body.detail ?? `the API answered ${response.status}`,
    Array.isArray(body.errors) ? body.errors : [],
    target,
  );
}
