"""Tags and segments against the real server.

1. Generated brokerage data (`waymark gen`, imported offline): a tier rule tag,
   metric tags and a three-clause segment (profile + did + tag) whose count,
   members and preview are checked against an independent computation in
   Python over the same file.
2. Real time with the test clock: a segment entered as events arrive and left
   as the window slides, $SegmentEntered / $SegmentExited in the stream,
   customer 360, first / last / preference / days_since tags, tag history and
   the value on a date, distributions.
3. Imported tags with bad lines, static lists, export, set algebra, the
   segment-entry journey reaching a real receiver, a tier tag driving the
   tiered-service journey, recommendations never above the customer's risk
   level.
"""
import collections
import csv
import io
import json
import os
import subprocess
import tempfile
import time
import urllib.parse

from journeys import advance, load_json, now_ms, setup_project
from receiver import Receiver
from wmtest import BIN, Server, check, finish, run_case, track

DAY = 86400000
TZ_MS = 8 * 3600000


def local_day(ms):
    return (ms + TZ_MS) // DAY


def profile(uid, props, t=None):
    p = dict(props)
    p["$is_login_id"] = True
    return {"type": "profile_set", "distinct_id": uid, "time": t or int(time.time() * 1000),
            "lib": {"$lib": "python", "$lib_version": "1.0"}, "properties": p}


def post(srv, recs):
    st, _, body = srv.sa_post(recs)
    assert st == 200, (st, body)


def publish_def(srv, kind, d):
    st, body = srv.api("POST", f"/api/v1/{kind}", d)
    check(st == 201 and body.get("valid"), f"{kind} {d['key']} saved", body)
    st, body = srv.api("POST", f"/api/v1/{kind}/{d['key']}/publish")
    check(st == 200 and body.get("status") == "published", f"{kind} {d['key']} published", body)


def wait_computed(srv, kind, key, timeout=30):
    return srv.wait_for(lambda: srv.api("GET", f"/api/v1/{kind}/{key}")[1].get("computed"), timeout)


def members(srv, key, ids="login_id"):
    out, after = [], 0
    while True:
        st, body = srv.api("GET", f"/api/v1/segments/{key}/members?ids={ids}&limit=500&after={after}")
        assert st == 200, (st, body)
        out += body["members"]
        if not body.get("next"):
            return out
        after = body["next"]


def seg_events(srv, uid, name):
    st, body = srv.events(uid, limit=200, id_type="login_id")
    return [e for e in body.get("events", []) if e["event"] == name] if st == 200 else []


TIER = {"key": "tier", "name": "客户分层", "kind": "rule",
        "layers": [{"value": "高净值", "if": {"profile": "aum", "op": ">=", "value": 1000000}},
                   {"value": "大众富裕", "if": {"profile": "aum", "op": ">=", "value": 200000}}],
        "default": "长尾"}
LOGINS = {"key": "logins_30d", "name": "近30天登录次数", "kind": "metric", "event": "Login", "agg": "count",
          "within": "30d"}
ACTIVE = {"key": "active_wealth", "name": "活跃中高风险富裕客户",
          "condition": {"all": [{"profile": "risk_level", "op": ">=", "value": "C3"},
                                {"did": "Login", "count": {">=": 2}, "within": "30d"},
                                {"tag": "tier", "op": "in", "value": ["高净值", "大众富裕"]}]}}


def expected_from_file(path, now):
    """The independent computation: last profile values per login id, Login
    events per login id in the last 30 local days (Asia/Shanghai)."""
    profiles = collections.defaultdict(dict)
    logins = collections.Counter()
    today = local_day(now)
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["type"] == "profile_set":
                profiles[r["distinct_id"]].update(r["properties"])
            elif r["type"] == "track" and r["event"] == "Login" and r["properties"].get("$is_login_id"):
                if local_day(r["time"]) >= today - 29:
                    logins[r["distinct_id"]] += 1

    def tier(p):
        aum = p.get("aum")
        if isinstance(aum, (int, float)) and aum >= 1000000:
            return "高净值"
        if isinstance(aum, (int, float)) and aum >= 200000:
            return "大众富裕"
        return "长尾"

    want = set()
    for uid, p in profiles.items():
        rl = p.get("risk_level", "")
        if rl[:1] == "C" and rl[1:].isdigit() and int(rl[1:]) >= 3 and logins[uid] >= 2 and \
                tier(p) in ("高净值", "大众富裕"):
            want.add(uid)
    tiers = collections.Counter(tier(p) for p in profiles.values())
    return want, tiers, logins, profiles, tier


