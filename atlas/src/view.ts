// What every view gets, and the panels they share: an API answer that went wrong, a thing that
// does not exist, and "loading".
import { ApiProblem } from "./api";
import { h, type Child } from "./dom";
import type { Route, Times } from "./router";
import type { CloudEvent } from "./types";

export type LiveListener = (event: CloudEvent, position: string) => void;

export interface ViewContext {
  main: HTMLElement;
  times: Times;
  signal: AbortSignal; // aborted when the view is left
  live(listener: LiveListener): void; // events as the projector applies them, while the view lasts
  title(text: string): void;
}

export interface View {
  /** Show `route` without rebuilding, if this view can; false: build a new view. */
  update?(route: Route, times: Times): boolean;
}

export function loading(what: string): HTMLElement {
  return h("p", { class: "loading", role: "status" }, `Loading ${what}…`);
}

/** An error answer of the API, shown whole: status, title, what is wrong and where. */
export function problemPanel(error: unknown, retry?: () => void): HTMLElement {
  if (!(error instanceof ApiProblem)) {
    return h(
      "div",
      { class: "problem", role: "alert" },
      h("h2", null, "Something went wrong"),
      h("p", null, error instanceof Error ? error.message : String(error)),
    );
  }
  const transient = error.status === 0 || error.status >= 500;
  return h(
    "div",
    { class: "problem", role: "alert" },
    h("h2", null, error.status ? `The API answered ${error.status} ${error.title}` : "The API did not answer"),
    h("p", null, error.detail),
    error.errors.length
      ? h(
          "ul",
          { class: "problem-fields" },
          error.errors.map((e) => h("li", null, h("code", null, e.field || "request"), ": ", e.message)),
        )
      : null,
    h("p", { class: "hint" }, "Asked: ", h("code", null, error.url)),
    transient && retry ? h("button", { type: "button", onclick: retry }, "Try again") : null,
  );
}

export function notFound(title: string, detail: Child, back: { href: string; text: string }): HTMLElement {
  return h(
    "section",
    { class: "not-found", "aria-labelledby": "not-found-title" },
    h("p", { class: "not-found-code", "aria-hidden": "true" }, "404"),
    h("h1", { id: "not-found-title", tabindex: "-1" }, title),
    h("p", null, detail),
    h("p", null, h("a", { href: back.href }, back.text)),
  );
}
