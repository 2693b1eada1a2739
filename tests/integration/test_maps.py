"""Saved journey maps and the journey report's funnel, through the real binary.

Cases:
  - maps CRUD: create (201, version 1, 409 on a taken key), validation by the
    map query's parser (400 naming the member: unknown members, a stage
    without a name, a bad event list, a bad window, one stage only, a did
    clause), list, get, replace (version + 1; a body key that is not the
    path's is 400; a missing map 404), roles (viewer 403, analyst allowed),
    delete (then 404), kept across a restart;
  - a saved map's query on small crafted data: stages, conversions, median
    times, stalled customers and their median, all against numbers computed
    here by hand; the same answer as POST /api/v1/query/map with the
    definition's stages; compare "previous" moves from no stage;
  - the journey report's funnel on a journey with an A/B split: per arm the
    customers that entered the arm and reached the goal, next to the arm's
    report figures, against what the test sent; the op events carry the arm.
"""
import calendar
import time

from journeys import advance_to_local, now_ms, publish, setup_project
from receiver import Receiver
from wmtest import Server, check, finish, run_case, track

DAY = 86400000


def local_date(ms, days=0):
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000 + 8 * 3600 + days * 86400))


def local_midnight_after(date):
    """UTC ms of the local (UTC+8) midnight that ends date."""
    y, m, d = (int(x) for x in date.split("-"))
    return (calendar.timegm((y, m, d, 0, 0, 0)) - 8 * 3600) * 1000 + DAY


def post_events(srv, recs):
    st, _, data = srv.sa_post(recs)
    check(st == 200, "events accepted", data)


MAP = {"key": "wealth_path", "name": "理财旅程",
       "stages": [{"name": "看资讯", "events": ["View"]},
                  {"name": "加自选", "events": ["Fav"]},
                  {"name": "购买", "events": ["Buy"], "where": {"prop": "amount", "op": ">=", "value": 1000}}],
       "window": "30d"}


def new_key(srv, role):
    st, body = srv.api("POST", "/api/v1/keys", {"role": role})
    check(st == 200, f"{role} key created", body)
    return body["key"]


