/** The scheduler (reference/epp.md §2.2). */
export {
  EXTENSION_POINT,
  type PluginDurationCallback,
  Scheduler,
  type SchedulerOptions,
} from "./scheduler.js";
