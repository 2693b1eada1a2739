"""Journey lifecycle and cross-journey rules, each case on its own server
with small journeys written here: versions (running instances finish on the
version they entered), pause / resume, stop (every live instance exits with
the reason), project-wide frequency caps across concurrent journeys with
priority, the project holdout, the A/B split report against a control arm,
provider receipts, webhook retries and permanent failures, re-entry rules
and the entry cap. Real events over HTTP, a real receiver, the test clock."""
import math
import time

from journeys import advance, advance_to_local, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track


# ---- helpers ----

def start(rx):
    srv = Server(extra=["--test-clock"]).start()
    setup_project(srv, rx)
    advance_to_local(srv, 10, 5)  # daytime in Shanghai
    return srv


def template(srv, key, channel, body, title="t"):
    st, b = srv.api("PUT", f"/api/v1/templates/{key}", {"key": key, "channel": channel, "title": title, "body": body})
    assert st == 200, (key, st, b)


def journey(key, entry, nodes, **extra):
    d = {"key": key, "name": key, "entry": entry, "nodes": nodes + [{"id": "end", "type": "exit"}]}
    d.update(extra)
    return d


def profiles(srv, users, **props):
    t = int(time.time() * 1000)
    for i in range(0, len(users), 250):
        recs = [{"type": "profile_set", "distinct_id": u, "time": t,
                 "properties": dict({"$is_login_id": True, "name": u, "mobile": f"1350{n:07d}",
                                     "push_token": f"tok-{u}"}, **props)}
                for n, u in enumerate(users[i:i + 250], start=i)]
        st, _, data = srv.sa_post(recs)
        assert st == 200, data


def fire(srv, users, event, props=None):
    for i in range(0, len(users), 250):
        st, _, data = srv.sa_post([track(u, event, props or {}) for u in users[i:i + 250]])
        assert st == 200, data


def journey_of(srv, uid, key):
    st, u = srv.user(uid)
    if st != 200:
        return None
    return next((j for j in u["journeys"] if j["journey"] == key), None)


def messages(srv, uid):
    st, body = srv.api("GET", f"/api/v1/messages?user={uid}")
    return body.get("messages", []) if st == 200 else []


def events(srv, uid, name, journey=None):
    evs = srv.events(uid, limit=500)[1].get("events", [])
    return [e for e in evs if e["event"] == name and (journey is None or e["properties"].get("journey") == journey)]


def report(srv, key):
    return srv.api("GET", f"/api/v1/journeys/{key}/report")[1]


def node_stat(rep, nid, field):
    return next((n[field] for n in rep.get("nodes", []) if n["id"] == nid), None)


# ---- (1) versions ----

