// The matrix's surroundings: test certificates, gateway instances per broker, a loopback static
// server for the page, one shared Chromium, and the bridges that give a scenario the same
// session API in Node and in a page.

import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as StompJs from '@stomp/stompjs';
import WebSocket from 'ws';

import { ACTIVEMQ, RABBITMQ, startGateway, withTimeout } from '../harness.mjs';
import { SESSION_METHODS, createDriver } from './driver.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.resolve(here, '..', 'node_modules');

/** Debian's Chromium (override with STOMPGATE_CHROMIUM). */
export const CHROMIUM = process.env.STOMPGATE_CHROMIUM || '/usr/bin/chromium';
/** Where run artefacts go (gitignored). */
export const ARTIFACTS = path.resolve(here, '..', 'artifacts');

/** Transports, with how a client reaches them. */
export const TRANSPORTS = {
  ws: { label: 'WebSocket' },
  wss: { label: 'wss://' },
  'sockjs-websocket': { label: 'SockJS websocket', sockjs: 'websocket' },
  'sockjs-xhr-streaming': { label: 'SockJS xhr-streaming', sockjs: 'xhr-streaming' },
};
export const CLIENTS = { v7: '@stomp/stompjs 7', legacy: 'stompjs 2.3.3' };
export const BROKERS = { rabbitmq: 'RabbitMQ', activemq: 'ActiveMQ' };

/**
 * Every cell: broker × transport × client. `@stomp/stompjs` 7 runs in Chromium on every
 * transport, and so does stompjs 2.3.3 over SockJS xhr-streaming (the Spring-style page); the
 * other 2.3.3 cells run in Node.
 */
export function allCells() {
  const cells = [];
  for (const broker of Object.keys(BROKERS)) {
    for (const transport of Object.keys(TRANSPORTS)) {
      for (const client of Object.keys(CLIENTS)) {
        const chromium = client === 'v7' || transport === 'sockjs-xhr-streaming';
        const env = chromium ? 'chromium' : 'node';
        cells.push({ id: `${broker}/${transport}/${client}`, broker, transport, client, env });
      }
    }
  }
  return cells;
}

/** A column label for a cell. */
export function cellLabel(cell) {
  const env = cell.env === 'chromium' ? 'Chromium' : 'Node';
  return `${BROKERS[cell.broker]} · ${TRANSPORTS[cell.transport].label} · ${CLIENTS[cell.client]} (${env})`;
}

/**
 * A self-signed ECDSA certificate for 127.0.0.1/localhost in a fresh temp dir. Returns
 * `{ dir, cert, key, pem, spki }` (`spki`: base64 SHA-256 of the public key, for Chromium's
 * `--ignore-certificate-errors-spki-list`).
 */
export function makeCert() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stompgate-matrix-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore', timeout: 10_000 });
  const pem = readFileSync(cert, 'utf8');
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  const spki = createHash('sha256').update(der).digest('base64');
  return { dir, cert, key, pem, spki, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** URLs of one gateway for every transport. */
function targetOf(gw) {
  const tls = gw.listeners['client-tls'];
  return {
    kind: 'gateway',
    adminUrl: gw.adminUrl,
    adminHeaders: gw.adminHeaders,
    url: (transport) => {
      if (transport === 'ws') return `${gw.wsUrl}`;
      if (transport === 'wss') return `wss://${tls}/ws`;
      return `${gw.httpUrl}/sockjs`;
    },
    stop: gw.stop,
  };
}

/**
 * The gateway instances: per broker a main one and one for the drop scenario (used by one cell
 * at a time), plus a RabbitMQ one whose broker passcode is wrong (refusal). All with a TLS
 * listener on the test certificate.
 */
export async function startGateways(cert) {
  const tls = ['--tls-listen', '127.0.0.1:0', '--tls-cert', cert.cert, '--tls-key', cert.key];
  // The drop scenario closes sessions through the admin API, which needs the token.
  const start = (opts) =>
    startGateway({ adminToken: true, ...opts, args: [...tls, ...(opts.args ?? [])] }).then(targetOf);
  const amq = { upstream: ACTIVEMQ, login: 'stompgate', passcode: 'unused-by-activemq' };
  const [rabbitmq, rabbitmqDrop, rabbitmqRefuse, activemq, activemqDrop] = await Promise.all([
    start({ upstream: RABBITMQ }),
    start({ upstream: RABBITMQ }),
    start({ upstream: RABBITMQ, passcode: 'not-the-broker-passcode' }),
    start(amq),
    start(amq),
  ]);
  const all = [rabbitmq, rabbitmqDrop, rabbitmqRefuse, activemq, activemqDrop];
  return {
    rabbitmq: { main: rabbitmq, drop: rabbitmqDrop, refuse: rabbitmqRefuse },
    activemq: { main: activemq, drop: activemqDrop, refuse: null },
    stop: () => Promise.all(all.map((g) => g.stop())),
  };
}

/** A WebSocket class for Node that trusts `ca` (the test certificate) on wss://. */
function trustingWebSocket(ca) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, url.startsWith('wss:') ? { ca } : {});
    }
  };
}

