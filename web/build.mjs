// Builds the web app into the intake service's static folder: one bundled script, the style
// sheet and the page. The output depends only on the sources and the locked packages.

import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "services", "intake", "custody_intake", "web", "static");

await rm(out, { recursive: true, force: true });
await mkdir(join(out, "assets"), { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.js")],
  outfile: join(out, "assets", "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["chrome109", "firefox115", "safari16"],
  minify: true,
  legalComments: "eof",
  logLevel: "warning",
});
await copyFile(join(here, "src", "app.css"), join(out, "assets", "app.css"));
await copyFile(join(here, "src", "index.html"), join(out, "index.html"));
