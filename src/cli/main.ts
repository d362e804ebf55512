#!/usr/bin/env node
/**
 * `llmd` — one CLI for every process of the stack (DESIGN.md "Processes").
 */
import { Command } from "commander";
import { registerBench } from "./bench.js";
import { registerConfig } from "./config.js";
import { registerDoctor } from "./doctor.js";
import { registerEpp } from "./epp.js";
import { registerModel } from "./model.js";
import { registerRouter } from "./router.js";
import { registerServe } from "./serve.js";
import { registerSidecar } from "./sidecar.js";
import { registerUp } from "./up.js";

const program = new Command();
program
  .name("llmd")
  .description(
    "llmd-ts: llm-d in TypeScript — OpenAI-compatible router with the EPP, P/D, vLLM-compatible servers",
  )
  .version("0.1.0")
  .showHelpAfterError();
registerUp(program);
registerRouter(program);
registerServe(program);
registerSidecar(program);
registerBench(program);
registerConfig(program);
registerDoctor(program);
registerEpp(program);
registerModel(program);

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`llmd: ${e.message}\n`);
  process.exit(1);
});
