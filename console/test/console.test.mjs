// Browser tests of the web console: Debian's chromium driven by
// puppeteer-core against a real nubo server that the calling test
// (tests/console_browser_test.cc) started and filled.
//
//   node console.test.mjs SCENARIO
// Environment: CONTROL_URL, DATA_URL, ADMIN_TOKEN, VIEWER_TOKEN, APP, D1, D2
// (D1 in production, D2 READY beside it), BUSY_APP (an app with traffic),
// REBUILD_APP and its deployment REBUILD_D (to redeploy),
// SCREENSHOTS (a folder, optional), CHROMIUM (default /usr/bin/chromium).
// Exits 0 when the scenario held; otherwise prints what did not and exits 1.
import puppeteer from 'puppeteer-core';
import fs from 'node:fs';
import path from 'node:path';

const env = process.env;
const scenario = process.argv[2];
const deadline = 15000;

function fail(msg) {
  throw new Error(msg);
}

async function production() {
  const r = await fetch(`${env.DATA_URL}/${env.APP}/`);
  return r.headers.get('x-nubo-deployment');
}

async function until(what, check, ms = deadline) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`${what}: not within ${ms} ms (last: ${last})`);
}

async function shot(page, name) {
  if (!env.SCREENSHOTS) return;
  fs.mkdirSync(env.SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(env.SCREENSHOTS, name + '.png') });
}

