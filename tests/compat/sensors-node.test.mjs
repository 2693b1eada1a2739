// sa-sdk-node in batch mode against /sa: track, trackSignup, profileSet,
// profileIncrement and profileAppend, gzip'd data_list batches, read back through the
// Customer 360 API.
//
// The SDK's submitTo() may run once per process (it sets a global flag), which is why
// this file covers batch mode only and debug mode lives in its own file.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  startWaymark, waitForUser, waitForEvents, eventsNamed, newestFirst, getUser,
} from './waymark.mjs';

const require = createRequire(import.meta.url);
const SensorsAnalytics = require('sa-sdk-node');

const ANON = 'anon-node-7f3a9c';
const LOGIN = 'u-node-1001';
// Explicit, distinct event times make "newest first" checkable; a minute in the past
// keeps them inside any sane acceptance window.
const T0 = Date.now() - 60000;

let server;
let sa;
const sdkErrors = [];
let batchesAcked = 0;

before(async () => {
  server = await startWaymark();
});

after(async () => {
  // Completing the source stops the SDK's batching timer, which would keep the process alive.
  if (sa) sa.onCompleted();
  if (server) await server.stop();
});

function sendScenario() {
  sa = new SensorsAnalytics();
  const submitter = sa.submitTo(
    { url: `${server.base}/sa?project=default`, gzip: true, timeout: 5000 },
    { count: 4, timeSpan: 200 },
  );
  submitter.subscribe(() => { batchesAcked += 1; }, (err) => sdkErrors.push(String(err?.message ?? err)));

  sa.track(ANON, 'ViewFund', {
    $time: T0, $is_login_id: false, fund_code: '000001', amount: 12.5,
    channels: ['app', 'web'], is_new: true, fund_name: '货币基金A',
  });
  sa.track(ANON, 'ViewFundDetail', { $time: T0 + 1000, $is_login_id: false, fund_code: '000002' });
  sa.trackSignup(LOGIN, ANON, { $time: T0 + 2000, reg_channel: 'web' });
  sa.track(LOGIN, 'BuyFund', { $time: T0 + 3000, $is_login_id: true, fund_code: '000001', amount: 1000 });
  sa.profileSet(LOGIN, { $is_login_id: true, risk_level: 'C3', is_vip: true, city: '上海' });
  sa.profileIncrement(LOGIN, { trade_count: 2 });
  sa.profileIncrement(LOGIN, { trade_count: 3 });
  sa.profileAppend(LOGIN, { held_products: ['fund:000001'] });
  sa.profileAppend(LOGIN, { held_products: ['fund:000002'] });
}

function noSdkErrors() {
  assert.deepEqual(sdkErrors, [], `the SDK reported errors from the server: ${sdkErrors.join(' | ')}`);
}

test('sa-sdk-node batch mode: events, signup and profile ops arrive and read back', { timeout: 120000 }, async (t) => {
  sendScenario();

  await t.test('events of the login user, newest first, with their properties', async () => {
    const r = await waitForEvents(server, LOGIN, 'distinct_id',
      (evs) => ['ViewFund', 'ViewFundDetail', '$SignUp', 'BuyFund'].every((n) => eventsNamed(evs, n).length > 0),
      'ViewFund, ViewFundDetail, $SignUp and BuyFund under the login id');
    noSdkErrors();
    const evs = r.body.events;
    assert.ok(newestFirst(evs), `events not newest first: ${evs.map((e) => `${e.event}@${e.time}`).join(', ')}`);
    const order = evs.map((e) => e.event).filter((n) => ['ViewFund', 'ViewFundDetail', '$SignUp', 'BuyFund'].includes(n));
    assert.deepEqual(order, ['BuyFund', '$SignUp', 'ViewFundDetail', 'ViewFund']);

    const [view] = eventsNamed(evs, 'ViewFund');
    assert.equal(view.time, T0);
    assert.equal(view.properties.fund_code, '000001');
    assert.equal(view.properties.amount, 12.5);
    assert.deepEqual(view.properties.channels, ['app', 'web']);
    assert.equal(view.properties.is_new, true);
    assert.equal(view.properties.fund_name, '货币基金A');
    assert.equal(view.distinct_id, ANON);
    assert.equal(view.lib?.$lib, 'Node');

    const [buy] = eventsNamed(evs, 'BuyFund');
    assert.equal(buy.time, T0 + 3000);
    assert.equal(buy.distinct_id, LOGIN);
    assert.equal(buy.properties.amount, 1000);
    assert.equal(eventsNamed(evs, '$SignUp')[0].time, T0 + 2000);
  });

  await t.test('anonymous id and login id resolve to one user after trackSignup', async () => {
    const byLogin = await waitForUser(server, LOGIN, 'distinct_id', () => true, 'login user exists');
    const byLoginKind = await waitForUser(server, LOGIN, 'login_id', () => true, 'login user by id_type=login_id');
    const byAnon = await waitForUser(server, ANON, 'distinct_id', () => true, 'anonymous user exists');
    const uid = byLogin.body.user_id;
    assert.match(uid, /^[0-9]+$/, 'user_id is a decimal string');
    assert.equal(byLoginKind.body.user_id, uid);
    assert.equal(byAnon.body.user_id, uid, 'anonymous and login ids must be one user');
    const byUid = await getUser(server, uid, 'user_id');
    assert.equal(byUid.status, 200, `GET by user_id: ${JSON.stringify(byUid.body)}`);
    assert.equal(byUid.body.user_id, uid);
    const ids = byLogin.body.identities;
    assert.ok(ids.some((i) => i.key === '$identity_login_id' && i.value === LOGIN),
      `identities lack $identity_login_id=${LOGIN}: ${JSON.stringify(ids)}`);
    assert.ok(ids.some((i) => i.value === ANON), `identities lack the anonymous id: ${JSON.stringify(ids)}`);
  });

  await t.test('profileSet, profileIncrement and profileAppend build the profile', async () => {
    const r = await waitForUser(server, LOGIN, 'distinct_id', (u) => u.profile?.trade_count === 5
      && Array.isArray(u.profile?.held_products) && u.profile.held_products.length === 2,
    'profile with trade_count 5 and two held_products');
    noSdkErrors();
    const p = r.body.profile;
    assert.equal(p.risk_level, 'C3');
    assert.equal(p.is_vip, true);
    assert.equal(p.city, '上海');
    assert.equal(p.trade_count, 5);
    assert.deepEqual([...p.held_products].sort(), ['fund:000001', 'fund:000002']);
    assert.ok(batchesAcked >= 3, `expected at least 3 acknowledged batches, got ${batchesAcked}`);
  });

  await t.test('unknown ids answer 404 with an error object', async () => {
    const r = await getUser(server, 'nobody-here', 'distinct_id');
    assert.equal(r.status, 404);
    assert.equal(r.body?.error?.code, 'not_found');
  });
});