/** A session factory for Node: `session(key)` → the driver API, called directly. */
export function nodeSessions(cert) {
  const driver = createDriver({
    StompJs,
    Stomp: require('stompjs'),
    SockJS: require('sockjs-client'),
    WebSocket: trustingWebSocket(cert?.pem),
  });
  const session = (key) =>
    Object.fromEntries(SESSION_METHODS.map((m) => [m, async (...args) => driver.call(key, m, args)]));
  return { session, closeAll: () => driver.closeAll() };
}

/** Files the page loads, by URL path. */
const STATIC_FILES = {
  '/lib/stomp.umd.js': path.join(modules, '@stomp/stompjs/bundles/stomp.umd.js'),
  '/lib/stomp-2.3.3.js': path.join(modules, 'stompjs/lib/stomp.js'),
  '/lib/sockjs.js': path.join(modules, 'sockjs-client/dist/sockjs.js'),
  '/driver.mjs': path.join(here, 'driver.mjs'),
};

/** The page: the three libraries as pages load them, and the driver on `window.driver`. */
const PAGE_HTML = `<!doctype html><meta charset="utf-8"><title>stompgate matrix</title>
<script src="/lib/stomp.umd.js"></script>
<script src="/lib/stomp-2.3.3.js"></script>
<script src="/lib/sockjs.js"></script>
<script type="module">
import { createDriver } from '/driver.mjs';
window.driver = createDriver({ StompJs: window.StompJs, Stomp: window.Stomp, SockJS: window.SockJS, WebSocket: window.WebSocket });
document.title = 'ready';
</script>`;

/** Serves the page and the libraries on 127.0.0.1 (an OS-chosen port). Resolves `{ url, close }`. */
export async function startStaticServer() {
  const server = http.createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    if (p === '/' || p === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE_HTML);
      return;
    }
    const file = STATIC_FILES[p];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
    res.end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => {
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      return closed;
    },
  };
}

/** Chromium flags: headless, no sandbox (containers), the test certificate pinned by SPKI. */
export function chromiumArgs(cert) {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-quic',
    '--no-first-run',
    '--disable-component-update',
    '--disable-sync',
    ...(cert ? [`--ignore-certificate-errors-spki-list=${cert.spki}`] : []),
  ];
}

/** Launches the shared Chromium (playwright-core gives it a fresh user-data-dir). */
export async function launchChromium(cert) {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: chromiumArgs(cert), timeout: 30_000 });
}

/**
 * A fresh browser context with the page loaded; `session(key)` gives the driver API through
 * `page.evaluate`. `errors` collects page errors.
 */
export async function pageSessions(browser, pageUrl) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(pageUrl, { timeout: 15_000 });
  await page.waitForFunction(() => window.driver !== undefined, null, { timeout: 15_000 });
  const call = (key, m, args) =>
    page.evaluate(([k, name, a]) => window.driver.call(k, name, a), [key, m, args]);
  const session = (key) =>
    Object.fromEntries(SESSION_METHODS.map((m) => [m, (...args) => call(key, m, args)]));
  const closeAll = async () => {
    await withTimeout(page.evaluate(() => window.driver.closeAll()), 10_000, 'page clean-up').catch(() => {});
    await context.close();
  };
  return { session, closeAll, errors, page };
}

/** Writes `value` as JSON under the artefacts directory; returns the path. */
export function writeArtifact(name, value) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
  return file;
}
