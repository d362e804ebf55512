/**
 * Loads the Envoy ext_proc and gRPC health protobuf subsets in `proto/` with
 * @grpc/proto-loader (keepCase, longs as String, enums as String, defaults, oneofs), so that
 * message objects use the snake_case field names of the `.proto` files.
 *
 * The `proto/` folder sits at the package root; it is found from `src/extproc/` (tsx) and
 * from `dist/extproc/` (build) alike by walking up from this module. Protocol:
 * reference/epp.md §1.1 (`envoy.service.ext_proc.v3.ExternalProcessor/Process`, gRPC health).
 * `google/protobuf/struct.proto` and `wrappers.proto` come from protobufjs's bundled
 * well-known types.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** Relative paths of the proto files loaded, under {@link protoDir}. */
export const PROTO_FILES = [
  "envoy/service/ext_proc/v3/external_processor.proto",
  "grpc/health/v1/health.proto",
];

/**
 * The package's `proto/` folder.
 * @throws Error when no ancestor folder of this module holds `proto/envoy`
 */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, "proto");
    if (existsSync(join(candidate, "envoy", "service", "ext_proc", "v3", "external_processor.proto")))
      return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error("llmd: proto/ folder not found above " + dirname(fileURLToPath(import.meta.url)));
}

/** A gRPC service client/server definition as grpc-js builds it. */
export type ServiceCtor = grpc.ServiceClientConstructor;

/** The loaded services. */
export interface LoadedProtos {
  /** `envoy.service.ext_proc.v3.ExternalProcessor` */
  ExternalProcessor: ServiceCtor;
  /** `grpc.health.v1.Health` */
  Health: ServiceCtor;
}

let cached: LoadedProtos | undefined;

/** Loads (once) and returns the service definitions. */
export function loadProtos(): LoadedProtos {
  if (cached) return cached;
  const dir = protoDir();
  const def = protoLoader.loadSync(PROTO_FILES, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [dir],
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    envoy: { service: { ext_proc: { v3: { ExternalProcessor: ServiceCtor } } } };
    grpc: { health: { v1: { Health: ServiceCtor } } };
  };
  cached = {
    ExternalProcessor: pkg.envoy.service.ext_proc.v3.ExternalProcessor,
    Health: pkg.grpc.health.v1.Health,
  };
  return cached;
}

// ---- Message shapes (keepCase, as decoded with the options above) ----

/**
 * `google.protobuf.Value` as decoded (oneof `kind`). protobufjs bundles the well-known types
 * with camelCase field names (`stringValue`…), which `keepCase` does not change.
 */
export interface PbValue {
  nullValue?: string | null;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: PbStruct | null;
  listValue?: { values: PbValue[] } | null;
  kind?: string;
}

/** `google.protobuf.Struct`. */
export interface PbStruct {
  fields: Record<string, PbValue>;
}

/** `envoy.config.core.v3.HeaderValue`: `raw_value` (bytes) preferred by current Envoy. */
export interface PbHeaderValue {
  key: string;
  value?: string;
  raw_value?: Buffer | Uint8Array;
}

/** `envoy.config.core.v3.HeaderValueOption`. */
export interface PbHeaderValueOption {
  header: PbHeaderValue;
  append_action?: string | number;
}

/** `envoy.service.ext_proc.v3.HeaderMutation`. */
export interface PbHeaderMutation {
  set_headers?: PbHeaderValueOption[];
  remove_headers?: string[];
}

/** `envoy.service.ext_proc.v3.CommonResponse`. */
export interface PbCommonResponse {
  status?: string | number;
  header_mutation?: PbHeaderMutation | null;
  body_mutation?: {
    streamed_response?: { body: Buffer | Uint8Array; end_of_stream: boolean } | null;
    body?: Buffer | Uint8Array;
    clear_body?: boolean;
    mutation?: string;
  } | null;
  clear_route_cache?: boolean;
}

