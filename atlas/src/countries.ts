// Countries: the shapes the build projected (scripts/world.mjs) and every ISO 3166-1 name.

export interface Shape {
  code: string | null; // ISO 3166-1 alpha-3; null for the few Natural Earth has no code for
  name: string;
  d: string; // SVG path, already projected
  c: [number, number]; // where to put a marker: the centroid of its largest part
  b: [number, number, number, number]; // bounds x0, y0, x1, y1
}

export interface World {
  width: number;
  height: number;
  shapes: Shape[];
  names: Record<string, string>;
  aliases: Record<string, string[]>;
}

// Organisations (NATO, EU, UN, ...) have no shape and go by their code on the page; the API
// holds their registry and says when a code is neither a country nor one of them.
const ORGANISATION_CODE = /^[A-Z][A-Z0-9]{1,5}$/;

let world: World | null = null;
const byCode = new Map<string, Shape>();

export function setWorld(value: World): void {
  world = value;
  for (const shape of value.shapes) if (shape.code) byCode.set(shape.code, shape);
}

export function theWorld(): World {
  if (!world) throw new Error("the world is not loaded yet");
  return world;
}

export function shapeOf(code: string): Shape | undefined {
  return byCode.get(code);
}

export function nameOf(code: string): string {
  return world?.names[code] ?? code;
}

export function isCountryCode(code: string): boolean {
  return Boolean(world?.names[code]);
}

/** Every pickable name: "China (CHN)" and the like, sorted. */
export function choices(): { code: string; label: string }[] {
  if (!world) return [];
  return Object.entries(world.names)
    .map(([code, name]) => ({ code, label: `${name} (${code})` }))
    .sort((x, y) => x.label.localeCompare(y.label, "en"));
}

function fold(text: string): string {
  return text
    .normalize("NFD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .trim();
}

/** The code a person typed: a code, a name or alias, or a choice "Name (CODE)". */
export function resolve(typed: string): string | null {
  const text = typed.trim();
  if (!text || !world) return null;
  const inParens = /\(([A-Za-z_]{2,11})\)\s*$/.exec(text);
  const candidate = (inParens ? inParens[1]! : text).toUpperCase();
  if (world.names[candidate]) return candidate;
  const wanted = fold(text);
  for (const [code, name] of Object.entries(world.names)) {
    if (fold(name) === wanted) return code;
  }
  for (const [code, list] of Object.entries(world.aliases)) {
    if (list.some((alias) => fold(alias) === wanted)) return code;
  }
  const starts = Object.entries(world.names).filter(([, name]) => fold(name).startsWith(wanted));
  if (starts.length === 1) return starts[0]![0];
  return ORGANISATION_CODE.test(candidate) ? candidate : null; // the API knows if it is one
}
