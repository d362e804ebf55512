/**
 * A small renderer for the subset of Helm / Go `text/template` syntax the llmd chart uses
 * (`helm` is not installed here). Supported:
 * - actions `{{ … }}` with whitespace trimming `{{-` / `-}}`; comments `{{/* … *\/}}`;
 * - values: `.Values.a.b`, `.Release.Name`, `.Release.Namespace`, `.Chart.Name`,
 *   `.Chart.Version`, `.Chart.AppVersion`, `.` and `.field` inside `range`, `$var`, `$var.field`,
 *   `$` (root), string / number / bool literals, parenthesised sub-pipelines;
 * - pipelines `a | f b` (the value becomes the last argument);
 * - functions: quote, squote, toYaml, toJson, nindent, indent, default, eq, ne, not, and, or,
 *   printf (%s %d %v), int, required, lower, upper, trim, hasKey, empty, list;
 * - `if` / `else if` / `else` / `end`, `range` over lists and maps (`range $i, $v := …`,
 *   `range $v := …`, `range …`), `with` / `else` / `end`; variables `$x := …` and `$x = …`.
 * Go template truthiness: false, 0, nil, "" and empty lists/maps are false.
 * Anything else throws, so the chart cannot silently use syntax this renderer ignores.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments, parse as parseYaml, stringify } from "yaml";

type Node =
  | { t: "text"; v: string }
  | { t: "out"; expr: string }
  | { t: "if"; branches: { cond: string | null; body: Node[] }[] }
  | { t: "range"; vars: string[]; expr: string; body: Node[]; elseBody: Node[] }
  | { t: "with"; expr: string; body: Node[]; elseBody: Node[] };

interface Scope {
  dot: unknown;
  vars: Map<string, unknown>;
  root: unknown;
}

/** Splits a template into text and actions, applying `{{-` / `-}}` trimming. */
function lex(src: string): { kind: "text" | "action"; v: string }[] {
  const out: { kind: "text" | "action"; v: string }[] = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf("{{", i);
    if (open < 0) {
      out.push({ kind: "text", v: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    const close = src.indexOf("}}", open);
    if (close < 0) throw new Error(`unclosed action at ${open}`);
    let inner = src.slice(open + 2, close);
    if (inner.startsWith("-")) {
      text = text.replace(/[ \t\r\n]+$/, "");
      inner = inner.slice(1);
    }
    let next = close + 2;
    if (inner.endsWith("-")) {
      inner = inner.slice(0, -1);
      const m = /^[ \t\r\n]+/.exec(src.slice(next));
      if (m) next += m[0].length;
    }
    out.push({ kind: "text", v: text });
    out.push({ kind: "action", v: inner.trim() });
    i = next;
  }
  return out;
}

/** Parses the token stream into a tree. */
function parse(tokens: { kind: "text" | "action"; v: string }[]): Node[] {
  let pos = 0;
  const block = (stops: string[]): { body: Node[]; stop: string } => {
    const body: Node[] = [];
    while (pos < tokens.length) {
      const tk = tokens[pos++]!;
      if (tk.kind === "text") {
        if (tk.v) body.push({ t: "text", v: tk.v });
        continue;
      }
      const a = tk.v;
      if (a.startsWith("/*")) continue;
      const word = a.split(/\s+/)[0]!;
      if (stops.includes(word) || (word === "else" && stops.includes("else"))) return { body, stop: a };
      if (word === "if") {
        const branches: { cond: string | null; body: Node[] }[] = [];
        let cond: string | null = a.slice(2).trim();
        for (;;) {
          const r = block(["else", "end"]);
          branches.push({ cond, body: r.body });
          if (r.stop === "end") break;
          const rest = r.stop.slice(4).trim();
          cond = rest.startsWith("if ") ? rest.slice(3).trim() : null;
          if (cond === null) {
            const e = block(["end"]);
            branches.push({ cond: null, body: e.body });
            break;
          }
        }
        body.push({ t: "if", branches });
      } else if (word === "range" || word === "with") {
        let expr = a.slice(word.length).trim();
        let vars: string[] = [];
        const decl = /^(\$\w+)(?:\s*,\s*(\$\w+))?\s*:=\s*(.+)$/.exec(expr);
        if (decl) {
          vars = decl[2] ? [decl[1]!, decl[2]] : [decl[1]!];
          expr = decl[3]!;
        }
        const r = block(["else", "end"]);
        let elseBody: Node[] = [];
        if (r.stop !== "end") elseBody = block(["end"]).body;
        body.push(
          word === "range"
            ? { t: "range", vars, expr, body: r.body, elseBody }
            : { t: "with", expr, body: r.body, elseBody },
        );
      } else if (word === "end" || word === "else") {
        throw new Error(`unexpected {{ ${a} }}`);
      } else if (["define", "template", "block", "include", "tpl"].includes(word)) {
        throw new Error(`unsupported action {{ ${a} }} (keep the chart inside the renderer's subset)`);
      } else {
        body.push({ t: "out", expr: a });
      }
    }
    if (stops.length > 0) throw new Error(`missing {{ end }} (expected one of ${stops.join(", ")})`);
    return { body, stop: "" };
  };
  return block([]).body;
}

/** Go template truthiness. */
export function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v as object).length > 0;
  return true;
}

