#!/usr/bin/env node
// Entry point of the `llmd` CLI. Runs the compiled build (dist/), built by `npm install`
// (the `prepare` script) or `npm run build`.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const main = join(root, "dist", "cli", "main.js");
if (!existsSync(main)) {
  console.error("llmd: the build is missing (dist/). Run `npm install` or `npm run build` in " + root);
  process.exit(1);
}
await import(main);
