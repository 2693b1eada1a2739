"""Seed scenario 理财产品到期提醒 (wealth product maturity) end to end: wealth
products with maturity dates (items), customers holding them (profile
held_products ["wealth:WM..."]), the daily date-property scan driven by the
test clock, one day at a time. At 30, 15, 7 and 1 days before maturity each
holder gets exactly one touch at 10:00: WeCom for high_net_worth customers,
robot_call (webhook) for the others; non-holders get nothing; messages,
report and op events agree."""
import datetime
import time

from journeys import SECRET, advance, load_json, now_ms, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case

TZ = datetime.timezone(datetime.timedelta(hours=8))
HNW, MASS, MASS2, NONE = "c9mt00000001", "c9mt00000002", "c9mt00000003", "c9mt00000004"
OFFSETS = (30, 15, 7, 1)


def wait_for(srv, fn, timeout=10.0):
    return srv.wait_for(fn, timeout)


def local_ms(day, hh, mm):
    return int(datetime.datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ).timestamp() * 1000)


def advance_to(srv, target_ms):
    delta = target_ms - now_ms(srv)
    if delta > 0:
        advance(srv, f"{(delta + 999) // 1000}s")


def touches(rx):
    """(path, customer) of every maturity touch at the receiver."""
    out = []
    for r in rx.requests():
        j = r.json or {}
        if r.path == "/wecom":
            ext = j.get("external_userid") or [""]
            out.append(("wecom", (ext[0] if isinstance(ext, list) else ext)[3:], j))
        elif r.path == "/robot_call":
            out.append(("robot_call", j.get("user_id"), j))
    return out


def test_product_maturity():
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            today = datetime.datetime.fromtimestamp(now_ms(srv) / 1000, TZ).date()
            mat1 = today + datetime.timedelta(days=31)   # WM001: -30d is tomorrow
            mat2 = today + datetime.timedelta(days=33)   # WM002: two days later
            t = now_ms(srv)
            recs = [{"type": "item_set", "item_type": "wealth", "item_id": i, "time": t, "time_free": True,
                     "properties": {"product_name": n, "maturity_date": d.isoformat(), "risk_level": "R2"}}
                    for i, n, d in (("WM001", "稳盈90天", mat1), ("WM002", "安享180天", mat2))]
            people = [(HNW, "high_net_worth", ["wealth:WM001"]), (MASS, "mass", ["wealth:WM001"]),
                      (MASS2, "mass_affluent", ["fund:000311", "wealth:WM002"]), (NONE, "mass", [])]
            recs += [{"type": "profile_set", "distinct_id": u, "time": t, "time_free": True,
                      "properties": {"$is_login_id": True, "name": f"客户{u[-1]}", "tier": tier, "risk_level": "C3",
                                     "timezone": "Asia/Shanghai", "mobile": f"1390000{u[-4:]}",
                                     "wecom_external_userid": f"wx-{u}", "held_products": held}}
                     for u, tier, held in people]
            st, _, data = srv.sa_post(recs)
            check(st == 200, "products and customers accepted", data)
            uids = {srv.user(u)[1]["user_id"]: u for u, _, _ in people}
            publish(srv, "product_maturity")
            time.sleep(0.5)  # today's scan runs at publish: nothing is due today

            expect = {}  # day -> [(channel, customer)]
            for mat, holders in ((mat1, [(HNW, "wecom"), (MASS, "robot_call")]), (mat2, [(MASS2, "robot_call")])):
                for off in OFFSETS:
                    expect.setdefault(mat - datetime.timedelta(days=off), []).extend(
                        (ch, u) for u, ch in holders)
            seen = []
            last = max(mat1, mat2) + datetime.timedelta(days=1)
            day = today
            while day < last:
                day += datetime.timedelta(days=1)
                advance_to(srv, local_ms(day, 0, 10))  # the day's scan
                time.sleep(0.35)
                advance_to(srv, local_ms(day, 10, 1))  # the 10:00 touch
                want = sorted(expect.get(day, []))
                if want:
                    wait_for(srv, lambda: len(touches(rx)) >= len(seen) + len(want))
                else:
                    time.sleep(0.2)
                new = [(ch, uids.get(u, u)) for ch, u, _ in touches(rx)[len(seen):]]
                seen += new
                check(sorted(new) == want, f"touches on {day.isoformat()} (maturity {mat1}, {mat2})", (new, want))
                if not want and new:
                    break
                if want and not new:
                    break  # a missed offset: the rest would only repeat the failure
            by = {}
            for ch, u in seen:
                by.setdefault(u, []).append(ch)
            check(by.get(HNW) == ["wecom"] * 4, "high_net_worth: four WeCom touches", by.get(HNW))
            check(by.get(MASS) == ["robot_call"] * 4, "mass: four robot calls", by.get(MASS))
            check(by.get(MASS2) == ["robot_call"] * 4, "second product's holder: four robot calls", by.get(MASS2))
            check(NONE not in by, "no touch for a customer holding nothing", by.get(NONE))
            w = [j for ch, u, j in touches(rx) if ch == "wecom"]
            check(w and "稳盈90天" in w[0].get("text", {}).get("content", "") and mat1.isoformat() in
                  w[0].get("text", {}).get("content", ""), "WeCom text names the product and its maturity date",
                  w[:1])
            r = [j for ch, u, j in touches(rx) if ch == "robot_call"]
            check(r and "到期" in (r[0].get("text") or ""), "robot call script from the template", r[:1])
            check(all(Receiver.verify(q, SECRET) for q in rx.requests()), "every request signed")
            st, msgs = srv.api("GET", f"/api/v1/messages?user={HNW}")
            m = msgs.get("messages", []) if st == 200 else []
            check(len(m) == 4 and all(x["channel"] == "wecom" for x in m), "HNW: four WeCom messages listed",
                  [(x["node"], x["channel"]) for x in m])
            st, rep = srv.api("GET", "/api/v1/journeys/product_maturity/report")
            n = {x["id"]: x for x in rep.get("nodes", [])}
            check(st == 200 and rep.get("entered") == 12, "report: 12 entries (3 holders x 4 offsets)",
                  rep.get("entered"))
            check(n.get("wecom", {}).get("sent") == 4 and n.get("robot", {}).get("sent") == 8,
                  "report: 4 WeCom, 8 robot calls", (n.get("wecom"), n.get("robot")))
            evs = [e for e in srv.events(MASS, limit=200)[1].get("events", []) if e["event"] == "$JourneyEntered"]
            check(len(evs) == 4, "four $JourneyEntered for one holder", len(evs))
            check(load_json("journeys/product_maturity.json")["entry"]["item_key"] == "held_products",
                  "the journey reads the held_products list")
        finally:
            srv.cleanup()


run_case(test_product_maturity)
finish()