/** Splits on a separator at paren depth 0, outside quotes. */
function splitTop(s: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      cur += c;
      if (c === "\\" && quote === '"') {
        cur += s[++i] ?? "";
        continue;
      }
      if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "`") quote = c;
    if (c === "(") depth++;
    if (c === ")") depth--;
    if (depth === 0 && (sep === " " ? /\s/.test(c) : c === sep)) {
      if (sep !== " " || cur !== "") parts.push(cur);
      cur = "";
      continue;
    }
    cur += c;
  }
  if (cur !== "" || sep !== " ") parts.push(cur);
  return parts.map((p) => p.trim()).filter((p, _i, a) => sep !== " " || p !== "" || a.length === 1);
}

function field(v: unknown, path: string[]): unknown {
  let cur = v;
  for (const k of path) {
    if (cur === null || cur === undefined) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

const FUNCS: Record<string, (...a: unknown[]) => unknown> = {
  quote: (...a) => a.map((x) => JSON.stringify(x === undefined || x === null ? "" : String(x))).join(" "),
  squote: (x) => `'${x ?? ""}'`,
  toYaml: (x) => (x === undefined || x === null ? "null" : stringify(x, { lineWidth: 0 }).replace(/\n$/, "")),
  toJson: (x) => JSON.stringify(x ?? null),
  nindent: (n, s) => `\n${indent(Number(n), String(s))}`,
  indent: (n, s) => indent(Number(n), String(s)),
  default: (d, v) => (truthy(v) ? v : d),
  eq: (a, ...b) => b.some((x) => x === a),
  ne: (a, b) => a !== b,
  not: (a) => !truthy(a),
  and: (...a) => a.reduce((acc, x) => (truthy(acc) ? x : acc)),
  or: (...a) => a.find((x) => truthy(x)) ?? a[a.length - 1],
  printf: (fmt, ...args) => {
    let i = 0;
    return String(fmt).replace(/%[sdv]/g, () => String(args[i++]));
  },
  int: (x) => Math.trunc(Number(x)),
  required: (msg, v) => {
    if (!truthy(v)) throw new Error(String(msg));
    return v;
  },
  lower: (s) => String(s).toLowerCase(),
  upper: (s) => String(s).toUpperCase(),
  trim: (s) => String(s).trim(),
  hasKey: (m, k) => m !== null && typeof m === "object" && Object.hasOwn(m as object, String(k)),
  empty: (x) => !truthy(x),
  list: (...a) => a,
};

function indent(n: number, s: string): string {
  const pad = " ".repeat(n);
  return s
    .split("\n")
    .map((l) => pad + l)
    .join("\n");
}

function evalTerm(term: string, sc: Scope): unknown {
  if (term.startsWith("(") && term.endsWith(")")) return evalPipeline(term.slice(1, -1), sc);
  if (term.startsWith('"')) return JSON.parse(term);
  if (term.startsWith("`")) return term.slice(1, -1);
  if (/^-?\d+(\.\d+)?$/.test(term)) return Number(term);
  if (term === "true" || term === "false") return term === "true";
  if (term === "nil") return null;
  if (term === ".") return sc.dot;
  if (term.startsWith(".")) return field(sc.dot, term.slice(1).split("."));
  if (term === "$") return sc.root;
  if (term.startsWith("$")) {
    const [name, ...rest] = term.split(".");
    if (name === "$") return field(sc.root, rest);
    if (!sc.vars.has(name!)) throw new Error(`undefined variable ${name}`);
    return field(sc.vars.get(name!), rest);
  }
  throw new Error(`cannot evaluate ${term}`);
}

function evalCommand(cmd: string, sc: Scope, piped: unknown[]): unknown {
  const words = splitTop(cmd, " ");
  const head = words[0]!;
  if (FUNCS[head]) return FUNCS[head](...words.slice(1).map((w) => evalTerm(w, sc)), ...piped);
  if (/^[a-zA-Z]\w*$/.test(head) && !["true", "false", "nil"].includes(head))
    throw new Error(`unsupported function ${head}`);
  if (words.length > 1 || piped.length > 0) throw new Error(`cannot call a value: ${cmd}`);
  return evalTerm(head, sc);
}

function evalPipeline(expr: string, sc: Scope): unknown {
  const cmds = splitTop(expr, "|");
  let v: unknown;
  cmds.forEach((c, i) => {
    v = evalCommand(c, sc, i === 0 ? [] : [v]);
  });
  return v;
}

function show(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "object")
    return Array.isArray(v) ? `[${v.map(show).join(" ")}]` : `map[${Object.keys(v as object).join(" ")}]`;
  return String(v);
}

function exec(nodes: Node[], sc: Scope): string {
  let out = "";
  for (const n of nodes) {
    switch (n.t) {
      case "text":
        out += n.v;
        break;
      case "out": {
        const decl = /^(\$\w+)\s*:?=\s*(.+)$/.exec(n.expr);
        if (decl) sc.vars.set(decl[1]!, evalPipeline(decl[2]!, sc));
        else out += show(evalPipeline(n.expr, sc));
        break;
      }
      case "if": {
        for (const b of n.branches) {
          if (b.cond === null || truthy(evalPipeline(b.cond, sc))) {
            out += exec(b.body, sc);
            break;
          }
        }
        break;
      }
      case "with": {
        const v = evalPipeline(n.expr, sc);
        out += truthy(v) ? exec(n.body, { ...sc, dot: v, vars: new Map(sc.vars) }) : exec(n.elseBody, sc);
        break;
      }
      case "range": {
        const v = evalPipeline(n.expr, sc);
        const entries: [unknown, unknown][] = Array.isArray(v)
          ? v.map((x, i) => [i, x])
          : v && typeof v === "object"
            ? Object.keys(v as object)
                .sort()
                .map((k) => [k, (v as Record<string, unknown>)[k]])
            : [];
        if (entries.length === 0) {
          out += exec(n.elseBody, sc);
          break;
        }
        for (const [k, x] of entries) {
          const vars = new Map(sc.vars);
          if (n.vars.length === 2) {
            vars.set(n.vars[0]!, k);
            vars.set(n.vars[1]!, x);
          } else if (n.vars.length === 1) vars.set(n.vars[0]!, x);
          out += exec(n.body, { ...sc, dot: x, vars });
        }
        break;
      }
    }
  }
  return out;
}

/** Renders one template text with the given root context (`{Values, Release, Chart}`). */
export function renderTemplate(src: string, root: Record<string, unknown>): string {
  return exec(parse(lex(src)), { dot: root, vars: new Map(), root });
}

/** Deep merge of Helm values (maps merge, everything else replaces). */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (
    base &&
    over &&
    typeof base === "object" &&
    typeof over === "object" &&
    !Array.isArray(base) &&
    !Array.isArray(over)
  ) {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(over as Record<string, unknown>)) {
      out[k] = v === null ? undefined : mergeValues(out[k], v);
    }
    return out;
  }
  return over;
}

