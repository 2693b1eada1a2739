// sa-sdk-javascript (the web SDK) in headless Chromium, cross-origin: the page is
// served from one loopback port and Waymark listens on another, so the browser applies
// CORS exactly as it would for a bank's site posting to its own Waymark host.
//
// Three transports are covered: send_type 'image' (GET /sa.gif?data=...), 'ajax'
// (POST form body data=...) and batch_send (POST data_list=..., removed from
// localStorage only when the XHR succeeds, so a missing CORS header shows up as
// records stuck in localStorage).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import {
  startWaymark, waitFor, waitForUser, waitForEvents, eventsNamed, newestFirst,
} from './waymark.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const SDK_SOURCE = fs.readFileSync(require.resolve('sa-sdk-javascript/dist/web/sensorsdata.js'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let server;
let pages;
let browser;

// One login id per transport: each run is a new browser profile with a new cookie id,
// and one login id may be linked to only one anonymous id under one-to-one mapping.
const MODES = [
  { name: 'image', login: 'c12345678', config: { send_type: 'image' } },
  { name: 'ajax', login: 'c22345678', config: { send_type: 'ajax' } },
  { name: 'batch', login: 'c32345678', config: { send_type: 'ajax', batch_send: { send_interval: 500, datasend_timeout: 5000 } } },
];

function pageHtml(mode) {
  const config = {
    server_url: `${server.base}/sa?project=default`,
    show_log: false,
    is_track_single_page: false,
    use_client_time: true,
    heatmap: { clickmap: 'not_collect', scroll_notice_map: 'not_collect' },
    ...mode.config,
  };
  return `<!doctype html><html><head><meta charset="utf-8"><title>基金详情 ${mode.name}</title>
<script src="/sdk.js"></script></head><body><h1>Fund 000001</h1><script>
var sensors = window.sensorsDataAnalytic201505;
sensors.init(${JSON.stringify(config)});
sensors.quick('autoTrack');
sensors.track('ViewFundDetail', { fund_code: '000001', fund_name: '货币基金A' });
window.__anonymousId = sensors.store.getDistinctId();
sensors.login(${JSON.stringify(mode.login)});
sensors.track('BuyFund', { fund_code: '000001', amount: 1000 });
window.__done = true;
</script></body></html>`;
}

function startPageServer() {
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/sdk.js') {
      res.writeHead(200, { 'Content-Type': 'application/javascript' });
      return res.end(SDK_SOURCE);
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      return res.end();
    }
    const mode = MODES.find((m) => url.pathname === `/fund/${m.name}.html`);
    if (!mode) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    return res.end(pageHtml(mode));
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

before(async () => {
  server = await startWaymark();
  pages = await startPageServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  if (browser) await browser.close();
  if (pages) pages.close();
  if (server) await server.stop();
});

async function runPage(mode) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()} (${m.location()?.url ?? ''})`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`requestfailed: ${r.method()} ${r.url().slice(0, 120)} ${r.failure()?.errorText}`));
  const pageUrl = `http://127.0.0.1:${pages.address().port}/fund/${mode.name}.html?utm_source=compat`;
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.__done === true);
  const anonymousId = await page.evaluate(() => window.__anonymousId);
  return { context, page, problems, pageUrl, anonymousId };
}

for (const mode of MODES) {
  test(`sa-sdk-javascript send mode ${mode.name}: pageview, track, login read back`, { timeout: 120000 }, async (t) => {
    const run = await runPage(mode);
    t.after(() => run.context.close());
    assert.ok(run.anonymousId && run.anonymousId !== mode.login, `cookie id before login: ${run.anonymousId}`);

    const r = await waitForEvents(server, mode.login, 'login_id',
      (evs) => ['$pageview', 'ViewFundDetail', 'BuyFund'].every((n) => eventsNamed(evs, n).length > 0),
      `$pageview, ViewFundDetail and BuyFund for ${mode.login}`);
    const evs = r.body.events;
    assert.ok(newestFirst(evs), `events not newest first: ${evs.map((e) => `${e.event}@${e.time}`).join(', ')}`);

    const [pv] = eventsNamed(evs, '$pageview');
    assert.equal(pv.properties.$url, run.pageUrl);
    assert.equal(pv.properties.$url_path, `/fund/${mode.name}.html`);
    assert.equal(pv.properties.$title, `基金详情 ${mode.name}`);
    assert.equal(pv.distinct_id, run.anonymousId);
    assert.equal(pv.lib?.$lib, 'js');

    const [view] = eventsNamed(evs, 'ViewFundDetail');
    assert.equal(view.properties.fund_code, '000001');
    assert.equal(view.properties.fund_name, '货币基金A');
    const [buy] = eventsNamed(evs, 'BuyFund');
    assert.equal(buy.properties.amount, 1000);
    assert.equal(buy.distinct_id, mode.login);
    assert.ok(buy.time >= view.time && view.time >= pv.time, 'client times keep the call order');

    const byLogin = await waitForUser(server, mode.login, 'login_id', () => true, 'login user');
    const byCookie = await waitForUser(server, run.anonymousId, '$identity_cookie_id', () => true, 'cookie id user');
    const byDistinct = await waitForUser(server, run.anonymousId, 'distinct_id', () => true, 'anonymous distinct_id user');
    assert.equal(byCookie.body.user_id, byLogin.body.user_id, 'cookie id and login id must be one user');
    assert.equal(byDistinct.body.user_id, byLogin.body.user_id);
    const ids = byLogin.body.identities;
    assert.ok(ids.some((i) => i.key === '$identity_login_id' && i.value === mode.login), JSON.stringify(ids));
    assert.ok(ids.some((i) => i.key === '$identity_cookie_id' && i.value === run.anonymousId), JSON.stringify(ids));

    // The SDK's profile_set_once carries first-visit attribution.
    await waitForUser(server, mode.login, 'login_id', (u) => typeof u.profile?.$first_visit_time === 'string',
      'profile_set_once $first_visit_time in the profile');

    if (mode.name === 'batch') {
      // Records leave localStorage only after a successful (CORS-readable) reply.
      await waitFor('batch_send queue in localStorage drained (needs Access-Control-Allow-Origin)',
        () => run.page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('sawebjssdk-'))),
        (keys) => keys.length === 0);
    }
    assert.deepEqual(run.problems, [], 'the browser reported errors');
  });
}
