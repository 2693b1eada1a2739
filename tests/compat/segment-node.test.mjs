// @segment/analytics-node against /v1/batch: identify (traits -> profile), track
// (properties verbatim; Segment-style event names with spaces are rewritten to valid
// names, "Order Completed" -> "Order_Completed"), page (-> $pageview with $url) and
// alias (previousId joins userId's user), all delivered by closeAndFlush().
//
// Mapping checked here is the one in docs/ingest-mapping.md: userId is the login id
// and the distinct_id used for read-back; anonymousId joins the same user once a
// message carries both, or once an alias links them. Event times are the client
// timestamps corrected for clock skew as Segment does (receivedAt - (sentAt -
// timestamp)), so they are compared by order and closeness, not to the millisecond.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startWaymark, waitForUser, waitForEvents, eventsNamed, newestFirst } from './waymark.mjs';

const require = createRequire(import.meta.url);
const { Analytics } = require('@segment/analytics-node');

const USER = 'seg-user-42';
const ANON_IDENTIFY = 'seg-anon-identify-1';
const ANON_ALIAS = 'seg-anon-alias-2';
const T0 = Date.now() - 60000;
// Skew correction moves a timestamp by the transit time of its batch; anything near
// this bound would mean the client timestamp was ignored (T0 is a minute in the past).
const SKEW_BOUND_MS = 30000;
const PAGE_URL = 'https://bank.example.cn/funds/000001?utm_source=compat';

let server;

function assertNear(actual, expected, what) {
  assert.ok(Math.abs(actual - expected) < SKEW_BOUND_MS, `${what}: ${actual} is not the client timestamp ${expected}`);
}

before(async () => {
  server = await startWaymark();
});

after(async () => {
  if (server) await server.stop();
});

test('@segment/analytics-node: identify, track, page, alias read back', { timeout: 120000 }, async (t) => {
  const errors = [];
  const analytics = new Analytics({
    writeKey: 'compat-write-key',
    host: server.base,
    path: '/v1/batch',
    maxEventsInBatch: 3,
    flushInterval: 200,
    maxRetries: 1,
  });
  analytics.on('error', (e) => errors.push(`${e?.code ?? ''} ${e?.reason?.message ?? e?.reason ?? JSON.stringify(e)}`));

  analytics.track({ anonymousId: ANON_ALIAS, event: 'LandingViewed', timestamp: new Date(T0), properties: { step: 0 } });
  analytics.identify({
    userId: USER, anonymousId: ANON_IDENTIFY, timestamp: new Date(T0 + 1000),
    traits: { name: '张三', email: 'zhangsan@example.cn', plan: 'gold', age: 42, vip: true },
  });
  analytics.track({
    userId: USER, event: 'ViewFund', timestamp: new Date(T0 + 2000),
    properties: { fund_code: '000001', amount: 12.5, tags: ['money', 'low-risk'] },
  });
  analytics.page({
    userId: USER, category: 'Funds', name: 'Fund Detail', timestamp: new Date(T0 + 3000),
    properties: { url: PAGE_URL, title: 'Fund 000001', path: '/funds/000001' },
  });
  analytics.track({
    userId: USER, event: 'Order Completed', timestamp: new Date(T0 + 4000),
    properties: { order_id: 'o-1001', revenue: 99.5, currency: 'CNY' },
  });
  analytics.alias({ userId: USER, previousId: ANON_ALIAS, timestamp: new Date(T0 + 5000) });
  await analytics.closeAndFlush({ timeout: 10000 });
  assert.deepEqual(errors, [], 'the SDK reported delivery errors');

  await t.test('track events with properties, newest first', async () => {
    const r = await waitForEvents(server, USER, 'distinct_id',
      (evs) => ['ViewFund', 'Order_Completed', '$pageview'].every((n) => eventsNamed(evs, n).length > 0),
      'ViewFund, Order_Completed and $pageview for the user');
    const evs = r.body.events;
    assert.ok(newestFirst(evs), `events not newest first: ${evs.map((e) => `${e.event}@${e.time}`).join(', ')}`);
    const [view] = eventsNamed(evs, 'ViewFund');
    assertNear(view.time, T0 + 2000, 'ViewFund time');
    assert.equal(view.properties.fund_code, '000001');
    assert.equal(view.properties.amount, 12.5);
    assert.deepEqual(view.properties.tags, ['money', 'low-risk']);
    const [order] = eventsNamed(evs, 'Order_Completed');
    assertNear(order.time, T0 + 4000, 'Order Completed time');
    assert.ok(order.time > view.time, 'Order Completed is newer than ViewFund');
    assert.equal(order.properties.revenue, 99.5);
    assert.equal(order.properties.order_id, 'o-1001');
  });

  await t.test('page becomes $pageview carrying the page url', async () => {
    const r = await waitForEvents(server, USER, 'distinct_id', (evs) => eventsNamed(evs, '$pageview').length > 0,
      '$pageview for the user');
    const [pv] = eventsNamed(r.body.events, '$pageview');
    assertNear(pv.time, T0 + 3000, '$pageview time');
    const url = pv.properties.$url ?? pv.properties.url;
    assert.equal(url, PAGE_URL, `page url not found in ${JSON.stringify(pv.properties)}`);
    assert.equal(pv.properties.$title, 'Fund 000001');
  });

  await t.test('identify traits land in the profile', async () => {
    const r = await waitForUser(server, USER, 'distinct_id', (u) => u.profile?.plan === 'gold', 'profile.plan = gold');
    const p = r.body.profile;
    assert.equal(p.name, '张三');
    assert.equal(p.email, 'zhangsan@example.cn');
    assert.equal(p.age, 42);
    assert.equal(p.vip, true);
    assert.ok(r.body.identities.some((i) => i.value === USER), JSON.stringify(r.body.identities));
  });

  await t.test('anonymousId on identify and alias previousId join the user', async () => {
    const u = await waitForUser(server, USER, 'distinct_id', () => true, 'user');
    const viaIdentify = await waitForUser(server, ANON_IDENTIFY, 'distinct_id', () => true, 'identify anonymousId');
    const viaAlias = await waitForUser(server, ANON_ALIAS, 'distinct_id',
      (b) => b.user_id === u.body.user_id, 'alias previousId resolves to the aliased user');
    assert.equal(viaIdentify.body.user_id, u.body.user_id);
    assert.equal(viaAlias.body.user_id, u.body.user_id);
  });
});