def test_versions():
    with Receiver() as rx:
        srv = start(rx)
        try:
            template(srv, "ctl_v1", "sms", "版本一：{{profile.name}}")
            template(srv, "ctl_v2", "sms", "版本二：{{profile.name}}")
            old, new = ["cv_old_1", "cv_old_2"], ["cv_new_3"]
            profiles(srv, old + new)
            v1 = journey("ctl_versions", {"event": "VerEnter", "reentry": "any_time"},
                         [{"id": "w", "type": "wait", "duration": "1h", "next": "s"},
                          {"id": "s", "type": "send", "channel": "sms", "template": "ctl_v1", "next": "end"}])
            b = publish(srv, "ctl_versions", definition=v1)
            check(b.get("version") == 1, "first publish is version 1", b)
            fire(srv, old, "VerEnter")
            check(srv.wait_for(lambda: all((journey_of(srv, u, "ctl_versions") or {}).get("version") == 1
                                           for u in old)), "early customers run version 1")
            v2 = journey("ctl_versions", {"event": "VerEnter", "reentry": "any_time"},
                         [{"id": "w", "type": "wait", "duration": "30m", "next": "s"},
                          {"id": "s", "type": "send", "channel": "sms", "template": "ctl_v2", "next": "end"}])
            b = publish(srv, "ctl_versions", definition=v2)
            check(b.get("version") == 2, "second publish is version 2", b)
            st, j = srv.api("GET", "/api/v1/journeys/ctl_versions")
            check(st == 200 and j.get("version") == 2 and j.get("status") == "published", "journey shows v2", j)
            fire(srv, new, "VerEnter")
            check(srv.wait_for(lambda: (journey_of(srv, new[0], "ctl_versions") or {}).get("version") == 2),
                  "a new entry runs version 2", journey_of(srv, new[0], "ctl_versions"))
            check(all((journey_of(srv, u, "ctl_versions") or {}).get("version") == 1 for u in old),
                  "running instances stay on version 1", [journey_of(srv, u, "ctl_versions") for u in old])
            advance(srv, "31m")
            check(srv.wait_for(lambda: len(messages(srv, new[0])) == 1), "v2's 30 min wait is over for the new entry")
            check(all(journey_of(srv, u, "ctl_versions") for u in old) and not any(messages(srv, u) for u in old),
                  "v1 instances still wait their hour (v1's graph, not v2's)")
            advance(srv, "30m")
            check(srv.wait_for(lambda: all(len(messages(srv, u)) == 1 for u in old)), "v1 instances finished")
            for u in old:
                m = messages(srv, u)
                check(m and m[0]["text"] == f"版本一：{u}" and m[0]["version"] == 1, f"{u} got v1's message", m)
            m = messages(srv, new[0])
            check(m and m[0]["text"] == f"版本二：{new[0]}" and m[0]["version"] == 2, "new entry got v2's message", m)
            sms = srv.wait_for(lambda: len(rx.requests()) >= 3 and rx.requests())
            check(sorted((r.json or {}).get("text") for r in sms or []) ==
                  sorted([f"版本一：{u}" for u in old] + [f"版本二：{new[0]}"]), "the provider saw both versions",
                  [r.json for r in sms or []])
            ev = srv.wait_for(lambda: events(srv, old[0], "$MessagePrepared", "ctl_versions"))
            check(ev and ev[0]["properties"]["version"] == 1, "$MessagePrepared names version 1", ev)
            rep = report(srv, "ctl_versions")
            check(rep.get("version") == 2 and rep.get("entered") == 3 and node_stat(rep, "s", "sent") == 3,
                  "report covers both versions", rep)
        finally:
            srv.cleanup()


# ---- (2) pause / resume ----

def test_pause_resume():
    with Receiver() as rx:
        srv = start(rx)
        try:
            template(srv, "ctl_pause", "sms", "暂停测试 {{profile.name}}")
            a, b = "cp_running_1", "cp_late_2"
            profiles(srv, [a, b])
            publish(srv, "ctl_pause", definition=journey(
                "ctl_pause", {"event": "PauseEnter", "reentry": "any_time"},
                [{"id": "w", "type": "wait", "duration": "1h", "next": "s"},
                 {"id": "s", "type": "send", "channel": "sms", "template": "ctl_pause", "next": "end"}]))
            fire(srv, [a], "PauseEnter")
            check(srv.wait_for(lambda: journey_of(srv, a, "ctl_pause")), "entered before the pause")
            st, body = srv.api("POST", "/api/v1/journeys/ctl_pause/pause", {"reason": "content review"})
            check(st == 200 and body.get("status") == "paused", "paused", body)
            fire(srv, [b], "PauseEnter")
            time.sleep(0.3)
            check(journey_of(srv, b, "ctl_pause") is None and not events(srv, b, "$JourneyEntered"),
                  "no new entries while paused")
            st, _ = srv.api("POST", "/api/v1/journeys/ctl_pause/enter", {"user": b})
            check(st == 409, "an API entry into a paused journey is refused", st)
            advance(srv, "1h1m")
            check(srv.wait_for(lambda: journey_of(srv, a, "ctl_pause") is None and len(messages(srv, a)) == 1),
                  "the running instance went on and sent while paused", messages(srv, a))
            check(rx.wait_for(1), "its SMS reached the provider")
            st, body = srv.api("POST", "/api/v1/journeys/ctl_pause/resume")
            check(st == 200 and body.get("status") == "published", "resumed", body)
            fire(srv, [b], "PauseEnter")
            check(srv.wait_for(lambda: journey_of(srv, b, "ctl_pause")), "entries accepted again after resume")
        finally:
            srv.cleanup()


# ---- (3) stop ----

