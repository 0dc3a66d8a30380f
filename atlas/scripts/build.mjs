// `npm run build` (or `make atlas`): atlas/src -> atlas/dist, which the API serves at /.
//
// dist/index.html    the shell every page path answers with
// dist/manifest.json the hashed names of what the shell loads (the API reads it)
// dist/assets/       the script and style sheet (esbuild), the world's shapes
//                    (scripts/world.mjs) and an icon, each beside its .br and .gz forms
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

import { build } from "esbuild";

import { makeWorld } from "./world.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const assets = join(dist, "assets");

function hashed(name, ext, content) {
  const hash = createHash("sha256").update(content).digest("base64url").slice(0, 10);
  return `${name}-${hash}${ext}`;
}

function write(name, content) {
  writeFileSync(join(assets, name), content);
  return `assets/${name}`;
}

const started = Date.now();
rmSync(dist, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

const result = await build({
  entryPoints: [join(root, "src", "main.ts")],
  bundle: true,
  format: "esm",
  minify: true,
  sourcemap: "linked",
  target: ["chrome110", "firefox110", "safari16"],
  outdir: assets,
  entryNames: "[name]-[hash]",
  metafile: true,
  legalComments: "eof",
  logLevel: "warning",
});
const outputs = Object.keys(result.metafile.outputs).map((p) => relative(dist, join(process.cwd(), p)));
const js = outputs.find((p) => p.endsWith(".js"));
const css = outputs.find((p) => p.endsWith(".css"));

const worldJson = JSON.stringify(makeWorld());
const world = write(hashed("world", ".json", worldJson), worldJson);
const iconSvg = readFileSync(join(root, "src", "icon.svg"));
const icon = write(hashed("icon", ".svg", iconSvg), iconSvg);

const manifest = { js, css, world, icon };
writeFileSync(join(dist, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");

const shell = readFileSync(join(root, "src", "index.html"), "utf8")
  .replaceAll("%JS%", `/atlas/${js}`)
  .replaceAll("%CSS%", `/atlas/${css}`)
  .replaceAll("%WORLD%", `/atlas/${world}`)
  .replaceAll("%ICON%", `/atlas/${icon}`);
writeFileSync(join(dist, "index.html"), shell);

let raw = 0;
let compressed = 0;
for (const name of readdirSync(assets)) {
  const content = readFileSync(join(assets, name));
  const br = brotliCompressSync(content, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: content.length },
  });
  writeFileSync(join(assets, `${name}.br`), br);
  writeFileSync(join(assets, `${name}.gz`), gzipSync(content, { level: 9 }));
  if (!name.endsWith(".map") && !name.endsWith(".txt")) {
    raw += content.length;
    compressed += br.length;
  }
}
const kb = (n) => `${(n / 1024).toFixed(0)} KB`;
console.log(
  `atlas: built ${js}, ${css}, ${world} in ${Date.now() - started} ms (${kb(raw)}, ${kb(compressed)} with brotli)`,
);
