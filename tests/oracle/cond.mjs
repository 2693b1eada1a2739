// Event-property conditions (docs/conditions.md) for the oracle: all / any / not /
// prop predicates, with the typing rules of that page. Written from the page, not
// from the C code. Each event is tested on its own, row by row.

const NUM_RE = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;
const LEVEL_RE = /^[CcRr]([0-9])$/;
const DATE_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[ T]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{3}))?)?)?$/;

export function strNumber(s) {
  return NUM_RE.test(s) ? Number(s) : null;
}
function strLevel(s) {
  const m = LEVEL_RE.exec(s);
  return m ? Number(m[1]) : null;
}
// wall-clock milliseconds of a date string (no zone applied)
function strWall(s) {
  const m = DATE_RE.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se, ms] = m.slice(1).map((x) => (x === undefined ? 0 : Number(x)));
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) return null;
  const w = Date.UTC(y, mo - 1, d, h, mi, se, ms);
  const back = new Date(w);
  if (back.getUTCDate() !== d) return null; // 2026-02-30
  return w;
}

// printf("%.17g") in JS: the number text the docs use for numbers (7 -> "7").
export function g17(n) {
  if (!Number.isFinite(n)) return String(n);
  if (n === 0) return Object.is(n, -0) ? "-0" : "0";
  const ex = n.toExponential(16);
  const [mant, es] = ex.split("e");
  const e = Number(es);
  const strip = (s) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
  if (e < -4 || e >= 17) {
    const a = Math.abs(e);
    return strip(mant) + "e" + (e < 0 ? "-" : "+") + (a < 10 ? "0" + a : String(a));
  }
  return strip(n.toFixed(16 - e));
}

