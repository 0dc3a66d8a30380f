// The live feed: events as the projector applies them, from the API's stream (Server-Sent
// Events). After a dropped connection the browser reconnects with Last-Event-ID, so the stream
// resumes after the last event received, with no gap and no duplicate. When the API refuses
// a reconnection (it was restarting, say), the feed opens a new stream itself, from the same
// point (`?after=`), a little later each time.
import { getJson } from "./api";
import { instantText } from "./dates";
import { h, replace } from "./dom";
import { subjectOf, summary, typeLabel } from "./events";
import { link, pairPath, personPath, type Times } from "./router";
import type { CloudEvent, SessionInfo } from "./types";
import type { LiveListener } from "./view";

const KEPT = 40;

export class LiveFeed {
  readonly element: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly state: HTMLElement;
  private readonly empty: HTMLElement;
  private source: EventSource | null = null;
  private last: string | null = null;
  private failures = 0;
  private retry: number | undefined;
  private readonly listeners = new Set<LiveListener>();
  private times: Pick<Times, "asOf" | "knownAt"> = { asOf: null, knownAt: null };

  constructor() {
    this.state = h("span", { class: "live-state", "data-state": "connecting" }, "Connecting…");
    this.list = h("ol", { class: "feed-list", role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-labelledby": "feed-title" });
    this.empty = h("p", { class: "hint" }, "Events appear here as Chancery applies them.");
    this.element = h(
      "aside",
      { class: "feed", "aria-labelledby": "feed-title" },
      h("div", { class: "feed-head" }, h("h2", { id: "feed-title" }, "Live"), this.state),
      this.empty,
      this.list,
    );
    window.addEventListener("pagehide", () => this.source?.close());
  }

  /** Links in the feed keep the page's times. */
  setTimes(times: Pick<Times, "asOf" | "knownAt">): void {
    this.times = times;
  }

  subscribe(listener: LiveListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    this.open();
  }

  private show(state: "live" | "connecting" | "offline" | "signed-out", text: string): void {
    this.state.dataset["state"] = state;
    this.state.textContent = text;
  }

  private open(): void {
    this.source?.close();
    const url = this.last ? `/v1/stream?${new URLSearchParams({ after: this.last }).toString()}` : "/v1/stream";
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.show("live", "Live");
    };
    source.onmessage = (message) => {
      let event: CloudEvent;
      try {
        event = JSON.parse(message.data) as CloudEvent;
      } catch {
        return;
      }
      if (message.lastEventId) this.last = message.lastEventId;
      this.add(event);
      for (const listener of this.listeners) listener(event, message.lastEventId);
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CONNECTING) {
        this.show("connecting", "Reconnecting…");
        return;
      }
      void this.refused();
    };
  }

  private async refused(): Promise<void> {
    this.source?.close();
    this.source = null;
    this.failures += 1;
    try {
      const session = await getJson<SessionInfo>("/atlas/session");
      if (session.auth_enabled && !session.signed_in) {
        this.show("signed-out", "Signed out");
        return;
      }
    } catch {
      // the API is down: retry below
    }
    const delay = Math.min(30, 2 ** Math.min(this.failures, 5));
    this.show("offline", `Offline, retrying in ${delay} s`);
    window.clearTimeout(this.retry);
    this.retry = window.setTimeout(() => this.open(), delay * 1000);
  }

  private add(event: CloudEvent): void {
    this.empty.remove();
    const subject = subjectOf(event);
    const href =
      subject?.kind === "pair"
        ? link(pairPath(subject.a, subject.b), this.times)
        : subject?.kind === "person"
          ? link(personPath(subject.id), this.times)
          : null;
    const text = summary(event);
    const item = h(
      "li",
      { class: "feed-item", "data-event-id": event.id },
      h("span", { class: "type-chip" }, typeLabel(event.type)),
      h("p", null, href ? h("a", { href }, text) : text),
      h("time", { datetime: event.recordedtime ?? event.time }, instantText(event.recordedtime ?? event.time)),
    );
    this.list.prepend(item);
    while (this.list.children.length > KEPT) this.list.lastElementChild?.remove();
  }

  clear(): void {
    replace(this.list);
  }
}