def test_stop():
    with Receiver() as rx:
        srv = start(rx)
        try:
            template(srv, "ctl_stop", "sms", "停止测试")
            users = [f"cs_user_{i}" for i in range(6)]
            profiles(srv, users)
            publish(srv, "ctl_stop", definition=journey(
                "ctl_stop", {"event": "StopEnter", "reentry": "any_time"},
                [{"id": "w", "type": "wait", "duration": "1d", "next": "s"},
                 {"id": "s", "type": "send", "channel": "sms", "template": "ctl_stop", "next": "end"}]))
            fire(srv, users, "StopEnter")
            check(srv.wait_for(lambda: all(journey_of(srv, u, "ctl_stop") for u in users)), "all entered")
            st, body = srv.api("POST", "/api/v1/journeys/ctl_stop/stop", {"reason": "campaign withdrawn"})
            check(st == 200 and body.get("status") == "stopped", "stopped", body)
            check(srv.wait_for(lambda: all(journey_of(srv, u, "ctl_stop") is None for u in users)),
                  "the 360 view no longer lists the journey", [journey_of(srv, u, "ctl_stop") for u in users])
            def exits():
                return {u: [e["properties"].get("reason") for e in events(srv, u, "$JourneyExited", "ctl_stop")]
                        for u in users}
            ex = srv.wait_for(lambda: all(exits().values()) and exits()) or exits()
            check(all(v == ["stopped: campaign withdrawn"] for v in ex.values()),
                  "every live instance exited with the stop reason", ex)
            advance(srv, "1d1m")
            time.sleep(0.3)
            check(not any(messages(srv, u) for u in users) and not rx.requests(), "no message after the stop")
            fire(srv, users[:1], "StopEnter")
            time.sleep(0.3)
            check(journey_of(srv, users[0], "ctl_stop") is None, "no entries into a stopped journey")
            st, _ = srv.api("POST", "/api/v1/journeys/ctl_stop/resume")
            check(st == 409, "a stopped journey cannot be resumed", st)
            rep = report(srv, "ctl_stop")
            check(node_stat(rep, "w", "exited") == 6 and node_stat(rep, "w", "waiting") == 0,
                  "report: six exits at the wait node, nobody waiting", rep.get("nodes"))
        finally:
            srv.cleanup()


# ---- (4) frequency caps across journeys, priority ----

def test_frequency_caps():
    with Receiver() as rx:
        srv = start(rx)
        try:
            st, body = srv.api("PUT", "/api/v1/settings/frequency_caps", [{"channel": "sms", "max": 1, "per": "1d"}])
            check(st == 200, "project cap saved", body)
            template(srv, "cap_low_t", "sms", "低优先级短信")
            template(srv, "cap_high_t", "sms", "高优先级短信")
            template(srv, "cap_solo_t", "sms", "单独短信")
            send = lambda t: [{"id": "s", "type": "send", "channel": "sms", "template": t, "next": "end"}]
            # the low-priority journey sorts first by name: only priority can put the other first
            publish(srv, "cap_a_low", definition=journey("cap_a_low", {"event": "CapEvent", "reentry": "any_time"},
                                                         send("cap_low_t"), settings={"priority": 1}))
            publish(srv, "cap_b_high", definition=journey("cap_b_high", {"event": "CapEvent", "reentry": "any_time"},
                                                          send("cap_high_t"), settings={"priority": 9}))
            publish(srv, "cap_solo", definition=journey("cap_solo", {"event": "SoloEvent", "reentry": "any_time"},
                                                        send("cap_solo_t")))
            users = [f"cf_user_{i}" for i in range(10)]
            profiles(srv, users)
            fire(srv, users, "CapEvent")
            check(srv.wait_for(lambda: all(events(srv, u, "$MessageSuppressed") for u in users)),
                  "both journeys ran for everyone")
            for u in users[:3]:
                m = messages(srv, u)
                check(len(m) == 1 and m[0]["journey"] == "cap_b_high", f"{u}: one SMS, from the higher priority", m)
                sup = events(srv, u, "$MessageSuppressed")
                check(len(sup) == 1 and sup[0]["properties"]["reason"] == "frequency_cap" and
                      sup[0]["properties"]["journey"] == "cap_a_low", f"{u}: the other suppressed by the cap", sup)
            check(all(len(messages(srv, u)) == 1 for u in users), "one SMS per customer")
            check(rx.wait_for(10) and len(rx.requests()) == 10, "ten SMS reached the provider", len(rx.requests()))
            check(all("高优先级" in (r.json or {}).get("text", "") for r in rx.requests()),
                  "all from the high-priority journey")
            # the same day, another journey: still capped
            fire(srv, users[:1], "SoloEvent")
            check(srv.wait_for(lambda: len(events(srv, users[0], "$MessageSuppressed")) == 2),
                  "a third journey the same day is capped too")
            # the next day the window has passed
            advance(srv, "1d1m")
            fire(srv, users[:1], "SoloEvent")
            check(srv.wait_for(lambda: len(messages(srv, users[0])) == 2), "after a day the next SMS goes out",
                  messages(srv, users[0]))
            rep_lo, rep_hi = report(srv, "cap_a_low"), report(srv, "cap_b_high")
            check(node_stat(rep_lo, "s", "suppressed") == 10 and node_stat(rep_lo, "s", "sent") == 0 and
                  node_stat(rep_hi, "s", "sent") == 10, "reports: 10 sent (high), 10 suppressed (low)")
        finally:
            srv.cleanup()


