// The console in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core) against a real `waymark serve`: first load, sign-in, the
// journey list, the canvas (drag a node on, see the server's validation on
// it, save the draft and read it back from the API), the analytics charts
// against the API's numbers, the language switch. Screenshots go to
// build/console-e2e/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ADMIN_KEY, ROOT, loadExamples, sendEvents, startServer } from "./server.mjs";

const SHOTS = join(ROOT, process.env.BUILD || "build", "console-e2e");
mkdirSync(SHOTS, { recursive: true });
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

let srv, browser, page, published;

before(async () => {
  srv = await startServer();
  published = await loadExamples(srv);
  await sendEvents(srv, 40);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: "zh-CN" });
  page = await ctx.newPage();
  page.setDefaultTimeout(15000);
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

test("first load and sign-in", async () => {
  const t0 = Date.now();
  await page.goto(srv.base + "/");
  await page.waitForSelector('input[name="apiKey"]');
  const wall = Date.now() - t0;
  const nav = await page.evaluate(() => {
    const e = performance.getEntriesByType("navigation")[0];
    return { domContentLoaded: Math.round(e.domContentLoadedEventEnd), load: Math.round(e.loadEventEnd) };
  });
  console.log(`# first load: sign-in form shown after ${wall} ms (DOMContentLoaded ${nav.domContentLoaded} ms, load ${nav.load} ms)`);
  assert.ok(wall < 5000, `first load took ${wall} ms`);
  assert.equal(await page.textContent("h2"), "登录控制台");
  await shot("signin.zh-CN");

  // a wrong key shows the server's message, not a blank page
  await page.fill('input[name="apiKey"]', "wrong-key");
  await page.click('button[type="submit"]');
  const err = await page.waitForSelector(".signin [role=alert]");
  assert.match(await err.textContent(), /密钥无效/);

  await page.fill('input[name="apiKey"]', ADMIN_KEY);
  await page.click('button[type="submit"]');
  await page.waitForSelector('[data-testid="journey-list"]');
  assert.equal(new URL(page.url()).pathname, "/journeys");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("waymark.apiKey")), ADMIN_KEY);
});

test("the journey list shows the server's journeys", async () => {
  const { body } = await srv.api("GET", "/api/v1/journeys");
  assert.ok(published.length >= 5, `published ${published}`);
  const keys = await page.$$eval('[data-testid="journey-list"] tbody tr', (rows) => rows.map((r) => r.getAttribute("data-key")));
  assert.deepEqual(keys.sort(), body.journeys.map((j) => j.key).sort());
  const status = await page.textContent('tr[data-key="viewed_product_3x"] .badge');
  assert.equal(status, "已发布");
  // entered comes from the journey's report
  const rep = await srv.api("GET", "/api/v1/journeys/viewed_product_3x/report");
  assert.equal(await page.textContent('tr[data-key="viewed_product_3x"] [data-col="entered"]'), rep.body.entered.toLocaleString());
  await shot("journeys.zh-CN");
});

test("canvas: drag a node on, validation names it, save the draft", async () => {
  await page.click('tr[data-key="viewed_product_3x"] a');
  await page.waitForSelector(".react-flow__node");
  const before = await page.$$eval(".react-flow__node", (n) => n.length);
  assert.equal(before, 4, "three nodes and the entry");
  await page.waitForFunction(() => document.querySelector('[data-testid="validation"]').textContent.includes("校验通过"));

  // drag "wait for a time" from the palette onto the canvas
  await page.dragAndDrop('.palette-item[data-kind="wait_duration"]', '[data-testid="flow"]', { targetPosition: { x: 500, y: 420 } });
  await page.waitForSelector('.react-flow__node [data-node="wait_1"]');
  assert.equal(await page.$$eval(".react-flow__node", (n) => n.length), before + 1);

  // the new node has no next and nothing leads to it: the server says so, on the node
  await page.waitForSelector('[data-node="wait_1"].jnode-error');
  const errors = await page.textContent('[data-testid="error-list"]');
  assert.match(errors, /wait_1/);
  await shot("canvas-error.zh-CN");

  // the side panel edits the node's fields
  const duration = page.locator('[data-testid="side-panel"] [data-field="duration"] input');
  await duration.fill("2h");

  // undo / redo the duration edit
  await page.click('[data-testid="undo"]');
  assert.equal(await duration.inputValue(), "1d");
  await page.click('[data-testid="redo"]');
  assert.equal(await duration.inputValue(), "2h");

  await page.click('[data-testid="save-draft"]');
  await page.waitForSelector('[data-testid="notice"]');
  assert.match(await page.textContent('[data-testid="notice"]'), /草稿已保存/);
  const saved = await srv.api("GET", "/api/v1/journeys/viewed_product_3x");
  const node = saved.body.definition.nodes.find((n) => n.id === "wait_1");
  assert.ok(node, "the server has the new node: " + JSON.stringify(saved.body.definition.nodes.map((n) => n.id)));
  assert.equal(node.type, "wait");
  assert.equal(node.duration, "2h");
  assert.equal(typeof node.ui.x, "number");
  // publishing an invalid draft is refused and the errors stay on the node
  await page.click('[data-testid="publish"]');
  await page.waitForSelector(".canvas-page .state-error");
  const again = await srv.api("GET", "/api/v1/journeys/viewed_product_3x");
  assert.equal(again.body.version, saved.body.version, "not published");
  await shot("canvas.zh-CN");
});

