import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { EppError } from "../framework/errors.js";
import type {
  Filter,
  LoadedConfig,
  Picker,
  ProfileHandler,
  SchedulerProfile,
  Scorer,
} from "../framework/plugin.js";
import {
  type Endpoint,
  emptyMetrics,
  type InferenceRequest,
  type ProfileRunResult,
  type ScoredEndpoint,
} from "../framework/types.js";
import { Scheduler } from "./scheduler.js";

const ep = (id: string, role?: string): Endpoint => ({
  metadata: {
    id,
    name: id,
    namespace: "default",
    address: "10.0.0.1",
    port: 8000,
    hostPort: `${id}:8000`,
    labels: role ? { role } : {},
  },
  metrics: emptyMetrics(),
  models: new Set(),
  attributes: new Map(),
});
const req = { requestId: "r" } as InferenceRequest;

/** Scorer returning fixed values by endpoint id (missing id → omitted). */
const fixedScorer = (name: string, values: Record<string, number>): Scorer => ({
  type: "fixed-scorer",
  name,
  category: "Distribution",
  score: (_r, eps) => {
    const m = new Map<Endpoint, number>();
    for (const e of eps) if (e.metadata.id in values) m.set(e, values[e.metadata.id]!);
    return m;
  },
});
const calls: string[] = [];
const roleFilter = (name: string, role: string): Filter => ({
  type: "role-filter",
  name,
  filter: (_r, eps) => {
    calls.push(name);
    return eps.filter((e) => e.metadata.labels.role === role);
  },
});
/** Picks the highest score, ties → first. */
const argmax: Picker = {
  type: "argmax",
  name: "argmax",
  pick: (_r, scored: ScoredEndpoint[]): ProfileRunResult => {
    let best = scored[0]!;
    for (const s of scored) if (s.score > best.score) best = s;
    return { targetEndpoints: [best.endpoint], scoredCandidates: scored };
  },
};
const profile = (
  name: string,
  filters: Filter[],
  scorers: [Scorer, number][],
  picker: Picker = argmax,
): SchedulerProfile => ({
  name,
  filters,
  scorers: scorers.map(([scorer, weight]) => ({ scorer, weight })),
  picker,
});
/** Runs each named profile once, in order, one per round; primary = first. */
const sequenceHandler = (order: string[]): ProfileHandler => ({
  type: "sequence-handler",
  name: "seq",
  pickProfiles: (_r, profiles, results) => {
    const next = order.find((n) => !(n in results));
    return next === undefined ? [] : [profiles.get(next)!];
  },
  processResults: (_r, results) => ({ profileResults: results, primaryProfileName: order[0]! }),
});
const config = (profiles: SchedulerProfile[], handler: ProfileHandler): LoadedConfig => ({
  plugins: [],
  profiles: new Map(profiles.map((p) => [p.name, p])),
  profileHandler: handler,
  featureGates: new Set(),
  resolved: {},
});

describe("Scheduler: weighted scores", () => {
  const cases: {
    name: string;
    a: Record<string, number>;
    wa: number;
    b: Record<string, number>;
    wb: number;
    want: Record<string, number>;
  }[] = [
    {
      name: "Σ score × weight, no normalisation",
      a: { x: 0.5, y: 1, z: 0 },
      wa: 2,
      b: { x: 1, y: 0.25, z: 0.5 },
      wb: 3,
      want: { x: 4, y: 2.75, z: 1.5 },
    },
    {
      name: "scores clamped to [0,1]; NaN and omitted count 0",
      a: { x: 1.7, y: -3, z: Number.NaN },
      wa: 2,
      b: { x: 0.5 },
      wb: 1.5,
      want: { x: 2.75, y: 0, z: 0 },
    },
    {
      name: "fractional weights",
      a: { x: 0.5, y: 0.5, z: 1 },
      wa: 0.1,
      b: {},
      wb: 1,
      want: { x: 0.05, y: 0.05, z: 0.1 },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const eps = [ep("x"), ep("y"), ep("z")];
      const s = new Scheduler(
        config(
          [
            profile(
              "default",
              [],
              [
                [fixedScorer("a", c.a), c.wa],
                [fixedScorer("b", c.b), c.wb],
              ],
            ),
          ],
          sequenceHandler(["default"]),
        ),
      );
      const r = s.schedule(req, eps);
      const got = Object.fromEntries(
        r.profileResults.default!.scoredCandidates.map((x) => [x.endpoint.metadata.id, x.score]),
      );
      for (const id of Object.keys(c.want))
        assert.ok(Math.abs(got[id]! - c.want[id]!) < 1e-12, `${id}: ${got[id]} ≠ ${c.want[id]}`);
      const best = Object.entries(c.want).sort((p, q) => q[1] - p[1])[0]![0];
      assert.equal(r.profileResults.default!.targetEndpoints[0]!.metadata.id, best);
      assert.equal(r.primaryProfileName, "default");
    });
  }
});

