// The world the Atlas draws, made at build time from two maintained packages: the shapes of
// Natural Earth's 1:110m countries (world-atlas, keyed by ISO 3166-1 numeric) and the ISO
// codes and English names of i18n-iso-countries, which join them to alpha-3. The shapes are
// projected here (Equal Earth) into SVG paths, so the page draws without projecting.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

import { geoEqualEarth, geoPath } from "d3-geo";
import countries from "i18n-iso-countries";
import { feature } from "topojson-client";

const require = createRequire(import.meta.url);
const WIDTH = 960;
const MARGIN = 6;
const ANTARCTICA = "010";

function readJson(specifier) {
  return JSON.parse(readFileSync(require.resolve(specifier), "utf8"));
}

// The name a reader knows a country by: the library's short alias ("Russia", "Iran") unless it
// is an abbreviation ("UK"), has a comma, or names two countries ("Congo"); else the official.
function displayNames(names) {
  const all = countries.getNames("en", { select: "all" });
  const aliasCount = new Map();
  for (const list of Object.values(all)) {
    for (const alias of list.slice(1)) aliasCount.set(alias, (aliasCount.get(alias) ?? 0) + 1);
  }
  const out = {};
  for (const [alpha2, list] of Object.entries(all)) {
    const alpha3 = countries.alpha2ToAlpha3(alpha2);
    if (!alpha3) continue;
    const [official, alias] = list;
    const usable =
      alias && alias.length > 3 && !alias.includes(",") && !alias.includes(".") && aliasCount.get(alias) === 1;
    out[alpha3] = { name: usable ? alias : official, aliases: list.filter((n) => n !== (usable ? alias : official)) };
  }
  return out;
}

function largestPolygon(geometry, path) {
  if (geometry.type !== "MultiPolygon") return geometry;
  let best = null;
  let bestArea = -1;
  for (const coordinates of geometry.coordinates) {
    const polygon = { type: "Polygon", coordinates };
    const area = path.area(polygon);
    if (area > bestArea) {
      best = polygon;
      bestArea = area;
    }
  }
  return best;
}

const round = (x) => Math.round(x * 10) / 10;

export function makeWorld() {
  countries.registerLocale(readJson("i18n-iso-countries/langs/en.json"));
  const topology = readJson("world-atlas/countries-110m.json");
  const collection = feature(topology, topology.objects.countries);
  collection.features = collection.features.filter((f) => f.id !== ANTARCTICA);
  const projection = geoEqualEarth().fitWidth(WIDTH - 2 * MARGIN, collection);
  const [[, y0], [, y1]] = geoPath(projection).bounds(collection);
  const height = Math.ceil(y1 - y0 + 2 * MARGIN);
  projection.translate([projection.translate()[0] + MARGIN, projection.translate()[1] - y0 + MARGIN]);
  const path = geoPath(projection).digits(1);
  const names = displayNames();
  const shapes = collection.features.map((f) => {
    const code = f.id ? countries.numericToAlpha3(f.id) ?? null : null;
    const [[bx0, by0], [bx1, by1]] = path.bounds(f);
    const [cx, cy] = path.centroid(largestPolygon(f.geometry, path));
    return {
      code,
      name: code && names[code] ? names[code].name : f.properties.name,
      d: path(f),
      c: [round(cx), round(cy)],
      b: [round(bx0), round(by0), round(bx1), round(by1)],
    };
  });
  const codes = Object.fromEntries(Object.entries(names).map(([code, n]) => [code, n.name]));
  const aliases = Object.fromEntries(
    Object.entries(names)
      .filter(([, n]) => n.aliases.length)
      .map(([code, n]) => [code, n.aliases]),
  );
  return { width: WIDTH, height, shapes, names: codes, aliases };
}
