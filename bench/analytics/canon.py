#!/usr/bin/env python3
"""canon.py - answers of bench/analytics/run.sh in one comparable text form.

  canon.py waymark KIND ANSWER.json OUT.tsv   Waymark's JSON answer -> the TSV the
                                              SQL engines print; prints its
                                              "elapsed_ms" (or nothing)
  canon.py diff A.tsv B.tsv                   "agree" or "differs (...)"
  canon.py show KIND A.tsv                    a one-line summary of an answer

The TSV forms (what the SQL of sql/clickhouse and sql/duckdb prints):
  funnel     one line: users with level >= 1, 2, 3, 4
  retention  per cohort: day number (floor((t + 8 h) / 1 d)), users, retained 1..7
  paths      per path (top 10): names joined by " > ", users
  events     per local day with events: day number, count
"""
import datetime
import json
import sys

EPOCH = datetime.date(1970, 1, 1)


def day_number(text):
    return (datetime.date.fromisoformat(text[:10]) - EPOCH).days


def num(v):
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def elapsed(ans):
    for k in ("elapsed_ms", "took_ms"):
        if isinstance(ans.get(k), (int, float)):
            return ans[k]
    stats = ans.get("stats")
    if isinstance(stats, dict) and isinstance(stats.get("elapsed_ms"), (int, float)):
        return stats["elapsed_ms"]
    return None


def waymark(kind, ans):
    lines = []
    if kind == "funnel":
        lines.append("\t".join(num(s["users"]) for s in ans["steps"]))
    elif kind == "retention":
        for c in sorted(ans["cohorts"], key=lambda c: c["cohort"]):
            r = list(c["retained"])[:7]
            r += [0] * (7 - len(r))
            lines.append("\t".join([str(day_number(c["cohort"])), num(c["users"])] + [num(x) for x in r]))
    elif kind == "paths":
        for p in ans["paths"]:
            lines.append(" > ".join(p["path"]) + "\t" + num(p.get("users", p.get("count"))))
    elif kind == "events":
        per = {}
        for r in ans["rows"]:
            if r.get("series", 0) != 0 or not r.get("value"):
                continue
            d = day_number(r["bucket"])
            per[d] = per.get(d, 0) + r["value"]
        lines = [f"{d}\t{num(v)}" for d, v in sorted(per.items())]
    else:
        raise SystemExit(f"canon.py: unknown kind {kind}")
    return lines


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [ln.rstrip("\n") for ln in f if ln.strip()]


def diff(a, b):
    if a == b:
        return "agree"
    n = max(len(a), len(b))
    bad = [i for i in range(n) if i >= len(a) or i >= len(b) or a[i] != b[i]]
    i = bad[0]
    x = a[i] if i < len(a) else "(none)"
    y = b[i] if i < len(b) else "(none)"
    if len(a) != len(b):
        head = f"{len(a)} vs {len(b)} lines, "
    else:
        head = f"{len(bad)} of {n} lines, "
    return f"differs ({head}first: '{x}' vs '{y}')"


def show(kind, lines):
    if not lines:
        return "(empty)"
    if kind == "funnel":
        return "users per step " + " / ".join(lines[0].split("\t"))
    if kind == "retention":
        tot = [0] * 8
        for ln in lines:
            for i, v in enumerate(ln.split("\t")[1:9]):
                tot[i] += int(v)
        return f"{len(lines)} cohorts, {tot[0]} users, retained day 1..7 " + " ".join(map(str, tot[1:]))
    if kind == "paths":
        p, u = lines[0].rsplit("\t", 1)
        return f"top: {p} ({u} users)"
    if kind == "events":
        return f"{len(lines)} days, {sum(int(ln.split(chr(9))[1]) for ln in lines)} events"
    return ""


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "waymark" and len(sys.argv) == 5:
        kind, src, out = sys.argv[2:]
        with open(src, encoding="utf-8") as f:
            ans = json.load(f)
        lines = waymark(kind, ans)
        with open(out, "w", encoding="utf-8") as f:
            f.write("".join(ln + "\n" for ln in lines))
        e = elapsed(ans)
        if e is not None:
            print(e)
    elif cmd == "diff" and len(sys.argv) == 4:
        print(diff(read_lines(sys.argv[2]), read_lines(sys.argv[3])))
    elif cmd == "show" and len(sys.argv) == 4:
        print(show(sys.argv[2], read_lines(sys.argv[3])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
