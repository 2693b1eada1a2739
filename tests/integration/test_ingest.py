"""Ingest over HTTP against the real server: Sensors (golden bodies from
sensors-protocol.md §2.7, GET beacon, debug, Dry-Run, CORS), Segment,
native per-record results, schema registry, tokens, dedup, dead letters,
identity merges, profiles, items and the customer-360 answers."""
import base64
import json
import time
import urllib.parse

from wmtest import Server, check, finish, run_case, track

GOLDEN_POST = ("data_list=H4sIAAAAAAACA0VOWwrCQAy8S%2FBzKY2vag%2FgEfwRWbSNGmy3y25aKaV3N10Q8xNmMpmZywQyeoISJNyqNxiggZwoPjN9Tr2rlao5CrtKLNd66DHPUVnhVv%2BwyP9jwCabJMT1ZrvbF4ejgYbvUE6wShv8KK%2FOqcOC7UAhssISMEPM8h%2FfkqqWvKqrCWYDPnSegjDF5MXRNt2TXcqS0JOBh9a1SV5C6oMwz9cvc5Son%2BMAAAA%3D&gzip=1")
GOLDEN_GET = ("/sa.gif?project=default&data=eyJ0eXBlIjoidHJhY2siLCJldmVudCI6IlZpZXdGdW5kIiwiZGlzdGluY3RfaWQiOiJ1MTAwMSIsInRpbWUiOjE3MDAwMDAwMDAwMDAsIl90cmFja19pZCI6MTIzNDU2Nzg5LCJsaWIiOnsiJGxpYiI6InB5dGhvbiIsIiRsaWJfdmVyc2lvbiI6IjEuMTEuMCIsIiRsaWJfbWV0aG9kIjoiY29kZSJ9LCJwcm9wZXJ0aWVzIjp7IiRpc19sb2dpbl9pZCI6dHJ1ZSwiZnVuZF9jb2RlIjoiMDAwMDAxIn19&ext=crc%3D1403753974")

srv = Server().start()


def events_of(uid, n=1, **kw):
    def probe():
        st, body = srv.events(uid, **kw)
        return body if st == 200 and len(body["events"]) >= n else None
    return srv.wait_for(probe)