def test_maps_crud():
    srv = Server(partitions=2).start()
    try:
        st, body = srv.api("POST", "/api/v1/maps", MAP)
        check(st == 201 and body.get("key") == "wealth_path" and body.get("version") == 1 and
              body.get("name") == "理财旅程" and body.get("definition", {}).get("stages") == MAP["stages"],
              "map created, version 1", (st, body))
        st, body = srv.api("POST", "/api/v1/maps", MAP)
        check(st == 409, "a taken key is 409", (st, body))
        bad = [
            (dict(MAP, key="m1", stagez=[]), "stagez"),
            (dict(MAP, key="m2", stages=[{"name": "a", "events": ["X"]}, {"name": "b", "events": [5]}]),
             "stages[1].events[0]"),
            (dict(MAP, key="m3", stages=[{"events": ["X"]}, {"name": "b", "events": ["Y"]}]), "stages[0].name"),
            (dict(MAP, key="m4", window="soon"), "window"),
            (dict(MAP, key="m5", stages=[{"name": "a", "events": ["X"]}]), "stages"),
            (dict(MAP, key="m6", stages=[{"name": "a", "events": ["X"], "where": {"did": "Y", "within": "7d"}},
                                         {"name": "b", "events": ["Y"]}]), "stages[0].where"),
            (dict(MAP, key="m7", stages=[{"name": "a", "events": ["X"], "colour": "red"},
                                         {"name": "b", "events": ["Y"]}]), "stages[0].colour"),
            (dict(MAP, key="9bad"), "key"),
            ({k: v for k, v in MAP.items() if k != "name"} | {"key": "m8"}, "name"),
        ]
        for d, path in bad:
            st, body = srv.api("POST", "/api/v1/maps", d)
            got = (body or {}).get("error", {}).get("path", "") if isinstance(body, dict) else ""
            check(st == 400 and got.startswith(path), f"invalid map: 400 naming {path}", (st, body))
        st, body = srv.api("GET", "/api/v1/maps")
        check(st == 200 and [m["key"] for m in body.get("maps", [])] == ["wealth_path"],
              "the list holds only the valid map", body)
        st, body = srv.api("GET", "/api/v1/maps/wealth_path")
        check(st == 200 and body.get("definition") == MAP and body.get("version") == 1, "get: the definition", body)
        st, body = srv.api("GET", "/api/v1/maps/nope")
        check(st == 404, "a missing map is 404", (st, body))
        v2 = dict(MAP, name="理财旅程 v2", window="14d")
        st, body = srv.api("PUT", "/api/v1/maps/wealth_path", v2)
        check(st == 200 and body.get("version") == 2 and body.get("name") == "理财旅程 v2" and
              body.get("definition", {}).get("window") == "14d", "put replaces: version 2", body)
        nokey = {k: v for k, v in v2.items() if k != "key"}
        st, body = srv.api("PUT", "/api/v1/maps/wealth_path", nokey)
        check(st == 200 and body.get("version") == 3 and body.get("definition", {}).get("key") == "wealth_path",
              "put without a key takes the path's: version 3", body)
        st, body = srv.api("PUT", "/api/v1/maps/wealth_path", dict(MAP, key="other"))
        check(st == 400 and body["error"].get("path") == "key", "put with another key is 400", (st, body))
        st, body = srv.api("PUT", "/api/v1/maps/nope", dict(MAP, key="nope"))
        check(st == 404, "put of a missing map is 404", (st, body))
        viewer, analyst = new_key(srv, "viewer"), new_key(srv, "analyst")
        st, body = srv.api("GET", "/api/v1/maps", key=viewer)
        check(st == 403, "a viewer may not read maps", (st, body))
        st, body = srv.api("POST", "/api/v1/maps", dict(MAP, key="by_analyst"), key=analyst)
        check(st == 201, "an analyst may save a map", (st, body))
        st, body = srv.api("DELETE", "/api/v1/maps/by_analyst", key=analyst)
        check(st == 200 and body.get("deleted") is True, "an analyst may delete it", (st, body))
        st, body = srv.api("GET", "/api/v1/maps/by_analyst")
        check(st == 404, "deleted: 404", (st, body))
        st, body = srv.api("DELETE", "/api/v1/maps/by_analyst")
        check(st == 404, "deleting again: 404", (st, body))
        st, body = srv.api("POST", "/api/v1/maps", dict(MAP, key="by_analyst"))
        check(st == 201 and body.get("version") == 1, "a deleted key starts again at version 1", body)
        srv.stop()
        srv.start()
        st, body = srv.api("GET", "/api/v1/maps/wealth_path")
        check(st == 200 and body.get("version") == 3 and body.get("name") == "理财旅程 v2",
              "kept across a restart", body)
    finally:
        srv.cleanup()


