/**
 * Response usage parsing for OpenAI-compatible responses (reference/epp.md §1.9): non-stream
 * bodies carry a JSON `usage`; streams carry it on a `data: ` line (when the client asked
 * for `stream_options.include_usage`). The tracker sees each chunk once as it passes
 * through to the client and keeps only a bounded tail, so streaming stays unbuffered.
 */
import type { ResponseUsage } from "../framework/plugin.js";

const MAX_NONSTREAM_BYTES = 4 * 1024 * 1024;
const STREAM_TAIL_BYTES = 16 * 1024;

/** Extracts usage from an OpenAI `usage` object; undefined when absent or malformed. */
export function usageFromJson(u: unknown): ResponseUsage | undefined {
  if (!u || typeof u !== "object") return undefined;
  const o = u as Record<string, unknown>;
  if (typeof o.prompt_tokens !== "number") return undefined;
  const details = o.prompt_tokens_details as Record<string, unknown> | null | undefined;
  return {
    promptTokens: o.prompt_tokens,
    completionTokens: typeof o.completion_tokens === "number" ? o.completion_tokens : 0,
    cachedTokens: details && typeof details.cached_tokens === "number" ? details.cached_tokens : 0,
  };
}

/** Watches a response body pass by and finds its usage, stream error events and content chunks. */
export class UsageTracker {
  private buf = "";
  private overflow = false;
  /** SSE `data:` events seen (streaming) */
  events = 0;
  /** a `data: {"error":…}` event was seen */
  sawErrorEvent = false;
  /** usage from the last event that carried one (streaming) */
  private streamUsage?: ResponseUsage;
  private partial = "";

  constructor(private readonly streaming: boolean) {}

  /** Feeds one chunk of the response body. */
  push(chunk: Buffer): void {
    const s = chunk.toString("utf8");
    if (!this.streaming) {
      if (this.buf.length + s.length > MAX_NONSTREAM_BYTES) this.overflow = true;
      else this.buf += s;
      return;
    }
    const text = this.partial + s;
    const lines = text.split("\n");
    this.partial = lines.pop() ?? "";
    if (this.partial.length > STREAM_TAIL_BYTES) this.partial = "";
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    if (!line.startsWith("data:")) return;
    const data = line.slice(5).trim();
    if (data === "[DONE]" || data === "") return;
    this.events++;
    if (data.includes('"usage"') || data.includes('"error"')) {
      try {
        const o = JSON.parse(data) as Record<string, unknown>;
        if (o.error) this.sawErrorEvent = true;
        const u = usageFromJson(o.usage);
        if (u) this.streamUsage = u;
      } catch {
        // not JSON: ignore, the client sees it verbatim
      }
    }
  }

  /** Usage once the body is complete, if the response carried it. */
  usage(): ResponseUsage | undefined {
    if (this.streaming) {
      if (this.partial) this.line(this.partial);
      this.partial = "";
      return this.streamUsage;
    }
    if (this.overflow || this.buf === "") return undefined;
    try {
      return usageFromJson((JSON.parse(this.buf) as Record<string, unknown>).usage);
    } catch {
      return undefined;
    }
  }
}
