"""A real HTTP endpoint on 127.0.0.1 for tests of Waymark's message dispatch.

Journey integration tests point a channel's URL at a Receiver and then look
at what the `waymark` binary actually sent: every request is recorded (path,
headers, raw body, parsed JSON, arrival time, the status answered), and the
test can script failures ("answer the next 2 requests with 503, Retry-After
1") to drive the dispatcher's retries. Signatures are checked with the scheme
of docs/channels.md.

    from receiver import Receiver
    with Receiver() as rcv:
        rcv.fail_next(2, 500)
        ... configure a channel with url=rcv.url("/hook"), secret="s3cret" ...
        assert rcv.wait_for(3)
        req = rcv.requests()[-1]
        assert req.header("X-Waymark-Attempt") == "3"
        assert rcv.verify(req, "s3cret")

Why ThreadingHTTPServer with HTTP/1.1: the dispatcher keeps connections
alive and runs many requests at once, so the receiver must answer on
persistent connections and concurrently, or tests would measure the
receiver instead of the dispatcher. All recorded state sits behind one lock;
accessors return copies.
"""
import hashlib
import hmac
import http.server
import json
import threading
import time
import urllib.parse

SIGNATURE_HEADER = "X-Waymark-Signature"


class Request:
    """One recorded request. headers: dict with lower-case names."""

    def __init__(self, method, path, headers, body, status, at):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.status = status
        self.at = at
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            self.json = None

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    @property
    def message_id(self):
        return self.header("X-Waymark-Message-Id")

    @property
    def channel(self):
        """X-Waymark-Channel, percent-decoded (it is encoded beyond ASCII)."""
        value = self.header("X-Waymark-Channel")
        return urllib.parse.unquote(value) if value is not None else None

    @property
    def attempt(self):
        value = self.header("X-Waymark-Attempt")
        return int(value) if value is not None and value.isdigit() else None

    def __repr__(self):
        return (f"Request({self.method} {self.path} id={self.message_id} "
                f"attempt={self.attempt} status={self.status})")


def sign(secret, timestamp, body):
    """The header value Waymark sends: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body,
                   hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(header, body, secret, tolerance_s=300, now=None):
    """True if header is a valid signature of body under secret.

    tolerance_s bounds |now - t| against replays; None skips that check
    (for fixed test vectors)."""
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, v1 = parts.get("t", ""), parts.get("v1", "")
    if not t.isdigit() or len(v1) != 64:
        return False
    if tolerance_s is not None:
        now = time.time() if now is None else now
        if abs(now - int(t)) > tolerance_s:
            return False
    expected = sign(secret, int(t), body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, v1)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        rcv = self.server.receiver
        status, retry_after, delay_s = rcv._next_answer()
        headers = {k.lower(): v for k, v in self.headers.items()}
        rcv._record(Request(self.command, self.path, headers, body, status, time.time()))
        if delay_s:
            rcv._stopping.wait(delay_s)
        payload = b'{"ok":true}' if 200 <= status <= 299 else b'{"error":"scripted"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = _handle
    do_PUT = _handle
    do_GET = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Receiver:
    """Records every request; scripted answers; thread-safe accessors."""

    def __init__(self, host="127.0.0.1", port=0):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests = []
        self._script = []           # [(status, retry_after, delay_s)], consumed in order
        self._default = (200, None, 0.0)
        self._stopping = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.receiver = self
        self._thread = None

    # lifecycle
    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    # scripting
    def fail_next(self, n, status, retry_after=None, delay_s=0.0):
        """The next n requests are answered with status (and Retry-After)."""
        with self._lock:
            self._script.extend([(status, retry_after, delay_s)] * n)

    def set_default(self, status=200, retry_after=None, delay_s=0.0):
        """The answer once the script is used up (200 at start)."""
        with self._lock:
            self._default = (status, retry_after, delay_s)

    def _next_answer(self):
        with self._lock:
            return self._script.pop(0) if self._script else self._default

    def _record(self, req):
        with self._cond:
            self._requests.append(req)
            self._cond.notify_all()

    # reading
    def requests(self):
        with self._lock:
            return list(self._requests)

    def by_id(self, message_id):
        return [r for r in self.requests() if r.message_id == message_id]

    def delivered_ids(self):
        """message id -> number of 2xx answers (1 each for exactly-once delivery)."""
        counts = {}
        for r in self.requests():
            if 200 <= r.status <= 299 and r.message_id is not None:
                counts[r.message_id] = counts.get(r.message_id, 0) + 1
        return counts

    def clear(self):
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._default = (200, None, 0.0)

    def wait_for(self, n, timeout=10.0):
        """Waits until at least n requests arrived; True if they did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    @staticmethod
    def verify(req, secret, tolerance_s=300):
        return verify_signature(req.header(SIGNATURE_HEADER), req.body, secret, tolerance_s)
