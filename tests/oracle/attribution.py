#!/usr/bin/env python3
"""Waymark analytics oracle for `attribution` (docs/analytics.md), standard library only.

    python3 tests/oracle/attribution.py EVENTS.ndjson QUERY.json > answer.json

EVENTS.ndjson: {"user":..,"i":..,"time":ms,"event":..,"properties":{..}} per line,
(user, i) being the stream order. The conditions (docs/conditions.md, all / any /
not / prop) are evaluated here again, independently of cond.mjs. Readings of what
the docs leave open: NOTES.md.
"""
import datetime
import json
import re
import sys
from collections import defaultdict

DAY = 86400000
NUM_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
LEVEL_RE = re.compile(r"[CcRr]([0-9])\Z")
DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[ T]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{3}))?)?)?\Z")
MODELS = ["first", "last", "linear", "position", "time_decay"]


def fail(msg):
    sys.stderr.write("oracle: %s\n" % msg)
    sys.exit(2)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def str_number(s):
    return float(s) if NUM_RE.match(s) else None


def str_level(s):
    m = LEVEL_RE.match(s)
    return int(m.group(1)) if m else None


def str_wall(s):
    m = DATE_RE.match(s)
    if not m:
        return None
    parts = [int(x) if x is not None else 0 for x in m.groups()]
    try:
        d = datetime.datetime(parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6] * 1000)
    except ValueError:
        return None
    epoch = datetime.datetime(1970, 1, 1)
    delta = d - epoch
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def text(v):
    """A value's text: strings as they are, numbers %.17g, true/false, JSON otherwise."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if is_num(v):
        return "%.17g" % v
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def numeric(v):
    if is_num(v):
        return float(v)
    if isinstance(v, str):
        return str_number(v)
    return None


def sgn(d):
    return (d > 0) - (d < 0)


def compare(x, v, ordering, tz):
    """-1/0/1, or None when x and literal v are not comparable."""
    def instant(s):
        w = str_wall(s)
        return None if w is None else w - tz * 60000

    if is_num(x) and is_num(v):
        return sgn(x - v)
    if is_num(x) and isinstance(v, str):
        for read in (str_level, str_number, instant):
            r = read(v)
            if r is not None:
                return sgn(x - r)
        return None
    if isinstance(x, str) and is_num(v):
        for read in (str_number, str_level, instant):
            r = read(x)
            if r is not None:
                return sgn(r - v)
        return None
    if isinstance(x, str) and isinstance(v, str):
        if not ordering:
            return 0 if x == v else 1
        for read in (str_level, str_wall, str_number):
            a, b = read(x), read(v)
            if a is not None and b is not None:
                return sgn(a - b)
        bx, bv = x.encode("utf-8"), v.encode("utf-8")
        return sgn((bx > bv) - (bx < bv))
    if isinstance(x, bool) and isinstance(v, bool):
        return None if ordering else (0 if x == v else 1)
    return None


def compile_cond(c, tz, path="$"):
    if c is None:
        return lambda p: True
    if not isinstance(c, dict):
        fail("%s: a condition object" % path)
    if "all" in c or "any" in c:
        key = "all" if "all" in c else "any"
        subs = [compile_cond(x, tz, "%s.%s[%d]" % (path, key, i)) for i, x in enumerate(c[key])]
        if not subs:
            fail("%s.%s: a non-empty list" % (path, key))
        if key == "all":
            return lambda p: all(f(p) for f in subs)
        return lambda p: any(f(p) for f in subs)
    if "not" in c:
        f = compile_cond(c["not"], tz, path + ".not")
        return lambda p: not f(p)
    if "prop" in c:
        return compile_pred(c, tz, path)
    fail("%s: only all/any/not/prop conditions are supported by the oracle" % path)


def compile_pred(c, tz, path):
    name, op, value = c.get("prop"), c.get("op"), c.get("value")
    if op == "==":
        op = "="
    ops = {"=", "!=", "<", "<=", ">", ">=", "between", "in", "not_in", "contains", "not_contains", "is_set", "not_set"}
    if op not in ops:
        fail("%s.op: operator %r is outside the oracle's scope" % (path, op))
    ref = value["prop"] if isinstance(value, dict) else None

    def eq(x, v):
        return compare(x, v, False, tz) == 0

    def is_in(x):
        xs = x if isinstance(x, list) else [x]
        return any(e is not None and any(isinstance(l, (str, int, float)) and eq(e, l) for l in value) for e in xs)

    def contains(x):
        if isinstance(x, list):
            return any(e is not None and eq(e, value) for e in x)
        if isinstance(x, str):
            t = text(value)
            return t is not None and t in x
        return False

    def pred(props):
        x = props.get(name)
        if x is None:
            return op in ("!=", "not_in", "not_contains", "not_set")
        v = value
        if ref is not None:
            v = props.get(ref)
            if v is None:
                return op == "!="
        if op == "is_set":
            return True
        if op == "not_set":
            return False
        if op == "=":
            return compare(x, v, False, tz) == 0
        if op == "!=":
            return compare(x, v, False, tz) != 0
        if op in ("<", "<=", ">", ">="):
            r = compare(x, v, True, tz)
            if r is None:
                return False
            return {"<": r < 0, "<=": r <= 0, ">": r > 0, ">=": r >= 0}[op]
        if op == "between":
            a, b = compare(x, v[0], True, tz), compare(x, v[1], True, tz)
            return a is not None and b is not None and a >= 0 and b <= 0
        if op == "in":
            return is_in(x)
        if op == "not_in":
            return not is_in(x)
        if op == "contains":
            return contains(x)
        return not contains(x)

    return pred


def compile_spec(spec, tz, path):
    if not isinstance(spec, dict):
        fail("%s: an event spec" % path)
    if isinstance(spec.get("event"), str):
        names = {spec["event"]}
    elif isinstance(spec.get("events"), list):
        names = set(spec["events"])
    else:
        fail("%s: event or events" % path)
    w = compile_cond(spec.get("where"), tz, path + ".where")
    return lambda ev: ev["event"] in names and w(ev["properties"])


def duration(s, path):
    if s == "0" or s == 0:
        return 0
    if not isinstance(s, str) or not re.fullmatch(r"([0-9]+(ms|s|m|h|d|w))+", s):
        fail("%s: bad duration %r" % (path, s))
    unit = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": DAY, "w": 7 * DAY}
    return sum(int(n) * unit[u] for n, u in re.findall(r"([0-9]+)(ms|s|m|h|d|w)", s))


def local_day(date, what):
    try:
        d = datetime.date.fromisoformat(date)
    except (TypeError, ValueError):
        fail("%s: a local date YYYY-MM-DD" % what)
    return d.toordinal() - datetime.date(1970, 1, 1).toordinal()


def main():
    if len(sys.argv) != 3:
        fail("usage: python3 tests/oracle/attribution.py EVENTS.ndjson QUERY.json")
    with open(sys.argv[2], encoding="utf-8") as f:
        q = json.load(f)
    if q.get("kind", "attribution") != "attribution":
        fail("kind: this script answers attribution only")
    tz = q.get("utc_offset_min", 480)
    lo = local_day(q.get("from"), "from") * DAY - tz * 60000
    hi = (local_day(q.get("to"), "to") + 1) * DAY - tz * 60000
    where = compile_cond(q.get("where"), tz, "$.where")
    if "conversion" not in q or not q.get("touches"):
        fail("conversion and touches are needed")
    conv = compile_spec(q["conversion"], tz, "$.conversion")
    touches = [(compile_spec(t, tz, "$.touches[%d]" % k), t.get("label_prop")) for k, t in enumerate(q["touches"])]
    lookback = duration(q.get("lookback", "7d"), "$.lookback")
    half_life = duration(q.get("half_life", "1d"), "$.half_life")
    models = q.get("models", MODELS)
    for m in models:
        if m not in MODELS:
            fail("models: unknown model %r" % m)
    value_prop = q.get("value_prop")

    streams = defaultdict(list)
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            ev = json.loads(line)
            if not isinstance(ev.get("properties"), dict):
                ev["properties"] = {}
            streams[ev["user"]].append(ev)

    conversions = unattributed = 0
    credit = defaultdict(lambda: defaultdict(float))
    touched = defaultdict(int)
    for user in sorted(streams):
        stream = [e for e in sorted(streams[user], key=lambda e: e["i"]) if where(e["properties"])]
        for j, ev in enumerate(stream):
            if not (lo <= ev["time"] < hi and conv(ev)):
                continue
            conversions += 1
            ts = []  # (label, time) of the touches, in stream order
            for e in stream[:j]:
                if ev["time"] - e["time"] > lookback:
                    continue
                for match, label_prop in touches:
                    if match(e):
                        label = e["event"]
                        if label_prop is not None:
                            t = text(e["properties"].get(label_prop))
                            if t is not None:
                                label = "%s:%s" % (e["event"], t)
                        ts.append((label, e["time"]))
                        break
            n = len(ts)
            if n == 0:
                unattributed += 1
                continue
            value = 1.0
            if value_prop is not None:
                value = numeric(ev["properties"].get(value_prop))
                if value is None:
                    value = 0.0
            for label in {lab for lab, _ in ts}:
                touched[label] += 1
            for m in models:
                if m == "first":
                    w = [1.0] + [0.0] * (n - 1)
                elif m == "last":
                    w = [0.0] * (n - 1) + [1.0]
                elif m == "linear":
                    w = [1.0 / n] * n
                elif m == "position":
                    if n == 1:
                        w = [1.0]
                    elif n == 2:
                        w = [0.5, 0.5]
                    else:
                        w = [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]
                else:
                    raw = [2.0 ** (-(ev["time"] - t) / half_life) if half_life > 0 else (1.0 if t == ev["time"] else 0.0)
                           for _, t in ts]
                    s = sum(raw)
                    w = [x / s for x in raw] if s > 0 else [1.0 / n] * n
                for (label, _), x in zip(ts, w):
                    credit[label][m] += x * value

    rows = []
    for label in sorted(touched, key=lambda l: (-touched[l], l.encode("utf-8"))):
        row = {"touch": label, "touched": touched[label]}
        for m in models:
            row[m] = credit[label][m]
        rows.append(row)
    json.dump({"conversions": conversions, "unattributed": unattributed, "rows": rows}, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
