// The shapes of the API's answers the Atlas reads (see the API's OpenAPI document at /docs).

export type Climate = "hostile" | "strained" | "neutral" | "cordial" | "close";
export type Status = "unknown" | "full" | "downgraded" | "suspended" | "severed";

export interface EventRef {
  source: string;
  id: string;
}

export interface Contact {
  when: string;
  kind: "meeting" | "phone" | "video" | "visit";
  event: EventRef;
}

export interface Partnership {
  label: string;
  since: string;
  event_ids: EventRef[];
}

export interface Relation {
  pair: string;
  parties: [string, string];
  as_of: string;
  known_at: string | null;
  status: Status;
  status_since: string | null;
  status_events: EventRef[];
  mediator: string | null;
  partnership: Partnership | null;
  score: number;
  climate: Climate;
  event_count: number;
  quad_counts: Record<"1" | "2" | "3" | "4", number>;
  last_contact: Contact | null;
  next_contact: Contact | null;
}

export interface CountryRelations {
  position: string;
  country: string;
  as_of: string;
  known_at: string | null;
  items: Relation[];
}

export interface ScorePoint {
  period: string;
  start: string;
  end: string;
  score: number | null;
  climate: Climate | null;
  events: number;
  events_to_date: number;
}

export interface ScoreSeries {
  pair: string;
  bucket: "week" | "month";
  start: string;
  end: string;
  points: ScorePoint[];
}

export interface CloudEvent {
  specversion: string;
  id: string;
  source: string;
  type: string;
  time: string;
  recordedtime?: string;
  partitionkey?: string;
  data: Record<string, unknown>;
}

export interface RecordItem {
  occurred: string;
  recorded_at: string | null;
  retracted: boolean;
  retraction: { event: EventRef; recorded_at: string | null; reason: string | null } | null;
  event: CloudEvent;
}

export interface PairRecord {
  pair: string;
  total: number;
  retracted: number;
  items: RecordItem[];
  next_cursor: string | null;
}

export interface PersonRef {
  id: string;
  name: string;
  country?: string | null;
  organisation?: string | null;
  role?: string | null;
}

export interface Appointment {
  role: string;
  appointed_by: string;
  occurred: string;
  previous_roles: string[];
  mandate: string | null;
  event: EventRef;
}

export interface PersonBody {
  id: string;
  person: PersonRef | null;
  appointments: Appointment[];
}

export interface Leg {
  country: string;
  city: string | null;
  status: "planned" | "postponed" | "in_progress" | "completed" | "cancelled";
  planned: string | null;
  started: string | null;
  completed: string | null;
}

export interface TripChange {
  when: string;
  type: string;
  event: EventRef;
  status: string;
  detail: string | null;
}

export interface Trip {
  trip_id: string;
  traveller: PersonRef;
  status: "announced" | "postponed" | "rescheduled" | "in_progress" | "completed" | "cancelled";
  planned: string | null;
  purpose: string | null;
  legs: Leg[];
  history: TripChange[];
}

export interface Itinerary {
  person_id: string;
  person: PersonRef | null;
  trips: Trip[];
}

export interface SessionInfo {
  auth_enabled: boolean;
  signed_in: boolean;
  subject: string | null;
  kind: string | null;
}
