#!/usr/bin/env node
// Checks the oracle itself: every query kind on a small hand-written stream whose
// answers were worked out by hand (the reasoning is in the comments), plus the
// condition typing rules. Prints "N passed, N failed"; exits non-zero on a failure.
//
//   node tests/oracle/selftest.mjs        (or: bash tests/oracle/selftest.sh)

import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { compileCond, g17 } from "./cond.mjs";
import { answer, readEvents } from "./oracle.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

// 2026-10-01 00:00 in UTC+8 = 2026-09-30T16:00Z
const T0 = 1790784000000;
const M = 60000, H = 3600000, D = 86400000;
const at = (day, h, m = 0) => T0 + day * D + h * H + m * M;

// user, [day, hour, minute], event, properties — in stream order per user
const stream = [
  [1, [0, 9, 0], "Home", {}],
  [1, [0, 9, 5], "View", { fund: "F1", amount: 1000, ch: "app" }],
  [1, [0, 9, 10], "Home", {}],
  [1, [0, 9, 20], "Buy", { fund: "F1", amount: 500 }],
  [1, [1, 10, 0], "View", { fund: "F2", amount: "2000", ch: "web" }],
  [1, [2, 10, 0], "Buy", { fund: "F2", amount: 1500 }],
  [2, [0, 12, 0], "View", { fund: "F1", ch: "web" }],
  [2, [0, 12, 30], "View", { fund: "F3", ch: "web" }],
  [2, [1, 12, 0], "Buy", { fund: "F3", amount: 100 }],
  [3, [-1, 23, 0], "View", { fund: "F1", ch: "app" }],
  [3, [0, 8, 0], "Home", {}],
  [3, [0, 8, 1], "Buy", { amount: 300 }],
  [3, [2, 8, 0], "View", { fund: "F2", ch: "app", test: true }],
  [4, [1, 20, 0], "View", { ch: "app" }],
  [4, [1, 20, 10], "Home", {}],
  [4, [4, 9, 0], "Buy", { amount: 50 }],
];

const R = { from: "2026-10-01", to: "2026-10-03" }; // [T0, T0 + 3d)
const td = (ages, hl) => { // time-decay weights, normalised
  const w = ages.map((a) => 2 ** (-a / hl));
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / s);
};
const td1 = td([20 * M, 15 * M, 10 * M], H); // U1's first Buy: Home, View:app, Home
const td3 = td([9 * H + M, M], H); // U3's Buy: View:app, Home
const steps = (names, users, med, p90) => names.map((name, j) => ({
  step: j + 1, name, users: users[j],
  conversion: users[0] ? users[j] / users[0] : 0,
  step_conversion: j === 0 ? (users[0] ? 1 : 0) : users[j - 1] ? users[j] / users[j - 1] : 0,
  median_ms: j === 0 ? null : med[j - 1], p90_ms: j === 0 ? null : p90[j - 1],
}));
const BIN = ["<1m", "1–5m", "5–30m", "30m–1h", "1–3h", "3–12h", "12–24h", "1–3d", "3–7d", "7–14d", "14–30d", "≥30d"];
const hist = (counts) => BIN.map((bin) => ({ bin, count: counts[bin] || 0 }));

