"""Seed scenario 分层服务 (tiered service after a transfer-in) end to end:
high-net-worth customers get an advisor lead and nothing else; mass-affluent
customers get a push and, if they do not subscribe within 3 days, an advisor
follow-up; the long tail is served fully automatically (in-app message now,
SMS at 10:00 on the next weekday) and never reaches an advisor. Real events
over HTTP, a real receiver, the test clock."""
import time

from journeys import advance, advance_to_local, now_ms, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

KEY = "tiered_service"
HNW = ["tr_hnw_01", "tr_hnw_02"]
MA = ["tr_ma_03", "tr_ma_04"]          # the first subscribes within 3 days
LT = ["tr_lt_05", "tr_lt_06", "tr_notier_07"]  # the last has no tier: the branch's else
SMALL = "tr_small_08"                  # transfers less than 10,000: no entry
TIERS = {HNW[0]: "high_net_worth", HNW[1]: "high_net_worth", MA[0]: "mass_affluent", MA[1]: "mass_affluent",
         LT[0]: "long_tail", LT[1]: "long_tail", SMALL: "long_tail"}
ALL = HNW + MA + LT + [SMALL]


def journey_of(srv, uid, key=KEY):
    st, u = srv.user(uid)
    if st != 200:
        return None
    return next((j for j in u["journeys"] if j["journey"] == key), None)


def messages(srv, uid):
    st, body = srv.api("GET", f"/api/v1/messages?user={uid}")
    return body.get("messages", []) if st == 200 else []


def all_leads(srv):
    st, body = srv.api("GET", "/api/v1/leads?limit=1000")
    return body.get("leads", []) if st == 200 else []


def next_weekday_10(now):
    """The next 10:00 on Monday-Friday in UTC+8 strictly after now (ms)."""
    local = now + 8 * 3600000
    day = local // 86400000
    for i in range(8):
        at = (day + i) * 86400000 + 10 * 3600000
        if at > local and (day + i + 3) % 7 < 5:  # 1970-01-01 was a Thursday; Monday = 0
            return at - 8 * 3600000
    return None