# ---- (5) holdout ----

def test_holdout():
    with Receiver() as rx:
        srv = start(rx)
        try:
            st, body = srv.api("PUT", "/api/v1/settings/holdout_percent", 20)
            check(st == 200, "holdout 20 % saved", body)
            template(srv, "hold_push", "push", "持有组测试")
            template(srv, "hold_inbox", "inbox", "持有组测试 2")
            publish(srv, "hold_a", definition=journey(
                "hold_a", {"event": "HoldEvent", "reentry": "any_time"},
                [{"id": "s", "type": "send", "channel": "push", "template": "hold_push", "next": "end"}]))
            publish(srv, "hold_b", definition=journey(
                "hold_b", {"event": "HoldEvent2"},
                [{"id": "s", "type": "send", "channel": "inbox", "template": "hold_inbox", "next": "end"}]))
            users = [f"ch_user_{i:03d}" for i in range(500)]
            profiles(srv, users)
            fire(srv, users, "HoldEvent")
            ok = srv.wait_for(lambda: (lambda r: (node_stat(r, "s", "sent") or 0) +
                                       (node_stat(r, "s", "suppressed") or 0) == 500)(report(srv, "hold_a")),
                              timeout=30)
            check(ok, "all 500 passed the send node", report(srv, "hold_a").get("nodes"))
            held = {u for u in users if not messages(srv, u)}
            check(70 <= len(held) <= 130, "about 20 % held out", len(held))
            rep = report(srv, "hold_a")
            check(node_stat(rep, "s", "suppressed") == len(held) and node_stat(rep, "s", "sent") == 500 - len(held),
                  "report: suppressed = held out", rep.get("nodes"))
            h = sorted(held)[0] if held else users[0]
            sup = srv.wait_for(lambda: events(srv, h, "$MessageSuppressed"))
            check(sup and len(sup) == 1 and sup[0]["properties"]["reason"] == "holdout", "reason holdout", sup)
            check(srv.wait_for(lambda: len(rx.delivered_ids()) == 500 - len(held), timeout=20),
                  "the provider saw exactly the others", len(rx.delivered_ids()))
            # the same customers, every time: again, and in another journey on another channel
            fire(srv, users, "HoldEvent")
            fire(srv, users, "HoldEvent2")
            srv.wait_for(lambda: node_stat(report(srv, "hold_b"), "s", "sent") +
                         node_stat(report(srv, "hold_b"), "s", "suppressed") == 500, timeout=30)
            srv.wait_for(lambda: node_stat(report(srv, "hold_a"), "s", "sent") +
                         node_stat(report(srv, "hold_a"), "s", "suppressed") == 1000, timeout=30)
            held2 = {u for u in users if not [m for m in messages(srv, u) if m["journey"] == "hold_b"]}
            held3 = {u for u in users if len([m for m in messages(srv, u) if m["journey"] == "hold_a"]) == 0}
            check(held2 == held and held3 == held, "the same customers are held out every time",
                  (len(held), len(held2), len(held3), len(held ^ held2)))
            again = {u for u in users if len([m for m in messages(srv, u) if m["journey"] == "hold_a"]) == 2}
            check(again == set(users) - held, "the others got both hold_a messages", len(again))
        finally:
            srv.cleanup()


# ---- (6) A/B split report ----

def ab_expected(entered, converted, control):
    out = {}
    nc = entered[control]
    pc = converted[control] / nc if nc else 0
    for arm in entered:
        n, c = entered[arm], converted[arm]
        p = c / n if n else 0
        row = {"entered": n, "converted": c, "rate": p}
        if arm != control and nc and n:
            se = math.sqrt(p * (1 - p) / n + pc * (1 - pc) / nc)
            row["diff_vs_control"] = p - pc
            row["ci95"] = [p - pc - 1.96 * se, p - pc + 1.96 * se]
        out[arm] = row
    return out


