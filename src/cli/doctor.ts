/**
 * `llmd doctor --url ROUTER_URL` — checks a running stack and prints a pass/fail table with
 * the evidence and a fix hint for each check; exit 1 on any failure; `--json` for machines.
 */
import type { Command } from "commander";
import { type CheckResult, runChecks } from "../doctor/checks.js";
import { gatherEvidence } from "../doctor/gather.js";

/** Renders the table. */
export function formatChecks(results: CheckResult[]): string {
  const mark = { pass: "PASS", fail: "FAIL", warn: "WARN", skip: "skip" } as const;
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${mark[r.status]}  ${r.title}`);
    lines.push(`      ${r.evidence}`);
    if (r.fix) lines.push(`      fix: ${r.fix}`);
  }
  const failed = results.filter((r) => r.status === "fail").length;
  lines.push("");
  lines.push(failed === 0 ? "no failures" : `${failed} check(s) failed`);
  return lines.join("\n");
}

/** Adds `llmd doctor` to the CLI. */
export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description(
      "check a running stack (P/D really working? pool healthy?) and say what is wrong and how to fix it",
    )
    .option("--url <url>", "router URL", "http://127.0.0.1:8080")
    .option("--json", "print JSON instead of a table", false)
    .action(async (a) => {
      const results = runChecks(await gatherEvidence(a.url));
      if (a.json)
        process.stdout.write(
          JSON.stringify(
            { checks: results, failed: results.filter((r) => r.status === "fail").length },
            null,
            2,
          ) + "\n",
        );
      else process.stdout.write(formatChecks(results) + "\n");
      process.exitCode = results.some((r) => r.status === "fail") ? 1 : 0;
    });
}
