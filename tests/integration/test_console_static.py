#!/usr/bin/env python3
"""The console's static files (src/server/static.c) from a real server: content
types, caching headers, ETag revalidation, the SPA fallback, path traversal
refused (plain, percent-encoded, through a symbolic link), the API and ingest
routes left alone, and the page shown when the console is not built."""
import os
import shutil
import socket
import tempfile

from wmtest import Server, check, finish, run_case


def make_dist(root):
    dist = os.path.join(root, "dist")
    os.makedirs(os.path.join(dist, "assets"))
    files = {
        "index.html": "<!doctype html><title>console</title><div id=root></div>",
        "assets/index-abc123.js": "console.log('x')",
        "assets/index-abc123.css": "body{}",
        "favicon.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
        "logo.png": "\x89PNG",
        "font.woff2": "wOF2",
        "data.json": "{}",
    }
    for name, text in files.items():
        with open(os.path.join(dist, name), "w") as f:
            f.write(text)
    with open(os.path.join(root, "secret.txt"), "w") as f:
        f.write("outside")
    os.symlink(os.path.join(root, "secret.txt"), os.path.join(dist, "link.txt"))
    return dist


def raw_get(port, path):
    """A GET whose path goes out exactly as written (no client normalising)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_served():
    root = tempfile.mkdtemp(prefix="wm-web-")
    dist = make_dist(root)
    srv = Server(extra=["--web", dist]).start()
    try:
        st, h, body = srv.request("GET", "/")
        check(st == 200 and b"<title>console</title>" in body, "/ answers index.html", f"{st} {body[:80]}")
        check(h.get("Content-Type") == "text/html; charset=utf-8", "index.html content type", str(h))
        check(h.get("Cache-Control") == "no-cache", "index.html is revalidated", str(h))
        check("ETag" in h and "Last-Modified" in h, "ETag and Last-Modified", str(h))
        st, h2, body = srv.request("GET", "/", headers={"If-None-Match": h["ETag"]})
        check(st == 304 and body == b"", "If-None-Match answers 304", f"{st}")
        st, _, _ = srv.request("GET", "/", headers={"If-Modified-Since": h["Last-Modified"]})
        check(st == 304, "If-Modified-Since answers 304", f"{st}")

        types = {
            "/assets/index-abc123.js": "text/javascript; charset=utf-8",
            "/assets/index-abc123.css": "text/css; charset=utf-8",
            "/favicon.svg": "image/svg+xml",
            "/logo.png": "image/png",
            "/font.woff2": "font/woff2",
            "/data.json": "application/json; charset=utf-8",
        }
        for path, ctype in types.items():
            st, h, _ = srv.request("GET", path)
            check(st == 200 and h.get("Content-Type") == ctype, f"{path} is {ctype}", f"{st} {h.get('Content-Type')}")
        st, h, body = srv.request("GET", "/assets/index-abc123.js")
        check(h.get("Cache-Control") == "public, max-age=31536000, immutable", "hashed assets are immutable", str(h))
        check(body == b"console.log('x')", "asset body", repr(body))
        st, h, _ = srv.request("GET", "/favicon.svg")
        check(h.get("Cache-Control") == "no-cache", "unhashed files are revalidated", str(h))
        st, h, body = srv.request("HEAD", "/assets/index-abc123.js")
        check(st == 200 and body == b"" and h.get("Content-Length") == "16", "HEAD has the length, no body", f"{st} {h}")

        # SPA fallback: console routes answer index.html
        for path in ("/journeys", "/journeys/fund_sip_companion", "/analytics?x=1", "/customers/"):
            st, h, body = srv.request("GET", path)
            check(st == 200 and b"<title>console</title>" in body and h.get("Cache-Control") == "no-cache",
                  f"{path} falls back to index.html", f"{st} {body[:60]}")
        st, h, body = srv.request("GET", "/assets/missing-000.js")
        check(st == 404 and b"not_found" in body, "a missing asset is 404, not HTML", f"{st} {body[:60]}")

        # traversal: refused, never the file outside
        for path in ("/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2fsecret.txt",
                     "/assets/%2e%2e/%2e%2e/secret.txt", "/..%5csecret.txt", "/./index.html", "/a%00b", "/%zz"):
            st, body = raw_get(srv.port, path)
            check(st == 400 and b"outside" not in body, f"{path} is refused", f"{st} {body[:80]}")
        st, _, body = srv.request("GET", "/link.txt")
        check(b"outside" not in body, "a symbolic link out of the directory is not followed", f"{st} {body[:60]}")

        # the API, ingest and health routes are not the console's
        st, h, body = srv.request("GET", "/api/v1/nope")
        check(st in (401, 404) and b"<title>" not in body, "/api/ stays the API's", f"{st} {body[:60]}")
        st, body = srv.api("GET", "/api/v1/journeys")
        check(st == 200 and "journeys" in body, "the API answers as before", f"{st} {body}")
        st, _, _ = srv.request("GET", "/healthz")
        check(st == 200, "/healthz as before")
        st, h, body = srv.request("GET", "/sa.gif?data=")
        check(h.get("Content-Type") != "text/html; charset=utf-8", "/sa.gif is the ingest route", f"{st} {h}")
        st, _, body = srv.request("POST", "/journeys")
        check(st == 404 and b"<title>" not in body, "POST to a console path is not the fallback", f"{st}")
    finally:
        srv.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def test_not_built():
    root = tempfile.mkdtemp(prefix="wm-web-")
    srv = Server(extra=["--web", os.path.join(root, "missing")]).start()
    try:
        for path in ("/", "/journeys"):
            st, h, body = srv.request("GET", path)
            check(st == 404 and b"make web" in body and h.get("Content-Type") == "text/html; charset=utf-8",
                  f"{path} says how to build the console when it is not built", f"{st} {body[:120]}")
        st, body = srv.api("GET", "/api/v1/journeys")
        check(st == 200, "the API works without the console")
        check("console not built" in srv.read_log(), "the server log says the console is not built")
    finally:
        srv.cleanup()
        shutil.rmtree(root, ignore_errors=True)


run_case(test_served)
run_case(test_not_built)
finish()
