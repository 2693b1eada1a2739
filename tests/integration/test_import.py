"""`waymark import` against real data directories and a running server.

Every case imports a file with the real binary, then reads the result back
through `waymark serve` on the same data directory, so what is checked is
what a customer would see after a migration: users with their profiles and
histories, items, rejected lines with their file line numbers and codes.

The expected per-user event counts are computed here from the NDJSON with a
union-find over every id a record names (distinct_id, original_id,
login_id, anonymous_id, identities): a visitor who later signs up is one
user, and all their events count for the login user.

Cases: offline import of `waymark gen` output; the errors file; resuming
after SIGKILL and --restart; CSV events, profiles and items; --url mode.
"""
import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

import wmtest
from wmtest import Server, check, finish, run_case

TMP = tempfile.mkdtemp(prefix="wm-import-")
SUMMARY = re.compile(r": (\d+) records imported, (\d+) duplicates skipped, (\d+) rejected")


def gen(name, users, days, seed):
    path = os.path.join(TMP, name)
    subprocess.run([wmtest.BIN, "gen", "--users", str(users), "--days", str(days),
                    "--seed", str(seed), "-o", path], check=True, capture_output=True)
    return path


def fresh_dir(name):
    path = os.path.join(TMP, name)
    shutil.rmtree(path, ignore_errors=True)
    return path


def run_import(args, timeout=120):
    """Runs `waymark import ARGS`; returns (rc, stdout, stderr, (imported, dups, rejected))."""
    p = subprocess.run([wmtest.BIN, "import"] + args, capture_output=True,
                       text=True, timeout=timeout)
    m = SUMMARY.search(p.stdout)
    counts = tuple(int(x) for x in m.groups()) if m else None
    return p.returncode, p.stdout, p.stderr, counts


