/**
 * `disagg-profile-handler` — P/D disaggregation: runs the decode profile, then (when the
 * prefill decider approves for the decode pick) the prefill profile; decode is primary.
 * Also a PreRequest: sets `x-prefiller-host-port: <ip:port>` of the first prefill target
 * (deleting any stale value first) so the P/D coordinator (router or sidecar) prefills there.
 *
 * Stage orders:
 * - `decode-first` (default): decode; then, if a prefill profile exists and the prefill decider
 *   returns true for the decode pick, prefill (the decode pick is published as the request
 *   attribute `peer-endpoint`). No prefill decider ⇒ the prefill stage is disabled.
 * - `prefill-first`: prefill always runs when configured (a prefill decider is not allowed),
 *   then decode.
 * A failed prefill profile degrades to decode-only; a failed decode profile fails the request.
 * The decision (`decode-only` / `prefill-decode`) is written as the request attribute
 * `disagg-decision` for `disagg_decision_total`.
 *
 * Parameters:
 * - `profiles`: `{decode: "decode", prefill: "prefill", encode: "encode"}` profile names
 * - `deciders`: `{prefill?: <plugin name>, encode?: <plugin name>}` (PdDecider plugins)
 * - `stageOrder`: `decode-first` | `prefill-first` (default `decode-first`)
 * - deprecated flat parameters: `decodeProfile`, `prefillProfile`, `encodeProfile`,
 *   `prefillDeciderPluginName`, `deciderPluginName`, `primaryPort` (accepted, not used),
 *   `prefixMatchInfoProducerName` (accepted, not used)
 *
 * Encode stages (E/P/D) are accepted in the parameters but not run: we have no encoders.
 *
 * `pd-profile-handler` (deprecated alias, historical v0.4 names): `decodeProfile`,
 * `prefillProfile`, `deciderPluginName` (default `prefix-based-pd-decider`; when no plugin of
 * that name is configured, one is created with `nonCachedTokens` = `threshold`),
 * `threshold` (tokens here; default 0 = always P/D through `always-disagg-pd-decider`),
 * `hashBlockSize`, `primaryPort`, `prefixPluginName`, `prefixPluginType`,
 * `prefixMatchInfoProducerName` (accepted, ignored).
 *
 * Source: reference/epp.md §3.1, §4.2; llm-d-router `profilehandler/disagg`.
 */
import { z } from "zod";
import { decodeParams, ParamsError } from "../../framework/config/params.js";
import { EppError } from "../../framework/errors.js";
import * as H from "../../framework/headers.js";
import { prefixBasedDisaggregate } from "../../framework/pd.js";
import {
  isPdDecider,
  type PdDecider,
  type PluginFactory,
  type PluginHandle,
  type PreRequest,
  type ProfileHandler,
  type SchedulerProfile,
} from "../../framework/plugin.js";
import {
  DISAGG_DECISION,
  type DisaggDecision,
  type InferenceRequest,
  PEER_ENDPOINT,
  type ProfileRunResult,
  type SchedulingResult,
} from "../../framework/types.js";

export const DISAGG_PROFILE_HANDLER_TYPE = "disagg-profile-handler";
export const PD_PROFILE_HANDLER_TYPE = "pd-profile-handler";

