/**
 * Process-wide structured logger (pino), writing JSON lines to **stderr** so that commands
 * whose stdout is data (`llmd config check`, `llmd bench --json -`, `llmd doctor --json`)
 * stay clean. Level from `LLMD_LOG_LEVEL` (default `info`).
 * Use `logger.child({ component: "router" })` per component.
 */
import { pino } from "pino";

export const logger = pino(
  {
    level: process.env.LLMD_LOG_LEVEL ?? "info",
    base: { pid: process.pid },
  },
  pino.destination(2),
);