def test_generated_data():
    data = tempfile.mkdtemp(prefix="wm-aud-")
    gen = os.path.join(data, "gen.ndjson")
    start = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 31 * 86400))
    subprocess.run([BIN, "gen", "--users", "400", "--days", "30", "--seed", "11", "--start", start, "-o", gen],
                   check=True, capture_output=True)
    subprocess.run([BIN, "import", "--data", data, gen], check=True, capture_output=True)
    srv = Server(data_dir=data).start()
    try:
        for d in (TIER, LOGINS):
            publish_def(srv, "tags", d)
        publish_def(srv, "segments", ACTIVE)
        check(wait_computed(srv, "tags", "tier") and wait_computed(srv, "segments", "active_wealth"),
              "publish recompute finishes on every partition")
        want, tiers, logins, profiles, tier_of = expected_from_file(gen, int(time.time() * 1000))
        check(len(want) > 5, "the generated data has members for the segment", len(want))
        got = {m.get("login_id") for m in members(srv, "active_wealth")}
        check(got == want, "segment members equal the independent computation",
              (sorted(got - want)[:5], sorted(want - got)[:5], len(got), len(want)))
        st, cnt = srv.api("GET", "/api/v1/segments/active_wealth/count")
        check(st == 200 and cnt["count"] == len(want), "segment count equals the computation", (cnt, len(want)))
        st, pv = srv.api("POST", "/api/v1/segments/preview", {"condition": ACTIVE["condition"]})
        check(st == 200 and pv["count"] == len(want) and len(pv["sample"]) == min(20, len(want)),
              "preview count and sample", (pv.get("count"), len(want)))
        check(all(s["login_id"] in want for s in pv.get("sample", [])), "preview samples are members")
        # a preview over a behaviour nobody keeps a counter for is answered by a scan
        sub = {"did": "Login", "count": {">=": 4}, "within": "30d"}
        st, pv4 = srv.api("POST", "/api/v1/segments/preview", {"condition": sub})
        check(st == 200 and pv4["count"] == sum(1 for n in logins.values() if n >= 4),
              "preview of a new did-clause scans the events", (pv4.get("count"),))
        # any / not through the planner, against the computation
        def level(p):
            rl = p.get("risk_level", "")
            return int(rl[1:]) if rl[:1] == "C" and rl[1:].isdigit() else 0
        cond_any = {"any": [{"profile": "risk_level", "op": "=", "value": "C5"},
                            {"tag": "tier", "op": "=", "value": "高净值"}]}
        exp_any = sum(1 for p in profiles.values() if level(p) == 5 or tier_of(p) == "高净值")
        st, pv = srv.api("POST", "/api/v1/segments/preview", {"condition": cond_any})
        check(st == 200 and pv["count"] == exp_any, "preview of any (profile | tag)", (pv.get("count"), exp_any))
        cond_not = {"all": [{"profile": "risk_level", "op": ">=", "value": "C3"},
                            {"not": {"tag": "tier", "op": "=", "value": "长尾"}}]}
        exp_not = sum(1 for p in profiles.values() if level(p) >= 3 and tier_of(p) != "长尾")
        st, pv = srv.api("POST", "/api/v1/segments/preview", {"condition": cond_not})
        check(st == 200 and pv["count"] == exp_not, "preview of all with not", (pv.get("count"), exp_not))
        st, dist = srv.api("GET", "/api/v1/tags/tier/distribution")
        by = {v["value"]: v["count"] for v in dist.get("values", [])}
        check(by.get("高净值") == tiers["高净值"] and by.get("大众富裕") == tiers["大众富裕"],
              "tier distribution (known customers) matches", (by, dict(tiers)))
        uid = next(iter(sorted(want)))
        st, u = srv.user(uid, id_type="login_id")
        check(st == 200 and u["tags"].get("logins_30d") == logins[uid], "metric tag = Login count in 30 days",
              (u.get("tags"), logins[uid]))
        check(any(s["segment"] == "active_wealth" and s["since_ms"] > 0 for s in u.get("segments", [])),
              "customer 360 lists the segment with since-when", u.get("segments"))
        check("tier" in u.get("tag_meta", {}) and u["tag_meta"]["tier"]["changed_ms"] > 0,
              "customer 360 shows when a tag last changed", u.get("tag_meta"))
        # an event stream entry for every member (publish), none doubled
        entered = seg_events(srv, uid, "$SegmentEntered")
        check(len(entered) == 1 and entered[0]["properties"]["segment_version"] == 1,
              "one $SegmentEntered for a member after publish", entered)
        # bad definitions name the path
        st, v = srv.api("POST", "/api/v1/segments/validate",
                        {"key": "bad", "condition": {"profile": "aum", "op": "~", "value": 1}})
        check(st == 200 and not v["valid"] and v["errors"][0]["path"].startswith("$.condition"),
              "segment validation names the JSON path", v)
        st, v = srv.api("POST", "/api/v1/segments", {"key": "bad2", "condition": {"in_segment": "nope"}})
        check(st == 422 and any("nope" in e["message"] for e in v["errors"]), "unknown segment reference", v)
    finally:
        srv.cleanup()
        subprocess.run(["rm", "-rf", data])