const cases = [
  ["events: count, users, sum by day with previous", {
    kind: "events", ...R, interval: "day", compare: "previous",
    series: [{ event: "View" }, { event: "View", measure: "users" }, { event: "Buy", measure: "sum", prop: "amount" }],
  }, {
    // Views: 10-01 U1,U2,U2; 10-02 U1,U4; 10-03 U3. The previous period (09-28..09-30)
    // has U3's View of 09-30 23:00, which moved 3 days on lands in 10-03.
    // Buys: 10-01 500+300, 10-02 100, 10-03 1500 (U4's of 10-05 is out).
    rows: [
      { series: 0, bucket: "2026-10-01", value: 3, previous: 0 },
      { series: 0, bucket: "2026-10-02", value: 2, previous: 0 },
      { series: 0, bucket: "2026-10-03", value: 1, previous: 1 },
      { series: 1, bucket: "2026-10-01", value: 2, previous: 0 },
      { series: 1, bucket: "2026-10-02", value: 2, previous: 0 },
      { series: 1, bucket: "2026-10-03", value: 1, previous: 1 },
      { series: 2, bucket: "2026-10-01", value: 800, previous: 0 },
      { series: 2, bucket: "2026-10-02", value: 100, previous: 0 },
      { series: 2, bucket: "2026-10-03", value: 1500, previous: 0 },
    ],
    totals: [
      { series: 0, value: 6, previous: 1 },
      { series: 1, value: 4, previous: 1 },
      { series: 2, value: 2400, previous: 0 },
    ],
  }],
  ["events: total with breakdown, limit 1, tie by group text", {
    kind: "events", ...R, interval: "total", series: [{ event: "View" }], breakdown: { prop: "ch" }, limit: 1,
  }, {
    // app: U1, U3, U4 = 3; web: U1, U2, U2 = 3; tie -> "app"; web -> $other
    rows: [
      { series: 0, group: "app", bucket: "2026-10-01", value: 3 },
      { series: 0, group: "$other", bucket: "2026-10-01", value: 3 },
    ],
    totals: [{ series: 0, group: "app", value: 3 }, { series: 0, group: "$other", value: 3 }],
  }],
  ["events: week; distinct, avg, sum of a numeric string; where", {
    kind: "events", ...R, interval: "week", where: { not: { prop: "test", op: "=", value: true } },
    series: [{ event: "View", measure: "distinct", prop: "fund" }, { event: "Buy", measure: "avg", prop: "amount" },
      { event: "View", measure: "sum", prop: "amount" }],
  }, {
    // week of Monday 09-28; U3's View with test:true is not seen. funds F1 F2 F1 F3 -> 3;
    // Buys (500+1500+100+300)/4 = 600; View amounts 1000 + "2000" = 3000
    rows: [
      { series: 0, bucket: "2026-09-28", value: 3 },
      { series: 1, bucket: "2026-09-28", value: 600 },
      { series: 2, bucket: "2026-09-28", value: 3000 },
    ],
    totals: [{ series: 0, value: 3 }, { series: 1, value: 600 }, { series: 2, value: 3000 }],
  }],
  ["funnel: sequential, window inclusive, breakdown, dropped_at", {
    kind: "funnel", ...R, steps: [{ event: "View" }, { event: "Buy" }], window: "1d", breakdown: { prop: "ch" }, dropped_at: 1,
  }, {
    // U1: View 09:05 -> Buy 09:20 (15m), chain from the earliest start; U2: View -> Buy
    // exactly 24h later (inclusive); U3: View 10-03, no Buy after; U4: Buy 2.5 days later
    steps: steps(["View", "Buy"], [4, 2], [900000], [900000]),
    groups: [
      { group: "app", steps: steps(["View", "Buy"], [3, 1], [900000], [900000]) },
      { group: "web", steps: steps(["View", "Buy"], [1, 1], [86400000], [86400000]) },
    ],
    dropped: [3, 4],
    dropped_total: 2,
  }],
  ["funnel: strict", {
    kind: "funnel", ...R, steps: [{ event: "View" }, { event: "Buy" }], window: "1d", order: "strict",
  }, {
    // U1: 09:05 View then Home (ends); 10-02 View then Buy 24h later. U2: View View
    // (ends); View 12:30 then Buy 23.5h later. U3, U4: no Buy right after.
    steps: steps(["View", "Buy"], [4, 2], [84600000], [84600000]), groups: [],
  }],
  ["funnel: strict over the where-filtered stream", {
    kind: "funnel", ...R, steps: [{ event: "View" }, { event: "Buy" }], window: "1d", order: "strict",
    where: { any: [{ prop: "fund", op: "is_set" }, { prop: "amount", op: "is_set" }] },
  }, {
    // Home events and U4's View (no fund, no amount) are gone: U1's View 09:05 is
    // now right before the Buy 09:20; U2 as before; U3 level 1; U4 no start
    steps: steps(["View", "Buy"], [3, 2], [900000], [900000]), groups: [],
  }],
  ["funnel: any order", {
    kind: "funnel", ...R, steps: [{ event: "View" }, { event: "Home" }, { event: "Buy" }], window: "2d", order: "any",
  }, {
    // U1: Home +5m, Buy +15m -> 3; U2: no Home -> 1; U3: 1; U4: Home +10m, Buy > 2d -> 2
    steps: steps(["View", "Home", "Buy"], [4, 2, 1], [300000, 900000], [300000, 900000]), groups: [],
  }],
  ["retention: day, exact, breakdown", {
    kind: "retention", ...R, start: { event: "View" }, return: { event: "Buy" }, period: "day", periods: 3,
    breakdown: { prop: "ch" }, limit: 1,
  }, {
    // cohorts: U1, U2 10-01; U4 10-02; U3 10-03 (its 09-30 View is out of range).
    // Buys: U1 +0, +2; U2 +1; U3 before; U4 +3 (10-05, read past `to`)
    cohorts: [
      { cohort: "2026-10-01", users: 2, retained: [1, 1, 0] },
      { cohort: "2026-10-02", users: 1, retained: [0, 0, 1] },
      { cohort: "2026-10-03", users: 1, retained: [0, 0, 0] },
    ],
    total: { users: 4, retained: [1, 1, 1] },
    groups: [
      { group: "app", cohorts: [
        { cohort: "2026-10-01", users: 1, retained: [0, 1, 0] },
        { cohort: "2026-10-02", users: 1, retained: [0, 0, 1] },
        { cohort: "2026-10-03", users: 1, retained: [0, 0, 0] },
      ], total: { users: 3, retained: [0, 1, 1] } },
      { group: "$other", cohorts: [{ cohort: "2026-10-01", users: 1, retained: [1, 0, 0] }],
        total: { users: 1, retained: [1, 0, 0] } },
    ],
  }],
  ["retention: day, unbounded", {
    kind: "retention", ...R, start: { event: "View" }, return: { event: "Buy" }, period: "day", periods: 3, mode: "unbounded",
  }, {
    cohorts: [
      { cohort: "2026-10-01", users: 2, retained: [2, 1, 0] },
      { cohort: "2026-10-02", users: 1, retained: [1, 1, 1] },
      { cohort: "2026-10-03", users: 1, retained: [0, 0, 0] },
    ],
    total: { users: 4, retained: [3, 2, 1] },
  }],
  ["retention: month", {
    kind: "retention", from: "2026-09-28", to: "2026-10-03", start: { event: "View" }, return: { event: "Buy" },
    period: "month", periods: 1,
  }, {
    // U3's first View is 09-30 (September), its Buy 10-01; the others start in October
    cohorts: [{ cohort: "2026-09-01", users: 1, retained: [1] }, { cohort: "2026-10-01", users: 3, retained: [0] }],
    total: { users: 4, retained: [1] },
  }],
  ["retention: week", {
    kind: "retention", ...R, start: { event: "Home" }, return: { event: "Buy" }, period: "week", periods: 1,
  }, {
    // Home: U1, U3, U4, all in the week of 09-28; only U4's Buy (Monday 10-05) is in the next
    cohorts: [{ cohort: "2026-09-28", users: 3, retained: [1] }], total: { users: 3, retained: [1] },
  }],
  ["paths: start, sessions of 30m", {
    kind: "paths", ...R, start: { event: "Home" }, depth: 3,
  }, {
    // U1 [Home View Home]; U3's second session [Home Buy]; U4 [Home] (the Buy is days later)
    paths: [
      { path: ["Home"], count: 1, users: 1 },
      { path: ["Home", "Buy"], count: 1, users: 1 },
      { path: ["Home", "View", "Home"], count: 1, users: 1 },
    ],
    nodes: [
      { depth: 0, name: "Home", count: 3 }, { depth: 1, name: "Buy", count: 1 }, { depth: 1, name: "View", count: 1 },
      { depth: 2, name: "Home", count: 1 },
    ],
    links: [
      { from_depth: 0, from: "Home", to: "Buy", count: 1 }, { from_depth: 0, from: "Home", to: "View", count: 1 },
      { from_depth: 1, from: "View", to: "Home", count: 1 },
    ],
  }],
  ["paths: complete_only", {
    kind: "paths", ...R, start: { event: "Home" }, depth: 3, complete_only: true,
  }, {
    paths: [{ path: ["Home", "View", "Home"], count: 1, users: 1 }],
    nodes: [{ depth: 0, name: "Home", count: 1 }, { depth: 1, name: "View", count: 1 }, { depth: 2, name: "Home", count: 1 }],
    links: [{ from_depth: 0, from: "Home", to: "View", count: 1 }, { from_depth: 1, from: "View", to: "Home", count: 1 }],
  }],
  ["paths: unit user, no session split", {
    kind: "paths", ...R, start: { event: "View" }, depth: 2, unit: "user", session_gap: "0",
  }, {
    // first View in range per customer: U1 [View Home]; U2 [View View]; U3 (10-03) [View]; U4 [View Home]
    paths: [
      { path: ["View", "Home"], count: 2, users: 2 },
      { path: ["View"], count: 1, users: 1 },
      { path: ["View", "View"], count: 1, users: 1 },
    ],
    nodes: [{ depth: 0, name: "View", count: 4 }, { depth: 1, name: "Home", count: 2 }, { depth: 1, name: "View", count: 1 }],
    links: [{ from_depth: 0, from: "View", to: "Home", count: 2 }, { from_depth: 0, from: "View", to: "View", count: 1 }],
  }],
  ["paths: end", {
    kind: "paths", ...R, end: { event: "Buy" }, depth: 3,
  }, {
    // first Buy of each session in range: U1 [View Home Buy] and [Buy]; U2 [Buy]; U3 [Home Buy]
    paths: [
      { path: ["Buy"], count: 2, users: 2 },
      { path: ["Home", "Buy"], count: 1, users: 1 },
      { path: ["View", "Home", "Buy"], count: 1, users: 1 },
    ],
    nodes: [
      { depth: 0, name: "Buy", count: 2 }, { depth: 0, name: "Home", count: 1 }, { depth: 0, name: "View", count: 1 },
      { depth: 1, name: "Buy", count: 1 }, { depth: 1, name: "Home", count: 1 }, { depth: 2, name: "Buy", count: 1 },
    ],
    links: [
      { from_depth: 0, from: "Home", to: "Buy", count: 1 }, { from_depth: 0, from: "View", to: "Home", count: 1 },
      { from_depth: 1, from: "Home", to: "Buy", count: 1 },
    ],
  }],
  ["distribution", { kind: "distribution", ...R, event: { event: "View" } }, {
    rows: [{ n: 1, users: 2 }, { n: 2, users: 2 }], users: 4,
  }],
  ["distribution: where and step where with typed literals", {
    kind: "distribution", ...R, where: { prop: "ch", op: "=", value: "web" },
    event: { event: "View", where: { prop: "fund", op: "in", value: ["F1", "F2"] } },
  }, {
    // web Views: U1 F2, U2 F1, U2 F3 -> U1 1, U2 1
    rows: [{ n: 1, users: 2 }], users: 2,
  }],
  ["interval: View then Buy", {
    kind: "interval", ...R, first: { event: "View" }, then: { event: "Buy" }, window: "1d",
  }, {
    // U1 15m and exactly 24h; U2 23.5h; U3 9h01m (its View is before the range)
    count: 4, min_ms: 900000, p25_ms: 900000, median_ms: 32460000, p75_ms: 84600000, p90_ms: 84600000,
    max_ms: 86400000, avg_ms: 51090000,
    histogram: hist({ "5–30m": 1, "3–12h": 1, "12–24h": 1, "1–3d": 1 }),
  }],
  ["interval: A must come after the previous B", {
    kind: "interval", ...R, first: { event: "View" }, then: { events: ["Buy", "Home"] },
  }, {
    // U1: Home (no A), Home 5m, Buy (its View is before the previous B: none), Buy 24h;
    // U2: 23.5h; U3: Home 9h, Buy none; U4: Home 10m
    count: 5, min_ms: 300000, p25_ms: 600000, median_ms: 32400000, p75_ms: 84600000, p90_ms: 84600000,
    max_ms: 86400000, avg_ms: 40860000,
    histogram: hist({ "5–30m": 2, "3–12h": 1, "12–24h": 1, "1–3d": 1 }),
  }],
  ["map: stages, stalled, moves", {
    kind: "map", ...R, window: "2d", compare: "previous",
    stages: [{ name: "看", events: ["View"] }, { name: "回", events: ["Home"] }, { name: "买", events: ["Buy"] }],
  }, {
    // U1 reaches 买 (View 09:05, Home 09:10, Buy 09:20); U2 and U3 stay at 看; U4 at 回
    // (its Buy is after the range). Previous period: U3's View of 09-30 -> stage 0.
    stages: [
      { stage: 0, name: "看", users: 4, conversion: 0.5, median_ms: null, stalled: 2, stalled_median_ms: 57600000 },
      { stage: 1, name: "回", users: 2, conversion: 0.5, median_ms: 300000, stalled: 1, stalled_median_ms: 100200000 },
      { stage: 2, name: "买", users: 1, conversion: null, median_ms: 600000, stalled: 1, stalled_median_ms: 225600000 },
    ],
    moves: [
      { from: -1, to: 0, users: 1 }, { from: -1, to: 1, users: 1 }, { from: -1, to: 2, users: 1 }, { from: 0, to: 0, users: 1 },
    ],
  }],
  ["attribution: every model", {
    kind: "attribution", ...R, conversion: { event: "Buy" }, touches: [{ event: "View", label_prop: "ch" }, { event: "Home" }],
    lookback: "1d", half_life: "1h",
  }, {
    // U1 09:20: [Home, View:app, Home]; U1 10-03: [View:web] (exactly 24h); U2: [View:web,
    // View:web]; U3: [View:app (9h01m), Home (1m)]
    conversions: 4, unattributed: 0,
    rows: [
      { touch: "Home", touched: 2, first: 1, last: 2, linear: 2 / 3 + 0.5, position: 1.3, time_decay: td1[0] + td1[2] + td3[1] },
      { touch: "View:app", touched: 2, first: 1, last: 0, linear: 1 / 3 + 0.5, position: 0.7, time_decay: td1[1] + td3[0] },
      { touch: "View:web", touched: 2, first: 2, last: 2, linear: 2, position: 2, time_decay: 2 },
    ],
  }],
  ["attribution: value_prop, lookback", {
    kind: "attribution", ...R, conversion: { event: "Buy" }, touches: [{ event: "View", label_prop: "ch" }, { event: "Home" }],
    lookback: "30m", models: ["linear"], value_prop: "amount",
  }, {
    // 30m: U1 09:20 keeps its three touches (500); U1 10-03 and U2 have none; U3 keeps Home (300)
    conversions: 4, unattributed: 2,
    rows: [
      { touch: "Home", touched: 2, linear: (2 / 3) * 500 + 300 },
      { touch: "View:app", touched: 1, linear: 500 / 3 },
    ],
  }],
];