describe("Scheduler: filters and failures", () => {
  it("filters run in order; an empty result stops the profile (429 rejected-saturated)", () => {
    calls.length = 0;
    const s = new Scheduler(
      config(
        [profile("default", [roleFilter("f1", "prefill"), roleFilter("f2", "decode")], [])],
        sequenceHandler(["default"]),
      ),
    );
    assert.throws(
      () => s.schedule(req, [ep("a", "decode"), ep("b", "decode")]),
      (e: unknown) =>
        e instanceof EppError &&
        e.code === "ResourceExhausted" &&
        e.status === 429 &&
        e.dropReason === "rejected-saturated",
    );
    assert.deepEqual(calls, ["f1"]);
  });
  it("no candidates → 503 rejected-no-endpoints", () => {
    const s = new Scheduler(config([profile("default", [], [])], sequenceHandler(["default"])));
    assert.throws(
      () => s.schedule(req, []),
      (e: unknown) => e instanceof EppError && e.status === 503 && e.dropReason === "rejected-no-endpoints",
    );
  });
  it("filtered endpoints are the only ones scored and picked; input not modified", () => {
    const eps = [ep("a", "prefill"), ep("b", "decode"), ep("c", "decode")];
    const copy = [...eps];
    const s = new Scheduler(
      config(
        [profile("d", [roleFilter("f", "decode")], [[fixedScorer("s", { a: 1, b: 0.2, c: 0.6 }), 1]])],
        sequenceHandler(["d"]),
      ),
    );
    const r = s.schedule(req, eps);
    assert.deepEqual(
      r.profileResults.d!.scoredCandidates.map((x) => x.endpoint.metadata.id),
      ["b", "c"],
    );
    assert.equal(r.profileResults.d!.targetEndpoints[0]!.metadata.id, "c");
    assert.deepEqual(eps, copy);
  });
});

describe("Scheduler: profile handler loop", () => {
  const decode = profile(
    "decode",
    [roleFilter("df", "decode")],
    [[fixedScorer("s", { d1: 0.1, d2: 0.9, p1: 1 }), 1]],
  );
  const prefill = profile("prefill", [roleFilter("pf", "prefill")], [[fixedScorer("s", { p1: 1 }), 1]]);
  it("runs profiles over several rounds; results accumulate; primary from processResults", () => {
    const s = new Scheduler(config([decode, prefill], sequenceHandler(["decode", "prefill"])));
    const r = s.schedule(req, [ep("d1", "decode"), ep("d2", "decode"), ep("p1", "prefill")]);
    assert.equal(r.primaryProfileName, "decode");
    assert.equal(r.profileResults.decode!.targetEndpoints[0]!.metadata.id, "d2");
    assert.equal(r.profileResults.prefill!.targetEndpoints[0]!.metadata.id, "p1");
  });
  it("a failed secondary profile is null, the request still succeeds", () => {
    const s = new Scheduler(config([decode, prefill], sequenceHandler(["decode", "prefill"])));
    const r = s.schedule(req, [ep("d1", "decode")]);
    assert.equal(r.profileResults.prefill, null);
    assert.equal(r.profileResults.decode!.targetEndpoints[0]!.metadata.id, "d1");
  });
  it("all profiles failed → 429", () => {
    const s = new Scheduler(config([decode, prefill], sequenceHandler(["decode", "prefill"])));
    assert.throws(
      () => s.schedule(req, [ep("e1", "encode")]),
      (e: unknown) => e instanceof EppError && e.status === 429,
    );
  });
  it("a handler that picks the same profile again is stopped (Internal)", () => {
    const looping: ProfileHandler = {
      ...sequenceHandler(["decode"]),
      pickProfiles: (_r, p) => [p.get("decode")!],
    };
    const s = new Scheduler(config([decode], looping));
    assert.throws(
      () => s.schedule(req, [ep("d1", "decode")]),
      (e: unknown) => e instanceof EppError && e.code === "Internal",
    );
  });
  it("a plain error from processResults becomes 429 rejected-saturated; EppErrors pass through", () => {
    const h1: ProfileHandler = {
      ...sequenceHandler(["decode"]),
      processResults: () => {
        throw new Error("nope");
      },
    };
    assert.throws(
      () => new Scheduler(config([decode], h1)).schedule(req, [ep("d1", "decode")]),
      (e: unknown) => e instanceof EppError && e.status === 429 && /nope/.test(e.message),
    );
    const h2: ProfileHandler = {
      ...sequenceHandler(["decode"]),
      processResults: () => {
        throw new EppError("PreconditionFailed", "no cached prefix");
      },
    };
    assert.throws(
      () => new Scheduler(config([decode], h2)).schedule(req, [ep("d1", "decode")]),
      (e: unknown) => e instanceof EppError && e.status === 412,
    );
  });
});

