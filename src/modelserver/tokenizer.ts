/**
 * The deterministic tokenizer of the sim engine (and of any test that needs exact token counts).
 *
 * Rules (the bench and the router tests rely on them):
 * - A token is a maximal run of non-whitespace characters together with the whitespace
 *   before it (`/\s*\S+/g`). Whitespace after the last non-whitespace run is attached to
 *   the last token. A string made only of whitespace is one token; `""` is no token.
 *   So `decode(encode(t)) === t` for every string, and **N words separated by whitespace
 *   are exactly N tokens**.
 * - A token id is FNV-1a 32-bit of the token string (UTF-16 code units folded as bytes of
 *   their UTF-8 encoding), masked to 31 bits (non-negative, fits a JSON int and a uint32).
 *   Like llm-d-inference-sim's dummy tokenizer (reference/engine.md §6.2 "regex tokenizer
 *   with FNV-32a token ids"), with a reverse map so that ids decode to their text.
 * - The reverse map holds at most {@link MAX_VOCAB} entries; the oldest are dropped first.
 *   Ids the map does not know decode to `<|tok_<id>|>`. Two strings with the same id (a
 *   31-bit collision): the last one encoded wins when decoding.
 *
 * Chat template (deterministic, documented, used by chat generation and chat render):
 * every message renders as `<|role|>\n` + content + `\n`; with `add_generation_prompt`
 * (default true) `<|assistant|>\n` follows. Content parts of type text are concatenated.
 */

/** Upper bound on remembered token strings (reverse map entries). */
export const MAX_VOCAB = 1 << 20;

const TOKEN_RE = /\s*\S+/g;

/** FNV-1a 32-bit of the UTF-8 bytes of `s`, masked to 31 bits. */
export function tokenId(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return fnvBytes(h, Buffer.from(s.slice(i), "utf8"));
    h ^= c;
    h = Math.imul(h, 0x01000193);
  }
  return h & 0x7fffffff;
}

function fnvBytes(h: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h & 0x7fffffff;
}

/** Splits text into token strings (see module doc). Concatenating them gives `text` back. */
export function splitTokens(text: string): string[] {
  if (text === "") return [];
  const parts = text.match(TOKEN_RE);
  if (parts === null) return [text]; // whitespace only: one token
  const joined = parts.reduce((n, p) => n + p.length, 0);
  if (joined < text.length) parts[parts.length - 1] += text.slice(joined);
  return parts;
}

/** A chat message as the template sees it. */
export interface TemplateMessage {
  role: string;
  /** text content (already flattened from parts) */
  content: string;
}

/**
 * Renders the sim chat template (see module doc).
 * @param addGenerationPrompt append `<|assistant|>\n` (default true)
 */
export function renderChatTemplate(messages: readonly TemplateMessage[], addGenerationPrompt = true): string {
  let out = "";
  for (const m of messages) out += `<|${m.role}|>\n${m.content}\n`;
  if (addGenerationPrompt) out += "<|assistant|>\n";
  return out;
}

/**
 * Tokenizer contract every engine exposes (the sim uses {@link SimTokenizer}; a llama engine
 * wraps its model's tokenizer).
 */
export interface Tokenizer {
  /** text → token ids */
  encode(text: string): number[];
  /** token ids → text */
  decode(ids: readonly number[]): string;
  /** text of one token id (for incremental detokenization) */
  decodeOne(id: number): string;
  /** renders chat messages to the prompt text the model sees */
  applyChatTemplate(messages: readonly TemplateMessage[], addGenerationPrompt?: boolean): string;
  /**
   * Optional incremental decoder for streamed output (for tokenizers whose tokens can split a
   * UTF-8 character); without it the server concatenates {@link decodeOne} per token.
   */
  createDecoder?(): StreamDecoder;
}

/** Incremental detokenizer: `push` returns the new text a token completes, `flush` the rest. */
export interface StreamDecoder {
  push(id: number): string;
  flush(): string;
}

/** The deterministic whitespace tokenizer described in the module doc. */
export class SimTokenizer implements Tokenizer {
  private readonly vocab = new Map<number, string>();

  /** Registers a token string so its id decodes; returns the id. */
  register(token: string): number {
    const id = tokenId(token);
    const v = this.vocab;
    if (v.get(id) !== token) {
      v.delete(id);
      v.set(id, token);
      if (v.size > MAX_VOCAB) {
        const oldest = v.keys().next().value;
        if (oldest !== undefined) v.delete(oldest);
      }
    }
    return id;
  }

  encode(text: string): number[] {
    const parts = splitTokens(text);
    const ids = new Array<number>(parts.length);
    for (let i = 0; i < parts.length; i++) ids[i] = this.register(parts[i]!);
    return ids;
  }

  decodeOne(id: number): string {
    return this.vocab.get(id) ?? `<|tok_${id}|>`;
  }

  decode(ids: readonly number[]): string {
    let s = "";
    for (const id of ids) s += this.decodeOne(id);
    return s;
  }

  applyChatTemplate(messages: readonly TemplateMessage[], addGenerationPrompt = true): string {
    return renderChatTemplate(messages, addGenerationPrompt);
  }
}
