/**
 * `llmd up` — the main job: starts a whole local stack (a router with the EPP built in and a
 * pool of model servers) as child processes on 127.0.0.1, waits until every server is
 * healthy and the router sees them all, prints the URL and a curl example, and stops every
 * child on Ctrl-C / SIGTERM. The counterpart of a kind cluster + the llm-d guides.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { parseDocument } from "yaml";
import { discoveryFileText } from "../datalayer/discovery-file.js";
import {
  KV_EVENTS_PORT_LABEL,
  KV_EVENTS_REPLAY_PORT_LABEL,
  ROLE_DECODE,
  ROLE_LABEL,
  ROLE_PREFILL,
} from "../framework/labels.js";
import { ROUTER_PORT, UP_FIRST_SERVER_PORT } from "../framework/ports.js";
import { upLlamaModelFile, upLlamaServeArgs } from "./up-llama.js";

/** `--model` of a sim stack when none is given. */
export const UP_SIM_MODEL = "llmd/sim-8b";

/** The P/D EndpointPickerConfig `llmd up --prefill/--decode` uses by default (shipped in `config/`). */
export const PD_CONFIG_PATH = fileURLToPath(new URL("../../config/pd.yaml", import.meta.url));
/** The precise prefix-cache config of `llmd up --routing precise` (aggregated). */
export const PRECISE_CONFIG_PATH = fileURLToPath(new URL("../../config/precise.yaml", import.meta.url));
/** The P/D + precise config of `llmd up --prefill N --decode M --routing precise`. */
export const PD_PRECISE_CONFIG_PATH = fileURLToPath(new URL("../../config/pd-precise.yaml", import.meta.url));

/** Prefix-cache routing of `llmd up`: from routing history, or from the servers' KV events. */
export type UpRouting = "approximate" | "precise";

/**
 * The text of a shipped precise config with every `token-producer`'s `vllm.url` set to
 * `renderUrl` (a server with `/v1/completions/render`).
 * @throws Error when the file cannot be read or has no token-producer
 */
export function preciseConfigText(file: string, renderUrl: string): string {
  const doc = parseDocument(readFileSync(file, "utf8"));
  const plugins = doc.get("plugins") as { items: { get(k: string): unknown; setIn(p: string[], v: unknown): void }[] };
  let n = 0;
  for (const p of plugins.items) {
    if (p.get("type") === "token-producer") {
      p.setIn(["parameters", "vllm", "url"], renderUrl);
      n++;
    }
  }
  if (n === 0) throw new Error(`${file}: no token-producer to point at ${renderUrl}`);
  return doc.toString();
}

/** `--kv-events-config` JSON of one `llmd up` server: bind 127.0.0.1 only, literal topic. */
export function upKvEventsConfig(host: string, httpPort: number, pubPort: number, replayPort: number, model: string): string {
  return JSON.stringify({
    enable_kv_cache_events: true,
    publisher: "zmq",
    endpoint: `tcp://${host}:${pubPort}`,
    replay_endpoint: `tcp://${host}:${replayPort}`,
    bind: true,
    topic: `kv@${host}:${httpPort}@${model}`,
  });
}

/** Options of {@link runUp}. */
export interface UpOptions {
  host: string;
  /** router port */
  port: number;
  /** number of model servers (aggregated mode) */
  replicas: number;
  /** P/D mode: prefill servers (0 = aggregated) */
  prefill: number;
  /** P/D mode: decode servers */
  decode: number;
  engine: string;
  eppConfig?: string;
  model: string;
  /** first port tried for model servers; later ones count up, skipping busy ports */
  firstServerPort: number;
  /** extra arguments for every `llmd serve` */
  serverArgs: string[];
  /** extra arguments for `llmd router` */
  routerArgs: string[];
  /** ms to wait for the stack to become ready */
  readyTimeoutMs: number;
  /** print child logs (otherwise only warnings and errors) */
  verbose: boolean;
  /** prefix-cache routing (default `approximate`); `precise` turns on KV events everywhere */
  routing?: UpRouting;
}

/** Defaults of the local pool, chosen so the routing demo shows prefix affinity: 512 blocks of 16 tokens per server. */
export const UP_SERVER_DEFAULTS = ["--block-size", "16", "--kv-cache-size", "512"];

