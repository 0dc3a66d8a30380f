// The map's colours. Climates go from red (hostile) through yellow (neutral) to blue (close):
// ColorBrewer's RdYlBu, which people with the common colour-vision deficiencies can still
// tell apart; every colour is also written out in the list beside the map. Severed, suspended
// and downgraded relations are marked by a pattern over the climate, not by colour alone.
import type { Climate, Status } from "./types";

export interface ClimateStyle {
  key: Climate;
  label: string;
  range: string;
  fill: string;
}

export const CLIMATES: ClimateStyle[] = [
  { key: "close", label: "Close", range: "score above 5", fill: "#4575b4" },
  { key: "cordial", label: "Cordial", range: "above 1, up to 5", fill: "#91bfdb" },
  { key: "neutral", label: "Neutral", range: "−1 to 1", fill: "#fee090" },
  { key: "strained", label: "Strained", range: "−5 to below −1", fill: "#fc8d59" },
  { key: "hostile", label: "Hostile", range: "below −5", fill: "#d73027" },
];

export const CLIMATE_FILL: Record<Climate, string> = Object.fromEntries(
  CLIMATES.map((c) => [c.key, c.fill]),
) as Record<Climate, string>;

export const NO_RELATION = "#dde3ea";
export const SELECTED = "#1e293b";

export type MarkedStatus = Extract<Status, "severed" | "suspended" | "downgraded">;

export const STATUS_MARKS: { key: MarkedStatus; label: string; pattern: string }[] = [
  { key: "severed", label: "Relations severed", pattern: "mark-severed" },
  { key: "suspended", label: "Relations suspended", pattern: "mark-suspended" },
  { key: "downgraded", label: "Relations downgraded", pattern: "mark-downgraded" },
];

export function isMarked(status: Status): status is MarkedStatus {
  return status === "severed" || status === "suspended" || status === "downgraded";
}

export function climateLabel(climate: Climate | null | undefined): string {
  return CLIMATES.find((c) => c.key === climate)?.label ?? "—";
}

export const STATUS_LABEL: Record<Status, string> = {
  unknown: "Unknown",
  full: "Full",
  downgraded: "Downgraded",
  suspended: "Suspended",
  severed: "Severed",
};

/** "+3.48", "−2.10": signed, with a real minus sign. */
export function scoreText(score: number | null | undefined): string {
  if (score === null || score === undefined) return "—";
  const text = Math.abs(score).toFixed(2);
  return score > 0 ? `+${text}` : score < 0 ? `−${text}` : text;
}
