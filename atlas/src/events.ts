// Events for a reader: what type each is, a sentence saying what happened, who took part.
import { nameOf } from "./countries";
import type { CloudEvent } from "./types";

export const TYPE_LABEL: Record<string, string> = {
  "diplomacy.envoy.appointed": "Envoy appointed",
  "diplomacy.visit.announced": "Visit announced",
  "diplomacy.visit.leg.started": "Leg started",
  "diplomacy.visit.leg.completed": "Leg completed",
  "diplomacy.visit.postponed": "Visit postponed",
  "diplomacy.visit.rescheduled": "Visit rescheduled",
  "diplomacy.visit.cancelled": "Visit cancelled",
  "diplomacy.visit.completed": "Visit completed",
  "diplomacy.meeting.held": "Meeting",
  "diplomacy.relations.changed": "Relations changed",
  "diplomacy.partnership.declared": "Partnership",
  "diplomacy.stance.declared": "Stance",
  "diplomacy.statement.made": "Statement",
  "diplomacy.proposal.made": "Proposal",
  "diplomacy.proposal.rejected": "Proposal rejected",
  "diplomacy.incident.occurred": "Incident",
  "diplomacy.event.coded": "Coded event",
  "diplomacy.event.retracted": "Correction",
};

export function typeLabel(type: string): string {
  return TYPE_LABEL[type] ?? type.replace(/^diplomacy\./, "");
}

type Data = Record<string, unknown>;

function text(value: unknown): string | null {
  return typeof value === "string" && value ? value : null;
}

