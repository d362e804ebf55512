/**
 * Strict zod schema of the `EndpointPickerConfig` document (reference/epp.md §2.3, §6;
 * llm-d-router `apix/config/v1alpha1/endpointpickerconfig_types.go`). Every object is
 * `.strict()`: an unknown field anywhere is an error. Plugin `parameters` are left raw here;
 * each plugin factory decodes its own strictly.
 */
import { z } from "zod";

/** Current config API version. */
export const API_VERSION = "llm-d.ai/v1alpha1";
/** Deprecated but accepted API version (GIE). */
export const LEGACY_API_VERSION = "inference.networking.x-k8s.io/v1alpha1";
/** The only accepted `kind`. */
export const CONFIG_KIND = "EndpointPickerConfig";

const ref = z.object({ pluginRef: z.string().min(1) }).strict();
/** Durations are Go duration strings (`60s`, `200ms`) or numbers. */
const duration = z.union([z.string().min(1), z.number()]);
/** Byte quantities are numbers or Kubernetes quantity strings (`1G`). */
const quantity = z.union([z.string().min(1), z.number()]);

export const pluginSpecSchema = z
  .object({
    name: z.string().min(1).optional(),
    type: z.string().min(1),
    parameters: z.unknown().optional(),
  })
  .strict();

export const profilePluginSchema = z
  .object({
    pluginRef: z.string().min(1),
    weight: z.number().finite().optional(),
  })
  .strict();

export const profileSchema = z
  .object({
    name: z.string().min(1),
    plugins: z.array(profilePluginSchema).nullish(),
  })
  .strict();

export const dataLayerSchema = z
  .object({
    injectDefaults: z.boolean().optional(),
    sources: z
      .array(
        z
          .object({
            pluginRef: z.string().min(1),
            extractors: z.array(ref).nullish(),
          })
          .strict(),
      )
      .nullish(),
    discovery: ref.optional(),
    // shape not implemented yet: accepted as a map
    peerDiscovery: z.record(z.string(), z.unknown()).optional(),
    crossReplicaSyncerPluginRef: z.string().min(1).optional(),
    crossReplicaSyncInterval: duration.optional(),
  })
  .strict();

const bandSchema = z
  .object({
    priority: z.number().int().optional(),
    maxBytes: quantity.optional(),
    maxRequests: z.number().int().nonnegative().optional(),
    fairnessPolicyRef: z.string().min(1).optional(),
    orderingPolicyRef: z.string().min(1).optional(),
  })
  .strict();

export const flowControlSchema = z
  .object({
    maxBytes: quantity.optional(),
    maxRequests: z.number().int().nonnegative().optional(),
    defaultRequestTTL: duration.optional(),
    noEndpointRequestTTL: duration.optional(),
    defaultPriorityBand: bandSchema.optional(),
    defaultNegativePriorityBand: bandSchema.optional(),
    priorityBands: z.array(bandSchema.extend({ priority: z.number().int() }).strict()).nullish(),
    usageLimitPolicyPluginRef: z.string().min(1).optional(),
    saturationDetector: ref.optional(),
    enableEviction: z.boolean().optional(),
  })
  .strict();

export const requestHandlerSchema = z
  .object({
    parsers: z.array(ref).nullish(),
  })
  .strict();

export const endpointPickerConfigSchema = z
  .object({
    apiVersion: z.string(),
    kind: z.string(),
    featureGates: z.array(z.string().min(1)).nullish(),
    plugins: z.array(pluginSpecSchema).nullish(),
    schedulingProfiles: z.array(profileSchema).nullish(),
    dataLayer: dataLayerSchema.nullish(),
    flowControl: flowControlSchema.nullish(),
    requestHandler: requestHandlerSchema.nullish(),
    /** deprecated: use `flowControl.saturationDetector` */
    saturationDetector: ref.nullish(),
    /** deprecated: use `requestHandler.parsers` */
    parser: ref.nullish(),
  })
  .strict();

/** The decoded (not yet resolved) config document. */
export type EndpointPickerConfigDoc = z.infer<typeof endpointPickerConfigSchema>;