def test_realtime():
    srv = Server(extra=["--test-clock"]).start()
    try:
        t0 = now_ms(srv)
        post(srv, [profile("rt1", {"aum": 300000, "risk_level": "C4"}, t0),
                   profile("rt2", {"aum": 50000, "risk_level": "C2"}, t0)])
        for d in (TIER,
                  {"key": "first_channel", "kind": "first", "event": "$AppStart", "field": "channel"},
                  {"key": "last_fund", "kind": "last", "event": "ViewFundDetail", "field": "fund_code"},
                  {"key": "fav_type", "kind": "preference", "event": "ViewFundDetail", "field": "fund_type",
                   "within": "30d"},
                  {"key": "days_since_sub", "kind": "metric", "event": "SubscribeFund", "agg": "days_since"},
                  {"key": "sub_90d", "kind": "metric", "event": "SubscribeFund", "agg": "sum", "field": "amount",
                   "within": "90d", "buckets": [{"name": "low", "lt": 10000}, {"name": "mid", "lt": 100000},
                                                {"name": "high"}]}):
            publish_def(srv, "tags", d)
        publish_def(srv, "segments", {"key": "twice_7d", "name": "7天内登录两次",
                                      "condition": {"all": [{"did": "Login", "count": {">=": 2}, "within": "7d"},
                                                            {"tag": "tier", "op": "!=", "value": "长尾"}]}})
        publish_def(srv, "segments", {"key": "sched_rich", "refresh": {"mode": "schedule", "cron": "0 6 * * *"},
                                      "condition": {"profile": "aum", "op": ">=", "value": 1000000}})
        check(wait_computed(srv, "segments", "twice_7d"), "segment computed")
        t = now_ms(srv)
        post(srv, [track("rt1", "Login", t=t)])
        time.sleep(0.3)
        check(not seg_events(srv, "rt1", "$SegmentEntered"), "one Login: not yet in the segment")
        post(srv, [track("rt1", "Login", t=t + 1000)])
        check(srv.wait_for(lambda: seg_events(srv, "rt1", "$SegmentEntered")), "second Login: $SegmentEntered")
        post(srv, [track("rt2", "Login", t=t), track("rt2", "Login", t=t + 1)])
        time.sleep(0.3)
        check(not seg_events(srv, "rt2", "$SegmentEntered"), "a long-tail customer stays out (tag clause)")
        # the profile moves the tier, the tier moves the segment
        post(srv, [profile("rt2", {"aum": 2500000}, t + 2)])
        check(srv.wait_for(lambda: seg_events(srv, "rt2", "$SegmentEntered")),
              "a profile change raises the tier and enters the segment")
        st, u = srv.user("rt2", id_type="login_id")
        check(u["tags"].get("tier") == "高净值", "tier tag follows the profile", u.get("tags"))
        check(not any(s["segment"] == "sched_rich" for s in u["segments"]),
              "a scheduled segment does not move in real time", u["segments"])
        # events for first / last / preference / metrics
        post(srv, [track("rt1", "$AppStart", {"channel": "huawei"}, t=t + 10),
                   track("rt1", "$AppStart", {"channel": "xiaomi"}, t=t + 20),
                   track("rt1", "ViewFundDetail", {"fund_code": "000001", "fund_type": "equity"}, t=t + 30),
                   track("rt1", "ViewFundDetail", {"fund_code": "000002", "fund_type": "bond"}, t=t + 40),
                   track("rt1", "ViewFundDetail", {"fund_code": "000003", "fund_type": "equity"}, t=t + 50),
                   track("rt1", "ViewFundDetail", {"fund_code": "000009", "fund_type": "bond"}, t=t - 5000),
                   track("rt1", "SubscribeFund", {"fund_code": "000001", "amount": 30000}, t=t + 60),
                   track("rt1", "SubscribeFund", {"fund_code": "000003", "amount": 25000}, t=t + 70)])
        time.sleep(0.4)
        st, u = srv.user("rt1", id_type="login_id")
        tags = u.get("tags", {})
        check(tags.get("first_channel") == "huawei", "first tag keeps the first value", tags)
        check(tags.get("last_fund") == "000003", "last tag: the latest event's value (late events do not win)", tags)
        check(tags.get("fav_type") in ("equity", "bond") and u["tag_meta"]["fav_type"]["share"] == 0.5,
              "preference tag with its share (2 of 4)", (tags, u.get("tag_meta")))
        check(tags.get("sub_90d") == "mid" and tags.get("days_since_sub") == 0, "metric buckets and days since",
              tags)
        # the clock: three days later days_since moves, seven days later the segment is left
        advance(srv, "3d")
        check(srv.wait_for(lambda: srv.user("rt1", id_type="login_id")[1]["tags"].get("days_since_sub") == 3),
              "days_since refreshed by the clock pass", srv.user("rt1", id_type="login_id")[1].get("tags"))
        advance(srv, "5d")
        check(srv.wait_for(lambda: seg_events(srv, "rt1", "$SegmentExited")),
              "the 7-day window slides: $SegmentExited by the clock pass")
        ex = seg_events(srv, "rt1", "$SegmentExited")
        check(len(ex) == 1 and ex[0]["properties"]["reason"] == "clock", "exit reason clock, once", ex)
        st, u = srv.user("rt1", id_type="login_id")
        check(not any(s["segment"] == "twice_7d" for s in u["segments"]), "360 no longer lists the segment")
        check(srv.wait_for(lambda: any(s["segment"] == "sched_rich"
                                       for s in srv.user("rt2", id_type="login_id")[1]["segments"])),
              "the scheduled refresh (06:00) recomputed the segment", srv.user("rt2", id_type="login_id")[1]["segments"])
        # tag history: the tier on a day
        before = t0 - 1
        st, h = srv.api("GET", f"/api/v1/users/rt2/tags/tier?id_type=login_id")
        vals = [x["value"] for x in h.get("history", [])]
        check(vals == ["长尾", "高净值"], "tier history of rt2", h)
        st, at = srv.api("GET", f"/api/v1/users/rt2/tags/tier?id_type=login_id&at={t + 1}")
        check(at.get("value") == "长尾", "the tier as of a time before the change", at)
        st, at = srv.api("GET", f"/api/v1/users/rt2/tags/tier?id_type=login_id&at={before}")
        check(at.get("value") is None, "no tier before the tag existed", at)
        st, d = srv.api("GET", "/api/v1/tags/tier/distribution")
        check({v["value"]: v["count"] for v in d["values"]} == {"高净值": 1, "大众富裕": 1}, "distribution now", d)
        st, d = srv.api("GET", f"/api/v1/tags/tier/distribution?at={t + 1}")
        check({v["value"]: v["count"] for v in d["values"]} == {"长尾": 1, "大众富裕": 1}, "distribution as of", d)
    finally:
        srv.cleanup()


