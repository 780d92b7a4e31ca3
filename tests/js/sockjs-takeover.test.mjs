// Issue 17's browser test: the cross-site SockJS session takeover, tried by a real page in
// Debian's Chromium (playwright-core). The gateway's policy reads a JWT from a cookie; the
// victim holds that cookie (SameSite=None, so the browser attaches it to cross-site requests)
// and has a SockJS session open. A page on another site (127.0.0.2, a different site from
// 127.0.0.1 for the browser) tries the `<script src=…/jsonp>` trick, an Origin-less
// `eventsource` and a `no-cors` `xhr_send` into the victim's session. A probe on 127.0.0.1
// shows the browser did attach the victim's cookie. Expected: nothing reaches the page, the
// gateway opened no session for it, the victim's session saw nothing and the broker's queue
// has the victim's consumer only.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DIRECT_WS, startGateway, uniqueName } from './harness.mjs';
import { CHROMIUM, chromiumArgs } from './matrix/env.mjs';

const WAIT = 10_000;
const APP = 'http://app.test';
const SECRET = 'issue17-browser-hs256-secret-0123456789';
const skip = (DIRECT_WS && 'SockJS needs the gateway') || (!existsSync(CHROMIUM) && `${CHROMIUM} missing`);

const b64url = (v) => Buffer.from(v).toString('base64url');

/** An HS256 JWT for `sub`, valid for an hour. */
function jwt(sub) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub, iss: 'https://idp.test', aud: 'stompgate', iat: now, exp: now + 3600 }));
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/**
 * A Chromium profile that sends third-party cookies, as browsers still do by default for
 * ordinary profiles (playwright's contexts are incognito-like and block them, which would hide
 * the attack instead of stopping it). A persistent context with that preference.
 */
async function launchProfile(dir) {
  const { chromium } = await import('playwright-core');
  mkdirSync(path.join(dir, 'Default'), { recursive: true });
  const prefs = { profile: { cookie_controls_mode: 0, block_third_party_cookies: false } };
  writeFileSync(path.join(dir, 'Default', 'Preferences'), JSON.stringify(prefs));
  return chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, args: chromiumArgs(null), timeout: 30_000 });
}