const schema = z
  .object({
    profiles: z
      .object({
        decode: z.string().min(1).optional(),
        prefill: z.string().min(1).optional(),
        encode: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    deciders: z
      .object({ prefill: z.string().min(1).optional(), encode: z.string().min(1).optional() })
      .strict()
      .optional(),
    stageOrder: z.enum(["decode-first", "prefill-first"]).default("decode-first"),
    decodeProfile: z.string().min(1).optional(),
    prefillProfile: z.string().min(1).optional(),
    encodeProfile: z.string().min(1).optional(),
    prefillDeciderPluginName: z.string().min(1).optional(),
    deciderPluginName: z.string().min(1).optional(),
    primaryPort: z.number().int().optional(),
    prefixMatchInfoProducerName: z.string().optional(),
  })
  .strict();

const pdSchema = z
  .object({
    decodeProfile: z.string().min(1).default("decode"),
    prefillProfile: z.string().min(1).default("prefill"),
    deciderPluginName: z.string().min(1).optional(),
    threshold: z.number().int().nonnegative().default(0),
    hashBlockSize: z.number().int().positive().optional(),
    primaryPort: z.number().int().optional(),
    prefixPluginName: z.string().optional(),
    prefixPluginType: z.string().optional(),
    prefixMatchInfoProducerName: z.string().optional(),
  })
  .strict();

/** Resolved settings of the handler. */
export interface DisaggSettings {
  decodeProfile: string;
  prefillProfile: string;
  stageOrder: "decode-first" | "prefill-first";
  /** null = prefill stage disabled (decode-first without a decider) */
  prefillDecider: PdDecider | null;
}

const NONE: SchedulerProfile[] = [];

/** The handler (see file header). */
export class DisaggProfileHandler implements ProfileHandler, PreRequest {
  constructor(
    readonly name: string,
    readonly type: string,
    readonly settings: DisaggSettings,
  ) {}

  pickProfiles(
    request: InferenceRequest,
    profiles: ReadonlyMap<string, SchedulerProfile>,
    results: Readonly<Record<string, ProfileRunResult | null>>,
  ): SchedulerProfile[] {
    const { decodeProfile, prefillProfile, stageOrder, prefillDecider } = this.settings;
    const decode = profiles.get(decodeProfile);
    const prefill = profiles.get(prefillProfile);
    const decodeDone = Object.hasOwn(results, decodeProfile);
    const prefillDone = Object.hasOwn(results, prefillProfile);
    if (stageOrder === "prefill-first") {
      if (prefill && !prefillDone) return [prefill];
      if (decode && !decodeDone) return [decode];
      return NONE;
    }
    if (!decodeDone) return decode ? [decode] : NONE;
    if (prefillDone || !prefill || !prefillDecider) return NONE;
    const pick = results[decodeProfile]?.targetEndpoints[0];
    if (!pick) return NONE;
    if (!prefillDecider.disaggregate(request, pick)) return NONE;
    request.attributes.set(PEER_ENDPOINT, pick);
    return [prefill];
  }

  processResults(
    request: InferenceRequest,
    results: Record<string, ProfileRunResult | null>,
  ): SchedulingResult {
    const { decodeProfile, prefillProfile } = this.settings;
    if (!results[decodeProfile]) {
      throw new EppError(
        "ResourceExhausted",
        `failed to run decode profile '${decodeProfile}'`,
        "rejected-saturated",
      );
    }
    const pd = (results[prefillProfile]?.targetEndpoints.length ?? 0) > 0;
    const decision: DisaggDecision = {
      decisionType: pd ? "prefill-decode" : "decode-only",
      pluginName: this.name,
      pluginType: this.type,
    };
    request.attributes.set(DISAGG_DECISION, decision);
    return { profileResults: results, primaryProfileName: decodeProfile };
  }

  preRequest(request: InferenceRequest, result: SchedulingResult): void {
    delete request.headers[H.PREFILLER_HOST_PORT];
    const prefill = result.profileResults[this.settings.prefillProfile]?.targetEndpoints[0];
    if (prefill) request.headers[H.PREFILLER_HOST_PORT] = prefill.metadata.hostPort;
  }
}

function resolveDecider(handle: PluginHandle, name: string, field: string): PdDecider {
  const p = handle.plugin(name);
  if (!p) throw new ParamsError(field, `undefined plugin ${JSON.stringify(name)}`);
  if (!isPdDecider(p))
    throw new ParamsError(field, `plugin ${JSON.stringify(name)} (${p.type}) is not a P/D decider`);
  return p;
}

/** Plugin names a `disagg-profile-handler` config refers to (for the loader's dependency order). */
export function disaggPluginRefs(params: unknown): string[] {
  const p = (params ?? {}) as Record<string, unknown>;
  const d = (p.deciders ?? {}) as Record<string, unknown>;
  return [d.prefill, d.encode, p.prefillDeciderPluginName, p.deciderPluginName].filter(
    (x): x is string => typeof x === "string" && x !== "",
  );
}

/** Factory of `disagg-profile-handler`. @throws ParamsError naming the offending field */
export const disaggProfileHandlerFactory: PluginFactory = (name, params, handle) => {
  const p = decodeParams(schema, params);
  const deciderName = p.deciders?.prefill ?? p.prefillDeciderPluginName ?? p.deciderPluginName;
  const field = p.deciders?.prefill
    ? "deciders.prefill"
    : p.prefillDeciderPluginName
      ? "prefillDeciderPluginName"
      : "deciderPluginName";
  if (p.stageOrder === "prefill-first" && deciderName) {
    throw new ParamsError(field, "a prefill decider is not allowed with stageOrder prefill-first");
  }
  return new DisaggProfileHandler(name, DISAGG_PROFILE_HANDLER_TYPE, {
    decodeProfile: p.profiles?.decode ?? p.decodeProfile ?? "decode",
    prefillProfile: p.profiles?.prefill ?? p.prefillProfile ?? "prefill",
    stageOrder: p.stageOrder,
    prefillDecider: deciderName ? resolveDecider(handle, deciderName, field) : null,
  });
};

/** Factory of the deprecated `pd-profile-handler`. @throws ParamsError naming the offending field */
export const pdProfileHandlerFactory: PluginFactory = (name, params, handle) => {
  const p = decodeParams(pdSchema, params);
  let decider: PdDecider;
  if (p.deciderPluginName && handle.plugin(p.deciderPluginName)) {
    decider = resolveDecider(handle, p.deciderPluginName, "deciderPluginName");
  } else {
    // Built-in decider of the historical handler: threshold 0 = always P/D.
    const params = {
      nonCachedTokens: p.threshold,
      promptTokens: 0,
      prefixMatchInfoProducerName: p.prefixMatchInfoProducerName ?? "approx-prefix-cache-producer",
    };
    decider = {
      type: "pd-profile-handler-threshold",
      name: `${name}-threshold`,
      disaggregate: (req, ep) => p.threshold === 0 || prefixBasedDisaggregate(req, ep, params),
    };
  }
  return new DisaggProfileHandler(name, PD_PROFILE_HANDLER_TYPE, {
    decodeProfile: p.decodeProfile,
    prefillProfile: p.prefillProfile,
    stageOrder: "decode-first",
    prefillDecider: decider,
  });
};
