/**
 * Strict decoding of plugin `parameters` (reference/epp.md §2.3: "parameters decoded strictly,
 * unknown fields = error"). Plugin factories call {@link decodeParams} with a zod schema built
 * from `.strict()` objects; the loader prefixes the field path with `plugins[i].parameters`.
 */
import type { z } from "zod";
import { ConfigError } from "../errors.js";

/**
 * A parameter error. `field` is the dotted path inside `parameters` (`""` = the parameters
 * value itself); the message is `<field>: <problem>` (or just the problem when `field` is empty).
 */
export class ParamsError extends ConfigError {
  readonly field: string;
  readonly problem: string;
  constructor(field: string, problem: string) {
    super(field === "" ? problem : `${field}: ${problem}`);
    this.name = "ParamsError";
    this.field = field;
    this.problem = problem;
  }
}

/** Renders a zod/YAML path as `a.b[2].c`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

/** Joins a path prefix and a relative path (`a` + `b` → `a.b`, `a` + `[1]` → `a[1]`). */
export function joinPath(prefix: string, rel: string): string {
  if (prefix === "") return rel;
  if (rel === "") return prefix;
  return rel.startsWith("[") ? prefix + rel : `${prefix}.${rel}`;
}

/**
 * Converts the first zod issue to `{field, problem}`. Unknown keys read
 * `<path>.<key>: unknown field`.
 */
export function describeZodIssue(issue: z.core.$ZodIssue): { field: string; problem: string } {
  const base = formatPath(issue.path);
  if (issue.code === "unrecognized_keys") {
    return { field: joinPath(base, issue.keys[0] ?? ""), problem: "unknown field" };
  }
  if (issue.code === "invalid_type" && issue.input === undefined) {
    return { field: base, problem: `required field missing (expected ${issue.expected})` };
  }
  return { field: base, problem: issue.message };
}

/**
 * Decodes raw plugin parameters with a strict schema. `undefined`/`null` parameters are
 * decoded as `{}` (so defaults apply).
 *
 * @throws ParamsError naming the first offending field (e.g. `threshold: Invalid input: expected number`).
 */
export function decodeParams<T>(schema: z.ZodType<T>, raw: unknown): T {
  const r = schema.safeParse(raw ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue === undefined) throw new ParamsError("", "invalid parameters");
  const { field, problem } = describeZodIssue(issue);
  throw new ParamsError(field, problem);
}