def test_golden_post_and_get():
    st, _, body = srv.request("POST", "/sa?project=default", GOLDEN_POST,
                              {"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 200, "golden §2.7 POST accepted", body)
    body = events_of("u1001")
    check(body and body["events"][0]["event"] == "ViewFund", "golden record readable", body)
    check(body and body["events"][0]["properties"]["fund_code"] == "000001", "fund_code kept")
    # the GET beacon of the same record is a client retry: deduplicated, answered with a GIF
    st, hdr, data = srv.request("GET", GOLDEN_GET)
    check(st == 200 and hdr.get("Content-Type") == "image/gif" and data[:6] == b"GIF89a",
          "GET /sa.gif answers a 1x1 GIF", (st, hdr))
    time.sleep(0.2)
    st, body = srv.events("u1001")
    check(len(body["events"]) == 1, "same _track_id/distinct_id/time stored once", body)
    st, user = srv.user("u1001")
    check(st == 200 and {"key": "$identity_login_id", "value": "u1001"} in user["identities"],
          "customer 360 shows the login identity", user)


def test_go_style_no_content_type_and_text_plain():
    rec = track("go-user", "Login", {"channel": "app"})
    raw = base64.b64encode(json.dumps([rec]).encode()).decode()
    body = "data_list=" + urllib.parse.quote(raw, safe="")
    st, _, _ = srv.request("POST", "/sa?project=default", body, {})
    check(st == 200, "POST without Content-Type parsed as a form")
    rec2 = track("go-user", "Logout", {"channel": "app"})
    raw2 = base64.b64encode(json.dumps([rec2]).encode()).decode()
    st, _, _ = srv.request("POST", "/sa?project=default", "data_list=" + raw2,
                           {"Content-Type": "text/plain"})
    check(st == 200, "mini-program text/plain body parsed as a form")
    body = events_of("go-user", 2)
    check(body and [e["event"] for e in body["events"]] == ["Logout", "Login"] or
          body and sorted(e["event"] for e in body["events"]) == ["Login", "Logout"],
          "both records stored", body)


def test_prefixed_paths_and_cors():
    st, hdr, _ = srv.request("OPTIONS", "/collect/sa.gif", None,
                             {"Origin": "http://shop.example", "Access-Control-Request-Method": "POST",
                              "Access-Control-Request-Headers": "Dry-Run"})
    check(st == 204, "CORS preflight answered", st)
    check(hdr.get("Access-Control-Allow-Origin") == "http://shop.example", "origin echoed", hdr)
    check(hdr.get("Access-Control-Allow-Credentials") == "true", "credentials allowed")
    check("Dry-Run" in hdr.get("Access-Control-Allow-Headers", ""), "Dry-Run header allowed")
    st, hdr, _ = srv.sa_post([track("pfx-user", "PageA")], path="/collect/sa",
                             headers={"Origin": "http://shop.example"})
    check(st == 200 and hdr.get("Access-Control-Allow-Origin") == "http://shop.example",
          "prefixed /collect/sa accepted with CORS", (st, hdr))


def test_debug_and_dry_run():
    good = track("dbg-user", "Probe", {"x": 1})
    st, _, data = srv.sa_post([good], path="/debug", headers={"Dry-Run": "true"})
    check(st == 200 and json.loads(data) == {}, "/debug valid record answers {}", data)
    bad = track("dbg-user", "Probe", {"nested": {"a": 1}})
    st, _, data = srv.sa_post([bad], path="/debug", headers={"Dry-Run": "true"})
    err = json.loads(data).get("error", {})
    check(st == 400 and err.get("field") == "properties.nested", "/debug names the bad field", data)
    time.sleep(0.2)
    st, _ = srv.user("dbg-user")
    check(st == 404, "Dry-Run records are not stored", st)
    st, _, data = srv.sa_post([good], path="/debug")
    check(st == 200, "/debug without Dry-Run validates and imports", data)
    check(events_of("dbg-user") is not None, "debug record stored")
    st, _, data = srv.sa_post([good, good], path="/debug")
    check(st == 400, "debug accepts one record per request", data)


def test_partial_batch_and_schema():
    t = int(time.time() * 1000)
    recs = [track("schema-user", "Buy", {"amount": 100}, t=t),
            track("schema-user", "Buy", {"amount": "lots"}, t=t + 1),
            track("schema-user", "Buy", {"amount": 5}, t=t + 2)]
    st, _, data = srv.sa_post(recs)
    check(st == 200, "a batch with one bad record is accepted", data)
    check(json.loads(data).get("rejected") == 1, "one record rejected", data)
    body = events_of("schema-user", 2)
    check(body and len(body["events"]) == 2, "the two good records stored", body)
    st, dl = srv.api("GET", "/api/v1/deadletter?project=default")
    hits = [d for d in dl["deadletters"] if d["code"] == "type_mismatch" and d["field"] == "properties.amount"]
    check(len(hits) >= 1, "the rejected record is a dead letter naming the field", dl)
    st, schema = srv.api("GET", "/api/v1/schema?project=default")
    amount = [p for p in schema["properties"] if p["name"] == "amount" and p["namespace"] == "event"]
    check(amount and amount[0]["type"] == "number", "schema registry fixed amount as number", schema)
    st, _, data = srv.sa_post([track("schema-user", "Buy", {"amount": "x"})])
    check(st == 400, "a batch whose records are all bad answers 400", (st, data))


def test_time_window():
    now = int(time.time() * 1000)
    future = track("tw-user", "Future", t=now + 2 * 3600 * 1000)
    st, _, data = srv.sa_post([future])
    check(st == 400 and b"time_out_of_range" in data, "a record 2 h in the future is rejected", data)
    old = track("tw-user", "Old", t=now - 11 * 366 * 24 * 3600 * 1000)
    st, _, data = srv.sa_post([old])
    check(st == 400 and b"time_out_of_range" in data, "a record 11 years old is rejected", data)
    old["time_free"] = True
    st, _, data = srv.sa_post([old])
    check(st == 200, "time_free lets history in", data)


def test_encrypted_payload_rejected():
    body = "data_list=" + urllib.parse.quote(base64.b64encode(b"[]").decode()) + "&gzip=9"
    st, _, data = srv.request("POST", "/sa?project=default", body)
    check(st == 400, "gzip=9 (encrypted) answered 400", (st, data))
    st, _, data = srv.request("POST", "/sa?project=default", "data_list=%%%%&gzip=1")
    check(st == 400, "bad payload answered 400", (st, data))


def test_tokens_and_projects():
    st, _ = srv.api("POST", "/api/v1/projects", {"name": "bank", "token": "s3cret"})
    check(st == 200, "project created", st)
    st, _ = srv.api("POST", "/api/v1/projects", {"name": "bank2"}, key=None)
    check(st == 401, "management API needs a key", st)
    st, _, data = srv.sa_post([track("tok-user", "X")], project="bank")
    check(st == 400 and b"invalid_token" in data, "missing token rejected", data)
    st, _, data = srv.request("POST", "/sa?project=bank&token=s3cret",
                              "data=" + base64.b64encode(json.dumps(track("tok-user", "X")).encode()).decode())
    check(st == 200, "right token accepted", data)
    st, _, data = srv.sa_post([track("tok-user", "X")], project="nosuch")
    check(st == 400 and b"unknown_project" in data, "unknown project rejected", data)
    # the dead letter for the unknown project replays once the project exists
    st, _ = srv.api("POST", "/api/v1/projects", {"name": "nosuch"})
    st, res = srv.api("POST", "/api/v1/deadletter/replay?project=nosuch")
    check(st == 200 and res["accepted"] == 1, "dead letter replayed after the fix", res)
    st, u = srv.user("tok-user", project="nosuch")
    ok = srv.wait_for(lambda: srv.user("tok-user", project="nosuch")[0] == 200)
    check(ok, "replayed record visible in its project")


def test_signup_merge_and_profiles():
    t = int(time.time() * 1000)
    anon = "dev-abc-123"
    recs = [track(anon, "ViewFundDetail", {"fund_code": "110011"}, t=t, login=False),
            {"type": "profile_set", "distinct_id": anon, "time": t + 1,
             "properties": {"utm_source": "wechat", "city": "Shanghai"}},
            {"type": "track_signup", "event": "$SignUp", "distinct_id": "c00000042",
             "original_id": anon, "time": t + 2, "properties": {}},
            {"type": "profile_set", "distinct_id": "c00000042", "time": t + 3,
             "properties": {"$is_login_id": True, "risk_level": "C3", "city": "Beijing"}},
            {"type": "profile_increment", "distinct_id": "c00000042", "time": t + 4,
             "properties": {"$is_login_id": True, "trade_count": 2}},
            {"type": "profile_append", "distinct_id": "c00000042", "time": t + 5,
             "properties": {"$is_login_id": True, "held_products": ["fund:110011"]}},
            {"type": "profile_set_once", "distinct_id": "c00000042", "time": t + 6,
             "properties": {"$is_login_id": True, "risk_level": "C5", "first_channel": "h5"}},
            {"type": "profile_unset", "distinct_id": "c00000042", "time": t + 7,
             "properties": {"$is_login_id": True, "utm_source": True}}]
    st, _, data = srv.sa_post(recs)
    check(st == 200, "signup batch accepted", data)

    def merged():
        st, u = srv.user("c00000042")
        return u if st == 200 and u["profile"].get("first_channel") else None
    u = srv.wait_for(merged)
    check(u is not None, "login user visible", u)
    if not u:
        return
    st, a = srv.user(anon)
    check(st == 200 and a["user_id"] == u["user_id"], "anonymous id resolves to the login user", (a, u))
    p = u["profile"]
    check(p.get("risk_level") == "C3", "set_once did not overwrite", p)
    check(p.get("city") == "Beijing", "profile_set overwrote", p)
    check(p.get("trade_count") == 2, "increment from absent", p)
    check(p.get("held_products") == ["fund:110011"], "append", p)
    check("utm_source" not in p, "unset removed the property", p)
    check(u.get("merged_from") == [] and u.get("merges") == [],
          "a login attached to the anonymous user needs no merge", u)
    ev = events_of("c00000042", 2)
    names = [e["event"] for e in ev["events"]] if ev else []
    check("ViewFundDetail" in names and "$SignUp" in names,
          "the anonymous browsing shows in the known user's history", names)


def test_merge_of_anonymous_into_known_user():
    t = int(time.time() * 1000)
    known, anon = "c00000043", "dev-second-phone"
    st, _, _ = srv.sa_post([{"type": "profile_set", "distinct_id": known, "time": t,
                             "properties": {"$is_login_id": True, "tier": "mass_affluent"}}])
    check(st == 200, "known user created")
    srv.wait_for(lambda: srv.user(known)[0] == 200)
    recs = [track(anon, "ViewFundDetail", {"fund_code": "000002"}, t=t + 1, login=False),
            {"type": "profile_set", "distinct_id": anon, "time": t + 2,
             "properties": {"utm_source": "douyin", "tier": "long_tail"}},
            {"type": "track_signup", "event": "$SignUp", "distinct_id": known, "original_id": anon,
             "time": t + 3, "properties": {}}]
    st, _, _ = srv.sa_post(recs)
    check(st == 200, "anonymous browsing and signup accepted")

    def merged():
        st, u = srv.user(known)
        return u if st == 200 and u.get("merges") else None
    u = srv.wait_for(merged)
    check(u is not None, "the merge shows in the 360 answer", srv.user(known))
    if not u:
        return
    m = u["merges"][0]
    check(m["event"] == "$SignUp" and m["distinct_id"] == known and m["time"] == t + 3,
          "merge audit names the record, the id and the time", m)
    check(u["merged_from"] == [m["from_user"]], "merged_from lists the folded user", u)
    check(u["profile"].get("utm_source") == "douyin", "a property the known user lacked moved over", u)
    check(u["profile"].get("tier") == "mass_affluent", "the known user's own property wins", u)
    st, a = srv.user(anon)
    check(st == 200 and a["user_id"] == u["user_id"], "the anonymous id now resolves to the known user", a)
    ev = events_of(known, 2)
    names = [e["event"] for e in ev["events"]] if ev else []
    check("ViewFundDetail" in names, "the anonymous events show in the known user's history", names)


def test_idm3_bind_and_lookup_by_identity():
    t = int(time.time() * 1000)
    rec = {"type": "track_id_bind", "event": "$BindID", "time": t, "distinct_id": "c00000077",
           "identities": {"$identity_login_id": "c00000077", "$identity_mobile": "13800000077"},
           "properties": {"$is_login_id": True}}
    st, _, data = srv.sa_post([rec])
    check(st == 200, "bind accepted", data)
    ok = srv.wait_for(lambda: srv.user("13800000077", id_type="$identity_mobile")[0] == 200)
    check(ok, "user found by mobile identity")
    st, u = srv.user("13800000077", id_type="mobile")
    st2, u2 = srv.user("c00000077", id_type="login_id")
    check(st == 200 and st2 == 200 and u["user_id"] == u2["user_id"], "one user for both ids", (u, u2))
    st, u3 = srv.user(u["user_id"], id_type="user_id")
    check(st == 200 and u3["user_id"] == u["user_id"], "lookup by user_id", u3)


def test_items():
    rec = {"type": "item_set", "item_type": "fund", "item_id": "000001", "time": int(time.time() * 1000),
           "properties": {"fund_name": "华夏成长混合", "risk_level": "R3"}}
    st, _, _ = srv.sa_post([rec])
    check(st == 200, "item_set accepted")
    ok = srv.wait_for(lambda: srv.api("GET", "/api/v1/items/fund/000001")[0] == 200)
    st, item = srv.api("GET", "/api/v1/items/fund/000001")
    check(ok and item["properties"]["risk_level"] == "R3", "item readable", item)
    st, _ = srv.api("GET", "/api/v1/items/fund/999999")
    check(st == 404, "unknown item 404", st)


def test_segment():
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    batch = {"batch": [
        {"type": "identify", "userId": "seg-1", "anonymousId": "anon-seg-1", "traits": {"name": "张三", "plan": "gold"},
         "messageId": "m-1", "timestamp": now},
        {"type": "track", "userId": "seg-1", "event": "Order Completed", "properties": {"total": 99.5},
         "messageId": "m-2", "timestamp": now},
        {"type": "page", "userId": "seg-1", "name": "Home", "properties": {"url": "https://x.example/"},
         "messageId": "m-3", "timestamp": now},
    ]}
    auth = "Basic " + base64.b64encode(b"anykey:").decode()
    st, _, data = srv.request("POST", "/v1/batch", json.dumps(batch),
                              {"Content-Type": "application/json", "Authorization": auth})
    check(st == 200, "Segment batch accepted", data)
    ev = events_of("seg-1", 2)
    names = sorted(e["event"] for e in ev["events"]) if ev else []
    check("$pageview" in names and any(n.startswith("Order") for n in names), "track and page stored", names)
    st, u = srv.user("seg-1")
    check(st == 200 and u["profile"].get("plan") == "gold", "identify traits in the profile", u)
    st, _, data = srv.request("POST", "/v1/batch", json.dumps(batch),
                              {"Content-Type": "application/json", "Authorization": auth})
    check(st == 200 and json.loads(data).get("duplicates") == 3, "messageId retries deduplicated", data)


def test_native():
    good = json.dumps(track("nat-1", "Hello", {"k": "v"}))
    body = good + "\n{not json\n" + json.dumps(track("nat-1", "Hello2")) + "\n"
    st, _, data = srv.request("POST", "/api/v1/events?project=default", body)
    res = json.loads(data)
    check(st == 200 and res["accepted"] == 2 and res["rejected"] == 1, "NDJSON with a bad line", res)
    bad = [r for r in res["results"] if not r["ok"]]
    check(bad and bad[0]["index"] == 1 and "line 2" in bad[0]["message"], "the bad line is named", bad)


def test_unsubscribe_event_withdraws_consent():
    st, _, _ = srv.sa_post([track("unsub-1", "Unsubscribe", {"channel": "sms"})])
    check(st == 200, "Unsubscribe event accepted")

    def opted_out():
        st, u = srv.user("unsub-1")
        return st == 200 and "sms" in u["profile"].get("opt_out_channels", [])
    check(srv.wait_for(opted_out), "an Unsubscribe event records the opt-out even with no journey published",
          srv.user("unsub-1"))


def test_metrics_and_health():
    st, _, data = srv.request("GET", "/metrics")
    text = data.decode()
    check(st == 200 and "waymark_events_accepted_total" in text, "metrics exposed")
    check('waymark_events_rejected_total{reason="type_mismatch"}' in text, "rejections by reason", text[:500])
    check("waymark_fsync_seconds_total" in text and "waymark_queue_depth" in text, "fsync and queue metrics")
    st, _, _ = srv.request("GET", "/healthz")
    check(st == 200, "healthz")


for case in [test_golden_post_and_get, test_go_style_no_content_type_and_text_plain,
             test_prefixed_paths_and_cors, test_debug_and_dry_run, test_partial_batch_and_schema,
             test_encrypted_payload_rejected, test_time_window, test_tokens_and_projects, test_signup_merge_and_profiles,
             test_merge_of_anonymous_into_known_user,
             test_idm3_bind_and_lookup_by_identity, test_items, test_segment, test_native,
             test_unsubscribe_event_withdraws_consent, test_metrics_and_health]:
    run_case(case)
srv.cleanup()
finish()