def test_ab_split():
    with Receiver() as rx:
        srv = start(rx)
        try:
            template(srv, "ab_a", "inbox", "方案A")
            template(srv, "ab_b", "inbox", "方案B")
            publish(srv, "ab_test", definition=journey(
                "ab_test", {"event": "AbEnter"},
                [{"id": "ab", "type": "split", "arms": [
                    {"name": "A", "percent": 50, "next": "sa"},
                    {"name": "B", "percent": 40, "next": "sb"},
                    {"name": "ctl", "percent": 10, "control": True, "next": "sa"}]},
                 {"id": "sa", "type": "send", "channel": "inbox", "template": "ab_a", "next": "hold"},
                 {"id": "sb", "type": "send", "channel": "inbox", "template": "ab_b", "next": "hold"},
                 {"id": "hold", "type": "wait", "duration": "3d", "next": "end"}],
                goal={"event": "AbConvert", "within": "7d"}))
            users = [f"cab_user_{i:04d}" for i in range(1000)]
            profiles(srv, users)
            fire(srv, users, "AbEnter")
            check(srv.wait_for(lambda: report(srv, "ab_test").get("entered") == 1000, timeout=30),
                  "1000 entries", report(srv, "ab_test").get("entered"))
            arm = {u: (journey_of(srv, u, "ab_test") or {}).get("arm") for u in users}
            check(all(a in ("A", "B", "ctl") for a in arm.values()), "every customer has an arm",
                  [u for u, a in arm.items() if a not in ("A", "B", "ctl")][:5])
            share = {a: sum(1 for x in arm.values() if x == a) / 10 for a in ("A", "B", "ctl")}
            check(abs(share["A"] - 50) <= 6 and abs(share["B"] - 40) <= 6 and abs(share["ctl"] - 10) <= 4,
                  "arm shares near 50/40/10 %", share)
            ctl = [u for u in users if arm[u] == "ctl"]
            check(all(not messages(srv, u) for u in ctl[:30]), "control customers get no message")
            sup = srv.wait_for(lambda: events(srv, ctl[0], "$MessageSuppressed")) if ctl else []
            check(sup and sup[0]["properties"]["reason"] == "control_group", "control send suppressed", sup)
            # convert a chosen subset: ~30 % of A, 20 % of B, 10 % of control
            cut = {"A": 3, "B": 2, "ctl": 1}
            conv = [u for i, u in enumerate(users) if i % 10 < cut.get(arm[u], 0)]
            fire(srv, conv, "AbConvert")
            check(srv.wait_for(lambda: report(srv, "ab_test").get("goal_reached") == len(conv), timeout=30),
                  "every conversion counted", (report(srv, "ab_test").get("goal_reached"), len(conv)))
            # a second conversion event of a converted customer changes nothing
            fire(srv, conv[:5], "AbConvert")
            time.sleep(0.3)
            entered = {a: sum(1 for u in users if arm[u] == a) for a in ("A", "B", "ctl")}
            converted = {a: sum(1 for u in conv if arm[u] == a) for a in ("A", "B", "ctl")}
            exp = ab_expected(entered, converted, "ctl")
            rep = report(srv, "ab_test")
            check(rep.get("goal_reached") == len(conv), "repeat conversions not counted twice", rep.get("goal_reached"))
            split = (rep.get("splits") or [{}])[0]
            got = {a["name"]: a for a in split.get("arms", [])}
            check(split.get("node") == "ab" and set(got) == {"A", "B", "ctl"}, "report: the split and its arms", split)
            for a, e in exp.items():
                g = got.get(a, {})
                same = g.get("entered") == e["entered"] and g.get("converted") == e["converted"] and \
                    abs(g.get("rate", -1) - e["rate"]) < 2e-6
                if "diff_vs_control" in e:
                    same = same and abs(g.get("diff_vs_control", 99) - e["diff_vs_control"]) < 2e-6 and \
                        len(g.get("ci95", [])) == 2 and \
                        all(abs(x - y) < 2e-6 for x, y in zip(g["ci95"], e["ci95"]))
                else:
                    same = same and "diff_vs_control" not in g and g.get("control") is True
                check(same, f"report arm {a}: entered/converted/rate/diff/ci95 as computed", (g, e))
            check(got.get("A", {}).get("percent") == 50 and got.get("B", {}).get("percent") == 40,
                  "arm percents in the report")
        finally:
            srv.cleanup()


# ---- (7) receipts ----

