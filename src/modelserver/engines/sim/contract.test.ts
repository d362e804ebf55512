import { runModelServerContract } from "../../contract.js";
import { SimEngine } from "./engine.js";

// ~1 ms per decode step in wall time, so the disconnect test finds the request still running.
runModelServerContract(
  "sim",
  () =>
    new SimEngine({ model: "llmd/sim-8b", timeScale: 12, prefillOverheadMs: 0, prefillTimePerTokenMs: 0.01 }),
);
