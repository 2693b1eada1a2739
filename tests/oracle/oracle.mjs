#!/usr/bin/env node
// Waymark analytics oracle: an independent DuckDB computation of the answers of
// docs/analytics.md, for the integration tests to compare the C engine's with.
//
//   node tests/oracle/oracle.mjs EVENTS.ndjson QUERY.json   > answer.json
//
// EVENTS.ndjson: {"user":123,"i":0,"time":ms,"event":"X","properties":{...}} per
// line, (user, i) being the stream order. QUERY.json: the request body with
// "kind". Attribution is answered by attribution.py (this script hands it over).
// What the docs leave open, and how it is read here: NOTES.md.
//
// JavaScript only reads the rows and evaluates the `where` / spec conditions and
// property readings of each row on its own (docs/conditions.md typing); every
// per-customer computation (streams, chains, cohorts, sessions, pairs) is SQL.

import { readFileSync, realpathSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { compileCond, compileSpec, parseDuration, valueText, numericValue } from "./cond.mjs";

const DAY = 86400000;

class OracleError extends Error {}
function fail(msg) {
  throw new OracleError(msg);
}

function readEvents(path) {
  const rows = [];
  const text = readFileSync(path, "utf8");
  let ln = 0;
  for (const line of text.split("\n")) {
    ln++;
    if (!line.trim()) continue;
    let r;
    try { r = JSON.parse(line); } catch (e) { fail(`${path}:${ln}: ${e.message}`); }
    if (!Number.isInteger(r.user) || !Number.isInteger(r.i) || !Number.isInteger(r.time) || typeof r.event !== "string")
      fail(`${path}:${ln}: needs integer user, i, time and a string event`);
    if (!r.properties || typeof r.properties !== "object") r.properties = {};
    rows.push(r);
  }
  return rows;
}

function dayOf(date, what) {
  const m = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/.exec(date || "");
  if (!m) fail(`${what}: a local date YYYY-MM-DD`);
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) / DAY;
}

// bigint -> number, recursively (DuckDB BIGINT and HUGEINT come back as bigint)
function plain(v) {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = plain(x);
    return o;
  }
  return v;
}

const sqlStr = (s) => (s === null || s === undefined ? "NULL" : `'${String(s).replace(/'/g, "''")}'`);

class Db {
  async open() {
    this.inst = await DuckDBInstance.create(":memory:", { threads: "2" });
    this.con = await this.inst.connect();
  }
  async run(sql) {
    if (process.env.ORACLE_DEBUG) process.stderr.write(sql + ";\n");
    await this.con.run(sql);
  }
  async all(sql) {
    if (process.env.ORACLE_DEBUG) process.stderr.write(sql + ";\n");
    const r = await this.con.runAndReadAll(sql);
    return plain(r.getRowObjectsJS());
  }
  // cols: [{name, type: BIGINT|INTEGER|VARCHAR|BOOLEAN|DOUBLE, get(row)}]
  async load(table, cols, rows) {
    await this.run(`CREATE TABLE ${table} (${cols.map((c) => `${c.name} ${c.type}`).join(", ")})`);
    const ap = await this.con.createAppender(table);
    for (const r of rows) {
      for (const c of cols) {
        const v = c.get(r);
        if (v === null || v === undefined) ap.appendNull();
        else if (c.type === "BIGINT") ap.appendBigInt(BigInt(v));
        else if (c.type === "INTEGER") ap.appendInteger(v);
        else if (c.type === "VARCHAR") ap.appendVarchar(v);
        else if (c.type === "BOOLEAN") ap.appendBoolean(v);
        else if (c.type === "DOUBLE") ap.appendDouble(v);
        else throw new Error(`type ${c.type}`);
      }
      ap.endRow();
    }
    ap.closeSync();
  }
}

// ---------------------------------------------------------------------------
// The common part of every query: range, where, breakdown, the stream table.

function common(q) {
  const off = q.utc_offset_min === undefined ? 480 : q.utc_offset_min;
  if (!Number.isInteger(off)) fail("utc_offset_min: an integer");
  const fromDay = dayOf(q.from, "from");
  const toDay = dayOf(q.to, "to");
  if (toDay < fromDay) fail("to is before from");
  const OFF = off * 60000;
  const lo = fromDay * DAY - OFF; // first ms of the range
  const hi = (toDay + 1) * DAY - OFF; // first ms after the range
  const where = compileCond(q.where, off, "$.where");
  let bprop = null;
  if (q.breakdown !== undefined && q.breakdown !== null) {
    if (typeof q.breakdown.prop !== "string" || Object.keys(q.breakdown).length !== 1)
      fail('breakdown: the oracle does {"prop": name} only');
    bprop = q.breakdown.prop;
  }
  const limit = q.limit === undefined ? 10 : q.limit;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) fail("limit: 1-100");
  return { off, OFF, fromDay, toDay, lo, hi, len: hi - lo, where, bprop, limit };
}