def test_imports_lists_journeys():
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            t = now_ms(srv)
            users = [f"im{i}" for i in range(6)]
            post(srv, [profile(u, {"aum": 100000 * (i + 1), "risk_level": f"C{1 + i % 5}", "name": f"客户{i}",
                                    "mobile": f"1380000000{i}"}, t) for i, u in enumerate(users)])
            publish_def(srv, "tags", {"key": "vip_level", "kind": "imported", "type": "number"})
            body = "id,value\nim0,3\nim1,x\nnobody,2\nim2,\nim3,5\n"
            req = f"/api/v1/tags/vip_level/import?id_type=login_id&format=csv"
            st, res = srv.api("POST", req, body)
            check(st == 200 and res["imported"] == 2 and res["rejected"] == 3, "CSV import: 2 good, 3 bad", res)
            lines = sorted(e["line"] for e in res.get("errors", []))
            check(lines == [3, 4, 5], "errors name the file lines", res.get("errors"))
            check(any("nobody" in e["message"] for e in res["errors"]), "unknown customer named", res["errors"])
            st, u = srv.user("im3", id_type="login_id")
            check(u["tags"].get("vip_level") == 5, "imported value stored", u.get("tags"))
            nd = "\n".join(json.dumps(x) for x in ({"id": "im4", "value": 1}, {"id": "im5", "value": "high"},
                                                  {"value": 2}, "not json"))
            st, res = srv.api("POST", "/api/v1/tags/vip_level/import?id_type=login_id", nd)
            check(st == 200 and res["imported"] == 1 and res["rejected"] == 3, "NDJSON import with bad lines", res)
            # manual values through the API
            st, _ = srv.api("PUT", "/api/v1/users/im0/tags/vip_level?id_type=login_id", {"value": 7})
            check(st == 200 and srv.user("im0", id_type="login_id")[1]["tags"].get("vip_level") == 7, "manual set")
            st, _ = srv.api("DELETE", "/api/v1/users/im0/tags/vip_level?id_type=login_id")
            check(st == 200 and "vip_level" not in srv.user("im0", id_type="login_id")[1]["tags"], "manual unset")
            st, b = srv.api("PUT", "/api/v1/users/im0/tags/vip_level?id_type=login_id", {"value": "high"})
            check(st == 400, "a value of the wrong type is refused", b)
            st, b = srv.api("PUT", "/api/v1/users/im0/tags/" + "x" * 80 + "?id_type=login_id", {"value": 1})
            check(st == 400, "a tag key over 64 bytes is refused (the partition stays up)", b)
            st, b = srv.api("PUT", "/api/v1/users/im0/tags/nope?id_type=login_id", {"value": 1})
            check(st == 404, "an undefined tag takes no value", b)
            j = {"key": "bad_tag_key", "entry": {"event": "X"},
                 "nodes": [{"id": "t", "type": "set_tag", "tag": "y" * 70, "next": "e"}, {"id": "e", "type": "exit"}]}
            st, b = srv.api("POST", "/api/v1/journeys/validate", j)
            check(st == 200 and not b["valid"], "a journey's set_tag key follows the tag key rule", b)
            st, b = srv.api("POST", "/api/v1/journeys/validate",
                            {"key": "seg_typo", "name": "typo", "entry": {"segment": "no_such_segment"},
                             "nodes": [{"id": "e", "type": "exit"}]})
            check(st == 200 and not b["valid"] and b["errors"][0]["field"] == "entry.segment",
                  "a segment entry names a segment of the project", b)
            st, _ = srv.api("GET", "/readyz")
            check(st == 200, "still ready")
            # static list, algebra, export
            publish_def(srv, "segments", {"key": "branch_list", "kind": "static", "name": "网点名单"})
            ndl = "\n".join(json.dumps({"id": u}) for u in users[:4])
            st, res = srv.api("POST", "/api/v1/segments/branch_list/import?id_type=login_id", ndl)
            check(st == 200 and res["imported"] == 4, "static list upload", res)
            check(wait_computed(srv, "segments", "branch_list"), "an uploaded list counts as computed")
            publish_def(srv, "segments", {"key": "rich", "condition": {"profile": "aum", "op": ">=", "value": 300000}})
            publish_def(srv, "segments", {"key": "rich_on_list", "kind": "intersect", "of": ["branch_list", "rich"]})
            check(wait_computed(srv, "segments", "rich_on_list"), "algebra segment computed")
            got = {m["login_id"] for m in members(srv, "rich_on_list")}
            check(got == {"im2", "im3"}, "intersect segment members", got)
            for op, want in (("union", 6), ("intersect", 2), ("except", 2)):
                st, c = srv.api("POST", "/api/v1/segments/compute", {"op": op, "of": ["branch_list", "rich"]})
                check(st == 200 and c["count"] == want, f"set algebra {op}", c)
            st, hdr, raw = srv.request("GET", "/api/v1/segments/rich/export?format=csv&ids=login_id,mobile&fields=name,aum",
                                       headers={"Authorization": "Bearer wm_test_admin_key"})
            rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
            check(st == 200 and len(rows) == 4 and {r["login_id"] for r in rows} == {"im2", "im3", "im4", "im5"},
                  "CSV export with chosen ids", rows)
            check(all(r["mobile"].startswith("138") and r["name"].startswith("客户") for r in rows),
                  "export carries profile fields and mobile (WeCom 1-to-1 outreach)", rows[:2])
            st, kb = srv.api("POST", "/api/v1/keys", {"role": "operator"})
            st, hdr, raw = srv.request("GET", "/api/v1/segments/rich/export?format=csv&ids=login_id,mobile&fields=name",
                                       headers={"Authorization": "Bearer " + kb["key"]})
            rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
            check(st == 200 and rows and all("*" in r["mobile"] and r["name"].endswith("**") for r in rows),
                  "personal data is masked for roles other than admin", rows[:2])
            st, hdr, raw = srv.request("GET", "/api/v1/segments/rich/export?format=ndjson&ids=login_id",
                                       headers={"Authorization": "Bearer wm_test_admin_key"})
            objs = [json.loads(x) for x in raw.decode().splitlines() if x.strip()]
            check(len(objs) == 4 and all(o["since_ms"] > 0 for o in objs), "NDJSON export", objs[:2])
            # a journey entered by a segment, reaching a real receiver
            j = {"key": "welcome_rich", "name": "高资产欢迎", "entry": {"segment": "rich_on_list"},
                 "nodes": [{"id": "hook", "type": "webhook", "url": rx.url("/welcome"), "next": "end"},
                           {"id": "end", "type": "exit"}]}
            st, body = srv.api("POST", "/api/v1/journeys", j)
            check(st in (200, 201) and body.get("valid"), "segment-entry journey valid", body)
            srv.api("POST", "/api/v1/journeys/welcome_rich/publish")
            post(srv, [profile("im1", {"aum": 900000}, t + 5)])
            check(rx.wait_for(1, timeout=10), "segment entry -> journey -> webhook received", rx.requests())
            st, u = srv.user("im1", id_type="login_id")
            check(any(x["journey"] == "welcome_rich" for x in u["journeys"]) or rx.requests(),
                  "the customer entered the journey", u.get("journeys"))
            # recommendations: never above the customer's risk level, never held
            recs = [{"type": "item_set", "item_type": "fund", "item_id": f"{100000 + k}", "time": t,
                     "lib": {"$lib": "python", "$lib_version": "1"},
                     "properties": {"fund_name": f"基金{k}", "fund_type": ["equity", "bond", "mixed"][k % 3],
                                    "risk_level": f"R{1 + k % 5}"}} for k in range(20)]
            post(srv, recs)
            post(srv, [track("im1", "ViewFundDetail", {"fund_code": "100004", "fund_type": "mixed"}, t=t + 10),
                       track("im1", "ViewFundDetail", {"fund_code": "100001", "fund_type": "bond"}, t=t + 11),
                       track("im3", "SubscribeFund", {"fund_code": "100001", "amount": 1000}, t=t + 12),
                       track("im3", "SubscribeFund", {"fund_code": "100006", "amount": 1000}, t=t + 13),
                       track("im1", "SubscribeFund", {"fund_code": "100001", "amount": 1000}, t=t + 14)])
            time.sleep(0.5)
            st, r = srv.api("GET", "/api/v1/users/im1/recommendations?id_type=login_id&type=fund&n=5")
            items = r.get("recommendations", [])
            # im1 is C2: only R1 / R2 products
            check(st == 200 and len(items) == 5 and all(i["risk_level"] in ("R1", "R2") for i in items),
                  "recommendations never above C2", items)
            check(all(i["id"] != "100001" for i in items), "a held product is not recommended", items)
            check(any(i["id"] == "100006" and i["reason_code"] == "co_purchase" for i in items),
                  "what customers who hold 100001 also bought", items)
            check(all(i["reason"] for i in items), "each recommendation says why", items)
            st, r = srv.api("GET", "/api/v1/users/im1/recommendations?id_type=login_id&include_held=true&n=20")
            check(any(i["id"] == "100001" for i in r["recommendations"]), "include_held", r)
        finally:
            srv.cleanup()