def test_map_query():
    srv = Server(partitions=2).start()
    try:
        now = int(time.time() * 1000)
        frm, to = local_date(now, -2), local_date(now, 1)
        hi = local_midnight_after(to)
        t0 = now - 3600000  # one hour ago: inside the range
        s = 1000
        # user: [(event, offset s, amount)]; furthest stage in comments
        plan = {
            "mu0": [("View", 0, None), ("Fav", 60, None), ("Buy", 120, 2000)],          # 2
            "mu1": [("View", 0, None), ("Fav", 120, None)],                             # 1
            "mu2": [("View", 0, None)],                                                 # 0
            "mu3": [("View", 0, None), ("Buy", 10, 500), ("Fav", 30, None)],            # 1 (500 < 1000)
            "mu4": [("Fav", 0, None), ("Buy", 60, 5000)],                               # none: no View
            "mu5": [("View", 0, None), ("Fav", 240, None), ("Buy", 540, 1500)],         # 2
        }
        recs = []
        for u, evs in plan.items():
            for ev, off, amt in evs:
                recs.append(track(u, ev, {"amount": amt} if amt is not None else {}, t=t0 + off * s))
        post_events(srv, recs)
        st, body = srv.api("POST", "/api/v1/maps", MAP)
        check(st == 201, "map saved", body)
        st, ans = srv.api("POST", "/api/v1/maps/wealth_path/query", {"from": frm, "to": to})
        check(st == 200 and ans.get("map") == "wealth_path" and ans.get("version") == 1, "map query answered",
              (st, ans))
        stages = ans.get("stages", [])
        check([x.get("users") for x in stages] == [5, 4, 2], "users per stage 5/4/2", stages)
        check([x.get("name") for x in stages] == ["看资讯", "加自选", "购买"], "stage names", stages)
        conv = [x.get("conversion") for x in stages]
        check(len(conv) == 3 and abs(conv[0] - 0.8) < 1e-9 and abs(conv[1] - 0.5) < 1e-9 and conv[2] is None,
              "conversion 4/5, 2/4, null", conv)
        # View->Fav gaps 60, 120, 30, 240 s -> sorted [30,60,120,240], x[floor(0.5*3)] = 60 s;
        # Fav->Buy gaps 60 (mu0), 300 (mu5) -> x[floor(0.5*1)] = 60 s
        check([x.get("median_ms") for x in stages] == [None, 60000, 60000], "median times", stages)
        check([x.get("stalled") for x in stages] == [1, 2, 2], "stalled 1 (mu2), 2 (mu1, mu3), 2", stages)
        # stalled at stage 0: mu2 only, hi - t(View); stage 1: mu1 (Fav t0+120s), mu3 (Fav t0+30s):
        # sorted [hi-t0-120s, hi-t0-30s] -> x[0]; stage 2: mu0 (t0+120s), mu5 (t0+540s) -> hi-t0-540s
        exp = [hi - t0, hi - t0 - 120 * s, hi - t0 - 540 * s]
        check([x.get("stalled_median_ms") for x in stages] == exp, "stalled medians from the range's end",
              ([x.get("stalled_median_ms") for x in stages], exp))
        # the same as the ad-hoc query of the definition's stages
        req = {"from": frm, "to": to, "stages": MAP["stages"], "window": MAP["window"]}
        st, hdr, data = srv.request("POST", "/api/v1/query/map", __import__("json").dumps(req),
                                    {"Authorization": "Bearer wm_test_admin_key"})
        adhoc = __import__("json").loads(data)
        check(st == 200 and adhoc.get("stages") == stages, "same answer as POST /api/v1/query/map", adhoc)
        # compare: nothing in the previous period, so every customer moved from no stage
        st, ans = srv.api("POST", "/api/v1/maps/wealth_path/query", {"from": frm, "to": to, "compare": "previous"})
        moves = {(m["from"], m["to"]): m["users"] for m in ans.get("moves", []) if m["to"] >= 0}
        check(st == 200 and moves == {(-1, 0): 1, (-1, 1): 2, (-1, 2): 2}, "moves from no stage", ans.get("moves"))
        # a window shorter than mu5's 540 s leaves mu5 at stage 1
        st, _ = srv.api("PUT", "/api/v1/maps/wealth_path", dict(MAP, window="5m"))
        st, ans = srv.api("POST", "/api/v1/maps/wealth_path/query", {"from": frm, "to": to})
        check(st == 200 and ans.get("version") == 2 and [x["users"] for x in ans.get("stages", [])] == [5, 4, 1],
              "the replaced definition runs: window 5m", ans)
        # errors: bad body members, a missing range, a missing map
        st, ans = srv.api("POST", "/api/v1/maps/wealth_path/query", {"from": frm, "to": to, "stages": []})
        check(st == 400 and ans["error"].get("path") == "stages", "a body may not override the stages", ans)
        st, ans = srv.api("POST", "/api/v1/maps/wealth_path/query", {"from": frm})
        check(st == 400 and ans["error"].get("path") == "to", "to is required", ans)
        st, ans = srv.api("POST", "/api/v1/maps/wealth_path/query", {"from": to, "to": frm})
        check(st == 400 and ans["error"].get("path") == "to", "to before from is 400", ans)
        st, ans = srv.api("POST", "/api/v1/maps/nope/query", {"from": frm, "to": to})
        check(st == 404, "query of a missing map is 404", (st, ans))
    finally:
        srv.cleanup()