def test_receipts():
    with Receiver() as rx:
        srv = start(rx)
        try:
            template(srv, "rc_sms", "sms", "回执测试")
            publish(srv, "rc_journey", definition=journey(
                "rc_journey", {"event": "RcEnter"},
                [{"id": "s", "type": "send", "channel": "sms", "template": "rc_sms", "next": "wr"},
                 {"id": "wr", "type": "wait_event", "event": "$MessageRead", "timeout": "1d",
                  "on_event": "tag", "on_timeout": "end"},
                 {"id": "tag", "type": "set_tag", "tag": "read_sms", "value": True, "next": "end"}]))
            u = "crc_user_1"
            profiles(srv, [u])
            fire(srv, [u], "RcEnter")
            m = srv.wait_for(lambda: [x for x in messages(srv, u) if x["status"] == "sent"])
            check(m, "message sent", messages(srv, u))
            mid = m[0]["id"] if m else "m0-0"
            st, body = srv.api("POST", "/api/v1/receipts", {"message_id": mid, "status": "delivered",
                                                             "provider_id": "gw-778"})
            check(st == 200, "delivered receipt accepted", body)
            ev = srv.wait_for(lambda: events(srv, u, "$MessageDelivered"))
            check(ev and ev[0]["properties"]["message_id"] == mid and ev[0]["properties"].get("provider_id") == "gw-778",
                  "$MessageDelivered event", ev)
            check((journey_of(srv, u, "rc_journey") or {}).get("node") == "wr", "delivery is not a read")
            st, body = srv.api("POST", "/api/v1/receipts", {"message_id": mid, "status": "read"})
            check(st == 200, "read receipt accepted", body)
            ev = srv.wait_for(lambda: events(srv, u, "$MessageRead"))
            check(ev and ev[0]["properties"]["message_id"] == mid and ev[0]["properties"]["channel"] == "sms" and
                  ev[0]["properties"]["journey"] == "rc_journey", "$MessageRead event", ev)
            st, one = srv.api("GET", f"/api/v1/messages/{mid}")
            check(one.get("receipt") == "read" and one.get("receipt_ms", 0) > 0 and one.get("status") == "sent",
                  "the message records the read", one)
            check(srv.wait_for(lambda: journey_of(srv, u, "rc_journey") is None), "the read moved the journey on")
            check(srv.user(u)[1]["tags"].get("read_sms") is True, "a journey waited for $MessageRead")
            st, _ = srv.api("POST", "/api/v1/receipts", {"message_id": "nonsense", "status": "read"})
            check(st == 400, "a receipt for a malformed id is refused", st)
            st, _ = srv.api("POST", "/api/v1/receipts", {"message_id": mid})
            check(st == 400, "a receipt without status is refused", st)
        finally:
            srv.cleanup()


# ---- (8) webhook retries and failures ----

def test_webhook_delivery():
    with Receiver() as rx:
        srv = start(rx)
        try:
            publish(srv, "wh_retry", definition=journey(
                "wh_retry", {"event": "WhEnter"},
                [{"id": "hook", "type": "webhook", "url": rx.url("/hook/retry"),
                  "body": "{\"user\":\"{{profile.name}}\",\"journey\":\"{{journey.key}}\"}", "next": "end"}]))
            publish(srv, "wh_bad", definition=journey(
                "wh_bad", {"event": "WhBad"},
                [{"id": "hook", "type": "webhook", "url": rx.url("/hook/bad"), "next": "end"}]))
            u1, u2 = "cwh_user_1", "cwh_user_2"
            profiles(srv, [u1, u2])
            rx.fail_next(2, 500)
            fire(srv, [u1], "WhEnter")
            check(rx.wait_for(3, timeout=15), "three attempts reached the receiver", rx.requests())
            reqs = [r for r in rx.requests() if r.path == "/hook/retry"]
            ids = {r.message_id for r in reqs}
            check(len(reqs) == 3 and len(ids) == 1 and None not in ids, "one message id on every attempt", reqs)
            check([r.attempt for r in reqs] == [1, 2, 3] and [r.status for r in reqs] == [500, 500, 200],
                  "attempts 1, 2, 3 answered 500, 500, 200", reqs)
            check(len({r.body for r in reqs}) == 1 and reqs[0].json == {"user": u1, "journey": "wh_retry"},
                  "the same rendered body each time", [r.body for r in reqs])
            mid = reqs[0].message_id if reqs else "x"
            ok = srv.wait_for(lambda: srv.api("GET", f"/api/v1/messages/{mid}")[1].get("status") == "sent")
            st, m = srv.api("GET", f"/api/v1/messages/{mid}")
            check(ok and m.get("attempts") == 3 and m.get("http_status") == 200, "the message ends sent after 3", m)
            ev = srv.wait_for(lambda: events(srv, u1, "$MessageSent"))
            check(ev and ev[0]["properties"]["message_id"] == mid and ev[0]["properties"]["attempts"] == 3,
                  "$MessageSent with 3 attempts", ev)
            # a permanent failure: 400, no retry
            rx.set_default(400)
            fire(srv, [u2], "WhBad")
            check(srv.wait_for(lambda: [r for r in rx.requests() if r.path == "/hook/bad"]), "bad hook called")
            ev = srv.wait_for(lambda: events(srv, u2, "$MessageFailed"))
            check(ev and ev[0]["properties"]["http_status"] == 400 and ev[0]["properties"]["attempts"] == 1,
                  "$MessageFailed event with the 400", ev)
            bad = [r for r in rx.requests() if r.path == "/hook/bad"]
            st, m = srv.api("GET", f"/api/v1/messages/{bad[0].message_id if bad else 'x'}")
            check(m.get("status") == "failed" and m.get("http_status") == 400, "the message ends failed", m)
            time.sleep(1.0)  # longer than the first backoff: a retry would have arrived by now
            check(len([r for r in rx.requests() if r.path == "/hook/bad"]) == 1, "a 400 is not retried")
        finally:
            srv.cleanup()


