/**
 * The `estimate` token backend of `token-producer`: no tokenizer, the request text's UTF-8
 * bytes, zero-padded to a multiple of 4, packed 4 bytes → 1 little-endian uint32 pseudo token
 * (so one pseudo token ≈ 4 characters, the EPP's `averageCharactersPerToken`).
 *
 * Text per API (reference/epp.md §3.5; llm-d-router `approximateprefix/hashing.go`):
 * - completions: `prompt` as a string; a string array joined with a single space; token ids
 *   (`number[]` or `number[][]`, concatenated) are taken as given, not packed;
 * - chat completions: `JSON.stringify(tools)` when tools are present, then for each message
 *   its `role` followed by its content (a string, or the `text` of each text part); a
 *   multimodal part (`image_url`, `video_url`, `input_audio`, `audio_url`) first zero-pads
 *   the text to a 4-byte boundary, then adds {@link MULTIMODAL_PLACEHOLDER_TOKENS} copies of
 *   the low 32 bits of xxhash64(url or data+format);
 * - any other body (responses, embeddings…): `JSON.stringify` of `[instructions?, tools?,
 *   input]` / `input`.
 *
 * Shared by `token-producer` and, as a fallback when no tokens were produced, by
 * `approx-prefix-cache-producer` (so a prefix producer never sees an empty prompt).
 */
import { endianness } from "node:os";
import { xxh64 } from "@node-rs/xxhash";
import type { InferenceRequest } from "../framework/types.js";

const LITTLE_ENDIAN = endianness() === "LE";

/** Placeholder pseudo tokens per multimodal part (the engine's real count is unknown here). */
export const MULTIMODAL_PLACEHOLDER_TOKENS = 16;

/** What the estimate backend tokenizes: packed text or token ids given by the client. */
export type PromptSource = { kind: "text"; bytes: Uint8Array } | { kind: "tokens"; ids: Uint32Array };

/** Packs bytes into little-endian uint32 pseudo tokens, zero-padding the tail. */
export function packBytes(bytes: Uint8Array): Uint32Array {
  const n = Math.ceil(bytes.length / 4);
  const out = new Uint32Array(n);
  if (LITTLE_ENDIAN) {
    // the zero-filled tail is the padding; memory order is the little-endian packing
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const view = new DataView(out.buffer);
  const whole = Math.floor(bytes.length / 4) * 4;
  for (let i = 0; i < whole; i += 4) {
    view.setUint32(i, bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24), true);
  }
  if (whole < bytes.length) {
    let v = 0;
    for (let i = whole; i < bytes.length; i++) v |= bytes[i] << ((i - whole) * 8);
    view.setUint32(whole, v >>> 0, true);
  }
  return out;
}

const isTokenArray = (v: unknown): v is number[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number");

/** Growable byte builder for the chat text. */
class Bytes {
  private buf = new Uint8Array(1024);
  len = 0;
  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + extra));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  text(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  pad4(): void {
    const r = this.len % 4;
    if (r === 0) return;
    this.ensure(4 - r);
    this.buf.fill(0, this.len, this.len + 4 - r);
    this.len += 4 - r;
  }
  u32(v: number, times: number): void {
    this.ensure(4 * times);
    const view = new DataView(this.buf.buffer);
    for (let i = 0; i < times; i++) view.setUint32(this.len + i * 4, v, true);
    this.len += 4 * times;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

function placeholder(b: Bytes, key: string): void {
  b.pad4();
  b.u32(Number(xxh64(Buffer.from(key, "utf8"), 0n) & 0xffffffffn), MULTIMODAL_PLACEHOLDER_TOKENS);
}

function chatBytes(body: Record<string, unknown>): Uint8Array {
  const b = new Bytes();
  if (body.tools !== undefined && body.tools !== null) b.text(JSON.stringify(body.tools));
  const messages = Array.isArray(body.messages) ? body.messages : [];
  for (const raw of messages) {
    if (raw === null || typeof raw !== "object") continue;
    const msg = raw as Record<string, unknown>;
    if (typeof msg.role === "string") b.text(msg.role);
    const content = msg.content;
    if (typeof content === "string") b.text(content);
    else if (Array.isArray(content)) {
      for (const p of content) {
        if (p === null || typeof p !== "object") continue;
        const part = p as Record<string, unknown>;
        const field = (k: string): Record<string, unknown> =>
          part[k] !== null && typeof part[k] === "object" ? (part[k] as Record<string, unknown>) : {};
        switch (part.type) {
          case "text":
            if (typeof part.text === "string") b.text(part.text);
            break;
          case "image_url":
            placeholder(b, String(field("image_url").url ?? ""));
            break;
          case "video_url":
            placeholder(b, String(field("video_url").url ?? ""));
            break;
          case "audio_url":
            placeholder(b, String(field("audio_url").url ?? ""));
            break;
          case "input_audio": {
            const a = field("input_audio");
            placeholder(b, String(a.data ?? "") + String(a.format ?? ""));
            break;
          }
        }
      }
    }
  }
  return b.bytes();
}

/**
 * The prompt of a request as the estimate backend sees it (see file header).
 * Chat is detected by a `messages` array; completions by `prompt`.
 */
export function promptSource(request: Pick<InferenceRequest, "body">): PromptSource {
  const body = request.body;
  if (Array.isArray(body.messages)) return { kind: "text", bytes: chatBytes(body) };
  const p = body.prompt;
  if (typeof p === "string") return { kind: "text", bytes: Buffer.from(p, "utf8") };
  if (isTokenArray(p)) return { kind: "tokens", ids: Uint32Array.from(p) };
  if (Array.isArray(p) && p.length > 0) {
    if (p.every((x) => typeof x === "string"))
      return { kind: "text", bytes: Buffer.from(p.join(" "), "utf8") };
    if (p.every(isTokenArray)) return { kind: "tokens", ids: Uint32Array.from((p as number[][]).flat()) };
  }
  if (body.input !== undefined) {
    const parts: unknown[] = [];
    if (body.instructions !== undefined) parts.push({ instructions: body.instructions });
    if (body.tools !== undefined) parts.push({ tools: body.tools });
    parts.push({ input: body.input });
    return {
      kind: "text",
      bytes: Buffer.from(JSON.stringify(parts.length === 1 ? body.input : parts), "utf8"),
    };
  }
  return { kind: "text", bytes: new Uint8Array(0) };
}

/** Estimate pseudo tokens (or client token ids) of a request. */
export function estimateTokens(request: Pick<InferenceRequest, "body">): Uint32Array {
  const s = promptSource(request);
  return s.kind === "tokens" ? s.ids : packBytes(s.bytes);
}
