// Test harness for the Node tests: starts the stompgate binary on loopback ports chosen by the
// OS, connects stomp.js clients (the current @stomp/stompjs 7 and the old stompjs 2.3.3) through
// it, and bounds every wait with a timeout so that a broken gateway fails a test instead of
// hanging it.
//
// Environment:
//   STOMPGATE_BIN            gateway binary (default: <repo>/target/debug/stompgate)
//   STOMPGATE_TEST_RABBITMQ  RabbitMQ STOMP address (default 127.0.0.1:61613)
//   STOMPGATE_TEST_ACTIVEMQ  ActiveMQ STOMP address (default 127.0.0.1:61623)
//   STOMPGATE_TEST_LOG       set to 1 to copy the gateway's stderr to this process's stderr
//   STOMPGATE_TEST_DIRECT_WS a WebSocket URL (e.g. RabbitMQ's own Web-STOMP,
//                            ws://127.0.0.1:15674/ws) to run the same tests against instead of a
//                            gateway: checks the tests themselves; gateway-only tests skip

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository root. */
export const REPO_ROOT = path.resolve(here, '..', '..');
/** The gateway binary under test. */
export const GATEWAY_BIN =
  process.env.STOMPGATE_BIN || path.join(REPO_ROOT, 'target', 'debug', 'stompgate');
/** RabbitMQ's STOMP port. */
export const RABBITMQ = process.env.STOMPGATE_TEST_RABBITMQ || '127.0.0.1:61613';
/** ActiveMQ's STOMP port. */
export const ACTIVEMQ = process.env.STOMPGATE_TEST_ACTIVEMQ || '127.0.0.1:61623';
/** The broker identity `scripts/setup-rabbitmq.sh` creates for the gateway. */
export const BROKER_LOGIN = 'stompgate';
export const BROKER_PASSCODE = 'stompgate-secret';
/** When set, tests talk to this WebSocket URL directly instead of starting a gateway. */
export const DIRECT_WS = process.env.STOMPGATE_TEST_DIRECT_WS || '';
/**
 * Credentials tests send from the client. Through the gateway they are deliberately wrong
 * (`guest`/`wrong`, which RabbitMQ would refuse): the gateway must replace them. Directly
 * against a broker they are the real ones.
 */
export const CLIENT_AUTH = DIRECT_WS
  ? { login: BROKER_LOGIN, passcode: BROKER_PASSCODE }
  : { login: 'guest', passcode: 'wrong' };
/** Subprotocols a browser's stomp.js offers. */
export const STOMP_SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

/** Time allowed for the gateway to print its `listening` lines. */
const STARTUP_TIMEOUT_MS = 15_000;
/** `--shutdown-grace` unless a test gives its own. */
const DEFAULT_SHUTDOWN_GRACE = '1s';
/** Time allowed for the gateway to exit after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;
/** Most stderr kept per gateway, for failure messages. */
const MAX_STDERR_CHARS = 64 * 1024;
/** Default bound for a client-side wait (connect, receipt, message). */
export const WAIT_MS = 10_000;

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Rejects after `ms` with a message naming what was awaited; otherwise settles like `promise`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A name no other test run uses, e.g. for a queue. */
export function uniqueName(prefix = 'stompgate-test') {
  return `${prefix}-${randomUUID()}`;
}

/**
 * The environment for a gateway child: this process's, minus every `STOMPGATE_*` variable (the
 * test's flags alone configure the gateway), plus `extra`.
 */
function gatewayEnv(extra = {}) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('STOMPGATE_')),
  );
  return { RUST_LOG: 'info', ...env, ...extra };
}

/**
 * The admin token of gateways started with `adminToken: true` (state-changing admin requests
 * need one), and the headers an admin request sends with it (a state change also needs the
 * JSON content type).
 */
export const ADMIN_TOKEN = 'stompgate-test-admin-token';
export const ADMIN_HEADERS = {
  authorization: `Bearer ${ADMIN_TOKEN}`,
  'content-type': 'application/json',
};

/** The gateway's arguments for a broker identity (`credentials: false` leaves them out). */
function identityArgs({ upstream = RABBITMQ, credentials = true, login, passcode }) {
  const args = ['--upstream', upstream];
  if (credentials) {
    args.push('--upstream-login', login ?? BROKER_LOGIN);
    args.push('--upstream-passcode', passcode ?? BROKER_PASSCODE);
  }
  return args;
}