// Loads the rows into `ev` with the where flag, the breakdown text g and one
// flag per spec (m0, m1, ...), plus extra columns; then `s`, the stream: the
// rows that pass where, numbered pos = 1.. per customer in stream order.
async function loadStream(db, rows, c, specs, extra = []) {
  const fs = specs.map((sp, k) => compileSpec(sp, c.off, `spec ${k}`));
  const cols = [
    { name: "user_id", type: "BIGINT", get: (r) => r.user },
    { name: "i", type: "BIGINT", get: (r) => r.i },
    { name: "t", type: "BIGINT", get: (r) => r.time },
    { name: "event", type: "VARCHAR", get: (r) => r.event },
    { name: "w", type: "BOOLEAN", get: (r) => c.where(r.properties) },
    { name: "g", type: "VARCHAR", get: (r) => (c.bprop === null ? null : valueText(r.properties[c.bprop])) },
    ...fs.map((f, k) => ({ name: `m${k}`, type: "BOOLEAN", get: (r) => f(r) })),
    ...extra,
  ];
  await db.load("ev", cols, rows);
  await db.run(`CREATE TABLE s AS
    SELECT * EXCLUDE (w), row_number() OVER (PARTITION BY user_id ORDER BY i) AS pos
    FROM ev WHERE w`);
}

// the q-quantile rule of the docs: x[floor(q*(n-1))] of the sorted values
const quant = (list, q) => `(CASE WHEN len(${list}) = 0 THEN NULL ELSE list_sort(${list})[CAST(floor(${q} * (len(${list}) - 1)) AS BIGINT) + 1] END)`;

// Ranks groups: `figures` rows {g, v}; by v descending (null lowest), then g
// ascending by bytes with the null group last. Returns the kept g values.
async function rankGroups(db, table, limit) {
  const rows = await db.all(`SELECT g FROM ${table}
    ORDER BY v DESC NULLS LAST, g ASC NULLS LAST LIMIT ${limit}`);
  return rows.map((r) => r.g);
}

// ---------------------------------------------------------------------------
// events

const BUCKET = {
  hour: (ts) => `strftime(date_trunc('hour', ${ts}), '%Y-%m-%d %H:00')`,
  day: (ts) => `strftime(${ts}, '%Y-%m-%d')`,
  week: (ts) => `strftime(date_trunc('week', ${ts}), '%Y-%m-%d')`,
  month: (ts) => `strftime(date_trunc('month', ${ts}), '%Y-%m-%d')`,
};

