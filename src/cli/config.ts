/**
 * `llmd config check FILE` — validates an EndpointPickerConfig like the EPP does at start-up
 * (reference/epp.md §2.3) and prints the resolved config (every default filled in) as YAML.
 *
 * Exit 0 and the YAML on stdout when the config loads; exit 1 and `error: <message>` on
 * stderr otherwise (the message names the offending field path or plugin type). Loader
 * warnings (deprecated types or fields) go to stderr as `warning: <message>`.
 */
import type { Command } from "commander";
import { stringify } from "yaml";
import { loadConfigFile } from "../framework/config/index.js";
import type { PluginRegistry } from "../framework/plugin.js";
import { builtinRegistry } from "../plugins/builtins.js";

/** Where `config check` writes. */
export interface ConfigCheckIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIo: ConfigCheckIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/**
 * Loads `file` with `registry` (default: every built-in plugin) and reports.
 * @returns the exit code: 0 valid, 1 invalid or unreadable
 */
export function runConfigCheck(
  file: string,
  io: ConfigCheckIo = processIo,
  registry?: PluginRegistry,
): number {
  try {
    const config = loadConfigFile(file, registry ?? builtinRegistry(), {
      warn: (m) => io.stderr(`warning: ${m}\n`),
    });
    io.stdout(stringify(config.resolved));
    return 0;
  } catch (e) {
    io.stderr(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

/** Adds `config check FILE` to the program. `io` is for tests (default: process stdout/stderr). */
export function registerConfig(program: Command, io: ConfigCheckIo = processIo): void {
  const config = program.command("config").description("EndpointPickerConfig tools");
  config
    .command("check")
    .description("validate an EndpointPickerConfig and print it resolved (defaults included) as YAML")
    .argument("<file>", "EndpointPickerConfig YAML file")
    .action((file: string) => {
      process.exitCode = runConfigCheck(file, io);
    });
}