// drags from a node's source handle to another node's target handle
async function connect(from, handle, to) {
  const src = await page.locator(`.react-flow__node[data-id="${from}"] .react-flow__handle.source[data-handleid="${handle}"]`).boundingBox();
  const dst = await page.locator(`.react-flow__node[data-id="${to}"] .react-flow__handle.target`).boundingBox();
  await page.mouse.move(src.x + src.width / 2, src.y + src.height / 2);
  await page.mouse.down();
  await page.mouse.move(dst.x + dst.width / 2, dst.y + dst.height / 2, { steps: 8 });
  await page.mouse.up();
}

test("canvas: connect the node in, publish, and see the entries on the canvas", async () => {
  // material -> wait_1 -> end: the errors go away
  await connect("material", "next", "wait_1");
  await connect("wait_1", "next", "end");
  await page.waitForFunction(() => document.querySelector('[data-testid="validation"]').textContent.includes("校验通过"));
  assert.equal(await page.$$eval(".jnode-error", (n) => n.length), 0);
  await page.click('[data-testid="publish"]');
  await page.waitForFunction(() => /已发布为版本/.test(document.querySelector('[data-testid="notice"]')?.textContent ?? ""));
  const j = await srv.api("GET", "/api/v1/journeys/viewed_product_3x");
  assert.equal(j.body.status, "published");
  assert.equal(j.body.version, 2);
  const byId = Object.fromEntries(j.body.definition.nodes.map((n) => [n.id, n]));
  assert.equal(byId.material.next, "wait_1");
  assert.equal(byId.wait_1.next, "end");

  // three views of one fund in a day: the customer enters the new version
  const now = Date.now();
  const recs = [0, 1, 2].map((i) => ({ type: "track", event: "ViewFundDetail", distinct_id: "e2e_viewer", time: now - 60000 + i * 1000, lib: { $lib: "js", $lib_version: "1.0.0", $lib_method: "code" }, properties: { $is_login_id: true, fund_code: "000009" } }));
  const r = await fetch(`${srv.base}/api/v1/events?project=default`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(recs) });
  assert.equal((await r.json()).accepted, 3);
  let rep;
  for (let i = 0; i < 100; i++) {
    rep = (await srv.api("GET", "/api/v1/journeys/viewed_product_3x/report")).body;
    if (rep.nodes.find((n) => n.id === "wait_1")?.entered >= 1) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const waitEntered = rep.nodes.find((n) => n.id === "wait_1").entered;
  assert.ok(waitEntered >= 1, JSON.stringify(rep));
  // reload the canvas: the report's counts are drawn on the nodes
  await page.reload();
  await page.waitForSelector('.react-flow__node[data-id="wait_1"] [data-testid="node-count"]');
  assert.equal(await page.textContent('.react-flow__node[data-id="wait_1"] [data-testid="node-count"]'), `进入 ${waitEntered}`);
  assert.equal(await page.textContent('.react-flow__node[data-id="$entry"] [data-testid="node-count"]'), `进入 ${rep.entered}`);
  await shot("canvas-report.zh-CN");
});

test("analytics: the funnel chart shows the API's numbers; events draw a chart", async () => {
  await page.click('nav a[href="/analytics"]');
  await page.click('.tabs [data-kind="funnel"]');
  await page.click('[data-testid="run-query"]');
  await page.waitForSelector('[data-testid="chart-funnel"] canvas');
  const cells = await page.$$eval('[data-testid="funnel-table"] [data-col="users"]', (c) => c.map((x) => Number(x.textContent)));
  const request = JSON.parse(await page.inputValue('[data-testid="query-text"]'));
  request.from = await page.inputValue('input[type="date"] >> nth=0');
  request.to = await page.inputValue('input[type="date"] >> nth=1');
  const answer = await srv.api("POST", "/api/v1/query/funnel", request);
  assert.equal(answer.status, 200, answer.text);
  assert.deepEqual(cells, answer.body.steps.map((s) => s.users));
  // the 40 customers of sendEvents and the viewer of the canvas test
  assert.deepEqual(cells, [41, 20, 10]);
  await shot("analytics-funnel.zh-CN");

  await page.click('.tabs [data-kind="events"]');
  await page.click('[data-testid="run-query"]');
  await page.waitForSelector('[data-testid="chart-events"] canvas');
  await page.click('.tabs [data-kind="paths"]');
  await page.click('[data-testid="run-query"]');
  await page.waitForSelector('[data-testid="chart-paths"] canvas');

  // a bad query shows the server's message
  await page.click('.tabs [data-kind="retention"]');
  await page.fill('[data-testid="query-text"]', '{"start":{"event":"$AppStart"},"return":{"event":"$AppStart"},"period":"fortnight"}');
  await page.click('[data-testid="run-query"]');
  const err = await page.waitForSelector("main [role=alert]");
  assert.match(await err.textContent(), /period/);
});