async function signIn(page, token) {
  await page.goto(env.CONTROL_URL + '/', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#token', { timeout: deadline });
  await page.type('#token', token);
  await page.click('form button[type=submit]');
}

async function text(page, selector) {
  return page.$eval(selector, (e) => e.textContent);
}

const scenarios = {
  async 'signs-in-and-lists-apps'(page) {
    await page.goto(env.CONTROL_URL + '/');
    await page.waitForSelector('#token');
    await shot(page, 'sign-in');
    await signIn(page, env.ADMIN_TOKEN);
    await page.waitForSelector(`tr[data-app="${env.APP}"]`, { timeout: deadline });
    const cookies = await page.cookies();
    const session = cookies.find((c) => c.name === 'nubo_console');
    if (!session || !session.httpOnly || session.sameSite !== 'Strict') fail('session cookie: ' + JSON.stringify(session));
    const scripts = await page.evaluate(() => document.cookie);
    if (scripts.includes('nubo_console')) fail('the page script can read the session cookie');
    await until('the busy app shows its requests',
      async () => (await page.$eval(`tr[data-app="${env.BUSY_APP}"] td.num`, (e) => Number(e.textContent))) > 0 ||
        (await page.reload(), false));
    await shot(page, 'apps');
    await page.click(`tr[data-app="${env.APP}"] a`);
    await page.waitForSelector(`tr[data-deployment="${env.D1}"]`, { timeout: deadline });
    await shot(page, 'app-deployments');
  },

  async 'promotes-and-rolls-back'(page) {
    await signIn(page, env.ADMIN_TOKEN);
    await page.waitForSelector(`tr[data-app="${env.APP}"]`);
    await page.goto(`${env.CONTROL_URL}/#/apps/${env.APP}/deployments`);
    await page.waitForSelector(`tr[data-deployment="${env.D2}"] button[name=promote]`, { timeout: deadline });
    if ((await production()) !== env.D1) fail('production is not D1 to begin with');
    await page.click(`tr[data-deployment="${env.D2}"] button[name=promote]`);
    await until('production serves D2 after Promote', async () => (await production()) === env.D2);
    await until('the table shows D2 in production', async () =>
      (await text(page, `tr[data-deployment="${env.D2}"]`)).includes('production'));
    await page.click('button[name=rollback]');
    await until('production serves D1 after Roll back', async () => (await production()) === env.D1);
  },

  async 'streams-a-build-log'(page) {
    await signIn(page, env.ADMIN_TOKEN);
    await page.waitForSelector(`tr[data-app="${env.REBUILD_APP}"]`);
    await page.goto(`${env.CONTROL_URL}/#/apps/${env.REBUILD_APP}/deployments`);
    await page.waitForSelector(`tr[data-deployment="${env.REBUILD_D}"] button[name=redeploy]`, { timeout: deadline });
    // A redeploy starts a new deployment: its log streams into the panel until READY.
    await page.click(`tr[data-deployment="${env.REBUILD_D}"] button[name=redeploy]`);
    await page.waitForSelector('.build-log', { timeout: deadline });
    await until('the build log streams lines', async () => (await text(page, '.build-log pre')).length > 0);
    await until('the build ends READY', async () =>
      (await page.$eval('.build-log', (e) => e.dataset.state)) === 'READY', 60000);
    await shot(page, 'build-log');
  },

  async 'filters-logs'(page) {
    await signIn(page, env.ADMIN_TOKEN);
    await page.waitForSelector(`tr[data-app="${env.BUSY_APP}"]`);
    await page.goto(`${env.CONTROL_URL}/#/apps/${env.BUSY_APP}/logs`);
    await page.waitForSelector('table.logs tr', { timeout: deadline });
    await page.select('select[name=kind]', 'requests');
    await page.type('input[name=status]', '5xx');
    await page.click('.filters button[type=submit]');
    await until('only 5xx requests are listed', async () => {
      const rows = await page.$$eval('table.logs td.text', (tds) => tds.map((t) => t.textContent));
      return rows.length > 0 && rows.every((t) => / 5\d\d /.test(t)) ? rows.length : false;
    });
    await page.$eval('input[name=status]', (e) => { e.value = ''; });
    await page.evaluate(() => {
      const i = document.querySelector('input[name=status]');
      i.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await page.select('select[name=kind]', 'output');
    await page.type('input[name=grep]', 'NEEDLE');
    await page.click('.filters button[type=submit]');
    await until('only lines with the text are listed', async () => {
      const rows = await page.$$eval('table.logs td.text', (tds) => tds.map((t) => t.textContent));
      return rows.length > 0 && rows.every((t) => t.toLowerCase().includes('needle')) ? rows.length : false;
    });
    // Live: a line written now appears without searching again.
    const before = await page.$$eval('table.logs td.text', (tds) => tds.length);
    await page.click('input[name=follow]');
    await new Promise((r) => setTimeout(r, 300));  // (the stream opens from the page's cursor: nothing is missed either way)
    await fetch(`${env.DATA_URL}/${env.BUSY_APP}/needle`);
    await until('the new line arrives live', async () =>
      (await page.$$eval('table.logs td.text', (tds) => tds.length)) > before);
    await shot(page, 'logs');
  },

  async 'charts-traffic'(page) {
    await signIn(page, env.ADMIN_TOKEN);
    await page.waitForSelector(`tr[data-app="${env.BUSY_APP}"]`);
    await page.goto(`${env.CONTROL_URL}/#/apps/${env.BUSY_APP}/traffic`);
    await until('the charts have the requests', async () => {
      const n = await page.$eval('.charts', (e) => Number(e.dataset.requests)).catch(() => 0);
      if (n > 0) return n;
      await page.reload();
      return false;
    }, 30000);
    const canvases = await page.$$eval('.chart canvas', (cs) => cs.length);
    if (canvases < 3) fail('expected 3 charts drawn, got ' + canvases);
    await shot(page, 'traffic');
  },

  async 'viewer-cannot-change'(page) {
    const before = await production();
    await signIn(page, env.VIEWER_TOKEN);
    await page.waitForSelector(`tr[data-app="${env.APP}"]`, { timeout: deadline });
    await page.goto(`${env.CONTROL_URL}/#/apps/${env.APP}/deployments`);
    await page.waitForSelector(`tr[data-deployment="${env.D2}"]`, { timeout: deadline });
    for (const name of ['promote', 'rollback', 'redeploy']) {
      if (await page.$(`button[name=${name}]`)) fail(`a viewer sees the ${name} button`);
    }
    // Even a request made by hand with the session is refused by the server.
    const status = await page.evaluate(async (app, d) => {
      const r = await fetch(`/v1/apps/${app}/promote`, {
        method: 'POST', headers: { 'X-Nubo-Console': '1', 'Content-Type': 'application/json' },
        body: JSON.stringify({ deployment: d }),
      });
      return r.status;
    }, env.APP, env.D2);
    if (status !== 403) fail('a viewer session promoting by hand got ' + status);
    if ((await production()) !== before) fail('production moved');
  },

  async 'shows-a-bad-token'(page) {
    await signIn(page, 'not-a-real-token');
    await page.waitForSelector('.signin .error', { timeout: deadline });
    const msg = await text(page, '.signin .error');
    if (!msg.includes('invalid token')) fail('the error shown is not the API\'s: ' + msg);
  },

  async 'phone-width'(page) {
    await page.setViewport({ width: 375, height: 740 });
    await signIn(page, env.ADMIN_TOKEN);
    await page.waitForSelector(`tr[data-app="${env.APP}"]`, { timeout: deadline });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) fail(`the page is ${overflow}px wider than a phone`);
    await shot(page, 'apps-phone');
  },

  async 'many-apps-load-fast'(page) {
    // (The server holds APPS_COUNT apps; the figure is printed, the bench
    // script and README report it.)
    await signIn(page, env.ADMIN_TOKEN);
    await page.waitForSelector('table.apps tbody tr', { timeout: deadline });
    const t0 = Date.now();
    await page.goto(env.CONTROL_URL + '/#/', { waitUntil: 'domcontentloaded' });
    await page.reload({ waitUntil: 'domcontentloaded' });
    const want = Number(env.APPS_COUNT || 1);
    await page.waitForFunction((n) => document.querySelectorAll('table.apps tbody tr').length >= n, { timeout: deadline }, want);
    console.log(`apps page with ${want} apps interactive in ${Date.now() - t0} ms`);
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error('unknown scenario ' + scenario + '; one of: ' + Object.keys(scenarios).join(', '));
  process.exit(2);
}
const browser = await puppeteer.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [...(process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : []), '--disable-gpu', '--disable-dev-shm-usage'],
});
let code = 0;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await run(page);
  if (errors.length) fail('the page threw: ' + errors.join('; '));
  console.log('ok ' + scenario);
} catch (e) {
  console.error(`FAILED ${scenario}: ${e.message}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