function codes(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function names(list: string[]): string {
  const named = list.map(nameOf);
  if (named.length <= 1) return named.join("");
  return `${named.slice(0, -1).join(", ")} and ${named[named.length - 1]}`;
}

function person(value: unknown): { id: string; name: string; country?: string } | null {
  if (value && typeof value === "object" && "id" in value && "name" in value) {
    const p = value as { id: unknown; name: unknown; country?: unknown };
    if (typeof p.id === "string" && typeof p.name === "string") {
      return { id: p.id, name: p.name, ...(typeof p.country === "string" ? { country: p.country } : {}) };
    }
  }
  return null;
}

function legCountries(data: Data): string[] {
  const legs = Array.isArray(data["legs"]) ? data["legs"] : Array.isArray(data["destinations"]) ? data["destinations"] : [];
  return legs
    .map((leg) => (leg && typeof leg === "object" ? (leg as { country?: unknown }).country : null))
    .filter((c): c is string => typeof c === "string");
}

const CHANGE_VERB: Record<string, string> = {
  established: "established relations",
  restored: "restored relations",
  upgraded: "upgraded relations",
  downgraded: "downgraded relations",
  suspended: "suspended relations",
  severed: "severed relations",
};

const STATEMENT_VERB: Record<string, string> = {
  accuse: "accuses",
  blame: "blames",
  criticise: "criticises",
  praise: "praises",
  appeal: "appeals to",
  comment: "comments on",
};

const STANCE: Record<string, string> = { supports: "supports", opposes: "opposes", neutral: "is neutral on" };

const MODE: Record<string, string> = { in_person: "in person", phone: "by phone", video: "by video" };

/** One sentence saying what the event records. */
export function summary(event: CloudEvent): string {
  const data = event.data;
  const traveller = person(data["traveller"]);
  switch (event.type) {
    case "diplomacy.meeting.held": {
      const where = [text(data["city"]), data["country"] ? nameOf(String(data["country"])) : null].filter(Boolean).join(", ");
      const mediator = text(data["mediator"]);
      return [
        `Talks between ${names(codes(data["parties"]))}`,
        where ? ` in ${where}` : "",
        MODE[String(data["mode"])] && data["mode"] !== "in_person" ? ` ${MODE[String(data["mode"])]}` : "",
        mediator ? `, mediated by ${nameOf(mediator)}` : "",
        text(data["topic"]) ? `: ${text(data["topic"])}` : "",
      ].join("");
    }
    case "diplomacy.relations.changed": {
      const years = typeof data["break_years"] === "number" ? ` after ${data["break_years"]} years` : "";
      const mediator = text(data["mediator"]);
      return `${names(codes(data["parties"]))} ${CHANGE_VERB[String(data["change"])] ?? "changed relations"}${years}${mediator ? `, mediated by ${nameOf(mediator)}` : ""}`;
    }
    case "diplomacy.partnership.declared":
      return `${names(codes(data["parties"]))} declared a “${text(data["label"]) ?? "partnership"}” partnership`;
    case "diplomacy.stance.declared":
      return `${nameOf(String(data["party"]))} ${STANCE[String(data["position"])] ?? "takes a stance on"} ${text(data["issue"]) ?? "an issue"}`;
    case "diplomacy.statement.made": {
      const targets = codes(data["targets"]);
      const about = text(data["about"]);
      const verb = STATEMENT_VERB[String(data["kind"])] ?? "speaks of";
      return `${nameOf(String(data["by"]))} ${verb}${targets.length ? ` ${names(targets)}` : ""}${about ? ` (${about})` : ""}`;
    }
    case "diplomacy.proposal.made":
      return `${nameOf(String(data["by"]))} proposed the “${text(data["title"]) ?? "proposal"}”`;
    case "diplomacy.proposal.rejected": {
      const by = codes(data["by"]);
      const who = by.length ? names(by) : text(data["by_description"]) ?? "Others";
      return `${who} ${text(data["extent"]) ?? "wholly"} rejected ${nameOf(String(data["proposer"]))}'s proposal`;
    }
    case "diplomacy.incident.occurred":
      return `${text(data["summary"]) ?? "An incident"} (${names(codes(data["parties"]))})`;
    case "diplomacy.event.coded":
      return `${nameOf(String(data["actor1"]))} → ${nameOf(String(data["actor2"]))}: CAMEO ${String(data["cameo"])}${typeof data["goldstein"] === "number" ? `, Goldstein ${data["goldstein"]}` : ""}`;
    case "diplomacy.envoy.appointed": {
      const who = person(data["person"]);
      return `${who?.name ?? "Someone"} appointed ${text(data["role"]) ?? ""} by ${nameOf(String(data["appointed_by"]))}`;
    }
    case "diplomacy.event.retracted": {
      const target = data["target"] as { id?: unknown } | undefined;
      return `Retracts “${typeof target?.id === "string" ? target.id : "an event"}”${text(data["reason"]) ? `: ${text(data["reason"])}` : ""}`;
    }
    default:
      if (traveller) {
        const to = legCountries(data);
        return `${traveller.name}: ${typeLabel(event.type).toLowerCase()}${to.length ? ` (${names(to)})` : ""}`;
      }
      return typeLabel(event.type);
  }
}

/** Every state or organisation the event names, and the people it is about. */
export function actorsOf(event: CloudEvent): { codes: Set<string>; people: Set<string> } {
  const data = event.data;
  const found = new Set<string>();
  for (const name of ["parties", "targets", "aligned_with", "regarding", "by", "locations"]) {
    for (const code of codes(data[name])) found.add(code);
  }
  for (const name of ["party", "by", "mediator", "actor1", "actor2", "country", "proposer", "appointed_by"]) {
    const value = text(data[name]);
    if (value) found.add(value);
  }
  for (const code of legCountries(data)) found.add(code);
  const people = new Set<string>();
  for (const name of ["traveller", "person"]) {
    const who = person(data[name]);
    if (who) {
      people.add(who.id);
      if (who.country) found.add(who.country);
    }
  }
  // A retraction names only its target; its partition key is the target's subject.
  for (const part of (event.partitionkey ?? "").split("|")) {
    if (/^[A-Z][A-Z0-9]{1,5}$/.test(part)) found.add(part);
    else if (part) people.add(part);
  }
  return { codes: found, people };
}

/** Where the report came from, when it is a web address. */
export function sourceUrl(event: CloudEvent): string | null {
  const coded = text(event.data["source_url"]);
  for (const candidate of [coded, event.source]) {
    if (candidate && /^https?:\/\//i.test(candidate)) return candidate;
  }
  return null;
}

export function characterisations(event: CloudEvent): string[] {
  return codes(event.data["characterisations"]);
}

/** Where a reader goes to see more of the event: its pair, or its person. */
export function subjectOf(event: CloudEvent): { kind: "pair"; a: string; b: string } | { kind: "person"; id: string } | null {
  const data = event.data;
  const traveller = person(data["traveller"]) ?? person(data["person"]);
  if (traveller) return { kind: "person", id: traveller.id };
  const pair = (event.partitionkey ?? "").split("|").filter((p) => /^[A-Z][A-Z0-9]{1,5}$/.test(p));
  if (pair.length >= 2) return { kind: "pair", a: pair[0]!, b: pair[1]! };
  const a = text(data["actor1"]) ?? text(data["by"]) ?? text(data["party"]);
  const b = text(data["actor2"]) ?? codes(data["targets"])[0] ?? codes(data["aligned_with"])[0] ?? codes(data["regarding"])[0];
  return a && b && a !== b ? { kind: "pair", a, b } : null;
}