test("customer 360 and the advisor desk: the viewer's journey and lead, claimed and completed", async () => {
  await page.goto(srv.base + "/customers");
  await page.fill('[data-testid="customer-id"]', "e2e_viewer");
  await page.click('form.inline-form button[type="submit"]');
  await page.waitForSelector('[data-testid="customer-360"]');
  const text = await page.textContent('[data-testid="customer-360"]');
  assert.match(text, /viewed_product_3x/, "the journey the customer is in");
  assert.match(text, /ViewFundDetail/, "the timeline");
  await shot("customer360.zh-CN");

  const leads = (await srv.api("GET", "/api/v1/leads?queue=wealth")).body.leads.filter((l) => l.status === "open");
  assert.equal(leads.length, 1, "the journey made one lead");
  await page.click('nav a[href="/advisor"]');
  await page.waitForSelector('[data-testid="lead-list"]');
  await page.click('[data-testid="lead-list"] button:has-text("认领")');
  await page.waitForSelector('[data-testid="lead-list"] button:has-text("完成")');
  assert.equal((await srv.api("GET", `/api/v1/leads/${leads[0].id}`)).body.status, "claimed");
  await page.selectOption('[data-testid="lead-list"] select', "interested");
  await page.click('[data-testid="lead-list"] button:has-text("完成")');
  await page.waitForFunction(() => !document.querySelector('[data-testid="lead-list"] button'));
  const done = (await srv.api("GET", `/api/v1/leads/${leads[0].id}`)).body;
  assert.equal(done.status, "completed");
  assert.equal(done.assignee, "advisor");
  await shot("advisor.zh-CN");
});

test("a canvas of 200 nodes: frame time while panning", async () => {
  // a split into 10 rows of waits (9 of 20, one of 18), each row a chain to the exit
  const nodes = [{ id: "ab", type: "split", arms: Array.from({ length: 10 }, (_, r) => ({ name: `r${r}`, percent: 10, next: `w${r}_0` })) }];
  for (let r = 0; r < 10; r++)
    for (let c = 0, n = r < 9 ? 20 : 18; c < n; c++) nodes.push({ id: `w${r}_${c}`, type: "wait", duration: "1d", next: c < n - 1 ? `w${r}_${c + 1}` : "end", ui: { x: c * 240, y: r * 130 } });
  nodes.push({ id: "end", type: "exit", ui: { x: 20 * 240, y: 600 } });
  nodes[0].ui = { x: -240, y: 600 };
  assert.equal(nodes.length, 200);
  const saved = await srv.api("POST", "/api/v1/journeys", { key: "big_canvas", name: "big", entry: { api: true }, nodes, ui: { entry: { x: -480, y: 600 } } });
  assert.equal(saved.body.valid, true, JSON.stringify(saved.body.errors?.slice(0, 3)));
  await page.goto(srv.base + "/journeys/big_canvas");
  await page.waitForSelector(".react-flow__node");
  await page.waitForFunction(() => document.querySelector('[data-testid="validation"]').textContent.includes("校验通过"));
  const box = await page.locator('[data-testid="flow"]').boundingBox();
  await page.evaluate(() => {
    window.__frames = [];
    let last = performance.now();
    const tick = (t) => {
      window.__frames.push(t - last);
      last = t;
      if (window.__frames.length < 400) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  for (let i = 0; i < 60; i++) await page.mouse.move(box.x + box.width / 2 - i * 8, box.y + box.height / 2 - i * 3);
  await page.mouse.up();
  await page.mouse.wheel(0, -400);
  const frames = await page.evaluate(() => window.__frames.slice(1));
  frames.sort((a, b) => a - b);
  const q = (p) => frames[Math.floor(p * (frames.length - 1))].toFixed(1);
  console.log(`# 200-node canvas while panning: ${frames.length} frames, median ${q(0.5)} ms, p95 ${q(0.95)} ms, max ${q(1)} ms`);
  assert.ok(frames.length > 10);
  await shot("canvas-200.zh-CN");
});

test("language switch to English and back", async () => {
  await page.click('nav a[href="/advisor"]');
  await page.waitForSelector("main h1");
  await page.selectOption('[data-testid="lang"]', "en");
  assert.equal(await page.textContent('nav a[href="/journeys"]'), "Journeys");
  assert.equal(await page.textContent("main h1"), "Advisor desk");
  await page.click('nav a[href="/journeys"]');
  await page.waitForSelector('[data-testid="journey-list"]');
  assert.equal(await page.textContent('tr[data-key="fund_sip_companion"] .badge'), "Published");
  await shot("journeys.en");
  await page.click('nav a[href="/cockpit"]');
  await page.waitForSelector('[data-testid="figures"]');
  await shot("cockpit.en");
  await page.selectOption('[data-testid="lang"]', "zh-CN");
  assert.equal(await page.textContent('nav a[href="/journeys"]'), "旅程");
  await shot("cockpit.zh-CN");
});
