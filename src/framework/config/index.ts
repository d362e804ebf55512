/** EndpointPickerConfig loading (reference/epp.md §2.3). */
export {
  closeTypes,
  DEFAULT_CONFIG_TEXT,
  DEFAULT_PARSERS,
  DEFAULT_PICKER_TYPE,
  DEFAULT_PROFILE_HANDLER_TYPE,
  DEFAULT_PROFILE_NAME,
  KNOWN_FEATURE_GATES,
  type LoadConfigOptions,
  loadConfig,
  loadConfigFile,
} from "./loader.js";
export { decodeParams, ParamsError } from "./params.js";
export { API_VERSION, CONFIG_KIND, LEGACY_API_VERSION } from "./schema.js";