/** Keeps the tail of a child's stderr for error messages. */
function captureStderr(child) {
  const state = { text: '' };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    if (process.env.STOMPGATE_TEST_LOG === '1') process.stderr.write(chunk);
    state.text = (state.text + chunk).slice(-MAX_STDERR_CHARS);
  });
  return state;
}

/** Resolves with the `listening KIND ADDR` lines once `client` and `admin` are both seen. */
function readListeners(child, stderr) {
  return new Promise((resolve, reject) => {
    const listeners = {};
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const m = /^listening (\S+) (\S+)$/.exec(buffered.slice(0, nl).trim());
        buffered = buffered.slice(nl + 1);
        if (m) listeners[m[1]] = m[2];
      }
      if (listeners.client && listeners.admin) resolve(listeners);
    });
    child.on('exit', (code, signal) =>
      reject(new Error(`gateway exited (code ${code}, signal ${signal}) before listening:\n${stderr.text}`)),
    );
    child.on('error', reject);
  });
}

/**
 * Starts the gateway on `127.0.0.1:0` (client and admin) against a broker.
 *
 * Options: `t` (a node:test context: the gateway is stopped when the test ends), `args` (extra
 * flags), `upstream`, `credentials`/`login`/`passcode` (the broker identity; on by default),
 * `env` (extra environment), `adminToken` (true: the admin API needs [`ADMIN_TOKEN`], and
 * `adminHeaders` carries it).
 *
 * Returns `{ wsUrl, httpUrl, adminUrl, adminHeaders, listeners, child, stderr(), stop() }` (only `wsUrl`,
 * `direct: true`, `stderr()` and `stop()` when `STOMPGATE_TEST_DIRECT_WS` is set).
 */
