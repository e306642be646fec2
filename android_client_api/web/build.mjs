// Builds the web client into ../static (a build output, gitignored): `npm run build`.
//
// app.js + app.css: src/main.js and everything it imports (@stomp/stompjs, uPlot and its CSS),
// bundled and minified by esbuild; sw.js: the service worker, stamped with a hash of the build so
// a new build replaces the old cache; index.html, manifest.webmanifest, icon.svg: copied; PNG icons:
// drawn here (no image tool needed, no binary in the repository).
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "src");
const out = join(here, "..", "static");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await esbuild.build({
  entryPoints: { app: join(src, "main.js") },
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "esm",
  target: ["es2020", "safari14"],
  outdir: out,
  legalComments: "eof", // the bundled libraries' licence notices stay in the bundle
  logLevel: "warning",
});

for (const name of ["index.html", "manifest.webmanifest", "icon.svg"]) {
  copyFileSync(join(src, name), join(out, name));
}
for (const size of [192, 512]) {
  writeFileSync(join(out, `icon-${size}.png`), iconPng(size));
}

// The service worker caches the app shell under a name that changes with every build.
const hash = createHash("sha256");
for (const name of ["app.js", "app.css", "index.html"]) hash.update(readFileSync(join(out, name)));
const sw = readFileSync(join(src, "sw.js"), "utf8").replace("__BUILD__", hash.digest("hex").slice(0, 12));
writeFileSync(join(out, "sw.js"), sw);
console.log(`fitwire web client built into ${out}`);

// --- icons -------------------------------------------------------------------------------------

/** A square PNG: a dark tile with a rising green training curve (what fitwire shows). */
function iconPng(size) {
  const bg = [17, 24, 39], fg = [52, 211, 153];
  const px = new Uint8Array(size * size * 3);
  const curve = (x) => 0.8 - 0.6 * Math.sqrt(x); // loss-like falls, so draw 1 - it: a rising accuracy
  const thick = size * 0.045;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = x / size, v = y / size;
      let c = bg;
      if (u > 0.15 && u < 0.85) {
        const cy = (1 - curve((u - 0.15) / 0.7)) * size * 0.75 - size * 0.05;
        if (Math.abs(y - (size - cy)) < thick) c = fg;
      }
      if (v > 0.82 && v < 0.86 && u > 0.12 && u < 0.88) c = fg; // the axis
      px.set(c, (y * size + x) * 3);
    }
  }
  const raw = Buffer.alloc(size * (size * 3 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 3 + 1)] = 0; // filter: none
    Buffer.from(px.buffer, y * size * 3, size * 3).copy(raw, y * (size * 3 + 1) + 1);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0)),
  ]);
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

function crc32(buf) {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
