// stomp.js clients for scripts/test-deploy.sh (not a `node --test` file: the script drives it
// against gateways it runs in containers).
//
//   node tests/js/deploy/client.mjs exchange URL
//       One @stomp/stompjs client: subscribe to a fresh queue, SEND with a receipt, receive it.
//       URL is ws://HOST:PORT/ws or http://HOST:PORT/sockjs (xhr-streaming).
//   node tests/js/deploy/client.mjs failover --ws URL --sockjs URL --clients N --stop-file F
//       N WebSocket and N SockJS xhr-streaming clients, each publishing receipted messages to
//       its own queue and consuming them with client-individual acks, reconnecting whenever
//       their connection drops. Prints `ready` once every client has a message back; when F
//       exists it stops publishing, waits for every receipted message to come back, prints a
//       JSON report and exits 0 only if none is missing and every client reconnected at least
//       once (the script restarts each gateway in turn meanwhile).
//
// The clients send wrong credentials on purpose: the gateway puts its own broker identity in.

import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';

import { Client } from '@stomp/stompjs';
import SockJS from 'sockjs-client';
import WebSocket from 'ws';

/** Bound for a single exchange (connect, receipt, message). */
const EXCHANGE_TIMEOUT_MS = 15_000;
/** Interval between two publishes of one failover client. */
const PUBLISH_INTERVAL_MS = 100;
/** Delay before a dropped client reconnects. */
const RECONNECT_DELAY_MS = 250;
/** Longest the failover run lasts, stop file or not. */
const MAX_RUN_MS = 180_000;
/** Time allowed for receipted messages to come back after publishing stops. */
const DRAIN_TIMEOUT_MS = 20_000;
/** RabbitMQ management API, to delete the queues the run created. */
const MANAGEMENT = process.env.STOMPGATE_TEST_RABBITMQ_MGMT || 'http://127.0.0.1:15672';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A stompjs client over a WebSocket or a SockJS xhr-streaming socket, not yet activated. */
function makeClient(url, options = {}) {
  const factory = url.startsWith('ws')
    ? () => new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp'])
    : () => new SockJS(url, null, { transports: ['xhr-streaming'], timeout: 10_000 });
  return new Client({
    webSocketFactory: factory,
    connectHeaders: { login: 'guest', passcode: 'wrong' },
    heartbeatIncoming: 10_000,
    heartbeatOutgoing: 10_000,
    debug: () => {},
    ...options,
  });
}

async function deleteQueues(names) {
  const auth = `Basic ${Buffer.from('guest:guest').toString('base64')}`;
  await Promise.all(names.map((q) =>
    fetch(`${MANAGEMENT}/api/queues/%2F/${encodeURIComponent(q)}`, {
      method: 'DELETE', headers: { authorization: auth }, signal: AbortSignal.timeout(5_000),
    }).catch(() => {})));
}

async function exchange(url) {
  const queue = `issue20-deploy-${randomUUID()}`;
  const body = `through the container ${randomUUID()}`;
  const client = makeClient(url, { reconnectDelay: 0 });
  const done = new Promise((resolve, reject) => {
    client.onConnect = () => {
      client.subscribe(`/queue/${queue}`, (m) => resolve(m.body));
      client.watchForReceipt('r1', () => {});
      client.publish({ destination: `/queue/${queue}`, body, headers: { receipt: 'r1' } });
    };
    client.onStompError = (f) => reject(new Error(`ERROR frame: ${f.headers.message}`));
    client.onWebSocketClose = (e) => reject(new Error(`closed before the message: ${e?.code}`));
  });
  const timer = setTimeout(() => client.onStompError({ headers: { message: 'timed out' } }),
    EXCHANGE_TIMEOUT_MS);
  client.activate();
  try {
    const got = await done;
    if (got !== body) throw new Error(`got ${JSON.stringify(got)}`);
    console.log(`exchange ok via ${url}: queue ${queue}`);
  } finally {
    clearTimeout(timer);
    await client.deactivate();
    await deleteQueues([queue]);
  }
}

/** One failover client: publishes receipted sequence numbers to its queue and consumes them. */
function startWorker(kind, url, run, index) {
  const w = {
    kind, queue: `issue20-scale-${run}-${kind}-${index}`, connects: 0, closes: 0, seq: 0,
    receipted: new Set(), received: new Set(), publishing: true,
  };
  w.client = makeClient(url, { reconnectDelay: RECONNECT_DELAY_MS });
  w.client.onConnect = () => {
    w.connects += 1;
    w.client.subscribe(`/queue/${w.queue}`, (m) => {
      w.received.add(Number(m.body));
      m.ack();
    }, { ack: 'client-individual' });
  };
  w.client.onWebSocketClose = () => { w.closes += 1; };
  w.client.onStompError = () => {};
  w.timer = setInterval(() => {
    if (!w.publishing || !w.client.connected) return;
    const seq = ++w.seq;
    const receipt = `${w.queue}-${seq}`;
    w.client.watchForReceipt(receipt, () => w.receipted.add(seq));
    try {
      w.client.publish({ destination: `/queue/${w.queue}`, body: String(seq), headers: { receipt } });
    } catch { /* connection just dropped: this one was never receipted */ }
  }, PUBLISH_INTERVAL_MS);
  w.client.activate();
  return w;
}

const missing = (w) => [...w.receipted].filter((s) => !w.received.has(s));

async function failover(args) {
  const run = randomUUID().slice(0, 8);
  const n = Number(args.clients || 2);
  const workers = [];
  for (let i = 0; i < n; i++) {
    workers.push(startWorker('ws', args.ws, run, i), startWorker('sockjs', args.sockjs, run, i));
  }
  const started = Date.now();
  while (!workers.every((w) => w.received.size > 0)) {
    if (Date.now() - started > 30_000) throw new Error('clients did not all get a message back in 30 s');
    await sleep(100);
  }
  console.log('ready');
  while (!existsSync(args['stop-file']) && Date.now() - started < MAX_RUN_MS) await sleep(100);
  for (const w of workers) { w.publishing = false; clearInterval(w.timer); }
  const drainStart = Date.now();
  while (workers.some((w) => missing(w).length > 0) && Date.now() - drainStart < DRAIN_TIMEOUT_MS) {
    await sleep(100);
  }
  const report = workers.map((w) => ({
    kind: w.kind, sent: w.seq, receipted: w.receipted.size, received: w.received.size,
    missing: missing(w), connects: w.connects, closes: w.closes,
  }));
  await Promise.all(workers.map((w) => w.client.deactivate()));
  await deleteQueues(workers.map((w) => w.queue));
  const totals = report.reduce((t, r) => ({
    receipted: t.receipted + r.receipted, received: t.received + r.received,
    missing: t.missing + r.missing.length,
  }), { receipted: 0, received: 0, missing: 0 });
  console.log(JSON.stringify({ totals, clients: report }));
  const problems = report.filter((r) => r.missing.length > 0 || r.connects < 2 || r.receipted === 0);
  if (problems.length > 0) {
    throw new Error(`lost messages or never reconnected: ${JSON.stringify(problems)}`);
  }
}

function parseFlags(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  return out;
}

const [mode, ...rest] = process.argv.slice(2);
const main = mode === 'exchange' ? () => exchange(rest[0])
  : mode === 'failover' ? () => failover(parseFlags(rest))
    : () => { throw new Error('usage: client.mjs exchange URL | failover --ws URL --sockjs URL ...'); };
main().then(() => process.exit(0), (e) => { console.error(`client: ${e.message}`); process.exit(1); });
