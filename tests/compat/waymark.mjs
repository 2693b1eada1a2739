// Test harness for the compatibility suite: starts a real Waymark server on a free
// loopback port with a fresh data directory, and reads data back through the
// Customer 360 API.
//
// Why it is built this way: the SDKs under test are real clients talking real HTTP, so
// the server must be the real binary (`$BUILD/waymark`, BUILD defaults to `build`),
// not a mock. Ingest is acknowledged before it is applied, so every check polls the
// read-back API until the expected data shows up (eventual consistency, not a timing
// assertion) and fails with the last answer it saw when it never does.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ADMIN_KEY = 'compat-admin-key-0123456789';

const READY_TIMEOUT_MS = 15000;
const POLL_INTERVAL_MS = 50;
const POLL_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 5000;

export function binaryPath() {
  return path.resolve(REPO_ROOT, process.env.BUILD || 'build', 'waymark');
}

/** Ask the kernel for a free loopback port, then release it for the server. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function readyzOk(base) {
  try {
    const res = await fetch(`${base}/readyz`);
    return res.status === 200;
  } catch {
    return false;
  }
}

/**
 * Start `waymark serve` and wait until it logged "listening on" and /readyz is 200.
 * Returns { port, base, dataDir, adminKey, log(), stop() }. stop() sends SIGTERM,
 * waits for exit, removes the data directory, and throws if the server printed a
 * sanitizer report (so `BUILD=build-san` runs catch memory errors too).
 */
export async function startWaymark() {
  const bin = binaryPath();
  if (!fs.existsSync(bin)) {
    throw new Error(`Waymark binary not found at ${bin}; build it first (make) or set BUILD`);
  }
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'waymark-compat-'));
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir,
    '--admin-key', ADMIN_KEY, '--fsync', 'always'];
  const child = spawn(bin, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let listening = false;
  let exited = null;
  const onData = (chunk) => {
    output += chunk.toString();
    if (output.includes('listening on')) listening = true;
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(listening && (await readyzOk(base)))) {
    if (exited) {
      throw new Error(`waymark exited early (${JSON.stringify(exited)}): ${bin} ${args.join(' ')}\n${output}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`waymark not ready after ${READY_TIMEOUT_MS} ms ` +
        `(listening line seen: ${listening}): ${bin} ${args.join(' ')}\n${output}`);
    }
    await sleep(POLL_INTERVAL_MS);
  }
  const stop = async () => {
    if (!exited) {
      const done = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await done;
      clearTimeout(timer);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
    // A sanitizer build reports to stderr and may keep serving: surface it here.
    const report = output.match(/(ERROR: \w+Sanitizer|runtime error:)[\s\S]{0,3000}/);
    if (report) throw new Error(`waymark printed a sanitizer report:\n${report[0]}`);
  };
  return { port, base, dataDir, adminKey: ADMIN_KEY, log: () => output, stop };
}

/** GET an admin API path; returns { status, body } with body parsed as JSON when possible. */
export async function apiGet(server, apiPath) {
  const res = await fetch(`${server.base}${apiPath}`, {
    headers: { Authorization: `Bearer ${server.adminKey}` },
  });
  const text = await res.text();
  let body = text;
  try { body = JSON.parse(text); } catch { /* keep the raw text for the failure message */ }
  return { status: res.status, body };
}

export function getUser(server, id, idType = 'distinct_id') {
  const q = new URLSearchParams({ project: 'default', id_type: idType });
  return apiGet(server, `/api/v1/users/${encodeURIComponent(id)}?${q}`);
}

export function getEvents(server, id, idType = 'distinct_id', limit = 50) {
  const q = new URLSearchParams({ project: 'default', id_type: idType, limit: String(limit) });
  return apiGet(server, `/api/v1/users/${encodeURIComponent(id)}/events?${q}`);
}

/**
 * Poll `probe` (async, returns an observation) until `accept(observation)` is true.
 * Returns the accepted observation; throws with `what` and the last observation.
 */
export async function waitFor(what, probe, accept, timeoutMs = POLL_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`never observed: ${what} (polled ${timeoutMs} ms); last answer: ` +
        JSON.stringify(last, null, 1).slice(0, 4000));
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

/** Wait until the user resolves (200) and `accept(body)` holds. */
export function waitForUser(server, id, idType, accept, what) {
  return waitFor(`${what} [GET /api/v1/users/${id}?id_type=${idType}]`,
    () => getUser(server, id, idType),
    (r) => r.status === 200 && typeof r.body === 'object' && accept(r.body));
}

/** Wait until the user's events (newest first) satisfy `accept(events)`. */
export function waitForEvents(server, id, idType, accept, what) {
  return waitFor(`${what} [GET /api/v1/users/${id}/events?id_type=${idType}]`,
    () => getEvents(server, id, idType),
    (r) => r.status === 200 && Array.isArray(r.body?.events) && accept(r.body.events));
}

/** The events of one name, in the order the API returned them. */
export function eventsNamed(events, name) {
  return events.filter((e) => e.event === name);
}

/** True when times never increase along the list (the API promises newest first). */
export function newestFirst(events) {
  return events.every((e, i) => i === 0 || events[i - 1].time >= e.time);
}
