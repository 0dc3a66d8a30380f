// Times as diplomacy reports them, at the precision the source gave (the API's `When`): a day
// "2023-05-12", a month "2023-05", an ISO week "2023-W20", an interval "2023-05-10/2023-05-11"
// or a date-time with its offset. Read in UTC, as the API reads them; written in English.

const MONTHS = [
  "January", "February", "March", "April", "May", "June",
  "July", "August", "September", "October", "November", "December",
];
const SHORT = MONTHS.map((m) => m.slice(0, 3));

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const MONTH = /^(\d{4})-(\d{2})$/;
const WEEK = /^(\d{4})-W(\d{2})$/;
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

export type Precision = "day" | "month" | "week" | "datetime" | "interval";

export interface Span {
  start: Date; // UTC, inclusive
  end: Date; // UTC, exclusive
  precision: Precision;
}

const DAY_MS = 86_400_000;

function utc(y: number, m: number, d: number): Date {
  return new Date(Date.UTC(y, m - 1, d));
}

/** Monday of ISO week `week` of `year`. */
export function isoWeekStart(year: number, week: number): Date {
  const jan4 = utc(year, 1, 4);
  const weekday = (jan4.getUTCDay() + 6) % 7; // Monday 0
  return new Date(jan4.getTime() - weekday * DAY_MS + (week - 1) * 7 * DAY_MS);
}

function single(text: string): Span | null {
  let m = DAY.exec(text);
  if (m) {
    const start = utc(+m[1]!, +m[2]!, +m[3]!);
    return { start, end: new Date(start.getTime() + DAY_MS), precision: "day" };
  }
  m = MONTH.exec(text);
  if (m) {
    return { start: utc(+m[1]!, +m[2]!, 1), end: utc(+m[1]!, +m[2]! + 1, 1), precision: "month" };
  }
  m = WEEK.exec(text);
  if (m) {
    const start = isoWeekStart(+m[1]!, +m[2]!);
    return { start, end: new Date(start.getTime() + 7 * DAY_MS), precision: "week" };
  }
  m = DATETIME.exec(text);
  if (m) {
    const at = new Date(text);
    if (Number.isNaN(at.getTime())) return null;
    return { start: at, end: new Date(at.getTime() + 60_000), precision: "datetime" };
  }
  return null;
}

export function spanOf(when: string): Span | null {
  const [a, b, ...rest] = when.split("/");
  if (rest.length || a === undefined) return null;
  const first = single(a);
  if (!first) return null;
  if (b === undefined) return first;
  const second = single(b);
  return second ? { start: first.start, end: second.end, precision: "interval" } : null;
}

export function dayText(d: Date): string {
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

export function shortDay(d: Date): string {
  return `${d.getUTCDate()} ${SHORT[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

/** "15–21 May 2023", "28 Feb – 2 Mar 2023", "30 Dec 2024 – 5 Jan 2025" (inclusive days). */
export function rangeText(start: Date, lastDay: Date): string {
  const sameYear = start.getUTCFullYear() === lastDay.getUTCFullYear();
  const sameMonth = sameYear && start.getUTCMonth() === lastDay.getUTCMonth();
  if (start.getTime() === lastDay.getTime()) return dayText(start);
  if (sameMonth) return `${start.getUTCDate()}–${dayText(lastDay)}`;
  if (sameYear) return `${start.getUTCDate()} ${SHORT[start.getUTCMonth()]} – ${shortDay(lastDay)}`;
  return `${shortDay(start)} – ${shortDay(lastDay)}`;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

function singleText(text: string, withRange: boolean): string {
  let m = DAY.exec(text);
  if (m) return dayText(utc(+m[1]!, +m[2]!, +m[3]!));
  m = MONTH.exec(text);
  if (m) return `${MONTHS[+m[2]! - 1]} ${m[1]}`;
  m = WEEK.exec(text);
  if (m) {
    const start = isoWeekStart(+m[1]!, +m[2]!);
    const last = new Date(start.getTime() + 6 * DAY_MS);
    const label = `week ${+m[2]!} of ${m[1]}`;
    return withRange ? `${label} (${rangeText(start, last)})` : label;
  }
  m = DATETIME.exec(text);
  if (m) {
    const offset = m[7] === "Z" ? "UTC" : `UTC${m[7]}`;
    return `${+m[3]!} ${MONTHS[+m[2]! - 1]} ${m[1]}, ${m[4]}:${m[5]} ${offset}`;
  }
  return text;
}

/** A `When` for a reader: "week 20 of 2023 (15–21 May 2023)", "March 2023", "10–11 May 2023". */
export function whenText(when: string | null | undefined, withRange = true): string {
  if (!when) return "—";
  const [a, b] = when.split("/");
  if (b === undefined) return singleText(a ?? when, withRange);
  if (DAY.test(a ?? "") && DAY.test(b)) {
    const first = single(a!);
    const last = single(b);
    if (first && last) return rangeText(first.start, last.start);
  }
  return `${singleText(a ?? "", false)} – ${singleText(b, false)}`;
}

/** An instant (RFC 3339) as "12 May 2023, 09:05 UTC". */
export function instantText(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${dayText(d)}, ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

export function isoDay(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

export function parseDay(text: string): Date {
  const m = DAY.exec(text);
  return m ? utc(+m[1]!, +m[2]!, +m[3]!) : new Date(NaN);
}

export { DAY_MS, MONTHS, SHORT };
