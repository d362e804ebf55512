#!/usr/bin/env node
// Runs every *.test.ts under the given folders (default: src and test) with node's
// test runner and tsx, one file at a time (multi-process tests must not compete for
// the 2 cores). Node 20's `--test` takes no globs, hence this file list.
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const roots = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const dirs = roots.length > 0 ? roots : ["src", "test"];
const files = [];
const walk = (d) => {
  for (const name of readdirSync(d)) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".test.ts")) files.push(p);
  }
};
for (const d of dirs) {
  if (statSync(d, { throwIfNoEntry: false })?.isDirectory()) walk(d);
  else if (d.endsWith(".test.ts")) files.push(d);
}
files.sort();
if (files.length === 0) {
  console.error("run-tests: no test files found under " + dirs.join(", "));
  process.exit(1);
}
// Human output (spec) on stdout, TAP into a file for the closing summary line.
const tap = join(mkdtempSync(join(tmpdir(), "llmd-tests-")), "report.tap");
const r = spawnSync(
  process.execPath,
  [
    "--import",
    "tsx",
    "--test",
    "--test-concurrency=1",
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    "--test-reporter=tap",
    `--test-reporter-destination=${tap}`,
    ...files,
  ],
  { stdio: "inherit", env: { ...process.env, LLMD_LOG_LEVEL: process.env.LLMD_LOG_LEVEL ?? "warn" } },
);
const text = readFileSync(tap, "utf8");
const count = (k) => {
  const all = [...text.matchAll(new RegExp(`^# ${k} (\\d+)$`, "gm"))];
  return all.length > 0 ? Number(all.at(-1)[1]) : 0;
};
const failed = count("fail") + count("cancelled");
console.log(`\n${files.length} test files`);
console.log(`tests: ${count("pass")} passed, ${failed} failed, ${count("skipped")} skipped`);
process.exit(r.status ?? 1);
