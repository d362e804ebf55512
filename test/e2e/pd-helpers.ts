/**
 * Shared helpers of the P/D e2e tests: metric sums from Prometheus text, long prompts, a
 * completion call that also reads SSE, and waiting for a server's `/health`.
 */
import type { LlmdChild } from "./helpers.js";

export const MODEL = "llmd/sim-8b";

/** Σ of the samples of `name` (exact series name) whose line contains `labelPart`. */
export function metricSum(text: string, name: string, labelPart = ""): number {
  let s = 0;
  for (const l of text.split("\n")) {
    if ((l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(labelPart)) {
      s += Number(l.split(" ").pop());
    }
  }
  return s;
}

/** `GET <base>/metrics` as text. */
export async function metrics(base: string): Promise<string> {
  return (await fetch(`${base}/metrics`)).text();
}

/** A long prompt (≈ 3 KB: far above the 256-token decider threshold), unique per `seed`. */
export function longPrompt(seed: string, words = 500): string {
  return Array.from({ length: words }, (_, i) => `${seed}${i % 97}w`).join(" ");
}

/** POST /v1/completions (max_tokens 12); reads the SSE stream when `stream`. */
export async function complete(
  base: string,
  prompt: string,
  opts: { stream?: boolean; headers?: Record<string, string> } = {},
): Promise<{ text: string; status: number; body: string }> {
  const stream = opts.stream ?? false;
  const r = await fetch(`${base}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...opts.headers },
    body: JSON.stringify({ model: MODEL, prompt, max_tokens: 12, stream }),
  });
  const body = await r.text();
  if (r.status !== 200) return { status: r.status, text: "", body };
  if (!stream) {
    const j = JSON.parse(body) as { choices?: { text: string }[] };
    return { status: r.status, text: j.choices?.[0]?.text ?? "", body };
  }
  let text = "";
  for (const line of body.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    const j = JSON.parse(line.slice(6)) as { choices: { text: string }[] };
    text += j.choices[0]?.text ?? "";
  }
  return { status: r.status, text, body };
}

/**
 * Resolves once `<base>/health` answers 200 (bounded: 600 tries, 100 ms apart).
 * @throws when the child exits first or it never becomes healthy
 */
export async function waitHealthy(base: string, child?: LlmdChild): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child && child.child.exitCode !== null) {
      throw new Error(`exited (${child.child.exitCode}) before healthy: ${child.lines.join("\n")}`);
    }
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${base} never became healthy`);
}
