// Issue 4's browser test: a page in Debian's Chromium (playwright-core) loads `sockjs-client`
// 1.6 and stomp.js (@stomp/stompjs 7 and the old stompjs 2.3.3 `Stomp.over(sock)` API) and
// exchanges messages through the gateway's SockJS endpoint with RabbitMQ, forcing one SockJS
// transport at a time. The page comes from a loopback static server, so every SockJS request
// to the gateway is cross-origin, as on a real site with a separate gateway host.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { CLIENT_AUTH, DIRECT_WS, startGateway, uniqueName } from './harness.mjs';
import { CHROMIUM, launchChromium, pageSessions, startStaticServer } from './matrix/env.mjs';

/** Transports forced in turn (websocket and xhr-streaming are the ones pages end up on). */
const TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];
/** Messages per exchange. */
const COUNT = 50;
const WAIT = 15_000;

const skip = (DIRECT_WS && 'SockJS needs the gateway') || (!existsSync(CHROMIUM) && `${CHROMIUM} missing`);

describe('SockJS in Chromium through the gateway to RabbitMQ', { skip }, () => {
  const env = {};

  before(async () => {
    env.gw = await startGateway();
    env.static = await startStaticServer();
    env.browser = await launchChromium(null);
  });

  after(async () => {
    await env.browser?.close();
    await env.static?.close();
    await env.gw?.stop();
  });

  /** Connects `lib` over `transport` in a fresh page and exchanges COUNT messages with acks. */
  async function exchange(lib, transport) {
    const page = await pageSessions(env.browser, env.static.url);
    try {
      const s = page.session('s');
      const r = await s.connect({
        lib,
        url: `${env.gw.httpUrl}/sockjs`,
        sockjs: transport,
        headers: { ...CLIENT_AUTH },
        timeoutMs: WAIT,
      });
      assert.ok(r.ok, `connect: ${JSON.stringify(r.error)}`);
      assert.equal(await s.transport(), transport, 'the forced transport is the one in use');
      assert.match(r.connected.headers.server, /^RabbitMQ\//);

      const q = `/queue/${uniqueName('sockjs-browser')}`;
      await s.subscribe('sub-1', q, { ack: 'client-individual', durable: 'false', 'auto-delete': 'true', receipt: 'r-sub' });
      await s.waitReceipt('r-sub', WAIT);
      const expected = Array.from({ length: COUNT }, (_, i) => `${transport} ${i} é ✓ "quoted" \\ back`);
      for (const text of expected) await s.send(q, {}, { text });
      const got = await s.waitMessages('sub-1', COUNT, WAIT);
      assert.deepEqual(got.map((m) => m.body), expected);
      assert.ok(got.every((m) => m.headers.subscription === 'sub-1'));
      for (let i = 0; i < COUNT; i++) await s.ack('sub-1', i, i === COUNT - 1 ? { receipt: 'r-ack' } : {});
      await s.waitReceipt('r-ack', WAIT);

      const bye = await s.disconnect(WAIT);
      assert.equal(bye.callback, true, 'disconnect callback');
      assert.deepEqual(page.errors, []);
    } finally {
      await page.closeAll();
    }
  }

  for (const transport of TRANSPORTS) {
    test(`@stomp/stompjs 7 over SockJS ${transport}`, () => exchange('v7', transport));
  }
  for (const transport of ['websocket', 'xhr-streaming']) {
    test(`stompjs 2.3.3 Stomp.over(new SockJS(url)) over ${transport}`, () => exchange('legacy', transport));
  }
});
