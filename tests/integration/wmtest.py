"""Shared helpers for Waymark's integration tests.

Every test drives the real `waymark` binary over loopback HTTP. A suite is a
plain script: it calls check() for each assertion and finish() prints the
closing line `RESULT passed=N failed=M` that tests/run-all reads.
"""
import base64
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", "build")
BIN = os.path.join(ROOT, BUILD, "waymark")
ADMIN_KEY = "wm_test_admin_key"

_passed = 0
_failed = 0


def check(cond, what, detail=""):
    global _passed, _failed
    if cond:
        _passed += 1
    else:
        _failed += 1
        print(f"FAIL: {what}" + (f"\n      {detail}" if detail else ""), flush=True)
    return cond


def finish():
    print(f"RESULT passed={_passed} failed={_failed}")
    sys.exit(1 if _failed else 0)


def run_case(fn):
    """Runs one test function; an exception counts as a failure."""
    global _failed
    try:
        fn()
    except Exception:  # noqa: BLE001 - report and go on with the next case
        _failed += 1
        print(f"FAIL: {fn.__name__} raised\n{traceback.format_exc()}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir=None, fsync="always", partitions=2, extra=()):
        self.own_dir = data_dir is None
        self.data = data_dir or tempfile.mkdtemp(prefix="wm-it-")
        self.fsync = fsync
        self.partitions = partitions
        self.extra = list(extra)
        self.proc = None
        self.port = None

    def start(self, timeout=15):
        self.port = free_port()
        self.log = open(os.path.join(self.data, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data", self.data,
             "--admin-key", ADMIN_KEY, "--fsync", self.fsync,
             "--partitions", str(self.partitions)] + self.extra,
            stdout=self.log, stderr=self.log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited early: " + self.read_log())
            try:
                st, _, _ = self.request("GET", "/readyz")
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("server not ready: " + self.read_log())

    def read_log(self, tail=3000):
        with open(os.path.join(self.data, "server.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-tail:] if tail else f.read().decode("utf-8", "replace")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "log") and not self.log.closed:
            self.log.close()

    def cleanup(self):
        self.stop()
        # a sanitizer build reports memory errors and leaks in the server log
        log = self.read_log(0) if os.path.exists(os.path.join(self.data, "server.log")) else ""
        bad = [m for m in ("AddressSanitizer", "LeakSanitizer", "runtime error:") if m in log]
        check(not bad, "server log free of sanitizer reports", log[-2000:] if bad else "")
        if self.own_dir:
            shutil.rmtree(self.data, ignore_errors=True)

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def api(self, method, path, body=None, key=ADMIN_KEY):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        st, hdr, data = self.request(method, path, body, headers)
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            return st, data

    def user(self, uid, id_type="distinct_id", project="default"):
        q = urllib.parse.urlencode({"id_type": id_type, "project": project})
        return self.api("GET", f"/api/v1/users/{urllib.parse.quote(uid, safe='')}?{q}")

    def events(self, uid, limit=100, id_type="distinct_id", project="default"):
        q = urllib.parse.urlencode({"id_type": id_type, "project": project, "limit": limit})
        return self.api("GET", f"/api/v1/users/{urllib.parse.quote(uid, safe='')}/events?{q}")

    def wait_for(self, fn, timeout=10.0):
        """Polls fn() until it returns a truthy value (records apply a few ms
        after their acknowledgement); returns the last value."""
        deadline = time.time() + timeout
        val = fn()
        while not val and time.time() < deadline:
            time.sleep(0.03)
            val = fn()
        return val

    def sa_post(self, records, project="default", gz=True, path="/sa", headers=None, extra=""):
        raw = json.dumps(records, ensure_ascii=False).encode()
        if gz:
            raw = gzip.compress(raw)
        b64 = base64.b64encode(raw).decode()
        body = "data_list=" + urllib.parse.quote(b64, safe="") + ("&gzip=1" if gz else "") + extra
        hdr = {"Content-Type": "application/x-www-form-urlencoded"}
        hdr.update(headers or {})
        return self.request("POST", f"{path}?project={project}", body, hdr)


def track(distinct_id, event, props=None, t=None, login=True, track_id=None, **kw):
    rec = {"type": "track", "event": event, "distinct_id": distinct_id,
           "time": t or int(time.time() * 1000),
           "lib": {"$lib": "python", "$lib_version": "1.11.0", "$lib_method": "code"},
           "properties": dict(props or {})}
    if login:
        rec["properties"]["$is_login_id"] = True
    if track_id is not None:
        rec["_track_id"] = track_id
    rec.update(kw)
    return rec