/** `envoy.service.ext_proc.v3.ProcessingRequest` (one oneof member set). */
export interface PbProcessingRequest {
  request_headers?: { headers?: { headers: PbHeaderValue[] } | null; end_of_stream: boolean } | null;
  response_headers?: { headers?: { headers: PbHeaderValue[] } | null; end_of_stream: boolean } | null;
  request_body?: { body: Buffer; end_of_stream: boolean } | null;
  response_body?: { body: Buffer; end_of_stream: boolean } | null;
  request_trailers?: { trailers?: { headers: PbHeaderValue[] } | null } | null;
  response_trailers?: { trailers?: { headers: PbHeaderValue[] } | null } | null;
  /** which oneof member is set */
  request?: string;
  metadata_context?: { filter_metadata: Record<string, PbStruct> } | null;
  observability_mode?: boolean;
}

/** `envoy.service.ext_proc.v3.ProcessingResponse`. */
export interface PbProcessingResponse {
  request_headers?: { response: PbCommonResponse };
  response_headers?: { response: PbCommonResponse };
  request_body?: { response: PbCommonResponse };
  response_body?: { response: PbCommonResponse };
  request_trailers?: { header_mutation?: PbHeaderMutation };
  response_trailers?: { header_mutation?: PbHeaderMutation };
  immediate_response?: {
    status: { code: string | number };
    headers?: PbHeaderMutation;
    body?: Buffer | Uint8Array;
    details?: string;
  };
  /** which oneof member is set (decoded side) */
  response?: string;
  dynamic_metadata?: PbStruct | null;
}

/** Converts a plain JSON value into a `google.protobuf.Value`. */
export function toPbValue(v: unknown): PbValue {
  if (v === null || v === undefined) return { nullValue: "NULL_VALUE" };
  if (typeof v === "number") return { numberValue: v };
  if (typeof v === "string") return { stringValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toPbValue) } };
  return { structValue: toPbStruct(v as Record<string, unknown>) };
}

/** Converts a plain JSON object into a `google.protobuf.Struct`. */
export function toPbStruct(o: Record<string, unknown>): PbStruct {
  const fields: Record<string, PbValue> = {};
  for (const [k, v] of Object.entries(o)) fields[k] = toPbValue(v);
  return { fields };
}

/** Converts a decoded `google.protobuf.Value` into a plain JSON value. */
export function fromPbValue(v: PbValue | null | undefined): unknown {
  if (!v) return null;
  switch (v.kind) {
    case "numberValue":
      return v.numberValue;
    case "stringValue":
      return v.stringValue;
    case "boolValue":
      return v.boolValue;
    case "structValue":
      return fromPbStruct(v.structValue);
    case "listValue":
      return (v.listValue?.values ?? []).map(fromPbValue);
    case "nullValue":
      return null;
    default:
      // encoder-side objects carry no `kind`
      if (v.stringValue !== undefined && v.stringValue !== "") return v.stringValue;
      if (v.structValue) return fromPbStruct(v.structValue);
      if (v.listValue) return v.listValue.values.map(fromPbValue);
      if (v.numberValue !== undefined && v.numberValue !== 0) return v.numberValue;
      if (v.boolValue) return true;
      return null;
  }
}

/** Converts a decoded `google.protobuf.Struct` into a plain object. */
export function fromPbStruct(s: PbStruct | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!s?.fields) return out;
  for (const [k, v] of Object.entries(s.fields)) out[k] = fromPbValue(v);
  return out;
}

/**
 * Header map → lower-cased record. A value is read from `raw_value` when present (current
 * Envoy), else from `value`. Repeated names are joined with `, `.
 */
export function headerMapToRecord(headers: PbHeaderValue[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of headers ?? []) {
    const k = h.key.toLowerCase();
    const v =
      h.raw_value && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString("utf8") : (h.value ?? "");
    out[k] = out[k] !== undefined ? `${out[k]}, ${v}` : v;
  }
  return out;
}

/** A `HeaderValueOption` that sets `key` to `value` in `raw_value`, as the EPP does. */
export function setHeader(key: string, value: string): PbHeaderValueOption {
  return { header: { key, raw_value: Buffer.from(value, "utf8") } };
}
