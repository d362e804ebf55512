/**
 * `always-disagg-pd-decider` — disaggregates every request that has a prefill profile.
 *
 * Parameters: none.
 *
 * Source: reference/epp.md §3.1 ("Deciders").
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { PdDecider, PluginFactory } from "../../framework/plugin.js";

export const ALWAYS_DISAGG_PD_DECIDER_TYPE = "always-disagg-pd-decider";

/** Always true. */
export class AlwaysDisaggPdDecider implements PdDecider {
  readonly type = ALWAYS_DISAGG_PD_DECIDER_TYPE;
  constructor(readonly name: string) {}
  disaggregate(): boolean {
    return true;
  }
}

/** Factory: no parameters. */
export const alwaysDisaggPdDeciderFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new AlwaysDisaggPdDecider(name);
};
