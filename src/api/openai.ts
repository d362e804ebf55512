/**
 * OpenAI / vLLM request types and validation — the one place where request bodies are
 * parsed and checked, shared by the router and the model server.
 *
 * Field rules follow vLLM's `protocol.py` (reference/engine.md §1.2): `stream_options`
 * without `stream: true` is a 400; `max_completion_tokens` wins over the deprecated
 * `max_tokens` for chat. Unknown fields pass through untouched (vLLM accepts extra fields
 * such as `kv_transfer_params`, `cache_salt`, `vllm_xargs`).
 */
import { z } from "zod";
import { ApiError, badRequest } from "./errors.js";

/** Which OpenAI API a path belongs to. */
export type ApiKind = "completions" | "chat";

/** Paths served for inference, by kind. */
export const INFERENCE_PATHS: Readonly<Record<string, ApiKind>> = {
  "/v1/completions": "completions",
  "/v1/chat/completions": "chat",
};

/** NIXL v2 `kv_transfer_params` (reference/engine.md §5.2). Treat unknown fields as opaque. */
export interface KvTransferParams {
  do_remote_decode?: boolean;
  do_remote_prefill?: boolean;
  remote_engine_id?: string | null;
  remote_block_ids?: unknown;
  remote_host?: string | null;
  remote_port?: number | null;
  remote_request_id?: string | null;
  tp_size?: number;
  [k: string]: unknown;
}

const stop = z
  .union([z.string(), z.array(z.string()).max(16)])
  .nullable()
  .optional();
const nonNegInt = z.number().int().nonnegative();

const common = {
  model: z.string({ error: "model must be a string" }).min(1, "model must not be empty"),
  stream: z.boolean().nullable().optional(),
  stream_options: z
    .object({
      include_usage: z.boolean().nullable().optional(),
      continuous_usage_stats: z.boolean().nullable().optional(),
    })
    .loose()
    .nullable()
    .optional(),
  max_tokens: nonNegInt.nullable().optional(),
  min_tokens: nonNegInt.nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  top_k: z.number().int().nullable().optional(),
  n: z.number().int().min(1).max(128).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stop,
  ignore_eos: z.boolean().nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  user: z.string().nullable().optional(),
  cache_salt: z.string().min(1).max(1024).nullable().optional(),
  kv_transfer_params: z.record(z.string(), z.unknown()).nullable().optional(),
  priority: z.number().int().nullable().optional(),
};

const prompt = z.union(
  [
    z.string(),
    z.array(z.string()).min(1),
    z.array(nonNegInt).min(1),
    z.array(z.array(nonNegInt).min(1)).min(1),
  ],
  { error: "prompt must be a string, an array of strings, or token ids" },
);

/** `POST /v1/completions` body (the fields we read). */
export const CompletionRequestSchema = z
  .object({ ...common, prompt, echo: z.boolean().nullable().optional() })
  .loose();

const contentPart = z.object({ type: z.string(), text: z.string().optional() }).loose();
const message = z
  .object({
    role: z.string({ error: "messages[].role must be a string" }).min(1),
    content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
    name: z.string().optional(),
  })
  .loose();

/** `POST /v1/chat/completions` body (the fields we read). */
export const ChatCompletionRequestSchema = z
  .object({
    ...common,
    messages: z.array(message, { error: "messages must be an array" }).min(1, "messages must not be empty"),
    max_completion_tokens: nonNegInt.nullable().optional(),
    add_generation_prompt: z.boolean().nullable().optional(),
  })
  .loose();

export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;
export type ChatMessage = ChatCompletionRequest["messages"][number];

/** A parsed and validated inference request. */
export type ParsedRequest =
  | { kind: "completions"; body: CompletionRequest; raw: Record<string, unknown> }
  | { kind: "chat"; body: ChatCompletionRequest; raw: Record<string, unknown> };

/**
 * Parses a JSON body once. Throws {@link ApiError} 400 for malformed JSON or a non-object.
 * @param raw body bytes (UTF-8)
 */
export function parseJsonObject(raw: Buffer | string): Record<string, unknown> {
  const text = typeof raw === "string" ? raw : raw.toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // a blank body never parses: tell it apart only then (no trimmed copy per request)
    if (text.trim() === "") throw badRequest("Request body is empty; expected a JSON object");
    throw badRequest(`Invalid JSON in request body: ${(e as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw badRequest("Request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/**
 * Validates a parsed body for the given API. Throws {@link ApiError} 400 naming the first
 * offending field (`param`).
 */
export function validateRequest(kind: ApiKind, obj: Record<string, unknown>): ParsedRequest {
  if (obj.model === undefined || obj.model === null) {
    throw badRequest("model is required in the request body", "model");
  }
  const schema = kind === "chat" ? ChatCompletionRequestSchema : CompletionRequestSchema;
  const r = schema.safeParse(obj);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const param = issue.path.length > 0 ? issue.path.map(String).join(".") : null;
    const where = param ? `${param}: ` : "";
    throw badRequest(`Invalid request: ${where}${issue.message}`, param);
  }
  const body = r.data;
  if (body.stream_options != null && body.stream !== true) {
    throw badRequest("stream_options can only be set if stream is true", "stream_options");
  }
  return kind === "chat"
    ? { kind, body: body as ChatCompletionRequest, raw: obj }
    : { kind, body: body as CompletionRequest, raw: obj };
}

/** Parses and validates in one step (see {@link parseJsonObject}, {@link validateRequest}). */
export function parseRequest(kind: ApiKind, raw: Buffer | string): ParsedRequest {
  return validateRequest(kind, parseJsonObject(raw));
}

/**
 * Effective output-token limit the client asked for (chat: `max_completion_tokens` over
 * `max_tokens`), or undefined when none was given.
 */
export function requestedMaxTokens(p: ParsedRequest): number | undefined {
  if (p.kind === "chat") return p.body.max_completion_tokens ?? p.body.max_tokens ?? undefined;
  return p.body.max_tokens ?? undefined;
}

/**
 * Text of a chat message's content: strings as they are, text parts concatenated.
 */
export function messageText(m: ChatMessage): string {
  if (typeof m.content === "string") return m.content;
  if (Array.isArray(m.content))
    return m.content.map((p) => (typeof p.text === "string" ? p.text : "")).join("");
  return "";
}

export { ApiError };