// The text of a property value: strings as they are, numbers as %.17g, booleans
// true/false, lists and objects as compact JSON; null for absent / JSON null.
export function valueText(v) {
  if (v === undefined || v === null) return null;
  if (typeof v === "string") return v;
  if (typeof v === "number") return g17(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  return JSON.stringify(v);
}

// The numeric reading used by measures (sum/avg/min/max) and value_prop: a JSON
// number, or a string that is a whole JSON-style number.
export function numericValue(v) {
  if (typeof v === "number") return v;
  if (typeof v === "string") return strNumber(v);
  return null;
}

function byteCmp(a, b) {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
const sign = (d) => (d < 0 ? -1 : d > 0 ? 1 : 0);

// Compare runtime value x with literal v. Returns -1/0/1, or null when not
// comparable. `ordering` selects the ordering rules of string vs string.
function cmp(x, v, ordering, tzMin) {
  const instant = (s) => {
    const w = strWall(s);
    return w === null ? null : w - tzMin * 60000;
  };
  if (typeof x === "number" && typeof v === "number") return sign(x - v);
  if (typeof x === "number" && typeof v === "string") {
    let r = strLevel(v);
    if (r === null) r = strNumber(v);
    if (r === null) r = instant(v);
    return r === null ? null : sign(x - r);
  }
  if (typeof x === "string" && typeof v === "number") {
    let r = strNumber(x);
    if (r === null) r = strLevel(x);
    if (r === null) r = instant(x);
    return r === null ? null : sign(r - v);
  }
  if (typeof x === "string" && typeof v === "string") {
    if (!ordering) return x === v ? 0 : 1;
    const lx = strLevel(x), lv = strLevel(v);
    if (lx !== null && lv !== null) return sign(lx - lv);
    const dx = strWall(x), dv = strWall(v);
    if (dx !== null && dv !== null) return sign(dx - dv);
    const nx = strNumber(x), nv = strNumber(v);
    if (nx !== null && nv !== null) return sign(nx - nv);
    return sign(byteCmp(x, v));
  }
  if (typeof x === "boolean" && typeof v === "boolean") {
    if (ordering) return null;
    return x === v ? 0 : 1;
  }
  return null;
}

const eq = (x, v, tz) => cmp(x, v, false, tz) === 0;

const OPS = new Set(["=", "==", "!=", "<", "<=", ">", ">=", "between", "in", "not_in",
  "contains", "not_contains", "is_set", "not_set"]);
const NEG_TRUE = new Set(["!=", "not_in", "not_contains", "not_set"]);

function isScalar(v) {
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean";
}

function compilePred(c, path, tzMin) {
  const allowed = new Set(["prop", "op", "value"]);
  for (const k of Object.keys(c)) if (!allowed.has(k)) throw new Error(`${path}.${k}: unknown key`);
  const name = c.prop, op = c.op, value = c.value;
  if (typeof name !== "string") throw new Error(`${path}.prop: a property name`);
  if (!OPS.has(op)) throw new Error(`${path}.op: operator ${JSON.stringify(op)} is outside the oracle's scope`);
  let ref = null;
  if (value && typeof value === "object" && !Array.isArray(value)) {
    if (!["=", "==", "!=", "<", "<=", ">", ">="].includes(op)) throw new Error(`${path}.value: reference not allowed`);
    if (typeof value.prop !== "string" || Object.keys(value).length !== 1)
      throw new Error(`${path}.value: only {"prop": name} references are supported by the oracle`);
    ref = value.prop;
  }
  if (op === "between" && !(Array.isArray(value) && value.length === 2)) throw new Error(`${path}.value: between needs [lo, hi]`);
  if ((op === "in" || op === "not_in") && !Array.isArray(value)) throw new Error(`${path}.value: in needs a list of values`);
  const isIn = (x, props) => {
    const xs = Array.isArray(x) ? x : [x];
    return xs.some((e) => e !== null && value.some((l) => isScalar(l) && eq(e, l, tzMin)));
  };
  const contains = (x) => {
    if (Array.isArray(x)) return x.some((e) => e !== null && eq(e, value, tzMin));
    if (typeof x === "string") {
      const t = valueText(value);
      return t !== null && x.includes(t);
    }
    return false;
  };
  return (props) => {
    const x = props ? props[name] : undefined;
    if (x === undefined || x === null) return NEG_TRUE.has(op);
    let v = value;
    if (ref !== null) {
      v = props[ref];
      if (v === undefined || v === null) return op === "!=";
    }
    switch (op) {
      case "is_set": return true;
      case "not_set": return false;
      case "=": case "==": return cmp(x, v, false, tzMin) === 0;
      case "!=": return cmp(x, v, false, tzMin) !== 0;
      case "<": { const r = cmp(x, v, true, tzMin); return r !== null && r < 0; }
      case "<=": { const r = cmp(x, v, true, tzMin); return r !== null && r <= 0; }
      case ">": { const r = cmp(x, v, true, tzMin); return r !== null && r > 0; }
      case ">=": { const r = cmp(x, v, true, tzMin); return r !== null && r >= 0; }
      case "between": {
        const a = cmp(x, v[0], true, tzMin), b = cmp(x, v[1], true, tzMin);
        return a !== null && b !== null && a >= 0 && b <= 0;
      }
      case "in": return isIn(x, props);
      case "not_in": return !isIn(x, props);
      case "contains": return contains(x);
      case "not_contains": return !contains(x);
    }
    return false;
  };
}

// compile(cond) -> (properties) => boolean. null/undefined cond: always true.
export function compileCond(c, tzMin = 480, path = "$") {
  if (c === undefined || c === null) return () => true;
  if (typeof c !== "object" || Array.isArray(c)) throw new Error(`${path}: a condition object`);
  if ("all" in c || "any" in c) {
    const key = "all" in c ? "all" : "any";
    if (Object.keys(c).length !== 1) throw new Error(`${path}: ${key} takes no other keys`);
    const list = c[key];
    if (!Array.isArray(list) || list.length === 0) throw new Error(`${path}.${key}: a non-empty list`);
    const fs = list.map((x, i) => compileCond(x, tzMin, `${path}.${key}[${i}]`));
    return key === "all" ? (p) => fs.every((f) => f(p)) : (p) => fs.some((f) => f(p));
  }
  if ("not" in c) {
    if (Object.keys(c).length !== 1) throw new Error(`${path}: not takes no other keys`);
    const f = compileCond(c.not, tzMin, `${path}.not`);
    return (p) => !f(p);
  }
  if ("prop" in c) return compilePred(c, path, tzMin);
  throw new Error(`${path}: only all/any/not/prop conditions are supported by the oracle (got ${Object.keys(c).join(",")})`);
}

// An event spec {"event": n} | {"events": [...]} (+ "where") -> (row) => boolean
export function compileSpec(spec, tzMin, path = "$") {
  if (!spec || typeof spec !== "object") throw new Error(`${path}: an event spec`);
  let names;
  if (typeof spec.event === "string") names = new Set([spec.event]);
  else if (Array.isArray(spec.events)) names = new Set(spec.events);
  else throw new Error(`${path}: event or events`);
  const w = compileCond(spec.where, tzMin, `${path}.where`);
  return (row) => names.has(row.event) && w(row.properties || {});
}

// Durations: "30s", "15m", "2h", "7d", "1w", "500ms", "1d12h"; "0" is zero.
export function parseDuration(s, path = "$") {
  if (s === "0" || s === 0) return 0;
  if (typeof s !== "string" || !/^([0-9]+(ms|s|m|h|d|w))+$/.test(s)) throw new Error(`${path}: bad duration ${JSON.stringify(s)}`);
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 7 * 86400000 };
  let total = 0;
  for (const m of s.matchAll(/([0-9]+)(ms|s|m|h|d|w)/g)) total += Number(m[1]) * unit[m[2]];
  return total;
}