async function kindEvents(db, rows, q) {
  const c = common(q);
  const series = q.series;
  if (!Array.isArray(series) || series.length === 0) fail("series: a non-empty list");
  const interval = q.interval || "day";
  if (!(interval in BUCKET) && interval !== "total") fail(`interval: ${interval}`);
  const compare = q.compare === "previous";
  const extra = [];
  series.forEach((s, k) => {
    const measure = s.measure || "count";
    if (!["count", "users", "sum", "avg", "min", "max", "distinct"].includes(measure)) fail(`series[${k}].measure: ${measure}`);
    if (measure !== "count" && measure !== "users" && typeof s.prop !== "string") fail(`series[${k}].prop is needed for ${measure}`);
    extra.push({ name: `n${k}`, type: "DOUBLE", get: (r) => (s.prop ? numericValue(r.properties[s.prop]) : null) });
    extra.push({ name: `d${k}`, type: "VARCHAR", get: (r) => (s.prop ? valueText(r.properties[s.prop]) : null) });
  });
  await loadStream(db, rows, c, series, extra);
  const label = interval === "total" ? () => sqlStr(q.from) : (x) => BUCKET[interval](`epoch_ms(${x} + ${c.OFF})`);
  // every series' events of this period (cur) and of the previous one (prev),
  // the previous period's times moved forward by the range's length
  const parts = series.map((s, k) => `
    SELECT ${k} AS k, user_id, t AS tt, g, n${k} AS n, d${k} AS d, 'cur' AS period FROM s WHERE m${k} AND t >= ${c.lo} AND t < ${c.hi}
    UNION ALL
    SELECT ${k}, user_id, t + ${c.len}, g, n${k}, d${k}, 'prev' FROM s WHERE m${k} AND t >= ${c.lo - c.len} AND t < ${c.lo}`);
  await db.run(`CREATE TABLE ser AS SELECT *, ${label("tt")} AS bucket FROM (${parts.join(" UNION ALL ")})`);
  const agg = (m) => ({
    count: "count(*)",
    users: "count(DISTINCT user_id)",
    sum: "coalesce(sum(n), 0)",
    avg: "avg(n)",
    min: "min(n)",
    max: "max(n)",
    distinct: "count(DISTINCT d)",
  })[m];
  const zero = (m) => (["avg", "min", "max"].includes(m) ? null : 0);
  const buckets = (await db.all(`SELECT DISTINCT ${label("x")} AS b FROM range(${c.lo}, ${c.hi}, 3600000) r(x) ORDER BY b`)).map((r) => r.b);
  const out = { rows: [], totals: [] };
  for (let k = 0; k < series.length; k++) {
    const m = series[k].measure || "count";
    let groups = [null];
    let mapped = "g";
    if (c.bprop !== null) {
      await db.run(`CREATE OR REPLACE TABLE fig AS SELECT g, ${agg(m)} AS v FROM ser WHERE k = ${k} AND period = 'cur' GROUP BY g`);
      const kept = await rankGroups(db, "fig", c.limit);
      await db.run(`CREATE OR REPLACE TABLE kept AS SELECT * FROM (VALUES ${kept.map((g, j) => `(CAST(${sqlStr(g)} AS VARCHAR), ${j})`).join(", ") || "(CAST(NULL AS VARCHAR), -1)"}) v(g, rank) WHERE rank >= 0`);
      mapped = `(CASE WHEN EXISTS (SELECT 1 FROM kept WHERE kept.g IS NOT DISTINCT FROM ser.g) THEN ser.g ELSE '$other' END)`;
      const other = await db.all(`SELECT count(*) AS n FROM ser WHERE k = ${k} AND NOT EXISTS (SELECT 1 FROM kept WHERE kept.g IS NOT DISTINCT FROM ser.g)`);
      groups = other[0].n > 0 ? [...kept, "$other"] : kept;
    }
    const cells = await db.all(`SELECT ${mapped} AS grp, bucket, period, ${agg(m)} AS v FROM ser WHERE k = ${k} GROUP BY ALL`);
    const tots = await db.all(`SELECT ${mapped} AS grp, period, ${agg(m)} AS v FROM ser WHERE k = ${k} GROUP BY ALL`);
    const key = (g, b, p) => JSON.stringify([g, b, p]);
    const cell = new Map(cells.map((r) => [key(r.grp, r.bucket, r.period), r.v]));
    const tot = new Map(tots.map((r) => [key(r.grp, null, r.period), r.v]));
    const get = (mp, kk) => (mp.has(kk) ? mp.get(kk) : zero(m));
    for (const g of groups) {
      for (const b of buckets) {
        const row = { series: k };
        if (c.bprop !== null) row.group = g;
        row.bucket = b;
        row.value = get(cell, key(g, b, "cur"));
        if (compare) row.previous = get(cell, key(g, b, "prev"));
        out.rows.push(row);
      }
      const t = { series: k };
      if (c.bprop !== null) t.group = g;
      t.value = get(tot, key(g, null, "cur"));
      if (compare) t.previous = get(tot, key(g, null, "prev"));
      out.totals.push(t);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// funnel (and the journey map's stages)

// Builds table `cust` (user_id, lvl, g, t1..tn of the customer's chain) for the
// steps flagged m{base}..m{base+n-1} in `s`, chains starting in [lo, hi) and
// (when stepsBefore) later steps before `stepsBefore`.
async function funnelChains(db, n, order, windowMs, lo, hi, base = 0, stepsBefore = null, tag = "") {
  const m = (k) => `m${base + k - 1}`; // flag of step k (1-based)
  const late = stepsBefore === null ? "" : ` AND e.t < ${stepsBefore}`;
  await db.run(`CREATE OR REPLACE TABLE ${tag}c1 AS
    SELECT user_id, pos AS p1, t AS t1, pos AS pk, t AS tk, g FROM s WHERE ${m(1)} AND t >= ${lo} AND t < ${hi}`);
  for (let k = 2; k <= n; k++) {
    await db.run(`CREATE OR REPLACE TABLE ${tag}e${k} AS SELECT user_id, pos, t FROM s WHERE ${m(k)}`);
    if (order === "sequential") {
      // the earliest step-k event after step k-1 (positions ascend with time)
      await db.run(`CREATE OR REPLACE TABLE ${tag}c${k} AS
        SELECT c.user_id, c.p1, c.t1, e.pos AS pk, e.t AS tk FROM ${tag}c${k - 1} c
        ASOF JOIN ${tag}e${k} e ON c.user_id = e.user_id AND c.pk < e.pos
        WHERE e.t - c.t1 <= ${windowMs}${late}`);
    } else if (order === "strict") {
      await db.run(`CREATE OR REPLACE TABLE ${tag}c${k} AS
        SELECT c.user_id, c.p1, c.t1, e.pos AS pk, e.t AS tk FROM ${tag}c${k - 1} c
        JOIN ${tag}e${k} e ON c.user_id = e.user_id AND e.pos = c.pk + 1
        WHERE e.t - c.t1 <= ${windowMs}${late}`);
    } else {
      // any: each step's earliest event after the start, independently
      await db.run(`CREATE OR REPLACE TABLE ${tag}c${k} AS
        SELECT c.user_id, c.p1, c.t1, e.pos AS pk, e.t AS tk FROM ${tag}c1 c
        ASOF JOIN ${tag}e${k} e ON c.user_id = e.user_id AND c.p1 < e.pos
        WHERE e.t - c.t1 <= ${windowMs}${late}`);
    }
  }
  const joins = [];
  const ts = ["c1.t1 AS t1"];
  for (let k = 2; k <= n; k++) {
    joins.push(`LEFT JOIN ${tag}c${k} ON ${tag}c${k}.user_id = c1.user_id AND ${tag}c${k}.p1 = c1.p1`);
    ts.push(`${tag}c${k}.tk AS t${k}`);
  }
  // level: steps reached; in `any` order the run of steps 2..k that all have one
  let lvl = `${n}`;
  for (let k = n; k >= 2; k--) lvl = `CASE WHEN t${k} IS NULL THEN ${k - 1} ELSE ${lvl} END`;
  await db.run(`CREATE OR REPLACE TABLE ${tag}chains AS
    SELECT *, ${lvl} AS lvl FROM (SELECT c1.user_id, c1.p1, c1.g, ${ts.join(", ")} FROM ${tag}c1 c1 ${joins.join(" ")})`);
  // the customer's chain: the earliest start reaching their largest level
  await db.run(`CREATE OR REPLACE TABLE ${tag}cust AS
    SELECT * FROM ${tag}chains QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY lvl DESC, p1) = 1`);
}

// per step: users, conversion, step_conversion, median_ms, p90_ms over `cust`
// rows selected by `filter`
async function funnelSteps(db, n, order, names, filter, tag = "") {
  const sel = [];
  for (let k = 1; k <= n; k++) {
    sel.push(`count(*) FILTER (WHERE lvl >= ${k}) AS u${k}`);
    if (k >= 2) {
      const from = order === "any" ? "t1" : `t${k - 1}`;
      const l = `list(t${k} - ${from}) FILTER (WHERE lvl >= ${k})`;
      sel.push(`${quant(l, 0.5)} AS med${k}`, `${quant(l, 0.9)} AS p90${k}`);
    }
  }
  const [r] = await db.all(`SELECT ${sel.join(", ")} FROM ${tag}cust WHERE ${filter}`);
  const steps = [];
  for (let k = 1; k <= n; k++) {
    const u = r[`u${k}`];
    const prev = k === 1 ? u : r[`u${k - 1}`];
    steps.push({
      step: k,
      name: names[k - 1],
      users: u,
      conversion: r.u1 > 0 ? u / r.u1 : 0.0,
      step_conversion: prev > 0 ? u / prev : 0.0,
      median_ms: k === 1 ? null : r[`med${k}`],
      p90_ms: k === 1 ? null : r[`p90${k}`],
    });
  }
  return steps;
}

const specName = (sp) => (typeof sp.event === "string" ? sp.event : Array.isArray(sp.events) ? sp.events.join("|") : null);

async function kindFunnel(db, rows, q) {
  const c = common(q);
  const steps = q.steps;
  if (!Array.isArray(steps) || steps.length < 2 || steps.length > 16) fail("steps: 2 to 16");
  const order = q.order || "sequential";
  if (!["sequential", "strict", "any"].includes(order)) fail(`order: ${order}`);
  const windowMs = parseDuration(q.window === undefined ? "7d" : q.window, "$.window");
  const n = steps.length;
  await loadStream(db, rows, c, steps);
  await funnelChains(db, n, order, windowMs, c.lo, c.hi);
  const names = steps.map((sp) => (sp.name !== undefined ? sp.name : specName(sp)));
  const out = { steps: await funnelSteps(db, n, order, names, "true"), groups: [] };
  if (c.bprop !== null) {
    await db.run(`CREATE TABLE fig AS SELECT g, count(*) AS v FROM cust GROUP BY g`);
    const kept = await rankGroups(db, "fig", c.limit);
    for (const g of kept)
      out.groups.push({ group: g, steps: await funnelSteps(db, n, order, names, g === null ? "g IS NULL" : `g = ${sqlStr(g)}`) });
    const rest = kept.map((g) => (g === null ? "g IS NOT NULL" : `g IS DISTINCT FROM ${sqlStr(g)}`)).join(" AND ") || "true";
    const [{ n: left }] = await db.all(`SELECT count(*) AS n FROM cust WHERE ${rest}`);
    if (left > 0) out.groups.push({ group: "$other", steps: await funnelSteps(db, n, order, names, rest) });
  }
  if (q.dropped_at !== undefined) {
    const k = q.dropped_at;
    if (!Number.isInteger(k) || k < 1 || k > n) fail("dropped_at: a step number");
    out.dropped = (await db.all(`SELECT user_id FROM cust WHERE lvl = ${k} ORDER BY user_id LIMIT 10000`)).map((r) => r.user_id);
    out.dropped_total = (await db.all(`SELECT count(*) AS n FROM cust WHERE lvl = ${k}`))[0].n;
  }
  return out;
}

// ---------------------------------------------------------------------------
// retention

async function kindRetention(db, rows, q) {
  const c = common(q);
  const period = q.period || "day";
  if (!["day", "week", "month"].includes(period)) fail(`period: ${period}`);
  const N = q.periods === undefined ? 7 : q.periods;
  if (!Number.isInteger(N) || N < 1 || N > 60) fail("periods: 1-60");
  const mode = q.mode || "exact";
  if (!["exact", "unbounded"].includes(mode)) fail(`mode: ${mode}`);
  if (!q.start || !q.return) fail("start and return are needed");
  await loadStream(db, rows, c, [q.start, q.return]);
  // period number of a time: days / weeks (Monday) / months of the local date
  const local = (t) => `CAST(epoch_ms(${t} + ${c.OFF}) AS DATE)`;
  const pnum = {
    day: (t) => `date_diff('day', DATE '2000-01-03', ${local(t)})`,
    week: (t) => `date_diff('day', DATE '2000-01-03', date_trunc('week', ${local(t)}))::BIGINT // 7`,
    month: (t) => `(year(${local(t)}) * 12 + month(${local(t)}) - 1)`,
  }[period];
  const plabel = {
    day: (p) => `strftime(DATE '2000-01-03' + CAST(${p} AS INTEGER), '%Y-%m-%d')`,
    week: (p) => `strftime(DATE '2000-01-03' + CAST(${p} * 7 AS INTEGER), '%Y-%m-%d')`,
    month: (p) => `strftime(make_date(CAST(${p} // 12 AS BIGINT), CAST(${p} % 12 + 1 AS BIGINT), 1), '%Y-%m-%d')`,
  }[period];
  await db.run(`CREATE TABLE firsts AS
    SELECT user_id, ${pnum("t")} AS cohort, g
    FROM s WHERE m0 AND t >= ${c.lo} AND t < ${c.hi}
    QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY pos) = 1`);
  // the periods after the cohort (1..N) in which the customer returned
  await db.run(`CREATE TABLE back AS
    SELECT DISTINCT f.user_id, ${pnum("s.t")} - f.cohort AS k
    FROM firsts f JOIN s ON s.user_id = f.user_id AND s.m1
    WHERE ${pnum("s.t")} - f.cohort BETWEEN 1 AND ${N}`);
  const retainedAt = mode === "exact"
    ? `EXISTS (SELECT 1 FROM back b WHERE b.user_id = f.user_id AND b.k = kk.k)`
    : `EXISTS (SELECT 1 FROM back b WHERE b.user_id = f.user_id AND b.k >= kk.k)`;
  await db.run(`CREATE TABLE ret AS
    SELECT f.user_id, f.cohort, f.g, kk.k, ${retainedAt} AS kept
    FROM firsts f CROSS JOIN range(1, ${N + 1}) kk(k)`);
  const block = async (filter) => {
    const rs = await db.all(`SELECT cohort, ${plabel("cohort")} AS label, list(n ORDER BY k) AS retained
      FROM (SELECT cohort, k, count(*) FILTER (WHERE kept) AS n FROM ret WHERE ${filter} GROUP BY cohort, k)
      GROUP BY cohort ORDER BY cohort`);
    const us = await db.all(`SELECT cohort, count(*) AS users FROM firsts WHERE ${filter} GROUP BY cohort`);
    const umap = new Map(us.map((r) => [r.cohort, r.users]));
    const cohorts = rs.map((r) => ({ cohort: r.label, users: umap.get(r.cohort), retained: r.retained }));
    const total = { users: 0, retained: new Array(N).fill(0) };
    for (const co of cohorts) {
      total.users += co.users;
      co.retained.forEach((x, j) => (total.retained[j] += x));
    }
    return { cohorts, total };
  };
  const out = await block("true");
  if (c.bprop !== null) {
    out.groups = [];
    await db.run(`CREATE TABLE fig AS SELECT g, count(*) AS v FROM firsts GROUP BY g`);
    const kept = await rankGroups(db, "fig", c.limit);
    for (const g of kept) out.groups.push({ group: g, ...(await block(g === null ? "g IS NULL" : `g = ${sqlStr(g)}`)) });
    const rest = kept.map((g) => (g === null ? "g IS NOT NULL" : `g IS DISTINCT FROM ${sqlStr(g)}`)).join(" AND ") || "true";
    const [{ n: left }] = await db.all(`SELECT count(*) AS n FROM firsts WHERE ${rest}`);
    if (left > 0) out.groups.push({ group: "$other", ...(await block(rest)) });
  }
  return out;
}

// ---------------------------------------------------------------------------
// paths

async function kindPaths(db, rows, q) {
  const c = common(q);
  const hasStart = q.start !== undefined, hasEnd = q.end !== undefined;
  if (hasStart === hasEnd) fail("paths: exactly one of start and end");
  const D = q.depth === undefined ? 5 : q.depth;
  if (!Number.isInteger(D) || D < 2 || D > 10) fail("depth: 2-10");
  const gap = parseDuration(q.session_gap === undefined ? "30m" : q.session_gap, "$.session_gap");
  const unit = q.unit || "session";
  if (!["session", "user"].includes(unit)) fail(`unit: ${unit}`);
  const limit = q.limit === undefined ? 10 : q.limit;
  await loadStream(db, rows, c, [hasStart ? q.start : q.end]);
  const split = gap === 0 ? "false" : `t - lag(t) OVER (PARTITION BY user_id ORDER BY pos) > ${gap}`;
  await db.run(`CREATE TABLE ss AS
    SELECT *, sum(CASE WHEN brk THEN 1 ELSE 0 END) OVER (PARTITION BY user_id ORDER BY pos) AS sid
    FROM (SELECT *, coalesce(${split}, false) AS brk FROM s)`);
  const part = unit === "session" ? "user_id, sid" : "user_id";
  await db.run(`CREATE TABLE anchors AS
    SELECT user_id, sid, pos FROM ss WHERE m0 AND t >= ${c.lo} AND t < ${c.hi}
    QUALIFY row_number() OVER (PARTITION BY ${part} ORDER BY pos) = 1`);
  const span = hasStart ? `e.pos BETWEEN a.pos AND a.pos + ${D - 1}` : `e.pos BETWEEN a.pos - ${D - 1} AND a.pos`;
  await db.run(`CREATE TABLE paths AS
    SELECT a.user_id, a.pos, list(e.event ORDER BY e.pos) AS path
    FROM anchors a JOIN ss e ON e.user_id = a.user_id AND e.sid = a.sid AND ${span}
    GROUP BY a.user_id, a.pos`);
  if (q.complete_only === true) await db.run(`DELETE FROM paths WHERE len(path) <> ${D}`);
  const top = await db.all(`SELECT path, count(*) AS count, count(DISTINCT user_id) AS users
    FROM paths GROUP BY path ORDER BY count DESC, path ASC LIMIT ${limit}`);
  // nodes: name per depth (index in the path), past the 20 most frequent -> $other
  await db.run(`CREATE TABLE steps AS SELECT user_id, pos, d - 1 AS depth, path[d] AS name
    FROM (SELECT *, unnest(range(1, len(path) + 1)) AS d FROM paths)`);
  await db.run(`CREATE TABLE nodecount AS SELECT depth, name, count(*) AS n,
      row_number() OVER (PARTITION BY depth ORDER BY count(*) DESC, name) AS rk
    FROM steps GROUP BY depth, name`);
  await db.run(`CREATE TABLE named AS SELECT s.user_id, s.pos, s.depth,
      CASE WHEN nc.rk <= 20 THEN s.name ELSE '$other' END AS name
    FROM steps s JOIN nodecount nc ON nc.depth = s.depth AND nc.name = s.name`);
  const nodes = await db.all(`SELECT depth, name, count(*) AS count FROM named GROUP BY depth, name
    ORDER BY depth, (name = '$other'), count DESC, name`);
  const links = await db.all(`SELECT a.depth AS from_depth, a.name AS "from", b.name AS "to", count(*) AS count
    FROM named a JOIN named b ON a.user_id = b.user_id AND a.pos = b.pos AND b.depth = a.depth + 1
    GROUP BY a.depth, a.name, b.name
    ORDER BY from_depth, (a.name = '$other'), (b.name = '$other'), count DESC, a.name, b.name`);
  return { paths: top, nodes, links };
}

// ---------------------------------------------------------------------------
// distribution

async function kindDistribution(db, rows, q) {
  const c = common(q);
  if (!q.event) fail("event: a spec");
  await loadStream(db, rows, c, [q.event]);
  const r = await db.all(`SELECT n, count(*) AS users FROM
      (SELECT user_id, count(*) AS n FROM s WHERE m0 AND t >= ${c.lo} AND t < ${c.hi} GROUP BY user_id)
    GROUP BY n ORDER BY n`);
  return { rows: r, users: r.reduce((a, x) => a + x.users, 0) };
}

// ---------------------------------------------------------------------------
// interval

const BINS = [
  ["<1m", 0], ["1–5m", 60000], ["5–30m", 300000], ["30m–1h", 1800000], ["1–3h", 3600000],
  ["3–12h", 3 * 3600000], ["12–24h", 12 * 3600000], ["1–3d", DAY], ["3–7d", 3 * DAY],
  ["7–14d", 7 * DAY], ["14–30d", 14 * DAY], ["≥30d", 30 * DAY],
];

async function kindInterval(db, rows, q) {
  const c = common(q);
  if (!q.first || !q.then) fail("first and then: specs");
  const windowMs = parseDuration(q.window === undefined ? "30d" : q.window, "$.window");
  await loadStream(db, rows, c, [q.first, q.then]);
  await db.run(`CREATE TABLE bs AS SELECT user_id, pos, t,
      coalesce(lag(pos) OVER (PARTITION BY user_id ORDER BY pos), 0) AS prevb FROM s WHERE m1`);
  await db.run(`CREATE TABLE ase AS SELECT user_id, pos, t FROM s WHERE m0`);
  // the latest A strictly before B; it counts when it is after the previous B
  await db.run(`CREATE TABLE pairs AS SELECT b.t - a.t AS d
    FROM bs b ASOF JOIN ase a ON b.user_id = a.user_id AND b.pos > a.pos
    WHERE b.t >= ${c.lo} AND b.t < ${c.hi} AND a.pos > b.prevb AND b.t - a.t <= ${windowMs}`);
  const L = "list(d)";
  const binExpr = BINS.map(([, lo], j) => `count(*) FILTER (WHERE d >= ${lo}${j + 1 < BINS.length ? ` AND d < ${BINS[j + 1][1]}` : ""}) AS h${j}`);
  const [r] = await db.all(`SELECT count(*) AS count, min(d) AS min_ms, ${quant(L, 0.25)} AS p25_ms,
      ${quant(L, 0.5)} AS median_ms, ${quant(L, 0.75)} AS p75_ms, ${quant(L, 0.9)} AS p90_ms,
      max(d) AS max_ms, avg(d) AS avg_ms, ${binExpr.join(", ")} FROM pairs`);
  const out = { count: r.count, min_ms: r.min_ms, p25_ms: r.p25_ms, median_ms: r.median_ms, p75_ms: r.p75_ms,
    p90_ms: r.p90_ms, max_ms: r.max_ms, avg_ms: r.avg_ms, histogram: BINS.map(([bin], j) => ({ bin, count: r[`h${j}`] })) };
  return out;
}

// ---------------------------------------------------------------------------
// journey map

async function kindMap(db, rows, q) {
  const c = common(q);
  const stages = q.stages;
  if (!Array.isArray(stages) || stages.length < 2 || stages.length > 16) fail("stages: 2 to 16");
  const windowMs = parseDuration(q.window === undefined ? "30d" : q.window, "$.window");
  const n = stages.length;
  await loadStream(db, rows, c, stages.map((st) => ({ event: st.event, events: st.events, where: st.where })));
  // a sequential funnel whose stages are all read up to the end of the range
  await funnelChains(db, n, "sequential", windowMs, c.lo, c.hi, 0, c.hi);
  const sel = [];
  for (let k = 1; k <= n; k++) {
    sel.push(`count(*) FILTER (WHERE lvl >= ${k}) AS u${k}`, `count(*) FILTER (WHERE lvl = ${k}) AS st${k}`,
      `${quant(`list(${c.hi} - t${k}) FILTER (WHERE lvl = ${k})`, 0.5)} AS sm${k}`);
    if (k >= 2) sel.push(`${quant(`list(t${k} - t${k - 1}) FILTER (WHERE lvl >= ${k})`, 0.5)} AS med${k}`);
  }
  const [r] = await db.all(`SELECT ${sel.join(", ")} FROM cust`);
  const out = { stages: [] };
  for (let k = 1; k <= n; k++) {
    out.stages.push({
      stage: k - 1,
      name: stages[k - 1].name,
      users: r[`u${k}`],
      conversion: k === n ? null : r[`u${k}`] > 0 ? r[`u${k + 1}`] / r[`u${k}`] : 0.0,
      median_ms: k === 1 ? null : r[`med${k}`],
      stalled: r[`st${k}`],
      stalled_median_ms: r[`sm${k}`],
    });
  }
  if (q.compare === "previous") {
    await funnelChains(db, n, "sequential", windowMs, c.lo - c.len, c.lo, 0, c.lo, "prev_");
    const mv = await db.all(`SELECT coalesce(p.lvl, 0) - 1 AS "from", coalesce(cu.lvl, 0) - 1 AS "to", count(*) AS users
      FROM prev_cust p FULL OUTER JOIN cust cu ON p.user_id = cu.user_id
      GROUP BY ALL ORDER BY "from", "to"`);
    out.moves = mv;
  }
  return out;
}

// ---------------------------------------------------------------------------

const KINDS = { events: kindEvents, funnel: kindFunnel, retention: kindRetention, paths: kindPaths,
  distribution: kindDistribution, interval: kindInterval, map: kindMap };

// The answer to query q over the rows (objects of the NDJSON lines), for every
// kind but attribution (attribution.py). Throws on a query it cannot answer.
export async function answer(rows, q) {
  const fn = KINDS[q.kind];
  if (!fn) fail(`kind: ${JSON.stringify(q.kind)} is not one this script answers`);
  const db = new Db();
  await db.open();
  try {
    return await fn(db, rows, q);
  } finally {
    db.con.closeSync();
    db.inst.closeSync();
  }
}

export { readEvents };

async function main() {
  const [evPath, qPath] = process.argv.slice(2);
  if (!evPath || !qPath) fail("usage: node tests/oracle/oracle.mjs EVENTS.ndjson QUERY.json");
  let q;
  try { q = JSON.parse(readFileSync(qPath, "utf8")); } catch (e) { fail(`${qPath}: ${e.message}`); }
  if (q.kind === "attribution") {
    const py = join(dirname(fileURLToPath(import.meta.url)), "attribution.py");
    const r = spawnSync("python3", [py, evPath, qPath], { stdio: "inherit" });
    process.exit(r.status === null ? 2 : r.status);
  }
  const out = await answer(readEvents(evPath), q);
  process.stdout.write(JSON.stringify(out) + "\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  main().catch((e) => {
    process.stderr.write(`oracle: ${e instanceof OracleError ? e.message : e.stack}\n`);
    process.exit(2);
  });
}