def test_tier_tag_drives_tiered_service():
    """The seed journey 分层服务 branching on the tier tag instead of a profile field."""
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            publish_def(srv, "tags", {"key": "tier", "kind": "rule",
                                      "layers": [{"value": "high_net_worth",
                                                  "if": {"profile": "aum", "op": ">=", "value": 6000000}},
                                                 {"value": "mass_affluent",
                                                  "if": {"profile": "aum", "op": ">=", "value": 500000}}],
                                      "default": "long_tail"})
            j = load_json(os.path.join("journeys", "tiered_service.json"))
            for arm in j["nodes"][0]["arms"]:
                arm["if"] = {"tag": "tier", "op": "=", "value": arm["if"]["value"]}
            st, body = srv.api("POST", "/api/v1/journeys", j)
            check(st in (200, 201) and body.get("valid"), "tiered_service on the tier tag is valid", body)
            srv.api("POST", "/api/v1/journeys/tiered_service/publish")
            # the journey holds pushes in quiet hours (21:00-08:30 China time):
            # move the test clock to 10:00 local so the push goes out whatever the hour
            t = now_ms(srv)
            day = 86400000
            ten = ((t + 8 * 3600000) // day) * day - 8 * 3600000 + 10 * 3600000
            if ten <= t:
                ten += day
            t = advance(srv, "%dms" % (ten - t))
            post(srv, [profile("ts_h", {"aum": 8000000, "risk_level": "C4"}, t),
                       profile("ts_m", {"aum": 800000, "risk_level": "C3"}, t)])
            time.sleep(0.3)
            post(srv, [track("ts_h", "TransferIn", {"amount": 50000}, t=t + 1),
                       track("ts_m", "TransferIn", {"amount": 50000}, t=t + 1)])

            def leads():
                st, b = srv.api("GET", "/api/v1/leads?limit=100")
                return b.get("leads", []) if st == 200 else []
            got = srv.wait_for(lambda: [x for x in leads() if x["queue"] == "private_banking"])
            check(got and got[0]["tags"].get("tier") == "high_net_worth",
                  "the high-net-worth tier tag routes to the private-banking advisor, lead shows the tag", got)
            check(got and isinstance(got[0].get("recommendations"), list), "the lead carries recommendations", got)
            st, body = srv.api("GET", "/api/v1/messages?user=ts_m")
            check(srv.wait_for(lambda: any(m["node"] == "ma_push" for m in
                                           srv.api("GET", "/api/v1/messages?user=ts_m")[1].get("messages", []))),
                  "the mass-affluent tag routes to the push", body)
        finally:
            srv.cleanup()


def test_cli_import():
    """`waymark tag import` offline into a stopped server's data directory,
    and through the API of a running one; rejected lines named by file line."""
    srv = Server().start()
    try:
        t = int(time.time() * 1000)
        post(srv, [profile(f"cl{i}", {"aum": i}, t) for i in range(3)])
        publish_def(srv, "tags", {"key": "crm_grade", "kind": "imported", "type": "string"})
        f = os.path.join(srv.data, "grades.csv")
        with open(f, "w", encoding="utf-8") as fh:
            fh.write("login_id,value\ncl0,A\ncl9,B\ncl1,B\n")
        r = subprocess.run([BIN, "tag", "import", "--tag", "crm_grade", "--id-type", "login_id", "--url",
                            f"http://127.0.0.1:{srv.port}", "--key", "wm_test_admin_key", f],
                           capture_output=True, text=True)
        check(r.returncode == 1 and "3 lines, 2 imported, 1 rejected" in r.stdout and
              f"{f}:3: id:" in r.stderr, "tag import over the API names the bad line", (r.stdout, r.stderr))
        srv.stop()
        with open(f, "w", encoding="utf-8") as fh:
            fh.write("login_id,value\ncl2,C\n")
        r = subprocess.run([BIN, "tag", "import", "--tag", "crm_grade", "--id-type", "login_id", "--data",
                            srv.data, f], capture_output=True, text=True)
        check(r.returncode == 0 and "1 imported" in r.stdout, "offline tag import", (r.stdout, r.stderr))
        srv.start()
        got = {u: srv.user(u, id_type="login_id")[1]["tags"].get("crm_grade") for u in ("cl0", "cl1", "cl2")}
        check(got == {"cl0": "A", "cl1": "B", "cl2": "C"}, "imported values after restart", got)
    finally:
        srv.cleanup()


run_case(test_cli_import)
run_case(test_generated_data)
run_case(test_realtime)
run_case(test_imports_lists_journeys)
run_case(test_tier_tag_drives_tiered_service)
finish()