// condition typing (docs/conditions.md), [condition, properties, expected]
const condCases = [
  [{ prop: "a", op: "=", value: "1000" }, { a: 1000 }, true], // number vs numeric string
  [{ prop: "a", op: "=", value: 1 }, { a: "1.0" }, true], // string's number
  [{ prop: "a", op: "=", value: 1 }, { a: "000001" }, false], // not a JSON-style number
  [{ prop: "a", op: "=", value: "1" }, { a: "000001" }, false], // exact text
  [{ prop: "a", op: "<=", value: "C3" }, { a: "R3" }, true], // levels
  [{ prop: "a", op: "=", value: "C3" }, { a: "R3" }, false],
  [{ prop: "a", op: ">", value: "2026-10-01" }, { a: "2026-10-01 00:00:01" }, true],
  [{ prop: "a", op: "<", value: "2026-10-01" }, { a: T0 - 1 }, true], // epoch ms vs local date (UTC+8)
  [{ prop: "a", op: ">=", value: "10" }, { a: "9" }, false], // both numbers
  [{ prop: "a", op: ">=", value: "b" }, { a: "a" }, false], // bytes
  [{ prop: "a", op: "between", value: [1, 5] }, { a: 5 }, true],
  [{ prop: "a", op: "in", value: ["1000", "x"] }, { a: 1000 }, true],
  [{ prop: "a", op: "in", value: ["x", "y"] }, { a: ["z", "y"] }, true],
  [{ prop: "a", op: "contains", value: "ell" }, { a: "hello" }, true],
  [{ prop: "a", op: "contains", value: "y" }, { a: ["x", "y"] }, true],
  [{ prop: "a", op: "!=", value: 1 }, {}, true], // missing
  [{ prop: "a", op: "not_in", value: [1] }, { a: null }, true],
  [{ prop: "a", op: "=", value: 1 }, { a: null }, false],
  [{ prop: "a", op: "not_set" }, { a: null }, true],
  [{ prop: "a", op: "is_set" }, { a: false }, true],
  [{ prop: "a", op: "=", value: true }, { a: true }, true],
  [{ prop: "a", op: ">", value: false }, { a: true }, false], // bools: equality only
  [{ prop: "a", op: "=", value: 1 }, { a: true }, false], // bool vs number
  [{ prop: "a", op: "!=", value: 1 }, { a: [1] }, true], // list vs scalar
  [{ prop: "a", op: "<=", value: { prop: "b" } }, { a: "R2", b: "C3" }, true], // reference
  [{ prop: "a", op: "=", value: { prop: "b" } }, { a: 1 }, false],
  [{ all: [{ prop: "a", op: ">", value: 1 }, { not: { prop: "b", op: "is_set" } }] }, { a: 2 }, true],
  [{ any: [{ prop: "a", op: ">", value: 5 }, { prop: "b", op: "=", value: "x" }] }, { a: 2, b: "x" }, true],
];