export async function startGateway(opts = {}) {
  if (DIRECT_WS) return { direct: true, wsUrl: DIRECT_WS, stderr: () => '', stop: async () => {} };
  const args = [
    '--listen', '127.0.0.1:0',
    '--admin-listen', '127.0.0.1:0',
    ...identityArgs(opts),
    ...(opts.args ?? []),
  ];
  // Sessions still open when a test ends should not hold the drain for the default 30 s.
  if (!args.includes('--shutdown-grace')) args.push('--shutdown-grace', DEFAULT_SHUTDOWN_GRACE);
  const tokenEnv = opts.adminToken ? { STOMPGATE_ADMIN_TOKEN: ADMIN_TOKEN } : {};
  const child = spawn(GATEWAY_BIN, args, {
    env: gatewayEnv({ ...tokenEnv, ...opts.env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.on('exit', () => running.delete(child));
  const stderr = captureStderr(child);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };
  opts.t?.after(stop);
  let listeners;
  try {
    listeners = await withTimeout(readListeners(child, stderr), STARTUP_TIMEOUT_MS, 'gateway start-up');
  } catch (err) {
    await stop();
    throw err;
  }
  const wsPath = opts.wsPath ?? '/ws';
  return {
    listeners,
    wsUrl: `ws://${listeners.client}${wsPath}`,
    httpUrl: `http://${listeners.client}`,
    adminUrl: `http://${listeners.admin}`,
    adminHeaders: opts.adminToken ? ADMIN_HEADERS : {},
    child,
    stderr: () => stderr.text,
    stop,
  };
}

/**
 * Runs the gateway to completion (for start-up refusals) and returns `{ code, signal, stdout,
 * stderr }`; kills it after `timeoutMs`.
 */
export function runGateway(args, { env = {}, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(GATEWAY_BIN, args, {
      env: gatewayEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway still running after ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * Connects an @stomp/stompjs 7 client (over the `ws` package, as a browser would) and resolves
 * with `{ client, connected }` (`connected` is the CONNECTED frame). Rejects on an ERROR frame,
 * a close before CONNECTED, or after `timeoutMs`. Reconnection is off. Extra `Client` options
 * (e.g. `splitLargeFrames`) pass through.
 */
export function connectStompJs(url, { login, passcode, host, timeoutMs = WAIT_MS, ...options } = {}) {
  const connectHeaders = {};
  if (login !== undefined) connectHeaders.login = login;
  if (passcode !== undefined) connectHeaders.passcode = passcode;
  if (host !== undefined) connectHeaders.host = host;
  const client = new Client({
    webSocketFactory: () => new WebSocket(url, STOMP_SUBPROTOCOLS),
    connectHeaders,
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    ...options,
  });
  const connected = new Promise((resolve, reject) => {
    client.onConnect = (frame) => resolve({ client, connected: frame });
    client.onStompError = (frame) =>
      reject(new Error(`STOMP ERROR: ${frame.headers.message ?? ''} ${frame.body ?? ''}`));
    client.onWebSocketClose = (evt) =>
      reject(new Error(`WebSocket closed before CONNECTED (code ${evt?.code})`));
    client.onWebSocketError = () => reject(new Error('WebSocket error before CONNECTED'));
  });
  client.activate();
  return withTimeout(connected, timeoutMs, `CONNECTED from ${url}`).catch(async (err) => {
    await client.deactivate({ force: true });
    throw err;
  });
}

/**
 * Subscribes and returns `{ messages, waitFor(n), waitForMatch(pred), unsubscribe() }`:
 * `messages` fills as MESSAGE frames arrive; `waitFor(n)` resolves once `n` have,
 * `waitForMatch(pred)` with the first message `pred` accepts (both bounded by `timeoutMs`).
 */
export function collect(client, destination, headers = {}, { timeoutMs = WAIT_MS } = {}) {
  const messages = [];
  const checks = new Set(); // pending waits: each returns true once satisfied
  const sub = client.subscribe(
    destination,
    (msg) => {
      messages.push(msg);
      for (const check of checks) if (check()) checks.delete(check);
    },
    headers,
  );
  /** Resolves with `test()`'s first truthy result, checked now and on every new message. */
  const until = (test, ms, what) => {
    const now = test();
    if (now) return Promise.resolve(now);
    const p = new Promise((resolve) => {
      checks.add(() => {
        const r = test();
        if (r) resolve(r);
        return Boolean(r);
      });
    });
    return withTimeout(p, ms, `${what} on ${destination} (got ${messages.length} messages)`);
  };
  const waitFor = (n, ms = timeoutMs) =>
    until(() => messages.length >= n && messages.slice(), ms, `${n} messages`);
  const waitForMatch = (pred, ms = timeoutMs) =>
    until(() => messages.find(pred), ms, 'a matching message');
  return { messages, waitFor, waitForMatch, unsubscribe: () => sub.unsubscribe() };
}

/** Resolves with the RECEIPT frame for `receiptId` (register before sending the frame). */
export function receiptFor(client, receiptId, timeoutMs = WAIT_MS) {
  const p = new Promise((resolve) => client.watchForReceipt(receiptId, resolve));
  return withTimeout(p, timeoutMs, `RECEIPT ${receiptId}`);
}

/** Loads the old stompjs 2.3.3 (CommonJS; its Node entry also installs the timer hooks). */
export function legacyStomp() {
  return require('stompjs');
}

/**
 * Connects with the old stompjs 2.3.3 API exactly as pages use it:
 * `Stomp.over(ws).connect(login, passcode, onConnect, onError, host)`.
 * Resolves with `{ client, connected }`; rejects on ERROR, close or timeout.
 */
export function connectLegacy(url, { login, passcode, host, timeoutMs = WAIT_MS } = {}) {
  const Stomp = legacyStomp();
  const ws = new WebSocket(url, ['v10.stomp', 'v11.stomp', 'v12.stomp']);
  const client = Stomp.over(ws);
  client.debug = null;
  client.heartbeat = { outgoing: 0, incoming: 0 };
  const connected = new Promise((resolve, reject) => {
    client.connect(
      login,
      passcode,
      (frame) => resolve({ client, connected: frame }),
      (err) => reject(new Error(`legacy stompjs error: ${err?.headers?.message ?? err}`)),
      host,
    );
  });
  return withTimeout(connected, timeoutMs, `legacy CONNECTED from ${url}`).catch((err) => {
    ws.terminate();
    throw err;
  });
}

/** A body of `size` printable ASCII bytes with a recognisable, position-dependent pattern. */
export function patternBody(size) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let i = 0; out.length < size; i++) out += `${alphabet[i % alphabet.length]}${i}.`;
  return out.slice(0, size);
}
