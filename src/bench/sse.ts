/**
 * Incremental Server-Sent Events parser for OpenAI-style streams: feed decoded text as it
 * arrives; complete events come back as their `data` payloads (multi-line `data:` fields
 * joined with "\n", as the SSE spec says). Other fields (`event:`, `id:`, comments) are
 * ignored. Handles `\n`, `\r\n` and `\r` line ends split across chunks.
 */
export class SseParser {
  private buf = "";
  private data: string[] = [];
  private pendingCr = false;

  /**
   * Feeds a piece of the stream.
   * @param text decoded text (any split, including mid-line)
   * @returns the `data` payloads of the events completed by this piece, in order
   */
  push(text: string): string[] {
    const out: string[] = [];
    if (this.pendingCr && text.startsWith("\n")) text = text.slice(1);
    this.pendingCr = false;
    this.buf += text;
    let start = 0;
    for (;;) {
      let i = start;
      while (i < this.buf.length && this.buf[i] !== "\n" && this.buf[i] !== "\r") i++;
      if (i >= this.buf.length) break;
      const line = this.buf.slice(start, i);
      if (this.buf[i] === "\r") {
        if (i + 1 < this.buf.length) {
          if (this.buf[i + 1] === "\n") i++;
        } else {
          this.pendingCr = true;
        }
      }
      start = i + 1;
      this.line(line, out);
    }
    this.buf = this.buf.slice(start);
    return out;
  }

  /** Ends the stream: returns the last event when the stream did not end with a blank line. */
  end(): string[] {
    const out: string[] = [];
    if (this.buf.length > 0) this.line(this.buf, out);
    this.buf = "";
    this.line("", out);
    return out;
  }

  private line(line: string, out: string[]): void {
    if (line === "") {
      if (this.data.length > 0) out.push(this.data.join("\n"));
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== "data") return;
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    this.data.push(value);
  }
}
