// sa-sdk-node debug modes against /debug: "debug" (validate and import) and "dryRun"
// (validate only, header Dry-Run: true). The SDK reports success when the reply is 2xx
// and otherwise raises the reply body as the error text, so the server's message must
// name the offending field for a developer to act on it.
//
// Each case uses its own SensorsAnalytics instance wired to a Submitter, which is what
// submitTo() does internally; submitTo() itself may only run once per process.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startWaymark, waitForEvents, eventsNamed, getUser, getEvents } from './waymark.mjs';

const require = createRequire(import.meta.url);
const SensorsAnalytics = require('sa-sdk-node');
const { Submitter } = SensorsAnalytics;

let server;

before(async () => {
  server = await startWaymark();
});

after(async () => {
  if (server) await server.stop();
});

/**
 * Send what `emit(sa, submitter)` produces through a debug-mode submitter and resolve
 * with { ok: true } or { ok: false, message } as the SDK reports it.
 */
function sendDebug(mode, emit) {
  const sa = new SensorsAnalytics();
  const submitter = new Submitter({ url: `${server.base}/sa?project=default`, mode, gzip: true, timeout: 5000 });
  const result = new Promise((resolve) => {
    submitter.subscribe(
      () => resolve({ ok: true }),
      (err) => resolve({ ok: false, message: String(err?.message ?? err) }),
    );
  });
  sa.subscribe(submitter);
  emit(sa, submitter);
  return result;
}

async function assertNotStored(distinctId) {
  const u = await getUser(server, distinctId, 'distinct_id');
  const ev = await getEvents(server, distinctId, 'distinct_id');
  const stored = ev.status === 200 ? ev.body.events : [];
  assert.equal(u.status, 404, `${distinctId} must not exist, got ${u.status} ${JSON.stringify(u.body)}`);
  assert.deepEqual(stored, [], `${distinctId} must have no events`);
}

test('sa-sdk-node debug modes against /debug', { timeout: 120000 }, async (t) => {
  await t.test('dryRun: a valid record is accepted', async () => {
    const r = await sendDebug('dryRun', (sa) => sa.track('dbg-dry-1', 'DebugCheck', { fund_code: '000001' }));
    assert.deepEqual(r, { ok: true });
  });

  await t.test('dryRun: a too-long string property is rejected, naming the property', async () => {
    const r = await sendDebug('dryRun', (sa) => sa.track('dbg-dry-2', 'DebugCheck', { memo_text: 'x'.repeat(10000) }));
    assert.equal(r.ok, false, 'a 10000-character value must be rejected in debug mode');
    assert.match(r.message, /memo_text/, `error text should name the property: ${r.message}`);
  });

  await t.test('dryRun: an object-valued property is rejected, naming the property', async () => {
    // The SDK refuses objects client-side, so hand the record to its submitter directly
    // (what an older or hand-rolled client would send).
    const record = {
      type: 'track', event: 'DebugCheck', distinct_id: 'dbg-dry-3', time: Date.now(),
      properties: { $lib: 'Node', nested_obj: { a: 1 } }, lib: { $lib: 'Node', $lib_method: 'code' },
    };
    const r = await sendDebug('dryRun', (_sa, submitter) => submitter.onNext(record));
    assert.equal(r.ok, false, 'an object-valued property must be rejected');
    assert.match(r.message, /nested_obj/, `error text should name the property: ${r.message}`);
  });

  await t.test('debug (validate and import): a valid record is accepted and stored', async () => {
    const r = await sendDebug('debug', (sa) => sa.track('dbg-track-1', 'DebugTracked', { $is_login_id: false, step: 1 }));
    assert.deepEqual(r, { ok: true });
    const got = await waitForEvents(server, 'dbg-track-1', 'distinct_id',
      (evs) => eventsNamed(evs, 'DebugTracked').length === 1, 'the debug-mode event is stored');
    assert.equal(eventsNamed(got.body.events, 'DebugTracked')[0].properties.step, 1);
  });

  await t.test('debug (validate and import): an invalid record is rejected and not stored', async () => {
    const r = await sendDebug('debug', (sa) => sa.track('dbg-track-bad', 'DebugTracked', { memo_text: 'y'.repeat(10000) }));
    assert.equal(r.ok, false);
    assert.match(r.message, /memo_text/, `error text should name the property: ${r.message}`);
  });

  await t.test('dry-run and rejected records were not stored', async () => {
    // A record sent after them and already visible shows the server has caught up.
    const r = await sendDebug('debug', (sa) => sa.track('dbg-barrier', 'DebugBarrier', {}));
    assert.deepEqual(r, { ok: true });
    await waitForEvents(server, 'dbg-barrier', 'distinct_id',
      (evs) => eventsNamed(evs, 'DebugBarrier').length === 1, 'the barrier event is stored');
    for (const id of ['dbg-dry-1', 'dbg-dry-2', 'dbg-dry-3', 'dbg-track-bad']) {
      await assertNotStored(id);
    }
  });
});
