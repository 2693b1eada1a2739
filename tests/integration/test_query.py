"""Analytics through the real binary: the compactor, the query routes, and
`waymark query`, `waymark compact`, `waymark check`.

Cases:
  - events sent over HTTP reach a part within seconds (the compactor), seen
    by /metrics and by `waymark check` on the live data directory;
  - `waymark compact` on an imported data directory puts every event in one
    part per partition; `waymark check` passes it, and a part with one byte
    flipped is reported by file and block with exit status 1;
  - the query route's error mapping (unknown kind, bad JSON, bad member,
    bad query id: 400 naming the member), roles, the running-query list and
    the cancel route;
  - `waymark query` errors ("waymark query: PATH: MESSAGE", exit 2), offline
    and through --url;
  - every query kind that is implemented when this runs: the answer's
    structure (never its numbers) as JSON, as CSV over HTTP and from the CLI.
    A kind that is not implemented yet is printed as a NOTE line, so it is
    visible that it was not tested;
  - a funnel's save_segment: the drop-offs become a static list, replaced by
    the next save, and a segment of another kind is refused.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import wmtest
from wmtest import ADMIN_KEY, Server, check, finish, run_case

TMP = tempfile.mkdtemp(prefix="wm-query-")
EVENT_TYPES = ("track", "track_signup", "track_id_bind", "track_id_unbind")
MAIN_ROWS = {"events": "rows", "funnel": "steps", "retention": "cohorts", "paths": "paths",
             "attribution": "rows", "distribution": "rows", "map": "stages", "interval": "count"}


def local_date(ms, days=0):
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000 + 8 * 3600 + days * 86400))


def requests_by_kind(now_ms):
    rng = {"from": local_date(now_ms, -3), "to": local_date(now_ms, 1)}
    reqs = {
        "events": {"series": [{"event": "E0", "measure": "count"}], "interval": "day"},
        "funnel": {"steps": [{"event": "E0"}, {"event": "E1"}, {"event": "E2"}], "window": "7d"},
        "retention": {"start": {"event": "E0"}, "return": {"event": "E1"}, "period": "day", "periods": 3},
        "paths": {"start": {"event": "E0"}, "depth": 3},
        "attribution": {"conversion": {"event": "E2"}, "touches": [{"event": "E0"}, {"event": "E1"}],
                        "lookback": "7d", "models": ["first", "last", "linear"]},
        "distribution": {"event": {"event": "E0"}},
        "interval": {"first": {"event": "E0"}, "then": {"event": "E1"}, "window": "30d"},
        "map": {"stages": [{"name": "看资讯", "events": ["E0"]}, {"name": "买", "events": ["E1"]}],
                "window": "30d"},
    }
    for r in reqs.values():
        r.update(rng)
    return reqs


def ndjson_events(users, now_ms, prefix="q"):
    lines = []
    for u in range(users):
        for k in range(3):
            lines.append(json.dumps({"type": "track", "event": f"E{k}", "distinct_id": f"{prefix}{u}",
                                     "time": now_ms - 60000 + k * 1000,
                                     "properties": {"n": u, "label": 'a,"b"'}}))
    return "\n".join(lines) + "\n"


def post_events(srv, text):
    st, body = srv.api("POST", "/api/v1/events", text)
    check(st == 200, "events accepted", body)
    return body


def metric_sum(srv, name):
    st, _, data = srv.request("GET", "/metrics")
    vals = {}
    for line in data.decode().splitlines():
        m = re.match(rf'{name}\{{partition="(\d+)"\}} (\d+)', line)
        if m:
            vals[int(m.group(1))] = int(m.group(2))
    return vals


def not_available(body):
    """True when a 400 says the kind is not implemented yet (query.c lands separately)."""
    msg = (body or {}).get("error", {}).get("message", "") if isinstance(body, dict) else ""
    return "not available" in msg


def run(args, timeout=120, stdin=None):
    p = subprocess.run([wmtest.BIN] + args, capture_output=True, text=True, timeout=timeout, input=stdin)
    return p.returncode, p.stdout, p.stderr


def write_json(name, obj):
    path = os.path.join(TMP, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)
    return path


# ---------------------------------------------------------------- compactor

def test_compactor_after_http_ingest():
    srv = Server(partitions=2).start()
    try:
        now = int(time.time() * 1000)
        post_events(srv, ndjson_events(30, now))
        t0 = time.time()
        # the rule: a part once the oldest waiting record is 10 s old
        done = srv.wait_for(lambda: (lambda rows, tail: sum(rows.values()) == 90 and
                                     not any(tail.values()) and rows)(
            metric_sum(srv, "waymark_analytics_rows"), metric_sum(srv, "waymark_analytics_tail_records")),
            timeout=25)
        elapsed = time.time() - t0
        check(done, "every event in a part within 25 s", str(metric_sum(srv, "waymark_analytics_rows")))
        check(elapsed < 16, f"compacted within seconds ({elapsed:.1f} s)")
        parts = metric_sum(srv, "waymark_analytics_parts")
        check(len(parts) == 2 and all(v >= 1 for v in parts.values()), "a part in each partition", str(parts))
        # `waymark check` reads the live directory without the server's lock
        rc, out, err = run(["check", srv.data])
        check(rc == 0, "waymark check passes the live store", out + err)
        check(out.count(".part: ok") >= 2 and "analytics/p00/" in out and "analytics/p01/" in out,
              "check names each part", out)
        # later events compact into new parts too
        post_events(srv, ndjson_events(5, now, prefix="late"))
        more = srv.wait_for(lambda: sum(metric_sum(srv, "waymark_analytics_rows").values()) == 105, timeout=25)
        check(more, "later events reach a part too")
        st, _, data = srv.request("GET", "/metrics")
        m = re.search(r"waymark_analytics_compactions_total (\d+)", data.decode())
        check(m and int(m.group(1)) >= 3, "compactions counted", m.group(0) if m else data.decode()[-500:])
    finally:
        srv.cleanup()


# ------------------------------------------------------ offline compact/check

def test_cli_compact_and_check():
    gen = os.path.join(TMP, "gen.ndjson")
    subprocess.run([wmtest.BIN, "gen", "--users", "300", "--days", "20", "--seed", "7", "-o", gen],
                   check=True, capture_output=True)
    with open(gen, encoding="utf-8") as f:
        events = sum(1 for line in f if json.loads(line)["type"] in EVENT_TYPES)
    data = os.path.join(TMP, "imported")
    rc, out, err = run(["import", "--data", data, "--partitions", "2", gen])
    check(rc == 0, "import", out + err)

    rc, out, err = run(["compact", "--data", data])
    check(rc == 0, "waymark compact exits 0", out + err)
    lines = re.findall(r"^p(\d\d): (\d+) parts, (\d+) rows, (\d+) bytes, ([\d.]+) bytes/event$", out, re.M)
    check(len(lines) == 2, "one line per partition", out)
    check(all(int(p) == 1 for _, p, _, _, _ in lines), "one part per partition after the merge", out)
    check(sum(int(r) for _, _, r, _, _ in lines) == events, f"every event once ({events})", out)
    check(all(float(bpe) > 0 for *_, bpe in lines), "bytes per event printed", out)

    # again: nothing new, same rows
    rc, out2, err = run(["compact", "--data", data])
    check(rc == 0 and sum(int(r) for _, _, r, _, _ in re.findall(
        r"^p(\d\d): (\d+) parts, (\d+) rows, (\d+) bytes, ([\d.]+)", out2, re.M)) == events,
        "a second compact changes nothing", out2 + err)

    rc, out, err = run(["check", data])
    check(rc == 0 and out.count(".part: ok") == 2 and out.rstrip().endswith("ok"), "check passes", out + err)
    rc, out_d, err = run(["check", "--data", data])
    check(rc == 0 and out_d == out, "check --data DIR is the same", out_d + err)

    # one byte flipped inside a part's first block
    bad = os.path.join(TMP, "corrupt")
    shutil.copytree(data, bad)
    part = os.path.join(bad, "analytics", "p00")
    name = sorted(n for n in os.listdir(part) if n.endswith(".part"))[0]
    path = os.path.join(part, name)
    with open(path, "r+b") as f:
        f.seek(200)
        b = f.read(1)
        f.seek(200)
        f.write(bytes([b[0] ^ 0xFF]))
    rc, out, err = run(["check", bad])
    check(rc == 1, "check exits 1 on a corrupt part", out + err)
    fault = [l for l in out.splitlines() if path in l and "ok," not in l]
    check(fault and "block" in fault[0], "the fault names the file and the block", out)
    check(re.search(r"^1 fault$", out, re.M), "the faults are counted", out)
    check("analytics/p01/" in out and ".part: ok" in out, "the sound partition is still checked", out)

    rc, out, err = run(["check", os.path.join(TMP, "no-such-dir")])
    check(rc == 1 and "no analytics directory" in err, "check of a directory without analytics", err)

    # offline query errors on the compacted directory
    req = write_json("bad_kind.json", {"from": "2026-01-01", "to": "2026-01-02"})
    rc, out, err = run(["query", "no_such_kind", req, "--data", data])
    check(rc == 2 and err.startswith("waymark query: kind: "), "offline bad kind: exit 2, names kind", err)
    rc, out, err = run(["query", req, "--data", data])
    check(rc == 2 and err.startswith("waymark query: kind: "), "no kind anywhere: exit 2", err)
    notjson = os.path.join(TMP, "notjson.json")
    with open(notjson, "w") as f:
        f.write("{nope")
    rc, out, err = run(["query", "events", notjson, "--data", data])
    check(rc == 2 and "not a JSON object" in err, "a request that is not JSON: exit 2", err)
    rc, out, err = run(["query", "events", req, "--data", data, "--format", "xml"])
    check(rc == 2, "bad --format: exit 2", err)
    rc, out, err = run(["query", "-", "--data", data], stdin='{"kind":"no_such_kind"}')
    check(rc == 2 and "kind" in err, "request from stdin, kind inside it", err)

    # export and the kinds, offline
    rc, out, err = run(["query", "export", "--data", data])
    if rc == 2 and "not available" in err:
        print("NOTE: kind export is not implemented yet: `waymark query export` not tested beyond its error")
    else:
        check(rc == 0, "export exits 0", err[-500:])
        rows = [json.loads(l) for l in out.splitlines() if l.strip()]
        check(len(rows) == events, f"export has every event ({events})", str(len(rows)))
        check(all({"user", "i", "time", "event", "properties"} <= set(r) for r in rows),
              "export lines have user, i, time, event, properties")
    now = int(time.time() * 1000)
    for kind, body in requests_by_kind(now).items():
        path = write_json(f"req_{kind}.json", body)
        rc, out, err = run(["query", kind, path, "--data", data, "--format", "json"])
        if rc == 2 and "not available" in err:
            print(f"NOTE: kind {kind} is not implemented yet: offline `waymark query {kind}` not tested")
            continue
        check(rc == 0, f"offline {kind} answers", err[-500:])
        ans = json.loads(out)
        check(MAIN_ROWS[kind] in ans, f"offline {kind} answer has {MAIN_ROWS[kind]}", out[:300])
        rc, out, err = run(["query", kind, path, "--data", data, "--format", "csv"])
        check(rc == 0, f"offline {kind} as CSV", err[-300:])
        rc, out, err = run(["query", kind, path, "--data", data])
        check(rc == 0, f"offline {kind} as a table", err[-300:])


# ------------------------------------------------------------- query routes

def query(srv, kind, body, key=ADMIN_KEY, headers=None, qs=""):
    h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    h.update(headers or {})
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    st, hdr, data = srv.request("POST", f"/api/v1/query/{kind}{qs}", raw, h)
    try:
        parsed = json.loads(data) if data and "json" in hdr.get("Content-Type", "") else data
    except ValueError:
        parsed = data
    return st, hdr, parsed


def new_key(srv, role):
    st, body = srv.api("POST", "/api/v1/keys", {"role": role})
    check(st == 200, f"{role} key created", body)
    return body["key"]


def test_http_errors_and_roles():
    srv = Server(partitions=2).start()
    try:
        now = int(time.time() * 1000)
        post_events(srv, ndjson_events(10, now))
        st, hdr, body = query(srv, "no_such_kind", {"from": "2026-01-01", "to": "2026-01-02"})
        check(st == 400, "unknown kind: 400", body)
        err = body.get("error", {}) if isinstance(body, dict) else {}
        check(err.get("code") == "invalid_query" and err.get("path") == "kind" and err.get("message"),
              "unknown kind names 'kind'", body)
        check(hdr.get("X-Query-Id"), "X-Query-Id on an error answer too", str(hdr))

        st, hdr, body = query(srv, "events", "{nope")
        check(st == 400 and body["error"]["code"] == "invalid_query" and "JSON" in body["error"]["message"],
              "a body that is not JSON: 400", body)
        st, hdr, body = query(srv, "events", "[1,2]")
        check(st == 400 and "object" in body["error"]["message"], "a body that is not an object: 400", body)

        # a bad member: 400 with the path of the member (the kind's own checks)
        st, hdr, body = query(srv, "funnel", {"from": "2026-01-01", "to": "2026-01-02", "steps": "nope"})
        check(st == 400 and body["error"]["code"] == "invalid_query" and body["error"].get("path"),
              "a bad member: 400 naming a path", body)
        if not_available(body):
            print("NOTE: kind funnel is not implemented yet: the bad-member path is 'kind', not 'steps'")
        else:
            check(body["error"]["path"].startswith("steps"), "the path names steps", body)

        st, hdr, body = query(srv, "events", {}, headers={"X-Query-Id": "mine-1"})
        check(hdr.get("X-Query-Id") == "mine-1", "the client's query id is used", str(hdr))
        st, hdr, body = query(srv, "events", {}, headers={"X-Query-Id": "not ok!"})
        check(st == 400 and body["error"].get("path") == "id", "a bad query id: 400 naming id", body)
        st, hdr, body = query(srv, "events", {}, qs="?format=xml")
        check(st == 400 and body["error"].get("field") == "format", "a bad format: 400", body)

        # roles
        st, hdr, body = query(srv, "events", {}, key="wrong")
        check(st == 401, "no valid key: 401", body)
        viewer, analyst, advisor = new_key(srv, "viewer"), new_key(srv, "analyst"), new_key(srv, "advisor")
        st, hdr, body = query(srv, "no_such_kind", {}, key=viewer)
        check(st == 403, "a viewer may not query", body)
        st, hdr, body = query(srv, "no_such_kind", {}, key=advisor)
        check(st == 403, "an advisor may not query", body)
        st, hdr, body = query(srv, "no_such_kind", {}, key=analyst)
        check(st == 400, "an analyst may query", body)
        st, hdr, body = query(srv, "export", {}, key=analyst)
        check(st == 403, "an export needs admin", body)
        st, body2 = srv.api("GET", "/api/v1/queries", key=viewer)
        check(st == 403, "a viewer may not list queries", body2)

        st, hdr, body = query(srv, "export", {})
        if st == 400 and not_available(body):
            print("NOTE: kind export is not implemented yet: the HTTP export not tested beyond its error")
        else:
            check(st == 200 and "ndjson" in hdr.get("Content-Type", ""), "export: NDJSON", str(hdr))
            rows = [json.loads(l) for l in body.decode().splitlines() if l.strip()]
            check(len(rows) == 30, "export has every event", str(len(rows)))
    finally:
        srv.cleanup()


def test_queries_list_and_cancel():
    srv = Server(partitions=2).start()
    try:
        now = int(time.time() * 1000)
        for i in range(4):
            post_events(srv, ndjson_events(500, now, prefix=f"c{i}-"))
        st, body = srv.api("GET", "/api/v1/queries")
        check(st == 200 and body == {"queries": []}, "no query running", body)
        st, body = srv.api("DELETE", "/api/v1/query/nope")
        check(st == 404, "cancelling an unknown query: 404", body)
        st, body = srv.api("PUT", "/api/v1/query/events", {})
        check(st == 405, "PUT on a query: 405", body)

        reqs = requests_by_kind(now)
        kind = None
        for k in ("funnel", "paths", "events", "retention"):
            st, _, b = query(srv, k, reqs[k])
            if not (st == 400 and not_available(b)):
                kind = k
                break
        if kind is None:
            print("NOTE: no query kind is implemented yet: cancelling a running query not tested "
                  "(only the route's 404 and the empty list)")
            return
        # a query racing its own cancel: it ends cancelled (409) or answered (200); never anything else
        result = {}

        def runq():
            result["r"] = query(srv, kind, reqs[kind], headers={"X-Query-Id": "cancel-me"})

        t = threading.Thread(target=runq)
        t.start()
        cancelled = False
        listed = False
        while t.is_alive() and not cancelled:
            st, body = srv.api("GET", "/api/v1/queries")
            listed |= any(q.get("id") == "cancel-me" and q.get("kind") == kind and "elapsed_ms" in q
                          for q in body.get("queries", []))
            st, _ = srv.api("DELETE", "/api/v1/query/cancel-me")
            cancelled = st == 200
        t.join(60)
        st, hdr, body = result["r"]
        check(st in (200, 409), f"a cancelled {kind} answers 200 or 409", body)
        if st == 409:
            check(body["error"]["code"] == "query_cancelled", "409 query_cancelled", body)
        if cancelled:
            print(f"note: cancel reached the running {kind} query (listed: {listed}, answer {st})")
        st, body = srv.api("GET", "/api/v1/queries")
        check(body == {"queries": []}, "nothing left running", body)
    finally:
        srv.cleanup()


def test_answered_kinds_http_and_url():
    srv = Server(partitions=2).start()
    try:
        now = int(time.time() * 1000)
        post_events(srv, ndjson_events(20, now))
        reqs = requests_by_kind(now)
        for kind, req in reqs.items():
            st, hdr, body = query(srv, kind, req)
            if st == 400 and not_available(body):
                print(f"NOTE: kind {kind} is not implemented yet: its HTTP answer and CSV not tested")
                continue
            check(st == 200 and isinstance(body, dict), f"{kind} answers 200 JSON", body)
            main = MAIN_ROWS[kind]
            check(main in body, f"{kind} answer has {main}", str(body)[:300])
            st, hdr, csv = query(srv, kind, req, qs="?format=csv")
            check(st == 200 and hdr.get("Content-Type", "").startswith("text/csv"), f"{kind} as CSV", csv)
            st2, hdr2, csv2 = query(srv, kind, req, headers={"Accept": "text/csv"})
            check(st2 == 200 and csv2 == csv, f"{kind}: Accept: text/csv gives the same CSV")
            if isinstance(body.get(main), list) and body[main]:
                text = csv.decode()
                check(text.endswith("\r\n") and len(text.split("\r\n")) >= 2, f"{kind} CSV has a header and rows",
                      text[:300])
        # --url mode: errors the CLI's way, exit 2
        req = write_json("url_bad.json", {"from": "2026-01-01", "to": "2026-01-02"})
        url = f"http://127.0.0.1:{srv.port}"
        rc, out, err = run(["query", "no_such_kind", req, "--url", url, "--key", ADMIN_KEY])
        check(rc == 2 and err.startswith("waymark query: kind: "), "--url bad kind: exit 2, names kind", err)
        rc, out, err = run(["query", "events", req, "--url", url, "--key", "wrong"])
        check(rc == 1 and "API key" in err, "--url with a bad key: exit 1", err)
        rc, out, err = run(["query", "events", req, "--url", url, "--data", srv.data])
        check(rc == 2, "--url and --data together: exit 2", err)
        for kind, body in reqs.items():
            path = write_json(f"url_{kind}.json", dict(body, kind=kind))
            rc, out, err = run(["query", path, "--url", url, "--key", ADMIN_KEY, "--format", "json"])
            if rc == 2 and "not available" in err:
                continue   # noted above
            check(rc == 0 and MAIN_ROWS[kind] in json.loads(out), f"--url {kind} (kind from the request)", err)
    finally:
        srv.cleanup()


def test_funnel_save_segment():
    srv = Server(partitions=2).start()
    try:
        now = int(time.time() * 1000)
        lines = []
        for u in range(12):
            lines.append(json.dumps({"type": "track", "event": "Open", "distinct_id": f"s{u}", "time": now - 50000}))
            if u % 3 == 0:
                lines.append(json.dumps({"type": "track", "event": "Buy", "distinct_id": f"s{u}",
                                         "time": now - 40000}))
        post_events(srv, "\n".join(lines) + "\n")
        req = {"from": local_date(now, -1), "to": local_date(now, 1), "window": "1d",
               "steps": [{"event": "Open"}, {"event": "Buy"}], "dropped_at": 1, "save_segment": "open_no_buy"}
        st, hdr, body = query(srv, "funnel", req)
        if st == 400 and not_available(body):
            print("NOTE: kind funnel is not implemented yet: save_segment not tested")
            return
        check(st == 200 and body.get("saved_segment") == "open_no_buy", "funnel saves its drop-offs", body)
        dropped = body.get("dropped_total")
        check(isinstance(dropped, int) and dropped > 0 and len(body.get("dropped", [])) == dropped,
              "the answer lists the drop-offs", body)
        count = lambda: srv.api("GET", "/api/v1/segments/open_no_buy/count")[1]
        c = srv.wait_for(lambda: count().get("count") == dropped and count(), timeout=10)
        check(c and c.get("count") == dropped, "the saved list holds exactly the drop-offs", count())
        st, seg = srv.api("GET", "/api/v1/segments/open_no_buy")
        check(st == 200 and seg["definition"].get("kind") == "static", "it is a static list segment", seg)
        # some buy later: saving again replaces the list (members who bought leave it)
        post_events(srv, "\n".join(json.dumps({"type": "track", "event": "Buy", "distinct_id": f"s{u}",
                                                "time": now - 30000}) for u in (1, 2)) + "\n")
        st, hdr, body2 = query(srv, "funnel", req)
        check(st == 200 and body2.get("dropped_total", -1) < dropped, "fewer drop-offs now", body2)
        c = srv.wait_for(lambda: count().get("count") == body2.get("dropped_total") and count(), timeout=10)
        check(c and c.get("count") == body2.get("dropped_total"), "the list was replaced, not added to", count())
        # a segment of another kind is not overwritten
        st, _ = srv.api("POST", "/api/v1/segments", {"key": "openers", "name": "openers",
                                                   "condition": {"did": "Open", "within": "30d"}})
        st, _ = srv.api("POST", "/api/v1/segments/openers/publish")
        st, hdr, body3 = query(srv, "funnel", dict(req, save_segment="openers"))
        check(st == 400 and body3["error"].get("path") == "save_segment", "a rule segment is not replaced", body3)
    finally:
        srv.cleanup()


for case in (test_compactor_after_http_ingest, test_cli_compact_and_check, test_http_errors_and_roles,
             test_queries_list_and_cancel, test_answered_kinds_http_and_url, test_funnel_save_segment):
    run_case(case)
shutil.rmtree(TMP, ignore_errors=True)
finish()
