"""Helpers for journey integration tests: load the shipped channels,
templates and calendar into a project (channels pointed at a real local
receiver), publish journeys from examples/journeys/, move the test clock."""
import json
import os
import time

from wmtest import ROOT, check

EXAMPLES = os.path.join(ROOT, "examples")
SECRET = "test-signing-secret"


def load_json(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return json.load(f)


def setup_project(srv, receiver, project="default"):
    chans = load_json("channels.json")["channels"]
    for name, ch in chans.items():
        ch = dict(ch)
        if "url" in ch:
            ch["url"] = receiver.url("/" + name)
            ch["secret"] = SECRET
        st, body = srv.api("PUT", f"/api/v1/channels/{name}?project={project}", ch)
        assert st == 200, (name, st, body)
    for t in load_json("templates.json")["templates"]:
        st, body = srv.api("PUT", f"/api/v1/templates/{t['key']}?project={project}", t)
        assert st == 200, (t["key"], st, body)
    st, body = srv.api("PUT", f"/api/v1/settings/calendar?project={project}", load_json("calendar.json"))
    assert st == 200, (st, body)


def publish(srv, key, project="default", definition=None):
    d = definition or load_json(os.path.join("journeys", key + ".json"))
    st, body = srv.api("POST", f"/api/v1/journeys?project={project}", d)
    check(st in (200, 201) and body.get("valid"), f"journey {key} saved and valid", body)
    st, body = srv.api("POST", f"/api/v1/journeys/{key}/publish?project={project}")
    check(st == 200 and body.get("status") == "published", f"journey {key} published", body)
    return body


def now_ms(srv):
    st, body = srv.api("GET", "/api/v1/clock")
    return body["now_ms"]


def advance(srv, duration):
    st, body = srv.api("POST", "/api/v1/clock", {"advance": duration})
    assert st == 200, (st, body)
    return body["now_ms"]


def advance_to_local(srv, hour, minute=0, tz_hours=8):
    """Moves the clock forward to the next hh:mm in UTC+tz_hours."""
    now = now_ms(srv)
    local = now + tz_hours * 3600000
    day = local // 86400000 * 86400000
    target = day + (hour * 60 + minute) * 60000
    if target <= local:
        target += 86400000
    delta_s = (target - local) // 1000
    if delta_s > 0:
        advance(srv, f"{delta_s}s")
    return now_ms(srv)


def settle(srv, timeout=10.0, probe=None):
    """Waits until probe() is truthy (timers fire on the writer threads a
    moment after the clock moves)."""
    return srv.wait_for(probe, timeout) if probe else time.sleep(0.2)