/** One rendered manifest with the template it came from. */
export interface RenderedObject {
  template: string;
  object: Record<string, unknown> & {
    apiVersion?: string;
    kind?: string;
    metadata?: { name?: string; namespace?: string };
  };
}

/**
 * Renders a chart folder like `helm template <release> <chart> -n <ns> [-f values]`: every
 * `templates/*.yaml` (not `_*`), split into YAML documents; empty documents dropped.
 * @throws Error naming the template on a syntax or YAML error
 */
export function renderChart(
  chartDir: string,
  opts: { release: string; namespace: string; values?: Record<string, unknown> },
): RenderedObject[] {
  const chart = parseYaml(readFileSync(join(chartDir, "Chart.yaml"), "utf8")) as Record<string, unknown>;
  const defaults = parseYaml(readFileSync(join(chartDir, "values.yaml"), "utf8")) as Record<string, unknown>;
  const root = {
    Values: mergeValues(defaults, opts.values ?? {}),
    Release: { Name: opts.release, Namespace: opts.namespace, Service: "Helm" },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  const out: RenderedObject[] = [];
  const dir = join(chartDir, "templates");
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith(".yaml") || f.startsWith("_")) continue;
    let text: string;
    try {
      text = renderTemplate(readFileSync(join(dir, f), "utf8"), root);
    } catch (e) {
      throw new Error(`${f}: ${(e as Error).message}`);
    }
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`${f}: ${doc.errors[0]!.message}\n${text}`);
      const o = doc.toJS() as RenderedObject["object"] | null;
      if (o && typeof o === "object") out.push({ template: f, object: o });
    }
  }
  return out;
}