def write_lines(name, lines):
    path = os.path.join(TMP, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def read_errors(path):
    """FILE:LINE: CODE FIELD: MESSAGE -> {line: (code, message)}."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for row in f:
            m = re.match(r".*?:(\d+): ([a-z_]+):? ?(.*)$", row.rstrip("\n"))
            if m:
                out[int(m.group(1))] = (m.group(2), m.group(3))
    return out


class Expected:
    """What a gen file should look like once imported: per-user event counts
    and profiles, keyed by a representative id of each user."""

    def __init__(self, path):
        self.parent = {}
        self.records = 0
        self.track_ids = 0
        self.profile_sets = 0
        recs = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                self.records += 1
                self.track_ids += "_track_id" in r
                if r["type"] == "item_set":
                    continue
                ids = [r["distinct_id"]] + [r[k] for k in ("original_id", "login_id", "anonymous_id")
                                            if r.get(k)]
                ids += list((r.get("identities") or {}).values())
                for other in ids[1:]:
                    self.union(ids[0], other)
                self.find(ids[0])
                recs.append(r)
        self.events = collections.Counter()
        self.profile = collections.defaultdict(dict)
        for r in recs:
            g = self.find(r["distinct_id"])
            if r["type"].startswith("track"):
                self.events[g] += 1
            elif r["type"] == "profile_set":
                self.profile_sets += 1
                self.profile[g].update({k: v for k, v in r["properties"].items() if k != "$is_login_id"})
        self.members = collections.defaultdict(set)
        for x in list(self.parent):
            self.members[self.find(x)].add(x)

    def find(self, x):
        while self.parent.setdefault(x, x) != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb

    def login_of(self, g):
        logins = sorted(m for m in self.members[g] if re.fullmatch(r"c\d{8}", m))
        return logins[0] if logins else None

    def sample(self, n, seed):
        """n users at random plus the ten busiest ones (most events)."""
        groups = sorted(self.events)
        rnd = random.Random(seed)
        pick = set(rnd.sample(groups, min(n, len(groups))))
        pick.update(g for g, _ in self.events.most_common(10))
        return sorted(pick)


def event_count(srv, uid):
    st, body = srv.events(uid, limit=1000)
    return len(body["events"]) if st == 200 else -st


def compare_counts(srv, exp, groups, what):
    """Every user in groups has exactly the expected number of events, looked
    up by a login id when the user has one (else by any of its ids)."""
    wrong = []
    got_total = want_total = 0
    for g in groups:
        uid = exp.login_of(g) or g
        got = event_count(srv, uid)
        want = exp.events[g]
        got_total += max(got, 0)
        want_total += want
        if got != want:
            wrong.append((uid, want, got))
    check(not wrong, f"{what}: event counts of {len(groups)} users match the file",
          f"{len(wrong)} differ, first (id, want, got): {wrong[:5]}")
    check(got_total == want_total, f"{what}: {want_total} events over the sample", got_total)


SMALL = gen("small.ndjson", 300, 10, 5)
SMALL_EXP = Expected(SMALL)


def test_offline_gen():
    data = fresh_dir("d-offline")
    rc, out, err, counts = run_import(["--data", data, SMALL])
    check(rc == 0, "offline import exits 0", err)
    check(counts == (SMALL_EXP.records, 0, 0), "summary counts every line as imported",
          (out, SMALL_EXP.records))
    check(not os.path.exists(SMALL + ".errors"), "no errors file when nothing was rejected")
    check(not os.path.exists(os.path.join(data, "import-small.ndjson.checkpoint")),
          "checkpoint removed after a complete import")
    srv = Server(data_dir=data).start()
    try:
        # the small file has ~280 users: check every one of them
        compare_counts(srv, SMALL_EXP, sorted(SMALL_EXP.events), "offline")
        logins = [g for g in SMALL_EXP.profile if SMALL_EXP.login_of(g)]
        wrong = []
        for g in random.Random(1).sample(logins, min(40, len(logins))):
            login = SMALL_EXP.login_of(g)
            st, u = srv.user(login, id_type="login_id")
            if st != 200 or u["profile"] != SMALL_EXP.profile[g]:
                wrong.append((login, SMALL_EXP.profile[g], u))
        check(logins and not wrong, "profiles of sampled login users equal the file's profile_set",
              wrong[:2])
        # anonymous ids of a signed-up user resolve to the same user
        merged = [g for g in SMALL_EXP.events if SMALL_EXP.login_of(g) and len(SMALL_EXP.members[g]) > 1]
        g = merged[0]
        st, u = srv.user(SMALL_EXP.login_of(g), id_type="login_id")
        same = all(srv.user(m)[1].get("user_id") == u["user_id"] for m in SMALL_EXP.members[g])
        check(st == 200 and same, "every id of a signed-up visitor names the login user",
              SMALL_EXP.members[g])
        with open(SMALL, encoding="utf-8") as f:
            item = next(json.loads(line) for line in f if '"item_set"' in line)
        st, body = srv.api("GET", f"/api/v1/items/{item['item_type']}/{item['item_id']}")
        check(st == 200 and body["properties"] == item["properties"], "items imported", body)
    finally:
        srv.stop()


def sensors_track(uid, event, props, t):
    p = {"$is_login_id": True}
    p.update(props)
    return json.dumps({"type": "track", "event": event, "distinct_id": uid, "time": t,
                       "properties": p}, ensure_ascii=False)


def test_errors_file():
    t = 1790000000000
    lines = [sensors_track("err-u1", "A", {"x": 1}, t),           # 1 ok
             '{"type":"track", "event": broken',                  # 2 invalid_json
             sensors_track("err-u1", "B", {"x": 2}, t + 1),       # 3 ok
             sensors_track("err-u1", "C", {"1bad name": 2}, t + 2),  # 4 invalid_name
             "",                                                  # 5 blank: skipped
             sensors_track("err-u1", "D", {"s": "a" * 9000}, t + 3),  # 6 too_long
             sensors_track("err-u1", "E", {"x": 3}, t + 4),       # 7 ok
             sensors_track("err-u1", "F", {"x": "three"}, t + 5)]  # 8 type_mismatch
    path = write_lines("bad.ndjson", lines)
    data = fresh_dir("d-errors")
    rc, out, err, counts = run_import(["--data", data, path])
    check(rc == 0, "a file with bad lines still imports", err)
    check(counts == (3, 0, 4), "3 imported, 4 rejected", out)
    check(path + ".errors" in out, "summary names the errors file", out)
    errs = read_errors(path + ".errors") if os.path.exists(path + ".errors") else {}
    want = {2: "invalid_json", 4: "invalid_name", 6: "too_long", 8: "type_mismatch"}
    check({k: v[0] for k, v in errs.items()} == want, "FILE.errors lists line numbers and codes", errs)
    check("properties.1bad name" in errs.get(4, ("", ""))[1], "the bad field is named", errs.get(4))

    # --errors PATH, and a bad line past the first chunk (8192 lines)
    many = [sensors_track("err-u2", "G", {"i": i}, t + i) for i in range(10000)]
    many[9998] = "{broken"
    path2 = write_lines("late.ndjson", many)
    errs_path = os.path.join(TMP, "late.err")
    rc, out, err, counts = run_import(["--data", data, "--errors", errs_path, path2])
    check(counts == (9999, 0, 1), "9999 of 10000 imported", out)
    errs = read_errors(errs_path) if os.path.exists(errs_path) else {}
    check(list(errs) == [9999] and errs[9999][0] == "invalid_json",
          "--errors PATH: a bad line in a later chunk has its file line number", errs)
    check(not os.path.exists(path2 + ".errors"), "--errors replaces FILE.errors")
    msg = errs.get(9999, ("", ""))[1]
    nums = re.findall(r"line (\d+)", msg)
    check(all(n == "9999" for n in nums), "the message quotes the file's line number", msg)

    srv = Server(data_dir=data).start()
    try:
        st, body = srv.events("err-u1")
        names = sorted(e["event"] for e in body["events"]) if st == 200 else body
        check(names == ["A", "B", "E"], "the good lines were imported", names)
        check(event_count(srv, "err-u2") == 1000,
              "late file readable (capped at 1000 per answer)")
    finally:
        srv.stop()


BIG = gen("big.ndjson", 6000, 30, 7)   # ~208k records, ~135 MB
BIG_EXP = Expected(BIG)


def checkpoint_of(data, path):
    return os.path.join(data, "import-" + os.path.basename(path) + ".checkpoint")


def kill_after_checkpoint(data, path, min_wait=0.1, timeout=30):
    """Starts an offline import and SIGKILLs it once it has run min_wait
    seconds and written a checkpoint (the whole file takes ~0.5 s on two
    cores, so waiting longer risks a complete import); returns the
    checkpoint's fields or None."""
    cp = checkpoint_of(data, path)
    p = subprocess.Popen([wmtest.BIN, "import", "--quiet", "--data", data, path],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < timeout and p.poll() is None:
        if time.time() - t0 >= min_wait and os.path.exists(cp):
            break
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    if not os.path.exists(cp):
        return None
    with open(cp) as f:
        return [int(x) for x in f.read().split()]


def test_resume_after_kill():
    data = fresh_dir("d-resume")
    cp = kill_after_checkpoint(data, BIG)
    check(cp is not None, "the killed import left a checkpoint")
    if cp is None:
        return
    offset, _, size = cp
    check(0 < offset < size == os.path.getsize(BIG), "checkpoint: offset inside the file", cp)
    with open(BIG, "rb") as f:
        done_lines = f.read(offset).count(b"\n")
    rc, out, err, counts = run_import(["--data", data, BIG])
    m = re.search(r"resuming at line (\d+)", err)
    check(rc == 0 and m is not None, "the rerun says it is resuming", (rc, err))
    check(m and int(m.group(1)) == done_lines + 1, "it resumes right after the checkpoint",
          (m and m.group(0), done_lines))
    check(counts and counts[0] + counts[1] == BIG_EXP.records - done_lines and counts[2] == 0,
          "the rerun reads exactly the lines after the checkpoint", (out, done_lines))
    check(not os.path.exists(checkpoint_of(data, BIG)), "checkpoint removed at the end")

    # a stale checkpoint is ignored with --restart: the whole file is read
    # again and every record with a _track_id is a duplicate
    with open(checkpoint_of(data, BIG), "w") as f:
        f.write(f"{offset} {done_lines + 1} {size}\n")
    rc, out, err, counts = run_import(["--data", data, "--restart", BIG])
    check(rc == 0 and "resuming" not in err, "--restart does not resume", err)
    check(counts == (BIG_EXP.records - BIG_EXP.track_ids, BIG_EXP.track_ids, 0),
          "--restart replays every line; records with _track_id are deduplicated",
          (out, BIG_EXP.records, BIG_EXP.track_ids))

    srv = Server(data_dir=data).start()
    try:
        compare_counts(srv, BIG_EXP, BIG_EXP.sample(300, 11), "after kill, resume and restart")
    finally:
        srv.stop()


def test_resume_replayed_tail():
    """The crash window: records past the checkpoint were already written
    when the import died. Rewinding the checkpoint of a complete import
    reproduces it exactly; the replayed lines must be skipped as duplicates,
    not stored twice. A short tail on a large data directory is the hard
    case: the dedup window must be rebuilt before the first chunk lands."""
    data = os.path.join(TMP, "d-resume")
    if not os.path.isdir(data):
        data = fresh_dir("d-resume")
        run_import(["--data", data, BIG])
    with open(BIG, "rb") as f:
        raw = f.read()
    cut = len(raw)
    for _ in range(600):
        cut = raw.rindex(b"\n", 0, cut - 1) + 1
    done_lines = raw[:cut].count(b"\n")
    tail = raw[cut:]
    tail_ids = tail.count(b'"_track_id"')
    with open(checkpoint_of(data, BIG), "w") as f:
        f.write(f"{cut} {done_lines + 1} {len(raw)}\n")
    rc, out, err, counts = run_import(["--data", data, BIG])
    check(rc == 0 and f"resuming at line {done_lines + 1}" in err, "resumes at the rewound line", err)
    check(counts == (600 - tail_ids, tail_ids, 0), "every replayed record with a _track_id is a duplicate",
          (out, tail_ids))
    touched = {BIG_EXP.find(json.loads(line)["distinct_id"]) for line in tail.splitlines()
               if b'"item_set"' not in line}
    srv = Server(data_dir=data).start()
    try:
        compare_counts(srv, BIG_EXP, sorted(g for g in touched if g in BIG_EXP.events), "replayed tail")
    finally:
        srv.stop()


CSV_EVENTS = """user_id,event,time,amount,fund_code,note
csv-u1,BuyFund,2026-10-01 09:30:00,1000.50,000001,first buy
csv-u1,SellFund,1790000000000,250,110011,"a note, with a comma"
csv-u2,BuyFund,1790000000,0,000002,
csv-u2,BuyFund,not-a-time,5,000003,x
csv-u3,BuyFund,2026-10-03 10:00:00,12,000004,'quoted ''q'''
""".replace("'", '"')  # an RFC 4180 quoted cell with doubled quotes

CSV_ODD_NUMBERS = """user_id,event,time,label,score
csv-u9,Probe,1790000000000,nan,+5
csv-u9,Probe,1790000000001,Infinity,1.
csv-u9,Probe,1790000000002,ok,-0012
csv-u9,Probe,1790000000003,ok,.5
csv-u9,Probe,1790000000004,ok,7
"""

CSV_PROFILES = """user_id,name,age,vip,city
csv-u1,张三,35,true,上海
csv-u2,李四,41,false,
"""

CSV_ITEMS = """code,fund_name,nav,risk_level
000001,华夏成长混合,1.234,R3
110011,易方达中小盘,5.6,R4
"""

CSV_EVENT_OPTS = ["--format", "csv", "--distinct-id-from", "user_id", "--event-from", "event",
                  "--timestamp-from", "time", "--is-login-id", "--skip-cols", "note"]


def write_text(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def test_csv():
    data = fresh_dir("d-csv")
    ev = write_text("events.csv", CSV_EVENTS)
    rc, out, err, counts = run_import(["--data", data] + CSV_EVENT_OPTS + [ev])
    check(rc == 0, "CSV import exits 0", err)
    errs = read_errors(ev + ".errors") if os.path.exists(ev + ".errors") else {}
    check(errs.get(5, ("",))[0] == "invalid_csv_row" and "not-a-time" in errs[5][1],
          "bad timestamp reported on its line (5)", errs)
    # fund_code is a code, "110011" as much as "000001": a column whose
    # cells happen to look numeric must not get rows rejected
    check(counts == (4, 0, 1), "CSV: 4 rows imported, only the bad timestamp rejected", (out, errs))
    odd = write_text("odd.csv", CSV_ODD_NUMBERS)
    rc, out, err, counts = run_import(["--data", data] + CSV_EVENT_OPTS + [odd])
    errs = read_errors(odd + ".errors") if os.path.exists(odd + ".errors") else {}
    check(counts == (5, 0, 0), "CSV cells like nan, Infinity, +5, 1., .5, -0012 do not make "
          "invalid JSON", (out, errs))
    pr = write_text("profiles.csv", CSV_PROFILES)
    rc, out, err, counts = run_import(["--data", data, "--format", "csv", "--distinct-id-from",
                                       "user_id", "--is-login-id", "--profile", pr])
    check(rc == 0 and counts == (2, 0, 0), "CSV --profile rows imported", out + err)
    it = write_text("items.csv", CSV_ITEMS)
    rc, out, err, counts = run_import(["--data", data, "--format", "csv", "--item-type", "fund",
                                       "--item-id-from", "code", it])
    check(rc == 0 and counts == (2, 0, 0), "CSV --item-type rows imported", out + err)

    srv = Server(data_dir=data).start()
    try:
        st, body = srv.events("csv-u1", id_type="login_id")
        evs = {e["event"]: e for e in body["events"]} if st == 200 else {}
        buy = evs.get("BuyFund", {})
        check(buy.get("time") == 1790818200000, "datetime read as Asia/Shanghai time", buy.get("time"))
        p = buy.get("properties", {})
        check(p.get("amount") == 1000.5 and p.get("fund_code") == "000001",
              "typed properties: amount a number, '000001' a string with its zeros", p)
        check("note" not in p and p.get("$is_login_id") is True, "--skip-cols and --is-login-id", p)
        sell = evs.get("SellFund", {})
        check(sell.get("time") == 1790000000000 and sell.get("properties", {}).get("fund_code") in
              ("110011", 110011), "second row: ms timestamp, fund_code kept", sell)
        st, body = srv.events("csv-u2")
        e = body["events"] if st == 200 else []
        check(len(e) == 1 and e[0]["time"] == 1790000000000 and "note" not in e[0]["properties"]
              and e[0]["properties"].get("amount") == 0, "seconds timestamp, empty cell omitted", e)
        st, u = srv.user("csv-u1", id_type="login_id")
        check(st == 200 and u["profile"] == {"name": "张三", "age": 35, "vip": True, "city": "上海"},
              "profile from CSV: typed values", u)
        st, u = srv.user("csv-u2")
        check(st == 200 and u["profile"] == {"name": "李四", "age": 41, "vip": False},
              "profile from CSV: an empty cell sets nothing", u)
        st, item = srv.api("GET", "/api/v1/items/fund/000001")
        check(st == 200 and item["properties"] == {"fund_name": "华夏成长混合", "nav": 1.234,
                                                   "risk_level": "R3"},
              "item from CSV, id with leading zeros", item)
        st, item = srv.api("GET", "/api/v1/items/fund/110011")
        check(st == 200 and item["properties"].get("nav") == 5.6, "second item", item)
        st, u = srv.user("csv-u9")
        check(st == 200 and event_count(srv, "csv-u9") == 5, "all odd-number rows stored",
              event_count(srv, "csv-u9"))
    finally:
        srv.stop()


def test_url_mode():
    srv = Server(fsync="never").start()
    try:
        url = f"http://127.0.0.1:{srv.port}"
        rc, out, err, counts = run_import(["--url", url, SMALL])
        check(rc == 0 and counts == (SMALL_EXP.records, 0, 0), "--url: every line imported", out + err)
        check(not os.path.exists(SMALL + ".waymark-checkpoint"), "--url: checkpoint removed at the end")
        # records apply shortly after their acknowledgement
        busiest = SMALL_EXP.events.most_common(1)[0][0]
        srv.wait_for(lambda: event_count(srv, SMALL_EXP.login_of(busiest) or busiest)
                     == SMALL_EXP.events[busiest])
        time.sleep(0.2)
        compare_counts(srv, SMALL_EXP, sorted(SMALL_EXP.events), "--url")
        g = next(g for g in SMALL_EXP.profile if SMALL_EXP.login_of(g))
        st, u = srv.user(SMALL_EXP.login_of(g), id_type="login_id")
        check(st == 200 and u["profile"] == SMALL_EXP.profile[g], "--url: profile", u)
        rc, out, err, counts = run_import(["--url", url, SMALL])
        check(counts == (SMALL_EXP.records - SMALL_EXP.track_ids, SMALL_EXP.track_ids, 0),
              "--url: a second run is deduplicated by the server", out)
        bad = os.path.join(TMP, "bad.ndjson")
        errs_path = os.path.join(TMP, "url.err")
        rc, out, err, counts = run_import(["--url", url, "--errors", errs_path, bad])
        errs = read_errors(errs_path) if os.path.exists(errs_path) else {}
        check(rc == 0 and counts == (3, 0, 4), "--url: bad lines rejected, good ones kept", out + err)
        want = {2: "invalid_json", 4: "invalid_name", 6: "too_long", 8: "type_mismatch"}
        check({k: v[0] for k, v in errs.items()} == want, "--url: errors file with lines and codes", errs)
    finally:
        srv.cleanup()


for case in [test_offline_gen, test_errors_file, test_resume_after_kill, test_resume_replayed_tail,
             test_csv, test_url_mode]:
    run_case(case)
shutil.rmtree(TMP, ignore_errors=True)
finish()
