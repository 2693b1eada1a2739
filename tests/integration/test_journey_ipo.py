"""Seed scenario 打新中签陪伴 (IPO lot won) end to end: real events over HTTP,
a real local receiver for push, the test clock for the wait until the next
trading day's 09:15 per examples/calendar.json (chosen so that a weekend or
a holiday lies between the lot and the listing), the price-move risk alert
branch, sale of the stock -> thank-you in the in-app inbox and exit, the
message records and the journey report."""
import datetime
import time

from journeys import SECRET, advance, load_json, now_ms, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

UID = "c6ipo0000001"
UID2 = "c6ipo0000002"
TZ = datetime.timezone(datetime.timedelta(hours=8))  # Asia/Shanghai, no DST
STOCK = {"stock_code": "688688", "stock_name": "星辰半导体"}
STOCK_B = {"stock_code": "301301", "stock_name": "青禾科技"}
STOCK_C = {"stock_code": "002999", "stock_name": "远山电气"}  # a stock the customer did not win


def wait_for(srv, fn, timeout=10.0):
    return srv.wait_for(fn, timeout)


def journeys_of(srv, uid, key="ipo_lot_won"):
    st, u = srv.user(uid)
    return [j for j in u["journeys"] if j["journey"] == key] if st == 200 else []


def ev(srv, uid, name, props):
    """An event stamped with the server's (test) clock. time_free: ingest
    checks times against the wall clock, not the test clock (see the check
    "ingest accepts an event stamped at the test clock's now")."""
    return track(uid, name, props, t=now_ms(srv), time_free=True)


def advance_to(srv, target_ms):
    delta = target_ms - now_ms(srv)
    if delta > 0:
        advance(srv, f"{(delta + 999) // 1000}s")
    return now_ms(srv)


def local_ms(day, hh, mm):
    return int(datetime.datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ).timestamp() * 1000)


def trading(day, cal):
    if day.isoformat() in cal["workdays"]:
        return True
    return day.weekday() < 5 and day.isoformat() not in cal["holidays"]


def pick_days(start, cal):
    """First trading day D after start whose next day is closed, and the next
    trading day after D (the listing day)."""
    d = start + datetime.timedelta(days=1)
    while not (trading(d, cal) and not trading(d + datetime.timedelta(days=1), cal)):
        d += datetime.timedelta(days=1)
    listing = d + datetime.timedelta(days=1)
    while not trading(listing, cal):
        listing += datetime.timedelta(days=1)
    return d, listing


def pushes(rx, uid=None, node=None, stock="星辰半导体"):
    """Pushes to the customer about one stock (a second lot has its own instance)."""
    return [r for r in rx.requests() if r.path == "/push" and (r.json or {}).get("to") == f"tok-{uid or UID}"
            and (node is None or (r.json or {}).get("node") == node)
            and (stock is None or stock in (r.json or {}).get("body", ""))]


def messages(srv, uid):
    st, body = srv.api("GET", f"/api/v1/messages?user={uid}")
    return body.get("messages", []) if st == 200 else []


