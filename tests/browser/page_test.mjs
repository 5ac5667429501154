// Drives logwisp's browser page in headless Chromium and checks what a person would see
// (and what goes over the wire). See README.md for how to run it against the fake server
// or the real binary.
//
//   node page_test.mjs --base http://127.0.0.1:PORT/[sub/path/] [--ctl http://127.0.0.1:PORT]
//                      [--stream-path /stream] [--status-path /status] [--log-dir DIR]
//                      [--proxy] [--websocket] [--only NAME[,NAME…]] [--shots DIR]
//                      [--chromium PATH] [--ca PEM]
//
// Entries are produced through the fake server's control endpoint (--ctl, default: the
// origin of --base) or, with --log-dir, appended to DIR/<source> for a real logwisp that
// tails DIR/*.log. Tests that need to cut connections (kick) use the fake's /_ctl/kick, or
// with --proxy a TCP relay this script puts in front of --base (a kick drops every
// connection through it, as a network would); without either they are skipped. With a
// real server the last id is read from its status (--status-path, relative to the page
// like the stream). --websocket adds a test of WebSocket from the browser (logwisp only).
// --ca makes the certificate in PEM a trusted root for Chromium, the way a person adds a
// CA on Linux (an NSS database in a fresh $HOME, with certutil); run node with
// NODE_EXTRA_CA_CERTS=PEM so this script's own requests trust it too.

