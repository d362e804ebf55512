/**
 * Process-wide structured logger (pino). Level from `LLMD_LOG_LEVEL` (default `info`).
 * Use `logger.child({ component: "router" })` per component.
 */
import { pino } from "pino";

export const logger = pino({
  level: process.env.LLMD_LOG_LEVEL ?? "info",
  base: { pid: process.pid },
});
