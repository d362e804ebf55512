import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import { FastCounter, FastGauge } from "./fast-counter.js";

test("FastCounter / FastGauge render like prom-client's, labels in the declared order", async () => {
  const reg = new Registry();
  const c = new FastCounter("c_total", "a counter", ["b", "a"], [reg]);
  const g = new FastGauge("g", "a gauge", ["x"], [reg]);
  const s = c.labels({ a: "1", b: "2" });
  s.inc();
  s.inc(2);
  s.inc(-5); // a counter never goes down
  c.inc({ a: "1", b: "2" });
  c.inc({ a: "3" }); // missing label → empty value
  const gs = g.labels({ x: "y" });
  gs.inc();
  gs.inc();
  gs.dec();
  g.labels({ x: "z" }).set(7);
  const text = await reg.metrics();
  assert.match(text, /^# TYPE c_total counter$/m);
  assert.match(text, /^c_total\{b="2",a="1"\} 4$/m);
  assert.match(text, /^c_total\{b="",a="3"\} 1$/m);
  assert.match(text, /^# TYPE g gauge$/m);
  assert.match(text, /^g\{x="y"\} 1$/m);
  assert.match(text, /^g\{x="z"\} 7$/m);
  reg.resetMetrics();
  s.inc();
  const after = await reg.metrics();
  assert.match(after, /^c_total\{b="2",a="1"\} 1$/m);
  assert.match(after, /^g\{x="z"\} 0$/m);
});