# ---- (9) re-entry rules and entry cap ----

def test_reentry():
    with Receiver() as rx:
        srv = start(rx)
        try:
            template(srv, "re_inbox", "inbox", "再入测试")
            path = [{"id": "s", "type": "send", "channel": "inbox", "template": "re_inbox", "next": "w"},
                    {"id": "w", "type": "wait", "duration": "1h", "next": "end"}]
            publish(srv, "re_never", definition=journey("re_never", {"event": "ReEnter", "reentry": "never"}, path))
            publish(srv, "re_after", definition=journey("re_after", {"event": "ReEnter", "reentry": "after_exit",
                                                                     "reentry_wait": "1d"}, path))
            publish(srv, "re_any", definition=journey("re_any", {"event": "ReEnter", "reentry": "any_time"}, path))
            u = "cre_user_1"
            profiles(srv, [u])
            keys = ("re_never", "re_after", "re_any")

            def entries():
                return {k: len(events(srv, u, "$JourneyEntered", k)) for k in keys}

            fire(srv, [u], "ReEnter")
            check(srv.wait_for(lambda: entries() == {k: 1 for k in keys}), "first entry into all three", entries())
            fire(srv, [u], "ReEnter")
            time.sleep(0.3)
            check(entries() == {k: 1 for k in keys}, "no second instance while one is live", entries())
            advance(srv, "1h1m")
            check(srv.wait_for(lambda: all(journey_of(srv, u, k) is None for k in keys)), "all three finished")
            fire(srv, [u], "ReEnter")
            check(srv.wait_for(lambda: entries()["re_any"] == 2), "any_time: re-entered at once", entries())
            time.sleep(0.2)
            check(entries() == {"re_never": 1, "re_after": 1, "re_any": 2},
                  "never: no; after_exit: not within the 1 day wait", entries())
            advance(srv, "1d1m")
            fire(srv, [u], "ReEnter")
            check(srv.wait_for(lambda: entries()["re_after"] == 2), "after_exit: re-entered a day after the exit",
                  entries())
            time.sleep(0.2)
            check(entries()["re_never"] == 1, "never: still one entry", entries())
            st, _ = srv.api("POST", "/api/v1/journeys/re_never/enter", {"user": u})
            time.sleep(0.2)
            check(entries()["re_never"] == 1, "never: not even through the API", entries())

            # entry cap: 12 customers, room for 5
            publish(srv, "re_cap", definition=journey("re_cap", {"event": "CapEnter", "entry_cap": 5},
                                                      [{"id": "w", "type": "wait", "duration": "1h",
                                                        "next": "end"}]))
            users = [f"cre_cap_{i:02d}" for i in range(12)]
            profiles(srv, users)
            fire(srv, users, "CapEnter")
            time.sleep(0.5)
            srv.wait_for(lambda: report(srv, "re_cap").get("entered", 0) >= 5)
            time.sleep(0.3)
            rep = report(srv, "re_cap")
            inside = [x for x in users if journey_of(srv, x, "re_cap")]
            check(rep.get("entered") == 5 and len(inside) == 5, "entry_cap 5 admits exactly 5 of 12",
                  (rep.get("entered"), len(inside)))
            # the cap holds however the customers spread over partitions: six customers
            # whose internal ids share a parity (one partition of two), room for 4
            publish(srv, "re_cap2", definition=journey("re_cap2", {"event": "CapEnter2", "entry_cap": 4},
                                                       [{"id": "w", "type": "wait", "duration": "1h",
                                                         "next": "end"}]))
            ids = {x: int(srv.user(x)[1]["user_id"]) for x in users}
            same = [x for x in users if ids[x] % 2 == ids[users[0]] % 2][:6]
            fire(srv, same, "CapEnter2")
            srv.wait_for(lambda: report(srv, "re_cap2").get("entered", 0) >= 4, timeout=3)
            time.sleep(0.3)
            inside = [x for x in same if journey_of(srv, x, "re_cap2")]
            check(len(same) == 6 and report(srv, "re_cap2").get("entered") == 4 and len(inside) == 4,
                  "entry_cap 4 admits 4 of 6 customers who share a partition",
                  (len(same), report(srv, "re_cap2").get("entered"), len(inside)))
        finally:
            srv.cleanup()