/** One HTTP request from Node: `{ status, body }`. */
function request(url, { method = 'GET', headers = {}, body = '' } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.setTimeout(WAIT, () => req.destroy(new Error(`${url} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The queue's consumer count from the RabbitMQ management API, once its statistics have one. */
async function consumers(queue) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:15672/api/queues/%2F/${queue}`, {
      headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
    });
    // The management database may not know a queue this new yet (404).
    const n = res.status === 200 ? (await res.json()).consumers : 0;
    if (n > 0) return n;
    assert.ok(Date.now() < deadline, 'no consumer count from the management API');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** A loopback HTTP server on `host` answering with `handler`; `{ url, close }`. */
async function serve(host, handler) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, host, resolve));
  return {
    url: `http://${host}:${server.address().port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The attacker's page: every trick at once, results in `window.results` / `window.stolen`. */
function attackerPage(gw, probe, victimId, attackFrames) {
  const sockjs = `${gw}/sockjs/000`;
  return `<!doctype html><html><body>
<script>
  window.stolen = []; window.results = {};
  function steal(frame) { window.stolen.push(frame); }
</script>
<img src="${probe}/probe.png">
<script src="${sockjs}/attack01/jsonp?c=steal" onload="results.create='load'" onerror="results.create='error'"></script>
<script src="${sockjs}/${victimId}/jsonp?c=steal" onload="results.attach='load'" onerror="results.attach='error'"></script>
<script>
  fetch('${sockjs}/${victimId}/xhr_send', { method: 'POST', mode: 'no-cors', credentials: 'include',
      body: JSON.stringify([${JSON.stringify(attackFrames)}]) })
    .then(() => { results.send = 'sent'; }, () => { results.send = 'error'; });
  const es = new EventSource('${sockjs}/attack02/eventsource', { withCredentials: true });
  es.onmessage = (e) => window.stolen.push(e.data);
  es.onerror = () => { results.eventsource = 'error'; es.close(); };
</script>
</body></html>`;
}

describe('SockJS session takeover from another site in Chromium', { skip }, () => {
  const env = {};

  before(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'stompgate-issue17-'));
    writeFileSync(path.join(dir, 'hs256.secret'), SECRET);
    const policy = path.join(dir, 'policy.toml');
    writeFileSync(policy, [
      '[[auth]]', 'type = "jwt"', 'issuer = "https://idp.test"', 'audience = "stompgate"',
      'sources = { cookie = "sg_token" }', '[[auth.key]]', 'alg = "HS256"', 'secret_file = "hs256.secret"',
      '[upstream.default]', 'login = "stompgate"', 'passcode = "stompgate-secret"', 'vhost = "/"', '',
    ].join('\n'));
    env.gw = await startGateway({ args: ['--policy', policy, '--allowed-origin', APP] });
    env.probeCookies = [];
    env.probe = await serve('127.0.0.1', (req, res) => {
      env.probeCookies.push(req.headers.cookie ?? '');
      res.writeHead(204).end();
    });
    env.profile = mkdtempSync(path.join(os.tmpdir(), 'stompgate-issue17-chromium-'));
    env.browser = await launchProfile(env.profile);
  });

  after(async () => {
    await env.browser?.close();
    if (env.profile) rmSync(env.profile, { recursive: true, force: true });
    await env.attacker?.close();
    await env.probe?.close();
    await env.gw?.stop();
  });

  test('the <script src=jsonp> trick and its friends get nothing; the victim is unaffected', async () => {
    const token = jwt('victim');
    const victim = { origin: APP, cookie: `sg_token=${token}` };
    const gw = env.gw.httpUrl;
    const victimId = 'victim17';
    const url = `${gw}/sockjs/000/${victimId}`;
    const queue = uniqueName('issue17-browser');

    // The victim's session: CONNECT and SUBSCRIBE, read until the receipt.
    assert.equal((await request(`${url}/xhr`, { method: 'POST', headers: victim })).body, 'o\n');
    const sub = `SUBSCRIBE\nid:s1\ndestination:/queue/${queue}\nauto-delete:true\nreceipt:r1\n\n\0`;
    const send = (frames) => request(`${url}/xhr_send`, { method: 'POST', headers: victim, body: JSON.stringify([frames]) });
    assert.equal((await send(`CONNECT\naccept-version:1.2\nhost:/\n\n\0${sub}`)).status, 204);
    const seen = [];
    const pollUntil = async (needle) => {
      const deadline = Date.now() + WAIT;
      while (!seen.join('').includes(needle)) {
        assert.ok(Date.now() < deadline, `never saw ${needle}: ${seen.join('')}`);
        seen.push((await request(`${url}/xhr`, { method: 'POST', headers: victim })).body);
      }
    };
    await pollUntil('receipt-id:r1');

    // The attacker's page on another site, in a browser holding the victim's cookie.
    const attackFrames = `CONNECT\naccept-version:1.2\nhost:/\n\n\0SUBSCRIBE\nid:x\ndestination:/queue/${queue}\n\n\0`;
    env.attacker = await serve('127.0.0.2', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(attackerPage(gw, env.probe.url, victimId, attackFrames));
    });
    const context = env.browser;
    await context.addCookies([{ name: 'sg_token', value: token, domain: '127.0.0.1', path: '/', sameSite: 'None', secure: true }]);
    const page = await context.newPage();
    page.on('console', () => {});
    await page.goto(`${env.attacker.url}/`, { timeout: WAIT, waitUntil: 'commit' });
    await page.waitForFunction(
      () => ['create', 'attach', 'send', 'eventsource'].every((k) => window.results[k]),
      null, { timeout: WAIT },
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { results, stolen } = await page.evaluate(() => ({ results: window.results, stolen: window.stolen }));
    await page.close();

    assert.ok(env.probeCookies.some((c) => c.includes(`sg_token=${token}`)),
      `the browser attached the victim's cookie cross-site (premise): ${JSON.stringify(env.probeCookies)}`);
    assert.deepEqual(stolen, [], 'nothing from any session reached the page');
    assert.equal(results.create, 'error', 'jsonp is off: no session created by <script>');
    assert.equal(results.attach, 'error', 'jsonp is off: the victim session cannot be read by <script>');
    assert.equal(results.eventsource, 'error');

    // The victim still works and saw nothing of it. The broker has its one consumer: with a
    // second one, RabbitMQ would hand that one every other message.
    const four = [0, 1, 2, 3].map((i) => `SEND\ndestination:/queue/${queue}\n\nstill mine ${i}\0`).join('');
    assert.equal((await send(four)).status, 204);
    for (const i of [0, 1, 2, 3]) await pollUntil(`still mine ${i}`);
    assert.ok(!seen.join('').includes('ERROR'), seen.join(''));
    assert.equal(await consumers(queue), 1, 'the attacker subscribed nothing');
    const metrics = (await request(`${env.gw.adminUrl}/metrics`)).body;
    assert.match(metrics, /stompgate_connections_opened_total\{transport="sockjs-jsonp"\} 0/);
    assert.match(metrics, /stompgate_connections_opened_total\{transport="sockjs-eventsource"\} 0/);
    assert.match(metrics, /stompgate_sessions_refused_total\{reason="sockjs_origin"\} [1-9]/);
  });
});