describe("Scheduler: plugin durations", () => {
  it("reports each call with its extension-point label, type and name", () => {
    const seen: [string, string, string][] = [];
    const secs: number[] = [];
    const s = new Scheduler(
      config(
        [
          profile(
            "decode",
            [roleFilter("df", "decode")],
            [
              [fixedScorer("s1", {}), 1],
              [fixedScorer("s2", {}), 2],
            ],
          ),
        ],
        sequenceHandler(["decode"]),
      ),
      {
        onPluginDuration: (point, type, name, seconds) => {
          seen.push([point, type, name]);
          secs.push(seconds);
        },
      },
    );
    s.schedule(req, [ep("d1", "decode")]);
    assert.deepEqual(seen, [
      ["ProfilePicker", "sequence-handler", "seq"],
      ["Filter", "role-filter", "df"],
      ["Scorer", "fixed-scorer", "s1"],
      ["Scorer", "fixed-scorer", "s2"],
      ["Picker", "argmax", "argmax"],
      ["ProfilePicker", "sequence-handler", "seq"],
      ["ProcessProfilesResults", "sequence-handler", "seq"],
    ]);
    for (const x of secs) assert.ok(x >= 0 && x < 1);
  });
});

describe("Scheduler: property", () => {
  it("scores equal Σ clamp(score,0,1) × weight for any scores and weights", () => {
    const value = fc.oneof(
      fc.double({ min: -2, max: 3, noNaN: true }),
      fc.constant(Number.NaN),
      fc.constant(undefined),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }).chain((n) =>
          fc.tuple(
            fc.constant(n),
            fc.array(
              fc.tuple(
                fc.array(value, { minLength: n, maxLength: n }),
                fc.double({ min: 0, max: 5, noNaN: true }),
              ),
              {
                minLength: 0,
                maxLength: 4,
              },
            ),
          ),
        ),
        ([n, scorerSpecs]) => {
          const eps = Array.from({ length: n }, (_, i) => ep(`e${i}`));
          const scorers: [Scorer, number][] = scorerSpecs.map(([vals, w], k) => {
            const values: Record<string, number> = {};
            vals.forEach((v, i) => {
              if (v !== undefined) values[`e${i}`] = v;
            });
            return [fixedScorer(`s${k}`, values), w];
          });
          const r = new Scheduler(config([profile("p", [], scorers)], sequenceHandler(["p"]))).schedule(
            req,
            eps,
          );
          const got = new Map(
            r.profileResults.p!.scoredCandidates.map((x) => [x.endpoint.metadata.id, x.score]),
          );
          let best = Number.NEGATIVE_INFINITY;
          for (let i = 0; i < n; i++) {
            let want = 0;
            for (const [vals, w] of scorerSpecs) {
              const v = vals[i];
              if (v === undefined || Number.isNaN(v)) continue;
              want += Math.min(1, Math.max(0, v)) * w;
            }
            assert.ok(Math.abs(got.get(`e${i}`)! - want) < 1e-9);
            best = Math.max(best, want);
          }
          assert.ok(Math.abs(got.get(r.profileResults.p!.targetEndpoints[0]!.metadata.id)! - best) < 1e-9);
        },
      ),
      { numRuns: 300, seed: 1 },
    );
  });
});
