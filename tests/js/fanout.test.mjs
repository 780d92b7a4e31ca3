// Issue 21's stomp.js test: pages of both stomp.js generations (@stomp/stompjs 7 and stompjs
// 2.3.3 `Stomp.over(ws)`) subscribe to one fanout exchange through a gateway with fan-out on.
// Checked on the broker: the exchange has ONE binding for all of them (management API), and
// every page gets every message, in order, none duplicated, under its own subscription id.
//
// Environment: STOMPGATE_TEST_RABBITMQ_MANAGEMENT (default http://127.0.0.1:15672, `guest` over
// loopback) besides the harness's.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  CLIENT_AUTH,
  DIRECT_WS,
  connectLegacy,
  connectStompJs,
  startGateway,
  uniqueName,
  withTimeout,
  WAIT_MS,
} from './harness.mjs';

const MANAGEMENT = (process.env.STOMPGATE_TEST_RABBITMQ_MANAGEMENT || 'http://127.0.0.1:15672')
  .replace(/\/$/, '');
const GUEST = { authorization: 'Basic Z3Vlc3Q6Z3Vlc3Q=', 'content-type': 'application/json' };
const PAGES_PER_CLIENT = 4;
const MESSAGES = 50;

async function management(method, path, body) {
  const res = await fetch(`${MANAGEMENT}/api/${path}`, {
    method,
    headers: GUEST,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  return { status: res.status, json: res.status === 200 ? await res.json() : null };
}

/** Polls (bounded) until `read()` returns `want`. */
async function eventually(read, want, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const now = await read();
    if (now === want) return;
    if (Date.now() > deadline) assert.fail(`${what}: ${now}, want ${want}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The value of an unlabelled gateway metric. */
async function metric(gw, name) {
  const text = await (await fetch(`${gw.adminUrl}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** Collects a page's bodies and subscription ids; `waitFor(n)` resolves once it has `n`. */
function recorder() {
  const got = { bodies: [], ids: new Set(), acks: 0 };
  let wake = () => {};
  got.onMessage = (msg) => {
    got.bodies.push(msg.body);
    got.ids.add(msg.headers.subscription);
    if (msg.headers.ack !== undefined) got.acks++;
    wake();
  };
  got.waitFor = (n) =>
    withTimeout(
      new Promise((resolve) => {
        wake = () => got.bodies.length >= n && resolve();
        wake();
      }),
      WAIT_MS,
      `${n} messages (got ${got.bodies.length})`,
    );
  return got;
}

describe('shared broadcast subscriptions (fan-out)', { skip: DIRECT_WS ? 'gateway only' : false }, () => {
  test('stompjs 7 and 2.3.3 pages share one broker binding and get every message in order', async (t) => {
    const exchange = uniqueName('issue21-js');
    const made = await management('PUT', `exchanges/%2F/${exchange}`, { type: 'fanout', durable: false });
    assert.ok([201, 204].includes(made.status), `exchange: ${made.status}`);
    t.after(() => management('DELETE', `exchanges/%2F/${exchange}`));
    const gw = await startGateway({ t, args: ['--fanout-destination', '/exchange/issue21-js-*'] });
    const destination = `/exchange/${exchange}`;
    const pages = [];
    for (let i = 0; i < PAGES_PER_CLIENT; i++) {
      const { client } = await connectStompJs(gw.wsUrl, CLIENT_AUTH);
      t.after(() => client.deactivate({ force: true }));
      const got = recorder();
      client.subscribe(destination, got.onMessage);
      pages.push(got);
    }
    for (let i = 0; i < PAGES_PER_CLIENT; i++) {
      const { client } = await connectLegacy(gw.wsUrl, CLIENT_AUTH);
      t.after(() => client.disconnect());
      const got = recorder();
      client.subscribe(destination, got.onMessage);
      pages.push(got);
    }
    await eventually(() => metric(gw, 'stompgate_fanout_members'), pages.length, 'members');
    const bindings = async () =>
      (await management('GET', `exchanges/%2F/${exchange}/bindings/source`)).json.length;
    await eventually(bindings, 1, 'bindings of the exchange');

    const { client: publisher } = await connectStompJs(gw.wsUrl, CLIENT_AUTH);
    t.after(() => publisher.deactivate({ force: true }));
    const want = Array.from({ length: MESSAGES }, (_, i) => `m${i}`);
    for (const body of want) publisher.publish({ destination, body });
    await Promise.all(pages.map((p) => p.waitFor(MESSAGES)));
    for (const page of pages) {
      assert.deepEqual(page.bodies, want);
      assert.equal(page.ids.size, 1);
      assert.ok([...page.ids][0].startsWith('sub-'), [...page.ids][0]);
      assert.equal(page.acks, 0);
    }
    assert.equal(await bindings(), 1);
    assert.equal(await metric(gw, 'stompgate_fanout_messages_total'), MESSAGES);
    assert.equal(await metric(gw, 'stompgate_fanout_copies_total'), MESSAGES * pages.length);
  });
});
