"""Entry kinds not covered by the seed scenarios: a condition becoming true
through a profile change (no event needed), and a birthday (a past date that
recurs every year) as a date-property entry."""
import time

from journeys import advance, advance_to_local, now_ms
from wmtest import Server, check, finish, run_case

TIER = {"key": "becomes_hnw", "name": "升级为高净值",
        "entry": {"condition": {"profile": "tier", "op": "=", "value": "high_net_worth"}, "reentry": "after_exit"},
        "nodes": [{"id": "w", "type": "wait", "duration": "30d", "next": "e"}, {"id": "e", "type": "exit"}]}

BDAY = {"key": "birthday_greeting", "name": "生日关怀",
        "entry": {"date_property": "profile.birthday", "offsets": ["-1d", "0d"], "reentry": "any_time"},
        "nodes": [{"id": "w", "type": "wait", "duration": "1h", "next": "e"}, {"id": "e", "type": "exit"}]}


def in_journey(srv, uid, key):
    st, u = srv.user(uid)
    return st == 200 and any(j["journey"] == key for j in u["journeys"])


def entered_events(srv, uid, key):
    st, body = srv.events(uid, limit=200)
    return [e for e in body.get("events", []) if e["event"] == "$JourneyEntered"
            and e["properties"].get("journey") == key] if st == 200 else []


def test_condition_entry_by_profile():
    srv = Server(extra=["--test-clock"]).start()
    try:
        for j in (TIER,):
            st, b = srv.api("POST", "/api/v1/journeys", j)
            check(st == 201 and b["valid"], "condition journey valid", b)
            st, b = srv.api("POST", f"/api/v1/journeys/{j['key']}/publish")
            check(st == 200, "published", b)
        t = int(time.time() * 1000)
        prof = lambda tier, dt=0: {"type": "profile_set", "distinct_id": "en-1", "time": t + dt,
                                   "properties": {"$is_login_id": True, "tier": tier}}
        srv.sa_post([prof("mass_affluent")])
        time.sleep(0.3)
        check(not in_journey(srv, "en-1", "becomes_hnw"), "not in the journey while mass affluent")
        srv.sa_post([prof("high_net_worth", 1)])
        check(srv.wait_for(lambda: in_journey(srv, "en-1", "becomes_hnw")),
              "a profile_set making the condition true enters the journey (no event needed)")
        srv.sa_post([prof("high_net_worth", 2)])
        time.sleep(0.3)
        check(len(srv.wait_for(lambda: entered_events(srv, "en-1", "becomes_hnw"))) == 1,
              "staying true does not enter again")
    finally:
        srv.cleanup()


def test_birthday_recurs_yearly():
    srv = Server(extra=["--test-clock"]).start()
    try:
        advance_to_local(srv, 0, 30)
        now = now_ms(srv)
        local = now + 8 * 3600000
        tomorrow = time.gmtime(local / 1000 + 86400)
        in_three = time.gmtime(local / 1000 + 3 * 86400)
        bday = lambda tm: f"1990-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
        t = int(time.time() * 1000)
        recs = [{"type": "profile_set", "distinct_id": u, "time": t,
                 "properties": {"$is_login_id": True, "birthday": b}}
                for u, b in (("bd-1", bday(tomorrow)), ("bd-2", bday(in_three)))]
        st, _, _ = srv.sa_post(recs)
        check(st == 200, "profiles with birthdays accepted")
        st, b = srv.api("POST", "/api/v1/journeys", BDAY)
        check(st == 201 and b["valid"], "birthday journey valid", b)
        st, b = srv.api("POST", "/api/v1/journeys/birthday_greeting/publish")
        check(st == 200, "published", b)
        check(srv.wait_for(lambda: in_journey(srv, "bd-1", "birthday_greeting")),
              "the day before a birthday (born 1990) enters this year")
        check(not in_journey(srv, "bd-2", "birthday_greeting"), "a birthday in three days does not enter yet")
        advance(srv, "2d")
        check(srv.wait_for(lambda: in_journey(srv, "bd-2", "birthday_greeting")),
              "two days later, the day before the other birthday enters")
    finally:
        srv.cleanup()


run_case(test_condition_entry_by_profile)
run_case(test_birthday_recurs_yearly)
finish()
