/**
 * A validator for the subset of OpenAPI v3 / JSON Schema used by CRD `openAPIV3Schema`s
 * (structural schemas): `type` (object, array, string, integer, number, boolean), `required`,
 * `properties` (unknown fields are errors unless `x-kubernetes-preserve-unknown-fields`),
 * `additionalProperties` (schema or false), `items`, `enum`, `minItems`/`maxItems`,
 * `minProperties`/`maxProperties`, `minimum`/`maximum`, `minLength`/`maxLength`, `pattern`,
 * `format: int32/int64` ranges, `nullable`. CEL rules (`x-kubernetes-validations`) are not
 * evaluated here; {@link celRules} lists them so a caller can check them by hand.
 */

/** A schema node (only the keywords above are read). */
export interface Schema {
  type?: string;
  required?: string[];
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  enum?: unknown[];
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  nullable?: boolean;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-validations"?: { rule: string; message?: string }[];
  [k: string]: unknown;
}

/**
 * Validates `value` against `schema`.
 * @returns the errors, each `path: message` (empty when valid)
 */
export function validateSchema(schema: Schema, value: unknown, path = "$"): string[] {
  const errs: string[] = [];
  if (value === null || value === undefined) {
    if (value === null && !schema.nullable) errs.push(`${path}: must not be null`);
    return errs;
  }
  if (schema["x-kubernetes-int-or-string"]) {
    if (typeof value !== "string" && !Number.isInteger(value))
      errs.push(`${path}: must be an integer or a string`);
    return errs;
  }
  switch (schema.type) {
    case "object": {
      if (typeof value !== "object" || Array.isArray(value)) return [`${path}: must be an object`];
      const o = value as Record<string, unknown>;
      const keys = Object.keys(o);
      for (const r of schema.required ?? []) if (!(r in o)) errs.push(`${path}: missing required field ${r}`);
      if (schema.minProperties !== undefined && keys.length < schema.minProperties)
        errs.push(`${path}: must have at least ${schema.minProperties} properties`);
      if (schema.maxProperties !== undefined && keys.length > schema.maxProperties)
        errs.push(`${path}: must have at most ${schema.maxProperties} properties`);
      for (const k of keys) {
        const p = schema.properties?.[k];
        if (p) errs.push(...validateSchema(p, o[k], `${path}.${k}`));
        else if (typeof schema.additionalProperties === "object")
          errs.push(...validateSchema(schema.additionalProperties, o[k], `${path}.${k}`));
        else if (
          schema.additionalProperties === false ||
          (schema.properties && !schema["x-kubernetes-preserve-unknown-fields"])
        )
          errs.push(`${path}: unknown field ${k}`);
      }
      break;
    }
    case "array": {
      if (!Array.isArray(value)) return [`${path}: must be an array`];
      if (schema.minItems !== undefined && value.length < schema.minItems)
        errs.push(`${path}: must have at least ${schema.minItems} items`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems)
        errs.push(`${path}: must have at most ${schema.maxItems} items`);
      if (schema.items)
        value.forEach((v, i) => {
          errs.push(...validateSchema(schema.items!, v, `${path}[${i}]`));
        });
      break;
    }
    case "string": {
      if (typeof value !== "string") return [`${path}: must be a string`];
      if (schema.minLength !== undefined && value.length < schema.minLength)
        errs.push(`${path}: must be at least ${schema.minLength} characters`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength)
        errs.push(`${path}: must be at most ${schema.maxLength} characters`);
      if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value))
        errs.push(`${path}: must match ${schema.pattern}`);
      break;
    }
    case "integer":
    case "number": {
      if (typeof value !== "number" || (schema.type === "integer" && !Number.isInteger(value)))
        return [`${path}: must be an ${schema.type}`];
      if (schema.format === "int32" && (value < -(2 ** 31) || value > 2 ** 31 - 1))
        errs.push(`${path}: out of int32 range`);
      if (schema.minimum !== undefined && value < schema.minimum)
        errs.push(`${path}: must be ≥ ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum)
        errs.push(`${path}: must be ≤ ${schema.maximum}`);
      break;
    }
    case "boolean":
      if (typeof value !== "boolean") return [`${path}: must be a boolean`];
      break;
    default:
      break;
  }
  if (schema.enum && !schema.enum.some((e) => e === value))
    errs.push(`${path}: must be one of ${schema.enum.join(", ")}`);
  return errs;
}

/** Every CEL rule of the schema with its path (for hand checks). */
export function celRules(schema: Schema, path = "$"): { path: string; rule: string; message?: string }[] {
  const out: { path: string; rule: string; message?: string }[] = [];
  for (const v of schema["x-kubernetes-validations"] ?? []) out.push({ path, ...v });
  for (const [k, p] of Object.entries(schema.properties ?? {})) out.push(...celRules(p, `${path}.${k}`));
  if (schema.items) out.push(...celRules(schema.items, `${path}[]`));
  return out;
}