def test_ipo_lot_won():
    cal = load_json("calendar.json")
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            publish(srv, "ipo_lot_won")
            today = datetime.datetime.fromtimestamp(now_ms(srv) / 1000, TZ).date()
            lot_day, listing_day = pick_days(today, cal)
            closed = [lot_day + datetime.timedelta(days=i) for i in range(1, (listing_day - lot_day).days)]
            check(closed and all(not trading(d, cal) for d in closed),
                  "a weekend or holiday lies between the lot and the listing", (lot_day, listing_day))
            advance_to(srv, local_ms(lot_day, 10, 0))
            t = now_ms(srv)
            recs = [{"type": "profile_set", "distinct_id": u, "time": t,
                     "properties": {"$is_login_id": True, "name": n, "timezone": "Asia/Shanghai",
                                    "push_token": f"tok-{u}"}, "time_free": True} for u, n in ((UID, "王小明"), (UID2, "李雷"))]
            st, _, data = srv.sa_post(recs)
            check(st == 200, "profiles accepted", data)
            st, _, data = srv.sa_post([track(UID2, "StockPriceAlert", {"stock_code": "600000", "change_pct": 1.2}, t=t)])
            check(st == 200, "RUNTIME BUG ingest clock: an event stamped at the test clock's now is accepted",
                  data)
            st, _, data = srv.sa_post([ev(srv, UID, "IPOLotWon", dict(STOCK, lots=1, amount=12480))])
            check(st == 200, "IPOLotWon accepted", data)

            # congratulation now
            check(wait_for(srv, lambda: pushes(rx, node="congrats")), "congratulation push reached the receiver")
            c = pushes(rx, node="congrats")
            body = (c[0].json or {}).get("body", "") if c else ""
            check("星辰半导体" in body and "688688" in body and "12480" in body,
                  "congratulation names the stock, code and amount", body)
            check(c and Receiver.verify(c[0], SECRET), "congratulation request signed")
            js = journeys_of(srv, UID)
            want = local_ms(listing_day, 9, 15)
            check(js and js[0]["node"] == "to_listing" and js[0]["state"] == "waiting",
                  "waiting for the listing day", js)
            check(js and js[0].get("until_ms") == want, "wait ends at the next trading day 09:15",
                  (js[0].get("until_ms") if js else None, want, listing_day.isoformat()))

            # a second lot (another stock) while the first is live: max_concurrent 5
            srv.sa_post([ev(srv, UID, "IPOLotWon", dict(STOCK_B, lots=1, amount=8800))])
            ok = wait_for(srv, lambda: pushes(rx, node="congrats", stock="青禾科技"), timeout=3)
            check(ok, "RUNTIME BUG max_concurrent: a second lot while the first is live gets its congratulation",
                  [j["node"] for j in journeys_of(srv, UID)])

            # nothing on the closed days, nothing a minute early
            for d in closed:
                advance_to(srv, local_ms(d, 9, 16))
                time.sleep(0.5)
                check(not pushes(rx, node="listing"), f"no listing reminder on closed day {d.isoformat()}")
            advance_to(srv, want - 60000)
            time.sleep(0.5)
            check(not pushes(rx, node="listing"), "no listing reminder before 09:15 on the listing day")
            advance_to(srv, want + 60000)
            check(wait_for(srv, lambda: pushes(rx, node="listing")), "listing reminder after 09:15 on the listing day",
                  listing_day.isoformat())
            lst = pushes(rx, node="listing")
            check(lst and "星辰半导体" in (lst[0].json or {}).get("body", ""),
                  "listing reminder names the stock of the entry event", [r.json for r in lst])
            check(wait_for(srv, lambda: any(j["node"] == "watch" for j in journeys_of(srv, UID))),
                  "watching for price moves and the sale", journeys_of(srv, UID))

            # price moves: a big drop alerts, another stock's move and a small move do not
            alerts = lambda: pushes(rx, node="risk_alert")  # noqa: E731
            srv.sa_post([ev(srv, UID, "StockPriceAlert", dict(STOCK, change_pct=-8.6))])
            check(wait_for(srv, alerts), "a -8.6% move sends a risk alert")
            a = alerts()
            check(a and "-8.6" in (a[0].json or {}).get("body", ""), "risk alert shows the move",
                  [r.json for r in a])
            srv.sa_post([ev(srv, UID, "StockPriceAlert", dict(STOCK_C, change_pct=-12.0)),
                         ev(srv, UID, "StockPriceAlert", dict(STOCK, change_pct=2.1))])
            time.sleep(0.8)
            check(len(alerts()) == 1, "no alert for another stock or a small move",
                  [r.json for r in alerts()])
            check(any(j["node"] == "watch" for j in journeys_of(srv, UID)), "still watching after a small move",
                  journeys_of(srv, UID))
            srv.sa_post([ev(srv, UID, "StockPriceAlert", dict(STOCK, change_pct=10.0))])
            check(wait_for(srv, lambda: len(alerts()) == 2), "a +10% move sends a second risk alert",
                  [r.json for r in alerts()])

            # sale -> thank-you in the inbox, exit
            watching = len(journeys_of(srv, UID))
            srv.sa_post([ev(srv, UID, "SellStock", dict(STOCK, amount=15210))])
            check(wait_for(srv, lambda: len(journeys_of(srv, UID)) == watching - 1),
                  "selling the stock ends its journey", journeys_of(srv, UID))
            st, inbox = srv.api("GET", f"/api/v1/inbox/{UID}")
            items = inbox.get("messages", inbox.get("items", [])) if isinstance(inbox, dict) else []
            check(st == 200 and any("星辰半导体" in (m.get("body") or "") for m in items),
                  "sale thank-you in the in-app inbox", inbox)

            # message records
            msgs = messages(srv, UID)
            nodes = sorted(m["node"] for m in msgs if "星辰半导体" in (m.get("text") or ""))
            check(nodes.count("congrats") == 1 and nodes.count("listing") == 1 and
                  nodes.count("risk_alert") == 2 and nodes.count("sold") == 1,
                  "messages listed: congrats, listing, 2 risk alerts, sold", [(m["node"], m["channel"]) for m in msgs])
            for r in pushes(rx, stock=None):
                check(rx.by_id(r.message_id) and any(m["id"] == r.message_id for m in msgs),
                      "receiver and message list agree on ids", r.message_id)
            sent = wait_for(srv, lambda: all(m["status"] in ("sent", "delivered") for m in messages(srv, UID)))
            check(sent, "every message has its delivery outcome", [(m["node"], m["status"]) for m in messages(srv, UID)])

            # report
            st, rep = srv.api("GET", "/api/v1/journeys/ipo_lot_won/report")
            n = {x["id"]: x for x in rep.get("nodes", [])}
            check(st == 200 and rep.get("entered", 0) >= 1, "report: entries", rep.get("entered"))
            check(n.get("risk_alert", {}).get("sent") == 2, "report: two risk alerts sent", n.get("risk_alert"))
            check(n.get("listing", {}).get("sent") == len(pushes(rx, node="listing", stock=None)) >= 1,
                  "report: listing reminders as delivered", n.get("listing"))
            edges = {(e["from"], e["to"]): e["count"] for e in rep.get("edges", [])}
            check(edges.get(("what", "watch")) == 1 and edges.get(("what", "sold")) == 1,
                  "report: small move back to watch, sale to sold", edges)
            want_ops = {"$JourneyEntered", "$MessagePrepared", "$MessageSent", "$JourneyExited"}
            # op events reach the log a round after the transition that queued them
            srv.wait_for(lambda: want_ops <= {e["event"] for e in srv.events(UID, limit=100)[1]["events"]})
            evs = srv.events(UID, limit=100)[1]["events"]
            names = {e["event"] for e in evs}
            check(want_ops <= names,
                  "journey and message op events in the customer's history", names)
        finally:
            srv.cleanup()


run_case(test_ipo_lot_won)
finish()
