/**
 * The llama engine's {@link Tokenizer}: the model's own tokenizer (llama.cpp through
 * node-llama-cpp) and the model's chat template.
 *
 * - `encode(text)`: special tokens written in the text are parsed (as Hugging Face tokenizers
 *   and vLLM do for prompts; chat templates emit them as text), and BOS is prepended when the
 *   model's `tokenizer.ggml.add_bos_token` says so and the text does not already start with it
 *   (`model.tokenize` never adds BOS itself, reference/llama-engine.md "Other pitfalls").
 *   `encode("")` is `[]` (no lone BOS), so an empty prompt is refused like with the sim.
 * - `decode` / `decodeOne`: special (control) tokens render as "" (vLLM's
 *   `skip_special_tokens=true`). `decodeOne` (and {@link LlamaTokenizer.createDecoder}) decode
 *   with a plain token as left context, so a piece keeps its leading space ("▁the" → " the")
 *   as in vLLM's incremental detokenizer; `decode` strips the first token's space like a
 *   Hugging Face `decode` of an SPM model. `decodeOne` of a byte token that is part of a multi-byte UTF-8
 *   character cannot be decoded on its own (U+FFFD); use {@link LlamaTokenizer.createDecoder}
 *   for streaming text.
 * - Chat template: when the GGUF has `tokenizer.chat_template`, it is rendered with
 *   node-llama-cpp's `JinjaTemplateChatWrapper` (roles system/user/assistant; any other role is
 *   rendered as user). Without a template, or if the template cannot be used, the documented
 *   fallback is the sim engine's template (`renderChatTemplate` in `../../tokenizer.ts`:
 *   `<|role|>\n` + content + `\n`, then `<|assistant|>\n`), so both engines behave the same.
 */
import type { ChatHistoryItem, JinjaTemplateChatWrapper, LlamaModel, Token } from "node-llama-cpp";
import { renderChatTemplate, type TemplateMessage, type Tokenizer } from "../../tokenizer.js";
import type { NodeLlamaCpp } from "./runtime.js";

/** The model's tokenizer and chat template behind the engine {@link Tokenizer} contract. */
export class LlamaTokenizer implements Tokenizer {
  /** `jinja` when the model's chat template is used, `fallback` otherwise */
  readonly chatTemplateKind: "jinja" | "fallback";
  /** why the model template is not used (only with `fallback`) */
  readonly chatTemplateError: string | null = null;
  private readonly wrapper: JinjaTemplateChatWrapper | null = null;
  private readonly addBos: boolean;
  private readonly bos: number | null;
  /** a plain-text token used as left context when decoding output pieces */
  private readonly context: Token[];

  constructor(
    private readonly model: LlamaModel,
    private readonly lib: NodeLlamaCpp,
  ) {
    const md = model.fileInfo.metadata as unknown as {
      tokenizer?: { ggml?: Record<string, unknown>; chat_template?: string };
    };
    const tk = md.tokenizer ?? {};
    this.bos = model.tokens.bos;
    const addBos = tk.ggml?.add_bos_token;
    this.addBos = this.bos !== null && (addBos === undefined ? tk.ggml?.model === "llama" : addBos === true);
    this.context = model.tokenize("a", false).slice(-1);
    const template = typeof tk.chat_template === "string" ? tk.chat_template : "";
    let kind: "jinja" | "fallback" = "fallback";
    if (template !== "") {
      try {
        this.wrapper = new lib.JinjaTemplateChatWrapper({ template, tokenizer: model.tokenizer });
        kind = "jinja";
      } catch (e) {
        this.chatTemplateError = (e as Error).message;
      }
    }
    this.chatTemplateKind = kind;
  }

  encode(text: string): number[] {
    if (text === "") return []; // no text, no tokens (an empty prompt is a 400, not a lone BOS)
    const ids = this.model.tokenize(text, true) as number[];
    if (this.addBos && ids[0] !== this.bos) ids.unshift(this.bos as number);
    return ids;
  }

  decode(ids: readonly number[]): string {
    return this.model.detokenize(ids as readonly Token[], false);
  }

  decodeOne(id: number): string {
    // with a preceding token as context: llama.cpp strips the leading space of the first
    // token of a detokenization (SPM add_space_prefix), which would drop every word break
    return this.model.detokenize([id as Token], false, this.context);
  }

  /**
   * A stateful incremental decoder for streaming: each call takes the next generated token id
   * and returns the new text it completes. Text is derived from detokenizing the whole output
   * so far, and a trailing incomplete UTF-8 sequence (U+FFFD) is held back until its next byte
   * arrives; `flush()` returns what is left. O(output length) per call.
   */
  createDecoder(): { push(id: number): string; flush(): string } {
    const ids: Token[] = [];
    let emitted = 0;
    let text = "";
    return {
      push: (id: number) => {
        ids.push(id as Token);
        text = this.model.detokenize(ids, false, this.context);
        let end = text.length;
        while (end > emitted && text.charCodeAt(end - 1) === 0xfffd) end--;
        const out = text.slice(emitted, end);
        emitted = end;
        return out;
      },
      flush: () => {
        const out = text.slice(emitted);
        emitted = text.length;
        return out;
      },
    };
  }

  applyChatTemplate(messages: readonly TemplateMessage[], addGenerationPrompt = true): string {
    if (!this.wrapper) return renderChatTemplate(messages, addGenerationPrompt);
    const history: ChatHistoryItem[] = [];
    for (const m of messages) {
      if (m.role === "system") history.push({ type: "system", text: m.content });
      else if (m.role === "assistant") history.push({ type: "model", response: [m.content] });
      else history.push({ type: "user", text: m.content });
    }
    if (addGenerationPrompt && history.at(-1)?.type !== "model")
      history.push({ type: "model", response: [] });
    const { contextText } = this.wrapper.generateContextState({ chatHistory: history });
    // the template's literal text (special tokens as their text, as a Hugging Face template
    // renders them), not a tokenize→detokenize round trip, which would add SPM space prefixes
    const t = this.model.tokens;
    let out = "";
    for (const v of contextText.values) {
      if (typeof v === "string") out += v;
      else if (v instanceof this.lib.SpecialTokensText) out += v.value;
      else {
        const name = (v as { value: string }).value;
        out +=
          name === "BOS"
            ? (t.bosString ?? "")
            : name === "EOS"
              ? (t.eosString ?? "")
              : name === "EOT"
                ? (t.eotString ?? "")
                : name === "NL"
                  ? "\n"
                  : name === "SEP"
                    ? (t.sepString ?? "")
                    : "";
      }
    }
    return out;
  }
}