/** True when `port` can be bound on `host`. */
export function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** `count` free ports from `start` upwards. */
export async function freePorts(
  start: number,
  count: number,
  host: string,
  avoid: number[] = [],
): Promise<number[]> {
  const out: number[] = [];
  for (let p = start; out.length < count && p < 65535; p++) {
    if (avoid.includes(p)) continue;
    if (await portFree(p, host)) out.push(p);
  }
  if (out.length < count) throw new Error(`no ${count} free ports from ${start}`);
  return out;
}

/** Command line that runs this same CLI (works from the build and from sources under tsx). */
export function selfCommand(): { cmd: string; args: string[] } {
  return { cmd: process.execPath, args: [...process.execArgv, process.argv[1]!] };
}

async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  dead: () => string | null,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline; i++) {
    const d = dead();
    if (d) throw new Error(`${what}: ${d}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, Math.min(50 * (i + 1), 250)));
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms`);
}

/** A started stack. */
export interface UpStack {
  url: string;
  servers: { name: string; port: number; child: ChildProcess }[];
  router: ChildProcess;
  /** served model name (llama: the GGUF file's `general.name`) */
  model: string;
  stop(): Promise<void>;
}

/** Starts the stack and resolves once it is ready. Stops what it started if anything fails. */
export async function runUp(
  o: UpOptions,
  out: (line: string) => void = (l) => process.stdout.write(l + "\n"),
): Promise<UpStack> {
  if (o.engine !== "sim" && o.engine !== "llama") throw new Error(`--engine ${o.engine}: expected sim or llama`);
  const llama = o.engine === "llama";
  if (llama && o.routing === "precise")
    throw new Error("--routing precise needs KV events, which the llama engine does not publish (use --engine sim)");
  // llama: every server loads the same GGUF file (generated once when --model names none)
  const modelFile = llama
    ? await upLlamaModelFile(o.model === UP_SIM_MODEL || o.model === "" ? undefined : o.model, out)
    : "";
  if (!(await portFree(o.port, o.host)))
    throw new Error(`router port ${o.port} on ${o.host} is busy (use --port)`);
  const pd = o.prefill > 0;
  if (pd && o.decode < 1) throw new Error("--prefill needs --decode ≥ 1");
  const total = pd ? o.prefill + o.decode : o.replicas;
  const precise = o.routing === "precise";
  if (o.routing !== undefined && o.routing !== "approximate" && !precise)
    throw new Error(`--routing ${o.routing}: expected approximate or precise`);
  const ports = await freePorts(o.firstServerPort, total, o.host, [o.port]);
  // precise: a KV-event PUB port and a replay ROUTER port per server
  const kvPorts = precise
    ? await freePorts(Math.max(...ports) + 1, total * 2, o.host, [o.port, ...ports])
    : [];
  const dir = mkdtempSync(join(tmpdir(), "llmd-up-"));
  const discovery = join(dir, "endpoints.json");
  const roles = ports.map((_, i) => (pd ? (i < o.prefill ? ROLE_PREFILL : ROLE_DECODE) : null));
  const names = ports.map((_, i) =>
    pd ? `${roles[i]}-${i < o.prefill ? i : i - o.prefill}` : `server-${i}`,
  );
  writeFileSync(
    discovery,
    discoveryFileText(
      ports.map((port, i) => ({
        name: names[i]!,
        address: o.host,
        port,
        ...(roles[i] || precise
          ? {
              labels: {
                ...(roles[i] ? { [ROLE_LABEL]: roles[i]! } : {}),
                ...(precise
                  ? {
                      [KV_EVENTS_PORT_LABEL]: String(kvPorts[2 * i]),
                      [KV_EVENTS_REPLAY_PORT_LABEL]: String(kvPorts[2 * i + 1]),
                    }
                  : {}),
              },
            }
          : {}),
      })),
    ),
  );
  let eppConfig = o.eppConfig ?? (pd ? PD_CONFIG_PATH : undefined);
  if (precise && !o.eppConfig) {
    eppConfig = join(dir, pd ? "pd-precise.yaml" : "precise.yaml");
    // token ids from a decode-capable server's render endpoint (same tokenizer everywhere)
    const renderPort = ports[pd ? o.prefill : 0]!;
    writeFileSync(
      eppConfig,
      preciseConfigText(pd ? PD_PRECISE_CONFIG_PATH : PRECISE_CONFIG_PATH, `http://${o.host}:${renderPort}`),
    );
  }

  const self = selfCommand();
  const children: ChildProcess[] = [];
  const exits = new Map<ChildProcess, string>();
  let stopping = false;
  const launch = (name: string, args: string[]): ChildProcess => {
    const child = spawn(self.cmd, [...self.args, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, LLMD_LOG_LEVEL: process.env.LLMD_LOG_LEVEL ?? (o.verbose ? "info" : "warn") },
    });
    children.push(child);
    for (const s of [child.stdout!, child.stderr!]) {
      createInterface({ input: s }).on("line", (line) => process.stderr.write(`[${name}] ${line}\n`));
    }
    child.on("exit", (code, signal) => {
      exits.set(child, `exited (code ${code}, signal ${signal})`);
      if (!stopping) process.stderr.write(`llmd up: ${name} ${exits.get(child)}\n`);
    });
    return child;
  };

  const terminate = (cs: ChildProcess[]) =>
    Promise.all(
      cs
        .filter((c) => !exits.has(c))
        .map(
          (c) =>
            new Promise<void>((resolve) => {
              const t = setTimeout(() => c.kill("SIGKILL"), 5000);
              c.once("exit", () => {
                clearTimeout(t);
                resolve();
              });
              c.kill("SIGTERM");
            }),
        ),
    );
  /** Stops the router first (so it does not report its servers vanishing), then the servers. */
  const stop = async () => {
    stopping = true;
    const router = children.at(-1);
    if (router && children.length > ports.length) await terminate([router]);
    await terminate(children);
  };

  try {
    const servers = ports.map((port, i) => {
      const args = [
        "serve",
        ...(llama ? upLlamaServeArgs(modelFile) : ["--engine", o.engine, "--model", o.model]),
        "--host",
        o.host,
        "--port",
        String(port),
      ];
      args.push("--pod-name", names[i]!, ...UP_SERVER_DEFAULTS, ...o.serverArgs);
      if (precise)
        args.push("--kv-events-config", upKvEventsConfig(o.host, port, kvPorts[2 * i]!, kvPorts[2 * i + 1]!, o.model));
      return { name: names[i]!, port, child: launch(names[i]!, args) };
    });
    const routerArgs = [
      "router",
      "--host",
      o.host,
      "--port",
      String(o.port),
      "--discovery-file",
      discovery,
      ...o.routerArgs,
    ];
    if (eppConfig) routerArgs.push("--epp-config", eppConfig);
    const router = launch("router", routerArgs);
    const deadOf = (c: ChildProcess, name: string) => () => (exits.has(c) ? `${name} ${exits.get(c)}` : null);
    for (const s of servers) {
      await waitFor(
        async () => (await fetch(`http://${o.host}:${s.port}/health`)).ok,
        o.readyTimeoutMs,
        s.name,
        deadOf(s.child, s.name),
      );
    }
    const url = `http://${o.host}:${o.port}`;
    await waitFor(
      async () => {
        const r = (await (await fetch(`${url}/llmd/endpoints`)).json()) as {
          endpoints: { ready: boolean }[];
        };
        return r.endpoints.filter((e) => e.ready).length === total;
      },
      o.readyTimeoutMs,
      "router",
      deadOf(router, "router"),
    );
    // llama: the served name comes from the GGUF file (general.name)
    const model = llama
      ? ((await (await fetch(`http://${o.host}:${servers[0]!.port}/v1/models`)).json()) as { data: { id: string }[] })
          .data[0]!.id
      : o.model;
    const what = pd ? `${o.prefill} prefill + ${o.decode} decode` : `${total}`;
    const addrs = ports.map((p) => `${o.host}:${p}`).join(", ");
    out(`llmd up: router ready at ${url} with ${what} ${o.engine} servers (${addrs})`);
    if (pd) out(`  P/D:       EPP config ${eppConfig}; check it with: llmd doctor --url ${url}`);
    if (precise) out(`  routing:   precise (KV events); feed health: ${url}/llmd/kv-events   EPP config ${eppConfig}`);
    out(`  model:     ${model}${llama ? ` (${modelFile}, 1 thread per server)` : ""}`);
    out(`  endpoints: ${url}/llmd/endpoints   metrics: ${url}/metrics`);
    out(`  try:       curl -s ${url}/v1/chat/completions -H 'content-type: application/json' \\`);
    out(`               -d '{"model":"${model}","messages":[{"role":"user","content":"Hello!"}]}'`);
    out(`  bench:     llmd bench --url ${url}`);
    out("Press Ctrl-C to stop.");
    return { url, servers, router, stop, model };
  } catch (e) {
    await stop();
    throw e;
  }
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** Adds `llmd up` to the CLI. */
export function registerUp(program: Command): void {
  program
    .command("up")
    .description("start a local stack: the router (EPP built in) and a pool of model servers on 127.0.0.1")
    .option("--port <port>", "router port", String(ROUTER_PORT))
    .option("--host <host>", "listen address of every process", "127.0.0.1")
    .option("--replicas <n>", "number of model servers (aggregated)", "4")
    .option(
      "--prefill <n>",
      "P/D: number of prefill servers (with --decode; default EPP config: config/pd.yaml)",
      "0",
    )
    .option("--decode <n>", "P/D: number of decode servers", "0")
    .option(
      "--routing <mode>",
      "prefix-cache routing: approximate (from routing history) | precise (from the servers' KV events; config/precise.yaml, config/pd-precise.yaml)",
      "approximate",
    )
    .option(
      "--engine <engine>",
      "model server engine: sim (simulated accelerator) | llama (real CPU inference of a GGUF file, 1 thread per server: on a small machine use --replicas 2 or --prefill 1 --decode 1)",
      "sim",
    )
    .option("--epp-config <file>", "EndpointPickerConfig YAML (default: the built-in default config)")
    .option(
      "--model <name>",
      `sim: model name the servers serve (default ${UP_SIM_MODEL}); llama: GGUF file (default: a generated ~11M-parameter model cached in ~/.cache/llmd)`,
    )
    .option("--first-server-port <port>", "first port tried for model servers", String(UP_FIRST_SERVER_PORT))
    .option("--server-arg <arg>", "extra argument for every `llmd serve` (repeatable)", collect, [])
    .option("--router-arg <arg>", "extra argument for `llmd router` (repeatable)", collect, [])
    .option("--ready-timeout <ms>", "how long to wait for the stack to become ready, ms", "60000")
    .option("--verbose", "show the children's info logs", false)
    .action(async (a) => {
      const opts: UpOptions = {
        host: a.host,
        port: Number(a.port),
        replicas: Number(a.replicas),
        prefill: Number(a.prefill),
        decode: Number(a.decode),
        engine: a.engine,
        eppConfig: a.eppConfig,
        model: a.model ?? (a.engine === "llama" ? "" : UP_SIM_MODEL),
        firstServerPort: Number(a.firstServerPort),
        serverArgs: a.serverArg,
        routerArgs: a.routerArg,
        readyTimeoutMs: Number(a.readyTimeout),
        verbose: a.verbose,
        routing: a.routing,
      };
      if (!Number.isInteger(opts.replicas) || opts.replicas < 1)
        throw new Error("--replicas must be a positive integer");
      const stack = await runUp(opts);
      let done = false;
      const shutdown = async (sig: string) => {
        if (done) return;
        done = true;
        process.stderr.write(`llmd up: ${sig}, stopping ${stack.servers.length + 1} processes\n`);
        await stack.stop();
        process.exit(0);
      };
      process.on("SIGINT", () => void shutdown("SIGINT"));
      process.on("SIGTERM", () => void shutdown("SIGTERM"));
      stack.router.on("exit", () => {
        if (!done) {
          process.stderr.write("llmd up: the router exited; stopping the stack\n");
          done = true;
          void stack.stop().then(() => process.exit(1));
        }
      });
    });
}