const near = (a, b) => a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
function same(a, b, path, diffs) {
  if (typeof a === "number" && typeof b === "number") {
    if (!near(a, b)) diffs.push(`${path}: ${a} != ${b}`);
  } else if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) diffs.push(`${path}: length ${a.length} != ${b.length}`);
    else a.forEach((x, j) => same(x, b[j], `${path}[${j}]`, diffs));
  } else if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
    if (ka.join() !== kb.join()) diffs.push(`${path}: keys ${ka} != ${kb}`);
    else ka.forEach((k) => same(a[k], b[k], `${path}.${k}`, diffs));
  } else if (a !== b) diffs.push(`${path}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`);
}

const dir = mkdtempSync(join(tmpdir(), "oracle-selftest-"));
let passed = 0, failed = 0;
try {
  const evPath = join(dir, "events.ndjson");
  const seen = new Map();
  writeFileSync(evPath, stream.map(([user, [d, h, m], event, properties]) => {
    const i = seen.get(user) || 0;
    seen.set(user, i + 1);
    return JSON.stringify({ user, i, time: at(d, h, m), event, properties });
  }).join("\n") + "\n");

  for (const [c, props, want] of condCases) {
    const got = compileCond(c, 480)(props);
    if (got === want) passed++;
    else { failed++; console.log(`FAIL cond ${JSON.stringify(c)} on ${JSON.stringify(props)}: ${got}`); }
  }
  for (const [n, s] of [[7, "7"], [2.5, "2.5"], [0.1, "0.10000000000000001"], [1e21, "1e+21"], [-1.5e-7, "-1.4999999999999999e-07"], [123456789012, "123456789012"]]) {
    if (g17(n) === s) passed++;
    else { failed++; console.log(`FAIL g17(${n}) = ${g17(n)}, wanted ${s}`); }
  }

  // attribution runs as its CLI (Python); the DuckDB kinds in this process, one
  // in-memory database per query (through the CLI once, to check that path too)
  const rows = readEvents(evPath);
  const results = [];
  for (const [j, [name, q, want]] of cases.entries()) {
    const diffs = [];
    let got = "";
    try {
      if (q.kind === "attribution" || j === 0) {
        const qPath = join(dir, `q${j}.json`);
        writeFileSync(qPath, JSON.stringify(q));
        got = (await run(process.execPath, [join(here, "oracle.mjs"), evPath, qPath])).stdout;
      } else {
        got = JSON.stringify(await answer(rows, q));
      }
      same(JSON.parse(got), want, "$", diffs);
    } catch (e) {
      diffs.push(`failed: ${e.stderr || e.stack}`);
    }
    results.push([name, diffs, got]);
  }
  // paths: past the 20 most frequent names at a depth -> $other. Customers 1..21 do S
  // then X01..X21, customer 22 S then X01: at depth 1 X01 has 2, X02..X21 1 each, so
  // X21 (last by name among the ties) is the 21st and becomes $other.
  {
    const xs = (j) => `X${String(j).padStart(2, "0")}`;
    const many = [];
    for (let u = 1; u <= 22; u++) {
      many.push({ user: u, i: 0, time: at(0, 10), event: "S", properties: {} });
      many.push({ user: u, i: 1, time: at(0, 10, 1), event: u === 22 ? "X01" : xs(u), properties: {} });
    }
    const want = {
      paths: [{ path: ["S", "X01"], count: 2, users: 2 }, { path: ["S", "X02"], count: 1, users: 1 },
        { path: ["S", "X03"], count: 1, users: 1 }],
      nodes: [{ depth: 0, name: "S", count: 22 }, { depth: 1, name: "X01", count: 2 },
        ...Array.from({ length: 19 }, (_, j) => ({ depth: 1, name: xs(j + 2), count: 1 })),
        { depth: 1, name: "$other", count: 1 }],
      links: [{ from_depth: 0, from: "S", to: "X01", count: 2 },
        ...Array.from({ length: 19 }, (_, j) => ({ from_depth: 0, from: "S", to: xs(j + 2), count: 1 })),
        { from_depth: 0, from: "S", to: "$other", count: 1 }],
    };
    const diffs = [];
    let got = "";
    try {
      got = JSON.stringify(await answer(many, { kind: "paths", ...R, start: { event: "S" }, depth: 2, limit: 3 }));
      same(JSON.parse(got), want, "$", diffs);
    } catch (e) {
      diffs.push(`failed: ${e.stack}`);
    }
    results.push(["paths: names past the 20th at a depth become $other", diffs, got]);
  }
  // retention: the group is the value at the first start event even when that is unset
  {
    const few = [
      { user: 1, i: 0, time: at(0, 10), event: "A", properties: {} },
      { user: 1, i: 1, time: at(0, 11), event: "A", properties: { c: "x" } },
      { user: 1, i: 2, time: at(1, 10), event: "B", properties: {} },
    ];
    const want = {
      cohorts: [{ cohort: "2026-10-01", users: 1, retained: [1, 0] }], total: { users: 1, retained: [1, 0] },
      groups: [{ group: null, cohorts: [{ cohort: "2026-10-01", users: 1, retained: [1, 0] }], total: { users: 1, retained: [1, 0] } }],
    };
    const diffs = [];
    let got = "";
    try {
      got = JSON.stringify(await answer(few, { kind: "retention", ...R, start: { event: "A" }, return: { event: "B" },
        periods: 2, breakdown: { prop: "c" } }));
      same(JSON.parse(got), want, "$", diffs);
    } catch (e) {
      diffs.push(`failed: ${e.stack}`);
    }
    results.push(["retention: a null group at the first start event", diffs, got]);
  }
  for (const [name, diffs, stdout] of results) {
    if (diffs.length === 0) { passed++; console.log(`ok   ${name}`); }
    else { failed++; console.log(`FAIL ${name}\n  ${diffs.slice(0, 10).join("\n  ")}\n  got ${stdout.trim()}`); }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
