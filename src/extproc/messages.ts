/**
 * Builders of ext_proc `ProcessingResponse` messages (reference/epp.md §1.2, §1.4, §1.6):
 * header responses with `clear_route_cache`, FULL_DUPLEX_STREAMED body chunks of at most
 * {@link MAX_CHUNK_BYTES}, `ImmediateResponse` errors, and the `envoy.lb` dynamic metadata.
 */
import * as H from "../framework/headers.js";
import {
  type PbHeaderMutation,
  type PbHeaderValueOption,
  type PbProcessingResponse,
  setHeader,
  toPbStruct,
} from "./proto.js";

/**
 * Largest body chunk sent back in one `streamed_response`, bytes: "some envoy implementations
 * set a max limit of 64Kb per streamed chunk" (llm-d `pkg/common/envoy/chunking.go`,
 * reference/epp.md §1.2).
 */
export const MAX_CHUNK_BYTES = 62_000;

/** Splits `body` into slices of at most `max` bytes; an empty body gives one empty slice. */
export function chunkBody(body: Buffer, max = MAX_CHUNK_BYTES): Buffer[] {
  if (body.length === 0) return [body];
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += max) out.push(body.subarray(i, Math.min(body.length, i + max)));
  return out;
}

/** Which direction a body or headers response answers. */
export type Direction = "request" | "response";

/**
 * A `HeadersResponse` for the request or response direction.
 * @param clearRouteCache true for the request direction once the destination is known
 */
export function headersResponse(
  dir: Direction,
  mutation: PbHeaderMutation,
  clearRouteCache: boolean,
  dynamicMetadata?: Record<string, unknown>,
): PbProcessingResponse {
  const common = { response: { header_mutation: mutation, clear_route_cache: clearRouteCache } };
  const out: PbProcessingResponse =
    dir === "request" ? { request_headers: common } : { response_headers: common };
  if (dynamicMetadata) out.dynamic_metadata = toPbStruct(dynamicMetadata);
  return out;
}

/**
 * The body as `BodyResponse`s with `body_mutation.streamed_response`, re-chunked to
 * ≤ {@link MAX_CHUNK_BYTES}; `end_of_stream` set on the last one when `endOfStream`.
 */
export function streamedBodyResponses(
  dir: Direction,
  body: Buffer,
  endOfStream: boolean,
): PbProcessingResponse[] {
  const chunks = chunkBody(body);
  return chunks.map((c, i) => {
    const r = {
      response: {
        body_mutation: {
          streamed_response: { body: c, end_of_stream: endOfStream && i === chunks.length - 1 },
        },
      },
    };
    return dir === "request" ? { request_body: r } : { response_body: r };
  });
}

/** `dynamic_metadata {"envoy.lb": {"x-gateway-destination-endpoint": destination}}` (§1.4). */
export function destinationMetadata(destination: string): Record<string, unknown> {
  return { [H.DESTINATION_ENDPOINT_NAMESPACE]: { [H.DESTINATION_ENDPOINT]: destination } };
}

/**
 * An `ImmediateResponse` with the HTTP status, a text body and response headers
 * (e.g. `x-llm-d-request-dropped-reason`; reference/epp.md §1.6).
 */
export function immediateResponse(
  status: number,
  body: string,
  headers: Record<string, string>,
): PbProcessingResponse {
  const set: PbHeaderValueOption[] = Object.entries(headers).map(([k, v]) => setHeader(k, v));
  return {
    immediate_response: {
      status: { code: status },
      headers: { set_headers: set },
      body: Buffer.from(body, "utf8"),
    },
  };
}
