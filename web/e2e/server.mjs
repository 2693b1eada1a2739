// A real `waymark serve` for the browser tests: a temp data directory, an
// admin key, the built console (web/dist), the example channels, templates,
// calendar and journeys, and a few customers' events sent through the
// native ingest endpoint.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..", "..");
export const ADMIN_KEY = "wm_console_e2e_admin";

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on("error", rej);
  });
}

export async function startServer() {
  const bin = join(ROOT, process.env.BUILD || "build", "waymark");
  const data = mkdtempSync(join(tmpdir(), "wm-e2e-"));
  const port = await freePort();
  const proc = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`, "--data", data, "--admin-key", ADMIN_KEY, "--partitions", "2", "--fsync", "never", "--web", join(ROOT, "web", "dist")], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      /* not yet */
    }
    if (proc.exitCode !== null) throw new Error("waymark serve exited: " + log);
    await new Promise((r) => setTimeout(r, 50));
  }
  const api = async (method, path, body) => {
    const r = await fetch(base + path, { method, headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: r.status, body: json, text };
  };
  return {
    base,
    api,
    log: () => log,
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.on("exit", r)));
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/* Channels (to a port nobody listens on: sends fail, which is fine here),
 * templates, the calendar and every example journey, published. */
export async function loadExamples(srv) {
  const ex = (f) => JSON.parse(readFileSync(join(ROOT, "examples", f), "utf8"));
  for (const [name, ch] of Object.entries(ex("channels.json").channels)) {
    if (ch.url) ch.url = ch.url.replace("PORT", "9");
    await srv.api("PUT", `/api/v1/channels/${name}`, ch);
  }
  for (const t of ex("templates.json").templates) await srv.api("PUT", `/api/v1/templates/${t.key}`, t);
  await srv.api("PUT", "/api/v1/settings/calendar", ex("calendar.json"));
  const published = [];
  for (const f of readdirSync(join(ROOT, "examples", "journeys")).sort()) {
    const d = JSON.parse(readFileSync(join(ROOT, "examples", "journeys", f), "utf8"));
    await srv.api("POST", "/api/v1/journeys", d);
    const r = await srv.api("POST", `/api/v1/journeys/${d.key}/publish`, {});
    if (r.status === 200) published.push(d.key);
  }
  return published;
}

/* n customers who view a fund today; every second compares, every fourth
 * subscribes: a funnel of n, n/2, n/4. */
export async function sendEvents(srv, n = 40) {
  const now = Date.now() - 3600 * 1000;
  const recs = [];
  const rec = (i, event, dt, props = {}) => ({ type: "track", event, distinct_id: `e2e${String(i).padStart(4, "0")}`, time: now + dt, lib: { $lib: "js", $lib_version: "1.0.0", $lib_method: "code" }, properties: { $is_login_id: true, ...props } });
  for (let i = 0; i < n; i++) {
    recs.push(rec(i, "$AppStart", 0));
    recs.push(rec(i, "ViewFundDetail", 1000, { fund_code: "000001", fund_type: "bond", risk_level: "R2" }));
    if (i % 2 === 0) recs.push(rec(i, "CompareFunds", 2000, { fund_codes: ["000001", "000002"] }));
    if (i % 4 === 0) recs.push(rec(i, "SubscribeFund", 3000, { fund_code: "000001", amount: 1000 }));
  }
  const r = await fetch(`${srv.base}/api/v1/events?project=default`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(recs) });
  const body = await r.json();
  if (body.accepted !== recs.length) throw new Error("events not accepted: " + JSON.stringify(body).slice(0, 400));
  return recs.length;
}