import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf('--' + name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const base = opt('base');
if (!base) {
  console.error('usage: node page_test.mjs --base URL [--ctl URL] [--log-dir DIR] [--only NAME] [--shots DIR]');
  process.exit(2);
}
const logDir = opt('log-dir');
const ctl = logDir ? opt('ctl') : opt('ctl', new URL(base).origin);
const flag = name => argv.includes('--' + name);
const only = opt('only') ? opt('only').split(',') : null;
const shots = opt('shots');
const executablePath = opt('chromium', '/usr/bin/chromium');
// The stream path as configured (the page finds it at "." + this, relative to itself).
const streamPath = opt('stream-path', '/stream');
const statusPath = opt('status-path', '/status');

// A TCP relay in front of the server (--proxy): pages opened through it lose every
// connection on kick() and reconnect through it again.
async function relay(target) {
  const up = new URL(target);
  const sockets = new Set();
  const server = net.createServer(client => {
    const upstream = net.connect(Number(up.port || 80), up.hostname);
    const end = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    for (const s of [client, upstream]) { sockets.add(s); s.on('error', end); s.on('close', end); }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise(res => server.listen(0, '127.0.0.1', res));
  const url = new URL(target);
  url.host = '127.0.0.1:' + server.address().port;
  return { url: url.href, kick: () => { for (const s of sockets) s.destroy(); sockets.clear(); }, close: () => server.close() };
}
const proxy = flag('proxy') ? await relay(base) : null;

let seq = 0;
// Each test's lines carry a run-unique tag so counts never mix across tests.
const tag = () => 't' + Date.now().toString(36) + (seq++);

async function emit(lines, source = 'app.log') {
  if (logDir) {
    fs.appendFileSync(path.join(logDir, source), lines.map(l => l + '\n').join(''));
    return;
  }
  const r = await fetch(`${ctl}/_ctl/emit?source=${encodeURIComponent(source)}`, { method: 'POST', body: lines.join('\n') });
  if (!r.ok) throw new Error('emit failed: ' + r.status);
}

async function kick() {
  if (proxy) return proxy.kick();
  const r = await fetch(`${ctl}/_ctl/kick`, { method: 'POST' });
  if (!r.ok) throw new Error('kick failed');
}

// The id of the newest entry: the fake's /_ctl/last, or the server's status
// (delivery.next_sequence - 1), reached relative to the page like the stream.
async function lastEntryId() {
  if (ctl) return (await (await fetch(`${ctl}/_ctl/last`)).json()).id;
  const status = await (await fetch(new URL('.' + statusPath, pageURL()))).json();
  return status.delivery.next_sequence - 1;
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function eq(a, b, msg) {
  const ja = JSON.stringify(a), jb = JSON.stringify(b);
  if (ja !== jb) throw new Error(`${msg}\n   got:  ${ja.slice(0, 600)}\n   want: ${jb.slice(0, 600)}`);
}

// Chromium reads user-added roots from $HOME/.pki/nssdb (with its own root store for
// everything else): a fresh home holding only the test CA.
function homeTrusting(caFile) {
  const home = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR || '/tmp'), 'logwisp-ca-home-'));
  const db = 'sql:' + path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(path.join(home, '.pki', 'nssdb'), { recursive: true });
  for (const args of [['-N', '-d', db, '--empty-password'], ['-A', '-d', db, '-n', 'logwisp test CA', '-t', 'C,,', '-i', caFile]]) {
    const r = spawnSync('certutil', args, { encoding: 'utf8' });
    if (r.error || r.status !== 0) {
      console.error(`certutil ${args.join(' ')} failed (Debian: apt-get install -y libnss3-tools): ${r.error || r.stderr}`);
      process.exit(2);
    }
  }
  return home;
}
const caFile = opt('ca');
const caHome = caFile ? homeTrusting(caFile) : null;

const browser = await chromium.launch({
  executablePath,
  headless: true,
  ...(caHome ? { env: { ...process.env, HOME: caHome } } : {}),
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--enable-precise-memory-info'],
});

const cspViolations = [];

// One fresh page per test, with its stream requests recorded as the browser sent them,
// and with { wire: true } every event as it arrived on the wire (CDP).
async function open(url = base, init, { wire: recordWire = false } = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const wire = [];
  if (recordWire) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    cdp.on('Network.eventSourceMessageReceived', e => wire.push({ event: e.eventName, id: e.eventId, data: e.data }));
  }
  const requests = [];
  page.on('request', r => {
    if (r.resourceType() === 'eventsource' || new URL(r.url()).pathname.endsWith(streamPath)) {
      requests.push({ url: r.url(), lastEventId: r.headers()['last-event-id'] });
    }
  });
  page.on('console', m => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
  if (init) await page.addInitScript(init);
  await page.goto(url);
  await live(page);
  return { page, context, requests, wire };
}

// The messages of the entries received since the last `connected` event.
const wireSince = wire => {
  let from = 0;
  wire.forEach((e, i) => { if (e.event === 'connected') from = i + 1; });
  return wire.slice(from).filter(e => e.event === 'message').map(e => JSON.parse(e.data).message);
};

async function waitWire(wire, n, timeout = 10000) {
  const start = Date.now();
  while (wireSince(wire).length < n) {
    if (Date.now() - start > timeout) throw new Error('wire: ' + JSON.stringify(wireSince(wire)));
    await new Promise(res => setTimeout(res, 20));
  }
  return wireSince(wire);
}

const live = page => page.waitForFunction(() => document.getElementById('status').textContent === 'live', null, { timeout: 10000 });

const rows = page => page.$$eval('#log > .r', els => els.map(e => ({
  level: e.querySelector('.l').textContent,
  cls: e.className,
  source: e.querySelector('.s') ? e.querySelector('.s').textContent : '',
  msg: e.querySelector('.m').textContent,
  fields: e.querySelector('.f') ? e.querySelector('.f').textContent : '',
  marks: [...e.querySelectorAll('mark')].map(m => m.textContent),
})));

const notes = page => page.$$eval('#log > .note', els => els.map(e => e.textContent));

async function waitRows(page, n, timeout = 10000) {
  await page.waitForFunction(n => document.querySelectorAll('#log > .r').length >= n, n, { timeout });
  return rows(page);
}

async function waitText(page, text, timeout = 10000) {
  await page.waitForFunction(t => [...document.querySelectorAll('#log .m')].some(m => m.textContent === t), text, { timeout });
}

async function waitRequest(requests, pred, what, from = 0, timeout = 10000) {
  const start = Date.now();
  while (Date.now() - start < timeout) {
    const r = requests.slice(from).find(pred);
    if (r) return r;
    await new Promise(res => setTimeout(res, 50));
  }
  throw new Error('no stream request ' + what + '; seen: ' + JSON.stringify(requests.map(r => r.url)));
}

const query = r => new URL(r.url).searchParams;
const pageURL = () => {
  const u = new URL(base);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  u.search = '';
  return u;
};
const pageDir = () => pageURL().pathname;

const tests = [];
const test = (name, fn, { needsKick = false, needsWs = false } = {}) => tests.push({ name, fn, needsKick, needsWs });

test('page is one self-contained response of at most 50 KB', async () => {
  const r = await fetch(base);
  const body = await r.text();
  const bytes = Buffer.byteLength(body);
  console.log(`      page: ${bytes} bytes, content-type ${r.headers.get('content-type')}`);
  assert(bytes <= 50 * 1024, 'page is ' + bytes + ' bytes');
  assert(!/\b(src|href)\s*=\s*["']?(https?:)?\/\//i.test(body), 'page references an external asset');
  const css = (body.match(/<style>[\s\S]*?<\/style>/g) || []).join('');
  assert(!/@import|url\(/i.test(css), 'page CSS loads something');
});

test('live entries appear in order with their levels', async () => {
  const { page, context } = await open();
  const t = tag();
  await emit([`[ERROR] ${t} disk full`, `[WARN] ${t} disk 90%`, `[INFO] ${t} started`, `${t} plain line`,
    JSON.stringify({ level: 'fatal', message: `${t} json`, user: 'u1', n: 3 })]);
  const got = await waitRows(page, 5);
  eq(got.map(r => r.msg), [`[ERROR] ${t} disk full`, `[WARN] ${t} disk 90%`, `[INFO] ${t} started`, `${t} plain line`, `${t} json`], 'messages');
  eq(got.map(r => r.level), ['ERROR', 'WARN', 'INFO', '·', 'fatal'], 'levels');
  eq(got.map(r => r.cls), ['r error', 'r warn', 'r info', 'r', 'r error'], 'level classes');
  eq(got[4].fields, 'user=u1 n=3', 'fields');
  eq(got[0].source, 'app.log', 'source');
  // An unknown level gets its own toggle.
  const toggles = await page.$$eval('#levels button', bs => bs.map(b => b.textContent));
  assert(toggles.includes('FATAL'), 'no FATAL toggle: ' + toggles);
  await context.close();
});

test('entry text is shown as text, never run as markup', async () => {
  const init = () => { window.__xss = 0; };
  for (const filter of ['', 'script|img|svg']) {
    const { page, context } = await open(base + (filter ? '?filter=' + encodeURIComponent('(?i)' + filter) : ''), init);
    const t = tag();
    const evil = [
      `${t} <script>window.__xss=1</script>`,
      `${t} <img src=x onerror="window.__xss=2">`,
      JSON.stringify({ level: '<b onmouseover=window.__xss=5>ERROR</b>', message: `${t} <svg onload="window.__xss=3"></svg>`, k: '<img src=x onerror=window.__xss=6>' }),
    ];
    await emit(evil.slice(0, 2));
    await emit([evil[2]], '<img src=x onerror=window.__xss=4>.log');
    const got = await waitRows(page, 3);
    await page.waitForTimeout(300);
    eq(got.map(r => r.msg), [evil[0], evil[1], `${t} <svg onload="window.__xss=3"></svg>`], 'shown verbatim');
    eq(got[2].source, '<img src=x onerror=window.__xss=4>.log', 'source verbatim');
    eq(got[2].level, '<b onmouseover=window.__xss=5>ERROR</b>', 'level verbatim');
    const xss = await page.evaluate(() => window.__xss);
    eq(xss, 0, 'script ran');
    const elements = await page.$$eval('#log script, #log img, #log svg, #log b', e => e.length);
    eq(elements, 0, 'markup elements in the log');
    if (filter) assert(got[0].marks.join() === 'script,script', 'marks: ' + got[0].marks);
    await context.close();
  }
});

test('filter box and level toggles: on the wire, in the page URL, kept by a reload', async () => {
  const { page, context, requests, wire } = await open(base, undefined, { wire: true });
  const t = tag();
  await page.fill('#filter', 'timeout');
  await page.press('#filter', 'Enter');
  await waitRequest(requests, r => query(r).get('filter') === '(?i)timeout', 'with filter=(?i)timeout');
  await live(page);
  assert(new URL(page.url()).searchParams.get('filter') === '(?i)timeout', 'page URL: ' + page.url());
  await emit([`[ERROR] ${t} connection TIMEOUT`, `[INFO] ${t} ok`, `[WARN] ${t} read timeout`, `[DEBUG] ${t} timeout debug`]);
  let got = await waitRows(page, 3);
  eq(got.map(r => r.msg), [`[ERROR] ${t} connection TIMEOUT`, `[WARN] ${t} read timeout`, `[DEBUG] ${t} timeout debug`], 'filtered by the server');
  eq(got.map(r => r.marks), [['TIMEOUT'], ['timeout'], ['timeout']], 'highlight');
  // What the server sent: nothing the filter refused was on the wire.
  eq(await waitWire(wire, 3), got.map(r => r.msg), 'on the wire');

  await page.click('#levels button:text-is("DEBUG")');
  await waitRequest(requests, r => query(r).get('levels') === 'ERROR,WARN,INFO,TRACE,none', 'with levels without DEBUG');
  await live(page);
  eq(new URL(page.url()).searchParams.get('levels'), 'ERROR,WARN,INFO,TRACE,none', 'levels in the page URL');
  await page.fill('#exclude', 'ignored');
  await page.fill('#source', 'app*.log');
  await page.press('#source', 'Enter');
  const want = 'levels=ERROR%2CWARN%2CINFO%2CTRACE%2Cnone&filter=%28%3Fi%29timeout&exclude=%28%3Fi%29ignored&source=app*.log';
  await waitRequest(requests, r => new URL(r.url).search === '?' + want, 'with every filter');
  await live(page);
  eq(new URL(page.url()).search, '?' + want, 'page URL');

  // A reload restores the controls from the URL and asks for the same stream.
  const before = requests.length;
  await page.reload();
  await live(page);
  eq(await page.inputValue('#filter'), 'timeout', 'filter box after reload');
  eq(await page.inputValue('#exclude'), 'ignored', 'exclude box after reload');
  eq(await page.inputValue('#source'), 'app*.log', 'source box after reload');
  eq(await page.isChecked('#icase'), true, 'ignore case after reload');
  eq(await page.getAttribute('#levels button:text-is("DEBUG")', 'aria-pressed'), 'false', 'DEBUG toggle after reload');
  eq(new URL(requests[before].url).search, '?' + want, 'stream URL after reload');
  await emit([`[DEBUG] ${t} timeout 2`, `[ERROR] ${t} timeout ignored`, `[ERROR] ${t} timeout kept`, `[ERROR] ${t} timeout other file`]);
  await emit([`[ERROR] ${t} timeout db`], 'db.log');
  await waitText(page, `[ERROR] ${t} timeout other file`);
  await page.waitForTimeout(300);
  got = await rows(page);
  eq(got.map(r => r.msg), [`[ERROR] ${t} timeout kept`, `[ERROR] ${t} timeout other file`], 'after reload');
  eq(wireSince(wire), got.map(r => r.msg), 'on the wire after reload');
  await context.close();
});

test('a refused filter is shown naming the parameter, and fixing it reconnects', async () => {
  const { page, context } = await open();
  await page.fill('#filter', 'a(');
  await page.press('#filter', 'Enter');
  await page.waitForFunction(() => document.getElementById('status').className === 'bad', null, { timeout: 10000 });
  const text = await page.textContent('#status');
  assert(text.includes('`filter`'), 'status: ' + text);
  eq(await page.getAttribute('#filter', 'aria-invalid'), 'true', 'filter marked invalid');
  await page.fill('#filter', 'a');
  await page.press('#filter', 'Enter');
  await live(page);
  eq(await page.getAttribute('#filter', 'aria-invalid'), 'false', 'filter no longer invalid');
  await context.close();
});

test('pause counts new entries; resume shows every one in order', async () => {
  const { page, context } = await open();
  const t = tag();
  await emit([0, 1, 2].map(i => `${t} p-${i}`));
  await waitRows(page, 3);
  await page.click('#pause');
  eq(await page.getAttribute('#pause', 'aria-pressed'), 'true', 'pressed');
  const lines = [];
  for (let i = 3; i < 53; i++) lines.push(`${t} p-${i}`);
  await emit(lines);
  await page.waitForFunction(() => document.getElementById('pause').textContent === 'Resume (50 new)', null, { timeout: 10000 });
  eq((await rows(page)).length, 3, 'nothing drawn while paused');
  await page.click('#pause');
  const got = await waitRows(page, 53);
  eq(got.map(r => r.msg), Array.from({ length: 53 }, (_, i) => `${t} p-${i}`), 'every entry once, in order');
  eq(await page.textContent('#pause'), 'Pause', 'label');

  // More than the row cap while paused: the newest rows, and a note for the rest.
  await page.click('#pause');
  const many = Array.from({ length: 1500 }, (_, i) => `${t} q-${i}`);
  await emit(many);
  await page.waitForFunction(() => document.getElementById('pause').textContent === 'Resume (1500 new)', null, { timeout: 10000 });
  await page.click('#pause');
  await waitText(page, `${t} q-1499`);
  const after = await rows(page);
  eq(after.length, 999, 'rows after resume');
  eq(after[0].msg, `${t} q-501`, 'first row after resume');
  eq(await notes(page), ['501 entries not shown: more than 1000 arrived while paused'], 'note');
  eq(await page.$eval('#log', l => l.childElementCount), 1000, 'children');
  await page.click('#pause');
  await emit([`${t} after`]);
  await page.waitForFunction(() => document.getElementById('pause').textContent === 'Resume (1 new)', null, { timeout: 10000 });
  if (shots) await page.screenshot({ path: path.join(shots, 'logwisp-page-paused.png') });
  await context.close();
});

test('a dropped connection resumes after the last entry seen, even while paused', async () => {
  const { page, context, requests } = await open(proxy ? proxy.url : base);
  const t = tag();
  await emit([0, 1, 2, 3, 4].map(i => `${t} r-${i}`));
  await waitRows(page, 5);
  const lastId = await lastEntryId();
  const n = requests.length;
  await kick();
  await emit(Array.from({ length: 20 }, (_, i) => `${t} r-${i + 5}`));
  const again = await waitRequest(requests, r => query(r).has('last_event_id'), 'with last_event_id', n);
  eq(query(again).get('last_event_id'), String(lastId), 'resume position');
  const got = await waitRows(page, 25);
  eq(got.map(r => r.msg), Array.from({ length: 25 }, (_, i) => `${t} r-${i}`), 'nothing lost, nothing repeated');
  console.log(`      reconnected with ${new URL(again.url).search}`);

  await page.click('#pause');
  const m = requests.length;
  await kick();
  await emit(Array.from({ length: 10 }, (_, i) => `${t} r-${i + 25}`));
  await waitRequest(requests, r => query(r).has('last_event_id'), 'while paused', m);
  await page.waitForFunction(() => document.getElementById('pause').textContent === 'Resume (10 new)', null, { timeout: 10000 });
  await page.click('#pause');
  const all = await waitRows(page, 35);
  eq(all.map(r => r.msg), Array.from({ length: 35 }, (_, i) => `${t} r-${i}`), 'after a drop while paused');
  await context.close();
}, { needsKick: true });

test('the stream URL is relative to the page (reverse proxy sub-path)', async () => {
  const dir = pageDir();
  const variants = [base];
  if (dir !== '/') variants.push(new URL(dir.replace(/\/$/, ''), base).href);
  for (const url of variants) {
    const { context, requests } = await open(url);
    const p = new URL(requests[0].url).pathname;
    eq(p, dir + streamPath.slice(1), 'stream path for page ' + url);
    console.log(`      page ${new URL(url).pathname} -> stream ${p}`);
    await context.close();
  }
});

test('row cap and memory after 100 000 entries', async () => {
  const { page, context } = await open();
  const cdp = await context.newCDPSession(page);
  const heap = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    return (await cdp.send('Runtime.getHeapUsage')).usedSize;
  };
  const counts = async () => ({
    ...(await page.evaluate(() => ({ elements: document.getElementsByTagName('*').length, rows: document.getElementById('log').childElementCount }))),
    nodes: (await cdp.send('Memory.getDOMCounters')).nodes,
  });
  const t = tag();
  const h0 = await heap();
  const long = 'x'.repeat(20000);
  const burst = async k => {
    for (let c = 0; c < 20; c++) {
      const lines = [];
      for (let i = 0; i < 5000; i++) {
        const n = k * 100000 + c * 5000 + i;
        lines.push(n % 1000 === 0 ? `[INFO] ${t} n-${n} ${long}` : `[${['ERROR', 'WARN', 'INFO', 'DEBUG'][n % 4]}] ${t} n-${n} request handled in ${n % 97} ms`);
      }
      await emit(lines);
    }
    const last = k * 100000 + 99999;
    await waitText(page, `[DEBUG] ${t} n-${last} request handled in ${last % 97} ms`, 120000);
  };
  const started = Date.now();
  await burst(0);
  const secs = (Date.now() - started) / 1000;
  const h1 = await heap();
  const c1 = await counts();
  await burst(1);
  const h2 = await heap();
  const c2 = await counts();
  const longest = await page.$$eval('#log .m', ms => Math.max(...ms.map(m => m.textContent.length)));
  console.log(`      100 000 entries shown in ${secs.toFixed(1)} s (the sender's pace); #log rows ${c1.rows}, elements ${c1.elements}, ` +
    `DOM nodes ${c1.nodes} after 100 000 and ${c2.nodes} after 200 000; ` +
    `JS heap ${(h0 / 1048576).toFixed(1)} MiB at start, ${(h1 / 1048576).toFixed(1)} MiB after 100 000, ${(h2 / 1048576).toFixed(1)} MiB after 200 000; longest row text ${longest}`);
  assert(c1.rows <= 1000 && c2.rows <= 1000, 'rows: ' + c1.rows + ', ' + c2.rows);
  assert(h2 < 16 * 1048576, 'heap ' + h2);
  assert(Math.abs(h2 - h1) < 2 * 1048576, 'heap grew from ' + h1 + ' to ' + h2);
  assert(longest <= 4100, 'longest row ' + longest);
  await context.close();
});

test('controls are reachable by keyboard, in order, with names', async () => {
  const { page, context } = await open();
  const order = [];
  await page.focus('body');
  for (let i = 0; i < 16; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => {
      const e = document.activeElement;
      const label = e.closest('label');
      return e.id || (e.closest('#levels') ? 'level:' + e.textContent : '') || (label ? label.textContent.trim() : e.tagName);
    }));
  }
  eq(order.slice(0, 14), ['filter', 'exclude', 'source', 'icase', 'level:ERROR', 'level:WARN', 'level:INFO', 'level:DEBUG',
    'level:TRACE', 'level:none', 'pause', 'clear', 'log', order[13]], 'tab order');
  // Every control has an accessible name.
  const unnamed = await page.$$eval('input, button', els => els.filter(e => !(e.labels && e.labels.length) && !e.textContent.trim()).map(e => e.outerHTML));
  eq(unnamed, [], 'controls without a name');
  await page.focus('#pause');
  await page.keyboard.press('Space');
  eq(await page.getAttribute('#pause', 'aria-pressed'), 'true', 'Space pauses');
  await page.keyboard.press('Enter');
  eq(await page.getAttribute('#pause', 'aria-pressed'), 'false', 'Enter resumes');
  await page.focus('#levels button:text-is("INFO")');
  await page.keyboard.press('Space');
  eq(await page.getAttribute('#levels button:text-is("INFO")', 'aria-pressed'), 'false', 'Space toggles a level');
  await context.close();
});

test('text contrast is at least 4.5:1 in light and dark schemes', async () => {
  for (const scheme of ['light', 'dark']) {
    const context = await browser.newContext({ colorScheme: scheme });
    const page = await context.newPage();
    await page.goto(base + '?filter=' + encodeURIComponent('(?i)disk'));
    await live(page);
    const t = tag();
    await emit(['ERROR', 'WARN', 'INFO', 'DEBUG'].map(l => `[${l}] ${t} disk`));
    await waitRows(page, 4);
    const worst = await page.evaluate(() => {
      const rgb = s => s.match(/[\d.]+/g).slice(0, 3).map(Number);
      const lum = c => {
        const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
      };
      const bg = el => {
        for (let e = el; e; e = e.parentElement) {
          const c = getComputedStyle(e).backgroundColor;
          if (c && !c.endsWith(', 0)') && c !== 'transparent') return c;
        }
        return 'rgb(255, 255, 255)';
      };
      const ratio = el => {
        const a = lum(rgb(getComputedStyle(el).color)), b = lum(rgb(bg(el)));
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      };
      const els = [...document.querySelectorAll('#log .t, #log .l, #log .s, #log .m, #log mark, label, button, input[type=search], #status, legend')];
      return els.map(e => ({ what: e.className || e.tagName + (e.id ? '#' + e.id : '') + ' ' + e.textContent.slice(0, 12), ratio: ratio(e) }))
        .sort((a, b) => a.ratio - b.ratio).slice(0, 3);
    });
    console.log(`      ${scheme}: lowest contrast ${worst.map(w => w.what.trim() + ' ' + w.ratio.toFixed(1)).join(', ')}`);
    assert(worst[0].ratio >= 4.5, scheme + ': ' + JSON.stringify(worst[0]));
    if (shots) await page.screenshot({ path: path.join(shots, `logwisp-page-${scheme}.png`) });
    await context.close();
  }
});

test('WebSocket from the browser: one message per entry, query filters, resume, close', async () => {
  // From the page's own origin, as a script on it would (its policy allows 'self').
  const { page, context } = await open();
  const t = tag();
  const wsURL = query => {
    const u = new URL('.' + streamPath, pageURL());
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.search = query;
    return u.href;
  };
  const connect = url => page.evaluate(url => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    window.__ws = ws;
    window.__msgs = [];
    ws.onmessage = e => window.__msgs.push(e.data);
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error('WebSocket failed: ' + url));
  }), url);
  const messages = async n => {
    await page.waitForFunction(n => window.__msgs.length >= n, n, { timeout: 10000 });
    return page.evaluate(() => window.__msgs.map(m => typeof m === 'string' ? JSON.parse(m).message : '(binary)'));
  };
  await connect(wsURL(`?levels=ERROR&filter=${t}`));
  await emit([`[ERROR] ${t} w-1`, `[INFO] ${t} w-2`, `[ERROR] not this one`, `[ERROR] ${t} w-3`]);
  eq(await messages(2), [`[ERROR] ${t} w-1`, `[ERROR] ${t} w-3`], 'filtered messages');
  const lastId = await lastEntryId();
  const closed = await page.evaluate(() => new Promise(resolve => {
    window.__ws.onclose = e => resolve({ code: e.code, clean: e.wasClean });
    window.__ws.close(1000, 'done');
  }));
  eq(closed, { code: 1000, clean: true }, 'close handshake');
  await emit([4, 5, 6, 7].map(i => `[${i % 2 ? 'INFO' : 'ERROR'}] ${t} w-${i}`));
  // Wait until the server has read them (its last id moved by 4).
  const start = Date.now();
  while (await lastEntryId() < lastId + 4) {
    if (Date.now() - start > 10000) throw new Error('server did not read the lines');
    await new Promise(res => setTimeout(res, 20));
  }
  await connect(wsURL(`?levels=ERROR&filter=${t}&last_event_id=${lastId}`));
  eq(await messages(2), [`[ERROR] ${t} w-4`, `[ERROR] ${t} w-6`], 'resumed after last_event_id');
  await context.close();
}, { needsWs: true });

test('the page runs under its Content-Security-Policy', async () => {
  const r = await fetch(base);
  const csp = r.headers.get('content-security-policy');
  console.log('      ' + (csp ? 'policy: ' + csp.slice(0, 60) + '…' : 'no policy sent'));
  eq(cspViolations, [], 'violations reported by Chromium in the tests above');
});

let passed = 0, failed = 0;
for (const t of tests) {
  if (only && !only.some(o => t.name.includes(o))) continue;
  if (t.needsKick && !ctl && !proxy) {
    console.log(`skip ${t.name} (needs --ctl or --proxy)`);
    continue;
  }
  if (t.needsWs && !flag('websocket')) {
    console.log(`skip ${t.name} (needs --websocket)`);
    continue;
  }
  const start = Date.now();
  try {
    await t.fn();
    passed++;
    console.log(`ok   ${t.name} (${Date.now() - start} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${t.name}\n     ${String(e.stack || e).split('\n').slice(0, 6).join('\n     ')}`);
  }
}
await browser.close();
if (proxy) proxy.close();
if (caHome) fs.rmSync(caHome, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
