// The demo page served by `--demo`, driven in Debian's Chromium through playwright-core: it
// connects with no credentials, subscribes to the fanout exchange, and a message sent from the
// page reaches both the page and a separate Node subscriber.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { CLIENT_AUTH, DIRECT_WS, collect, connectStompJs, receiptFor, startGateway, uniqueName } from './harness.mjs';

const CHROMIUM = process.env.STOMPGATE_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const PAGE_WAIT_MS = 15_000;
const FANOUT = '/exchange/FanoutDemandExchange';

const skip = (DIRECT_WS && 'no gateway in direct mode') || (!existsSync(CHROMIUM) && `${CHROMIUM} missing`);

describe('demo page', { skip }, () => {
  test('page connects without credentials and round-trips a fanout message', async (t) => {
    const gw = await startGateway({ t, args: ['--demo'] });
    const html = await (await fetch(`${gw.httpUrl}/`)).text();
    assert.match(html, /id="status"/);
    assert.doesNotMatch(html, /passcode|stompgate-secret/);

    // A Node subscriber on the same exchange sees what the page sends.
    const { client } = await connectStompJs(gw.wsUrl, CLIENT_AUTH);
    t.after(() => client.deactivate({ force: true }));
    const receipt = uniqueName('sub');
    const subscribed = receiptFor(client, receipt);
    const node = collect(client, FANOUT, { receipt });
    await subscribed;

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    t.after(() => browser.close());
    const page = await browser.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`${gw.httpUrl}/`, { timeout: PAGE_WAIT_MS });
    await page.waitForSelector('#status[data-state="connected"]', { timeout: PAGE_WAIT_MS });
    assert.equal(await page.inputValue('#destination'), FANOUT);

    await page.click('#subscribe');
    await page.waitForSelector('#subscriptions li', { timeout: PAGE_WAIT_MS });
    // SUBSCRIBE has no receipt in the page; give the broker a moment to bind the queue.
    await page.waitForTimeout(500);
    const text = `hello from the demo page ${uniqueName('m')}`;
    await page.fill('#message', text);
    await page.click('#send');

    const item = page.locator('#messages li', { hasText: text });
    await item.first().waitFor({ timeout: PAGE_WAIT_MS });
    const fromNode = await node.waitForMatch((m) => m.body === text);
    assert.equal(fromNode.headers.destination, FANOUT);
    assert.equal(await page.textContent('#status'), 'connected');
    assert.deepEqual(pageErrors, []);
  });

  test('without --demo the page is not served', async (t) => {
    const gw = await startGateway({ t });
    const resp = await fetch(`${gw.httpUrl}/`);
    assert.equal(resp.status, 404);
  });
});