# ---- (10) the goal is a measure, not an exit (docs/journeys.md section 4) ----

def test_goal_does_not_exit():
    with Receiver() as rx:
        srv = start(rx)
        try:
            template(srv, "goal_after", "inbox", "目标之后")
            publish(srv, "goal_wait_event", definition=journey(
                "goal_wait_event", {"event": "GoalEnter"},
                [{"id": "w", "type": "wait_event", "event": "GoalDone", "timeout": "1d",
                  "on_event": "s", "on_timeout": "end"},
                 {"id": "s", "type": "send", "channel": "inbox", "template": "goal_after", "next": "end"}],
                goal={"event": "GoalDone", "within": "7d"}))
            publish(srv, "goal_wait", definition=journey(
                "goal_wait", {"event": "GoalEnter"},
                [{"id": "w", "type": "wait", "duration": "1h", "next": "s"},
                 {"id": "s", "type": "send", "channel": "inbox", "template": "goal_after", "next": "end"}],
                goal={"event": "GoalDone", "within": "7d"}))
            u = "cgo_user_1"
            profiles(srv, [u])
            fire(srv, [u], "GoalEnter")
            check(srv.wait_for(lambda: journey_of(srv, u, "goal_wait") and journey_of(srv, u, "goal_wait_event")),
                  "entered both")
            fire(srv, [u], "GoalDone")
            check(srv.wait_for(lambda: report(srv, "goal_wait").get("goal_reached") == 1 and
                               report(srv, "goal_wait_event").get("goal_reached") == 1), "both count the goal")
            check(srv.wait_for(lambda: len(events(srv, u, "$JourneyGoal")) == 2), "$JourneyGoal per journey",
                  events(srv, u, "$JourneyGoal"))
            # the event the graph waits for still moves it on to the send node
            m = srv.wait_for(lambda: [x for x in messages(srv, u) if x["journey"] == "goal_wait_event"], timeout=3)
            check(m, "goal event also taken by the wait_event: the message after it is sent",
                  [e["properties"] for e in events(srv, u, "$JourneyExited")])
            # a goal reached during a plain wait leaves the customer in the journey
            check(journey_of(srv, u, "goal_wait") is not None, "still in the journey after reaching its goal",
                  [e["properties"] for e in events(srv, u, "$JourneyExited", "goal_wait")])
            advance(srv, "1h1m")
            m = srv.wait_for(lambda: [x for x in messages(srv, u) if x["journey"] == "goal_wait"], timeout=3)
            check(m, "the rest of the journey ran after the goal")
            def exits():
                return {k: [e["properties"]["reason"] for e in events(srv, u, "$JourneyExited", k)]
                        for k in ("goal_wait", "goal_wait_event")}
            ex = srv.wait_for(lambda: all(exits().values()) and exits()) or exits()
            check(ex == {"goal_wait": ["exit"], "goal_wait_event": ["exit"]}, "both ended at their exit node", ex)
        finally:
            srv.cleanup()


for case in (test_versions, test_pause_resume, test_stop, test_frequency_caps, test_holdout, test_ab_split,
             test_receipts, test_webhook_delivery, test_reentry, test_goal_does_not_exit):
    run_case(case)
finish()