def test_tiers():
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            publish(srv, KEY)
            advance_to_local(srv, 10, 5)
            t = int(time.time() * 1000)
            recs = []
            for i, u in enumerate(ALL):
                props = {"$is_login_id": True, "name": f"分层客户{i}", "mobile": f"1360000000{i}",
                         "push_token": f"tok-{u}", "risk_level": "C4", "aum": 8000000 if u in HNW else 50000}
                if u in TIERS:
                    props["tier"] = TIERS[u]
                recs.append({"type": "profile_set", "distinct_id": u, "time": t, "properties": props})
            st, _, data = srv.sa_post(recs)
            check(st == 200, "profiles accepted", data)
            uid = {}
            entered_at = now_ms(srv)
            st, _, data = srv.sa_post([track(u, "TransferIn", {"amount": 5000 if u == SMALL else 200000})
                                       for u in ALL])
            check(st == 200, "TransferIn events accepted", data)
            check(srv.wait_for(lambda: all(journey_of(srv, u) for u in MA + LT)),
                  "mass-affluent and long-tail customers are in the journey", [journey_of(srv, u) for u in ALL])
            uid = {u: srv.user(u)[1]["user_id"] for u in ALL}
            check(srv.wait_for(lambda: len(all_leads(srv)) == 2), "two leads right away (the HNW customers)",
                  all_leads(srv))

            # ---- high net worth: an advisor lead, nothing else ----
            hnw = [l for l in all_leads(srv) if l["user_id"] in {uid[u] for u in HNW}]
            check(sorted(l["user_id"] for l in hnw) == sorted(uid[u] for u in HNW) and
                  all(l["queue"] == "private_banking" and l["priority"] == "high" for l in hnw),
                  "one private-banking lead per HNW customer, high priority", hnw)
            check(all(l["sla_due_ms"] - l["created_ms"] == 4 * 3600000 for l in hnw), "HNW lead SLA 4 h", hnw)
            check(all("200000" in (l.get("talk_track") or "") and "8000000" in l["talk_track"] for l in hnw),
                  "talk track names the transfer and the AUM", [l.get("talk_track") for l in hnw])
            check(all(journey_of(srv, u) is None for u in HNW), "HNW customers left after the hand-over")
            check(all(messages(srv, u) == [] for u in HNW), "no push, SMS or in-app message for HNW customers",
                  [messages(srv, u) for u in HNW])

            # ---- mass affluent: push now ----
            check(all((journey_of(srv, u) or {}).get("node") == "ma_wait" for u in MA), "mass affluent wait 3 d",
                  [journey_of(srv, u) for u in MA])
            for u in MA:
                m = messages(srv, u)
                check(len(m) == 1 and m[0]["channel"] == "push" and "C4" in m[0]["text"],
                      f"{u}: one push picked for the risk level", m)
            check(srv.wait_for(lambda: sum(1 for r in rx.requests() if r.path == "/push") == 2),
                  "two pushes reached the provider", rx.requests())

            # ---- long tail: in-app now, SMS at 10:00 on the next weekday ----
            due = next_weekday_10(entered_at)
            for u in LT:
                j = journey_of(srv, u) or {}
                check(j.get("node") == "lt_wait" and abs(j.get("until_ms", 0) - due) < 1000,
                      f"{u}: waits until the next weekday 10:00", (j, due))
                st, inbox = srv.api("GET", f"/api/v1/inbox/{u}")
                check([x["title"] for x in inbox.get("messages", [])] == ["闲钱理财"], f"{u}: in-app tip", inbox)
            check(not [r for r in rx.requests() if r.path == "/sms"], "no SMS before 10:00")
            check(journey_of(srv, SMALL) is None and not messages(srv, SMALL), "a small transfer does not enter")

            # the first mass-affluent customer subscribes: goal, no advisor
            st, _, _ = srv.sa_post([track(MA[0], "SubscribeFund", {"fund_code": "000001", "amount": 100000})])
            check(srv.wait_for(lambda: journey_of(srv, MA[0]) is None), "subscription reaches the goal")
            # op events reach the log just after the state change commits
            goal = srv.wait_for(lambda: [e for e in srv.events(MA[0])[1]["events"] if e["event"] == "$JourneyGoal"])
            check(len(goal) == 1 and goal[0]["properties"]["journey"] == KEY, "$JourneyGoal recorded", goal)
            # a second transfer within 30 days of the exit does not re-enter
            srv.sa_post([track(HNW[0], "TransferIn", {"amount": 300000})])
            time.sleep(0.3)

            advance(srv, "3d1m")
            check(srv.wait_for(lambda: all(journey_of(srv, u) is None for u in MA + LT)),
                  "after 3 days everyone has left", [journey_of(srv, u) for u in MA + LT])
            leads = all_leads(srv)
            ma = [l for l in leads if l["queue"] == "wealth"]
            check([l["user_id"] for l in ma] == [uid[MA[1]]], "wealth follow-up only for the one who did not subscribe",
                  ma)
            check(ma and "3天未申购" in (ma[0].get("talk_track") or ""), "follow-up talk track", ma)
            check(len(leads) == 3, "three leads in all (no second HNW lead within 30 days)",
                  [(l["queue"], l["user_id"]) for l in leads])
            check(not [l for l in leads if l["user_id"] in {uid[u] for u in LT + [SMALL]}],
                  "no advisor lead for the long tail", leads)
            for u in LT:
                m = [x for x in messages(srv, u) if x["channel"] == "sms"]
                check(len(m) == 1 and "现金理财" in m[0]["text"] and m[0]["created_ms"] >= due,
                      f"{u}: money-fund SMS at 10:00 on a weekday", m)
            sms = srv.wait_for(lambda: [r for r in rx.requests() if r.path == "/sms"] if
                               len([r for r in rx.requests() if r.path == "/sms"]) == 3 else None)
            check(sms and sorted((r.json or {}).get("to") for r in sms) ==
                  sorted(f"1360000000{ALL.index(u)}" for u in LT), "three SMS to the long tail's numbers",
                  [r.json for r in (sms or [])])

            st, rep = srv.api("GET", f"/api/v1/journeys/{KEY}/report")
            check(rep.get("entered") == 7 and rep.get("goal_reached") == 1, "report: 7 entries, 1 goal",
                  (rep.get("entered"), rep.get("goal_reached")))
            edges = {(e["from"], e["to"]): e["count"] for e in rep.get("edges", [])}
            check(edges.get(("tier", "hnw_task")) == 2 and edges.get(("tier", "ma_push")) == 2 and
                  edges.get(("tier", "lt_inbox")) == 3 and edges.get(("ma_wait", "ma_advisor")) == 1 and
                  edges.get(("lt_wait", "lt_sms")) == 3, "report: branch edges", edges)
            nodes = {n["id"]: n for n in rep.get("nodes", [])}
            check(nodes["hnw_task"]["sent"] == 2 and nodes["ma_push"]["sent"] == 2 and
                  nodes["lt_inbox"]["sent"] == 3 and nodes["lt_sms"]["sent"] == 3 and
                  nodes["ma_advisor"]["entered"] == 1 and nodes["ma_wait"]["waiting"] == 0,
                  "report: node counts", nodes)
        finally:
            srv.cleanup()


run_case(test_tiers)
finish()