def test_journey_report_funnel():
    with Receiver() as rx:
        srv = Server(extra=["--test-clock"]).start()
        try:
            setup_project(srv, rx)
            advance_to_local(srv, 10, 5)
            st, b = srv.api("PUT", "/api/v1/templates/fab_a", {"key": "fab_a", "channel": "inbox", "title": "t",
                                                               "body": "方案A"})
            check(st == 200, "template", b)
            publish(srv, "fab_test", definition={
                "key": "fab_test", "name": "fab_test", "entry": {"event": "FabEnter"},
                "nodes": [{"id": "ab", "type": "split", "arms": [
                    {"name": "A", "percent": 60, "next": "sa"},
                    {"name": "ctl", "percent": 40, "control": True, "next": "sa"}]},
                    {"id": "sa", "type": "send", "channel": "inbox", "template": "fab_a", "next": "hold"},
                    {"id": "hold", "type": "wait", "duration": "3d", "next": "end"},
                    {"id": "end", "type": "exit"}],
                "goal": {"event": "FabConvert", "within": "7d"}})
            users = [f"fab_user_{i:03d}" for i in range(120)]
            t = int(time.time() * 1000)
            st, _, data = srv.sa_post([{"type": "profile_set", "distinct_id": u, "time": t,
                                        "properties": {"$is_login_id": True, "name": u}} for u in users])
            check(st == 200, "profiles", data)
            post_events(srv, [track(u, "FabEnter") for u in users])

            def report(qs=""):
                return srv.api("GET", f"/api/v1/journeys/fab_test/report{qs}")

            check(srv.wait_for(lambda: report()[1].get("entered") == 120, timeout=30), "120 entries",
                  report()[1].get("entered"))

            def arm_of(u):
                st, body = srv.user(u)
                j = next((j for j in body.get("journeys", []) if j["journey"] == "fab_test"), {}) if st == 200 else {}
                return j.get("arm")

            arm = {u: arm_of(u) for u in users}
            check(all(a in ("A", "ctl") for a in arm.values()), "every customer has an arm", set(arm.values()))
            conv = [u for i, u in enumerate(users) if i % 10 < (4 if arm[u] == "A" else 2)]
            post_events(srv, [track(u, "FabConvert") for u in conv])
            check(srv.wait_for(lambda: report()[1].get("goal_reached") == len(conv), timeout=30),
                  "every conversion counted", (report()[1].get("goal_reached"), len(conv)))
            entered = {a: sum(1 for u in users if arm[u] == a) for a in ("A", "ctl")}
            converted = {a: sum(1 for u in conv if arm[u] == a) for a in ("A", "ctl")}
            # the goal's operational event reaches the log after the report's counter
            def evs_of(u):
                return srv.events(u, limit=200)[1].get("events", [])
            srv.wait_for(lambda: any(e["event"] == "$JourneyGoal" for e in evs_of(conv[0])), timeout=30)
            evs = evs_of(conv[0])
            goal = [e for e in evs if e["event"] == "$JourneyGoal"]
            moved = [e for e in evs if e["event"] == "$JourneyNodeEntered" and e["properties"].get("split") == "ab"]
            check(len(goal) == 1 and goal[0]["properties"].get("arm") == arm[conv[0]] and
                  goal[0]["properties"].get("control") is (arm[conv[0]] == "ctl"),
                  "$JourneyGoal carries the arm", goal)
            check(len(moved) == 1 and moved[0]["properties"].get("arm") == arm[conv[0]] and
                  moved[0]["properties"].get("node") == "sa", "the move out of the split carries split and arm",
                  moved)
            clock = now_ms(srv)
            frm, to = local_date(clock, -2), local_date(clock, 1)
            st, rep = report(f"?funnel=1&from={frm}&to={to}")
            check(st == 200 and rep.get("entered") == 120 and "funnel" in rep, "report with its funnel", (st, rep))
            f = rep.get("funnel", {})
            check(f.get("window") == "604800s" and f.get("goal") == "FabConvert", "window from the goal's within", f)
            check([x.get("users") for x in f.get("steps", [])] == [120, len(conv)], "overall: entered -> goal",
                  f.get("steps"))
            sp = (f.get("splits") or [{}])[0]
            got = {a["name"]: a for a in sp.get("arms", [])}
            check(sp.get("node") == "ab" and set(got) == {"A", "ctl"}, "funnel: the split and its arms", sp)
            plain = {a["name"]: a for a in (report()[1].get("splits") or [{}])[0].get("arms", [])}
            for a in ("A", "ctl"):
                g = got.get(a, {})
                steps = [x.get("users") for x in g.get("funnel", [])]
                check(steps == [entered[a], converted[a]], f"arm {a}: funnel users = entered, converted",
                      (steps, entered[a], converted[a]))
                check(g.get("entered") == entered[a] and g.get("converted") == converted[a] and
                      g.get("rate") == plain.get(a, {}).get("rate") and
                      g.get("ci95") == plain.get(a, {}).get("ci95"),
                      f"arm {a}: the report's figures next to its funnel", (g, plain.get(a)))
                sc = g.get("funnel", [{}, {}])[1].get("step_conversion")
                check(sc is not None and abs(sc - converted[a] / entered[a]) < 1e-9,
                      f"arm {a}: the funnel's conversion is the arm's rate", sc)
            st, rep = report(f"?funnel=1&from={frm}&to={to}&window=0")
            zero = {a["name"]: [x["users"] for x in a["funnel"]] for a in rep["funnel"]["splits"][0]["arms"]}
            check(st == 200 and all(v[1] <= converted[k] for k, v in zero.items()), "window=0 is honoured", zero)
            st, rep = report("?funnel=1&to=" + to)
            check(st == 400 and rep["error"].get("path") == "from", "funnel without from is 400", rep)
            st, rep = report(f"?funnel=1&from={frm}&to={to}&utc_offset_min=abc")
            check(st == 400 and rep["error"].get("path") == "utc_offset_min", "bad utc_offset_min is 400", rep)
            st, rep = report(f"?funnel=1&from={frm}&to={to}&utc_offset_min=%2B5")
            check(st == 400 and rep["error"].get("path") == "utc_offset_min", "utc_offset_min +5 is 400", rep)
            st, rep = report(f"?funnel=1&from={frm}&to={to}&utc_offset_min=-60")
            check(st == 200 and rep["funnel"]["steps"][0]["users"] == 120, "utc_offset_min -60 runs", rep)
            st, rep = report(f"?funnel=1&from={frm}&to={to}&window=soon")
            check(st == 400 and rep["error"].get("path") == "window", "a bad window is 400", rep)
            viewer = srv.api("POST", "/api/v1/keys", {"role": "viewer"})[1]["key"]
            st, rep = srv.api("GET", f"/api/v1/journeys/fab_test/report?funnel=1&from={frm}&to={to}", key=viewer)
            check(st == 403, "the funnel needs a query role", (st, rep))
            st, rep = srv.api("GET", "/api/v1/journeys/fab_test/report", key=viewer)
            check(st == 200, "the plain report does not", st)
            st, rep = srv.api("GET", f"/api/v1/journeys/nope/report?funnel=1&from={frm}&to={to}")
            check(st == 404, "funnel of a missing journey is 404", (st, rep))
        finally:
            srv.cleanup()


for case in (test_maps_crud, test_map_query, test_journey_report_funnel):
    run_case(case)
finish()
