// Issue 4's end-to-end tests: `sockjs-client` 1.6 carrying stomp.js (the current
// @stomp/stompjs 7 and the old stompjs 2.3.3 `Stomp.over(sock)` API) through the gateway's
// SockJS prefix to RabbitMQ, forcing each SockJS transport in turn. The client sends wrong
// credentials: it only connects because the gateway replaces them.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import SockJS from 'sockjs-client';

import {
  CLIENT_AUTH,
  DIRECT_WS,
  REPO_ROOT,
  collect,
  connectStompJs,
  legacyStomp,
  receiptFor,
  startGateway,
  uniqueName,
  withTimeout,
  WAIT_MS,
} from './harness.mjs';

/** The transports `sockjs-client` can use in Node, each forced in turn. */
const TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];
/** Messages per ordering check. */
const COUNT = 500;
/** Queue headers that make RabbitMQ drop the test queue afterwards. */
const TEMP_QUEUE = { durable: 'false', 'auto-delete': 'true' };

const skip = DIRECT_WS ? 'SockJS needs the gateway' : false;

/** The gateway's SockJS URL. */
const sockjsUrl = (gw) => `${gw.httpUrl}/sockjs`;

/** A factory for SockJS sockets restricted to `transport`, remembering what it made. */
function sockjsFactory(url, transport) {
  const made = [];
  const factory = () => {
    const sock = new SockJS(url, null, { transports: [transport], timeout: WAIT_MS });
    made.push(sock);
    return sock;
  };
  return { factory, made };
}

/** Subscribes with a receipt, so messages sent afterwards are certain to be routed. */
async function subscribeConfirmed(client, destination, headers = {}) {
  const receipt = uniqueName('sub');
  const done = receiptFor(client, receipt);
  const sub = collect(client, destination, { ...TEMP_QUEUE, ...headers, receipt }, { timeoutMs: 60_000 });
  await done;
  return sub;
}

/** Deactivates with a receipt on DISCONNECT and resolves with that RECEIPT frame. */
function disconnectWithReceipt(client) {
  const receipt = uniqueName('bye');
  client.disconnectHeaders = { receipt };
  const got = new Promise((resolve) => {
    client.onDisconnect = resolve;
  });
  client.deactivate();
  return withTimeout(got, WAIT_MS, `RECEIPT ${receipt} for DISCONNECT`).then((frame) => {
    assert.equal(frame.command, 'RECEIPT');
    assert.equal(frame.headers['receipt-id'], receipt);
  });
}

describe('SockJS with @stomp/stompjs 7', { skip }, () => {
  for (const transport of TRANSPORTS) {
    test(`${transport}: connect, subscribe, ${COUNT} in order with acks, disconnect receipt`, async (t) => {
      const gw = await startGateway({ t });
      const { factory, made } = sockjsFactory(sockjsUrl(gw), transport);
      const { client, connected } = await connectStompJs(sockjsUrl(gw), {
        ...CLIENT_AUTH,
        webSocketFactory: factory,
      });
      t.after(() => client.deactivate({ force: true }));
      assert.equal(connected.command, 'CONNECTED');
      assert.equal(made[0].transport, transport, 'the forced transport is the one in use');

      const destination = `/queue/${uniqueName()}`;
      const sub = await subscribeConfirmed(client, destination, { ack: 'client-individual' });
      const expected = Array.from({ length: COUNT }, (_, i) => `m${i} ${'x'.repeat(i % 50)}\u00e9\u2028`);
      for (const body of expected) client.publish({ destination, body });
      const got = await sub.waitFor(COUNT, 60_000);
      assert.deepEqual(got.map((m) => m.body), expected);
      for (const m of got) m.ack();

      await disconnectWithReceipt(client);
    });
  }
});

describe('SockJS with the old stompjs 2.3.3 API', { skip }, () => {
  test('Stomp.over(new SockJS(url)) over xhr-streaming: connect, subscribe, send, receive', async (t) => {
    const gw = await startGateway({ t });
    const Stomp = legacyStomp();
    const sock = new SockJS(sockjsUrl(gw), null, { transports: ['xhr-streaming'] });
    const client = Stomp.over(sock);
    client.debug = null;
    client.heartbeat = { outgoing: 0, incoming: 0 };
    t.after(() => sock.close());
    await withTimeout(
      new Promise((resolve, reject) => {
        client.connect(CLIENT_AUTH.login, CLIENT_AUTH.passcode, resolve, (e) =>
          reject(new Error(`legacy error: ${e?.headers?.message ?? e}`)),
        );
      }),
      WAIT_MS,
      'legacy CONNECTED over SockJS',
    );
    const destination = `/queue/${uniqueName()}`;
    const received = new Promise((resolve) => {
      client.subscribe(destination, (m) => resolve(m.body), TEMP_QUEUE);
    });
    client.send(destination, {}, 'hello over sockjs');
    assert.equal(await withTimeout(received, WAIT_MS, 'legacy MESSAGE'), 'hello over sockjs');
    await withTimeout(new Promise((resolve) => client.disconnect(resolve)), WAIT_MS, 'legacy disconnect');
  });
});

/** The SockJS echo example (`cargo build --example sockjs_echo`). */
const ECHO_BIN = path.join(REPO_ROOT, 'target', 'debug', 'examples', 'sockjs_echo');

/** Starts the echo example on a free loopback port; resolves with its base URL. */
function startEcho(t) {
  const child = spawn(ECHO_BIN, ['0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const listening = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /listening sockjs (\S+)/.exec(out);
      if (m) resolve(`http://${m[1]}`);
    });
    child.on('exit', (code) => reject(new Error(`sockjs_echo exited (${code})`)));
  });
  return withTimeout(listening, WAIT_MS, 'sockjs_echo to listen');
}

/** Opens a SockJS socket forced to `transport`; resolves once open. */
function openSock(url, transport) {
  const sock = new SockJS(url, null, { transports: [transport], timeout: WAIT_MS });
  const opened = new Promise((resolve, reject) => {
    sock.onopen = () => resolve(sock);
    sock.onclose = (e) => reject(new Error(`closed before open: ${e.code} ${e.reason}`));
  });
  return withTimeout(opened, WAIT_MS, `SockJS ${transport} open`);
}

describe('sockjs-client 1.6 against examples/sockjs_echo (transport layer alone)', {
  skip: !existsSync(ECHO_BIN) && 'build it first: cargo build --example sockjs_echo',
}, () => {
  for (const transport of TRANSPORTS) {
    test(`${transport}: echoes STOMP-like frames (NUL, U+2028, astral) in order; close 3000`, async (t) => {
      const base = await startEcho(t);
      const sock = await openSock(`${base}/echo`, transport);
      t.after(() => sock.close());
      assert.equal(sock.transport, transport);
      const sent = Array.from({ length: 50 }, (_, i) => `SEND\ndestination:/q/${i}\n\n\u2028\ud83d\ude00 ${i}\u0000`);
      const got = [];
      const all = new Promise((resolve) => {
        sock.onmessage = (e) => {
          got.push(e.data);
          if (got.length === sent.length) resolve();
        };
      });
      for (const m of sent) sock.send(m);
      await withTimeout(all, WAIT_MS, `${sent.length} echoes`);
      assert.deepEqual(got, sent);

      const closer = await openSock(`${base}/close`, transport);
      const closed = await withTimeout(
        new Promise((resolve) => { closer.onclose = resolve; }),
        WAIT_MS,
        'close from /close',
      );
      assert.equal(closed.code, 3000);
      assert.equal(closed.reason, 'Go away!');
    });
  }
});
