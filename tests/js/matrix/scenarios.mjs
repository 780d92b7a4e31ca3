// The compatibility matrix's scenario list: what stomp.js pages do, written once against the
// driver's session API and run in every cell (broker × transport × client × Node/Chromium).
//
// A scenario is `{ id, title, na(cell, target), run(ctx) }`. `na` returns a reason string when
// the scenario does not apply to a cell (it becomes a footnote in docs/COMPATIBILITY.md), or
// nothing. `run` asserts what the page would rely on and records observations
// (`ctx.observe(key, value)`) that the differential run compares between RabbitMQ's own
// Web-STOMP and stompgate → RabbitMQ. Broker differences are encoded here, not in the runner.

import assert from 'node:assert/strict';

/** Bound for most waits, ms. */
const WAIT = 10_000;
/** How long "nothing more arrives" is watched, ms. */
const QUIET = 400;

/** Why a scenario does not apply; shared so the table's footnotes stay few. */
export const NA = {
  noSelectors: 'RabbitMQ STOMP has no message selectors (`selector` is an ActiveMQ feature).',
  noAuth: 'The ActiveMQ instance runs without authentication (Debian default): a broker refusal cannot be provoked.',
  legacyBinary: 'stompjs 2.3.3 has no binary body API (bodies are strings).',
  sockjsBinary: 'SockJS carries text only: binary bodies need a WebSocket.',
  legacyEscapes: 'stompjs 2.3.3 neither escapes nor unescapes header values (it predates STOMP 1.2 escaping).',
  noAdmin: 'Needs the gateway admin API (`DELETE /connections/{id}`) to drop a session.',
};

/** Connect options for the cell's client, transport and target. */
function connectOptions(ctx, extra = {}) {
  const { cell, target } = ctx;
  return {
    lib: cell.client,
    url: (extra.target ?? target).url(cell.transport),
    sockjs: ctx.sockjs,
    headers: {
      ...ctx.auth,
      host: cell.broker === 'rabbitmq' ? '/' : 'ignored-by-activemq.example',
      'client-id': ctx.name('client'),
      ...(extra.headers ?? {}),
    },
    heartbeat: extra.heartbeat ?? { incoming: 0, outgoing: 0 },
    timeoutMs: WAIT,
  };
}

/** Opens a session `key` and asserts it connected; returns the session API. */
async function open(ctx, key, extra = {}) {
  const s = ctx.session(key);
  const r = await s.connect(connectOptions(ctx, extra));
  assert.ok(r.ok, `connect failed: ${JSON.stringify(r.error)}`);
  return Object.assign(s, { connected: r.connected });
}

/** A unique destination of `kind` (`queue`, `topic`, `exchange`) for the cell's broker. */
function dest(ctx, kind = 'queue') {
  const name = ctx.name(kind);
  if (kind === 'queue') ctx.queues.push(name);
  if (kind === 'exchange') return `/exchange/amq.direct/${name}`;
  return `/${kind}/${name}`;
}

/** Subscribes with a receipt, so messages sent afterwards are routed to it. */
async function subscribe(ctx, s, id, destination, headers = {}) {
  const receipt = ctx.name('sub-receipt');
  await s.subscribe(id, destination, { ...headers, receipt });
  await s.waitReceipt(receipt, WAIT);
}

/** Sends and waits for the broker's receipt (so ordering across sessions is known). */
async function sendConfirmed(ctx, s, destination, headers, body) {
  const receipt = ctx.name('send-receipt');
  await s.send(destination, { ...headers, receipt }, body);
  await s.waitReceipt(receipt, WAIT);
}

/**
 * ACKs message `index` with a receipt and waits for it. (stompjs 2.3.3's `disconnect()` closes
 * the socket right after sending DISCONNECT; over SockJS xhr-streaming, sockjs-client aborts
 * the `xhr_send` still in flight, so an ACK sent just before can be lost in the browser.)
 */
async function ackConfirmed(ctx, s, sub, index) {
  const receipt = ctx.name('ack-receipt');
  await s.ack(sub, index, { receipt });
  await s.waitReceipt(receipt, WAIT);
}

const bodies = (msgs) => msgs.map((m) => m.body);

/** The message fields the differential run compares (ids and names normalised away). */
function normal(m, destination) {
  const keep = ['content-type', 'priority', 'redelivered', 'x-city', 'location'];
  const headers = Object.fromEntries(keep.filter((k) => k in m.headers).map((k) => [k, m.headers[k]]));
  return {
    command: m.command,
    destination: m.headers.destination === destination ? '<dest>' : m.headers.destination,
    headers,
    body: m.body ?? m.hex ?? `${m.length}:${m.hash}`,
  };
}

/**
 * Heart-beats counted while the connection idles for `ms` (after a settling pause: the EOL a
 * broker writes after each frame reaches the client as a heart-beat too, and is not counted).
 */
async function idleBeats(s, ms) {
  await s.sleep(300);
  const before = await s.heartbeats();
  await s.sleep(ms);
  const after = await s.heartbeats();
  return { pings: after.pings - before.pings, pongs: after.pongs - before.pongs };
}

/** Like `idleBeats`, but returns as soon as `n` went each way (or after `ms`). */
async function idleBeatsUntil(s, n, ms) {
  await s.sleep(300);
  const before = await s.heartbeats();
  const deadline = Date.now() + ms;
  for (;;) {
    await s.sleep(250);
    const now = await s.heartbeats();
    const beats = { pings: now.pings - before.pings, pongs: now.pongs - before.pongs };
    if ((beats.pings >= n && beats.pongs >= n) || Date.now() > deadline) return beats;
  }
}

/** Waits `QUIET` ms and returns the messages on `sub`. */
async function settle(s, sub) {
  await s.sleep(QUIET);
  return s.messages(sub);
}

const scenarios = [
  {
    id: 'connect',
    title: 'connect with login/passcode/host + `client-id`',
    async run(ctx) {
      const s = await open(ctx, 'c');
      const h = s.connected.headers;
      assert.equal(s.connected.command, 'CONNECTED');
      assert.equal(h.version, ctx.cell.client === 'v7' ? '1.2' : '1.1');
      assert.match(h.server ?? '', ctx.cell.broker === 'rabbitmq' ? /^RabbitMQ\// : /^ActiveMQ\//);
      ctx.observe('connected', { version: h.version, server: h.server?.split('/')[0], hb: h['heart-beat'] });
      await s.close();
    },
  },
  {
    id: 'refusal',
    title: 'connect error callback on refusal (broker ERROR forwarded)',
    na: (cell) => (cell.broker === 'activemq' ? NA.noAuth : undefined),
    async run(ctx) {
      const s = ctx.session('refused');
      const opts = ctx.refuse
        ? connectOptions(ctx, { target: ctx.refuse })
        : connectOptions(ctx, { headers: { passcode: 'not-the-password' } });
      const r = await s.connect(opts);
      assert.equal(r.ok, false, 'the connection must be refused');
      const kinds = r.events.map((e) => e.kind);
      ctx.observe('callbacks', kinds);
      assert.equal(r.error.kind, 'error', `the error callback must get the ERROR frame (saw ${kinds})`);
      assert.equal(r.error.frame.command, 'ERROR');
      const { headers, body } = r.error.frame;
      // RabbitMQ: `message:Bad CONNECT`, body `Access refused for user '…'`.
      assert.match(`${headers.message ?? ''}\n${body}`, /access refused/i);
      ctx.observe('error', { message: headers.message, body });
      assert.ok(kinds.includes('close'), 'the socket closes after the ERROR');
    },
  },
  {
    id: 'drop',
    title: 'error callback on a later drop (session closed by the gateway admin API)',
    na: (cell, target) => (target.kind !== 'gateway' ? NA.noAdmin : undefined),
    async run(ctx) {
      await ctx.drop.exclusive(async (gw) => {
        const before = await ctx.drop.ids(gw);
        const s = await open(ctx, 'dropped', { target: gw });
        const q = dest(ctx);
        await subscribe(ctx, s, 'sub-drop', q);
        const id = await ctx.drop.newId(gw, before);
        const resp = await fetch(`${gw.adminUrl}/connections/${id}?reason=matrix`, {
          method: 'DELETE',
          headers: gw.adminHeaders,
        });
        assert.equal(resp.status, 202);
        const err = await s.waitEvent('error', WAIT);
        assert.equal(err.frame.command, 'ERROR');
        assert.match(err.frame.headers.message, /closed by operator/);
        await s.waitEvent('close', WAIT);
      });
    },
  },
  {
    id: 'heartbeat',
    title: 'heart-beats flow both ways (RabbitMQ 1000/1000; ActiveMQ 1000 out / 2000 in)',
    async run(ctx) {
      // ActiveMQ writes its first heart-beat late (2 s after CONNECTED for a 1000 ms interval,
      // 3 s for 2000 ms): with `incoming: 1000` that lands right on stomp.js's 2×interval
      // deadline and the client sometimes drops a healthy connection. Pages talking to
      // ActiveMQ should ask for 2000 ms or more; so does this scenario.
      const incoming = ctx.cell.broker === 'activemq' ? 2000 : 1000;
      const s = await open(ctx, 'hb', { heartbeat: { incoming, outgoing: 1000 } });
      const hb = s.connected.headers['heart-beat'];
      ctx.observe('connected heart-beat', hb);
      assert.equal(hb, `${incoming},1000`);
      // At least 2 heart-beats each way while idle (bounded wait).
      const beats = await idleBeatsUntil(s, 2, 8_000);
      const detail = JSON.stringify({ ...beats, events: (await s.events()).map((e) => e.kind) });
      ctx.observe('flowing', beats.pings >= 2 && beats.pongs >= 2);
      assert.ok(beats.pings >= 2, `client sent too few heart-beats: ${detail}`);
      assert.ok(beats.pongs >= 2, `client received too few heart-beats: ${detail}`);
      const q = dest(ctx);
      await subscribe(ctx, s, 'sub-hb', q);
      await s.send(q, {}, { text: 'still alive' });
      assert.deepEqual(bodies(await s.waitMessages('sub-hb', 1, WAIT)), ['still alive']);
      assert.ok(!(await s.events()).some((e) => e.kind === 'close'), 'no close after heart-beats');
      await s.close();
    },
  },
  {
    id: 'heartbeat-zero',
    title: 'heart-beats 0/0: none negotiated, none sent',
    async run(ctx) {
      const s = await open(ctx, 'hb0', { heartbeat: { incoming: 0, outgoing: 0 } });
      const hb = s.connected.headers['heart-beat'];
      ctx.observe('connected heart-beat', hb);
      assert.equal(hb, '0,0');
      assert.deepEqual(await idleBeats(s, 2_200), { pings: 0, pongs: 0 });
      await s.close();
    },
  },
  {
    id: 'heartbeat-asymmetric',
    title: 'heart-beats 1000 out / 2000 in: CONNECTED answers 2000,1000',
    async run(ctx) {
      const s = await open(ctx, 'hba', { heartbeat: { incoming: 2000, outgoing: 1000 } });
      const hb = s.connected.headers['heart-beat'];
      ctx.observe('connected heart-beat', hb);
      // Both brokers echo the client's pair swapped (what they will send, what they expect).
      assert.equal(hb, '2000,1000');
      await s.close();
    },
  },
  {
    id: 'send-json',
    title: 'send with custom headers (`priority`) and a JSON body; subscribe with explicit `id`',
    async run(ctx) {
      const s = await open(ctx, 'json');
      const q = dest(ctx);
      await subscribe(ctx, s, 'my-sub-1', q);
      const payload = { city: 'Zürich', n: [1, 2, 3], nested: { ok: true } };
      await s.send(q, { priority: '7', 'content-type': 'application/json', 'x-city': 'Zürich' }, {
        text: JSON.stringify(payload),
      });
      const [m] = await s.waitMessages('my-sub-1', 1, WAIT);
      assert.deepEqual(JSON.parse(m.body), payload);
      assert.equal(m.headers.subscription, 'my-sub-1');
      assert.equal(m.headers.destination, q);
      assert.equal(m.headers.priority, '7');
      assert.equal(m.headers['content-type'], 'application/json');
      assert.equal(m.headers['x-city'], 'Zürich');
      ctx.observe('message', normal(m, q));
      await s.close();
    },
  },
  {
    id: 'ack-auto',
    title: '`ack: auto`: delivered once, nothing redelivered after reconnecting',
    async run(ctx) {
      const q = dest(ctx);
      const a = await open(ctx, 'auto-a');
      await subscribe(ctx, a, 's', q, { ack: 'auto' });
      for (const b of ['a1', 'a2', 'a3']) await a.send(q, {}, { text: b });
      assert.deepEqual(bodies(await a.waitMessages('s', 3, WAIT)), ['a1', 'a2', 'a3']);
      await a.disconnect(WAIT);
      const b = await open(ctx, 'auto-b');
      await subscribe(ctx, b, 's', q, { ack: 'auto' });
      await b.send(q, {}, { text: 'marker' });
      await b.waitMessages('s', 1, WAIT);
      const got = bodies(await settle(b, 's'));
      ctx.observe('after reconnect', got);
      assert.deepEqual(got, ['marker']);
      await b.close();
    },
  },
  {
    id: 'ack-client',
    title: '`ack: client` with `message.ack()` (cumulative)',
    async run(ctx) {
      const q = dest(ctx);
      const a = await open(ctx, 'client-a');
      await subscribe(ctx, a, 's', q, { ack: 'client' });
      for (const b of ['c1', 'c2', 'c3']) await a.send(q, {}, { text: b });
      assert.deepEqual(bodies(await a.waitMessages('s', 3, WAIT)), ['c1', 'c2', 'c3']);
      await ackConfirmed(ctx, a, 's', 1); // acknowledges c1 and c2
      await a.disconnect(WAIT);
      const b = await open(ctx, 'client-b');
      await subscribe(ctx, b, 's', q, { ack: 'auto' });
      await b.waitMessages('s', 1, WAIT);
      const got = await settle(b, 's');
      ctx.observe('redelivered', got.map((m) => normal(m, q)));
      assert.deepEqual(bodies(got), ['c3']);
      await b.close();
    },
  },
  {
    id: 'ack-client-individual',
    title: '`ack: client-individual` with `message.ack()`',
    async run(ctx) {
      const q = dest(ctx);
      const a = await open(ctx, 'ind-a');
      await subscribe(ctx, a, 's', q, { ack: 'client-individual' });
      for (const b of ['i1', 'i2', 'i3']) await a.send(q, {}, { text: b });
      assert.deepEqual(bodies(await a.waitMessages('s', 3, WAIT)), ['i1', 'i2', 'i3']);
      await ackConfirmed(ctx, a, 's', 1); // i2 only
      await a.disconnect(WAIT);
      const b = await open(ctx, 'ind-b');
      await subscribe(ctx, b, 's', q, { ack: 'auto' });
      await b.waitMessages('s', 2, WAIT);
      const got = await settle(b, 's');
      ctx.observe('redelivered', got.map((m) => normal(m, q)));
      assert.deepEqual(bodies(got), ['i1', 'i3']);
      await b.close();
    },
  },
  {
    id: 'nack',
    title: '`message.nack()` (RabbitMQ requeues to the same consumer; ActiveMQ does not)',
    async run(ctx) {
      const q = dest(ctx);
      const s = await open(ctx, 'nack');
      await subscribe(ctx, s, 's', q, { ack: 'client-individual' });
      await s.send(q, {}, { text: 'refuse me' });
      await s.waitMessages('s', 1, WAIT);
      await s.nack('s', 0);
      if (ctx.cell.broker === 'rabbitmq') {
        const [, again] = await s.waitMessages('s', 2, WAIT);
        assert.equal(again.body, 'refuse me');
        assert.equal(again.headers.redelivered, 'true');
        await s.ack('s', 1);
      } else {
        // ActiveMQ: a NACKed message is not redelivered to this consumer.
        assert.equal((await settle(s, 's')).length, 1);
      }
      const got = await settle(s, 's');
      ctx.observe('deliveries', got.map((m) => normal(m, q)));
      await s.close();
    },
  },
  {
    id: 'selector',
    title: "selector `location = 'Europe'`",
    na: (cell) => (cell.broker === 'rabbitmq' ? NA.noSelectors : undefined),
    async run(ctx) {
      const q = dest(ctx);
      const s = await open(ctx, 'sel');
      await subscribe(ctx, s, 's', q, { selector: "location = 'Europe'" });
      await s.send(q, { location: 'Asia' }, { text: 'tokyo' });
      await s.send(q, { location: 'Europe' }, { text: 'paris' });
      await s.send(q, { location: 'Europe' }, { text: 'rome' });
      await s.waitMessages('s', 2, WAIT);
      const got = await settle(s, 's');
      assert.deepEqual(bodies(got), ['paris', 'rome']);
      assert.ok(got.every((m) => m.headers.location === 'Europe'));
      await s.close();
    },
  },
  {
    id: 'unsubscribe',
    title: 'unsubscribe stops deliveries',
    async run(ctx) {
      const topic = dest(ctx, 'topic');
      const s = await open(ctx, 'unsub');
      await subscribe(ctx, s, 'gone', topic);
      await subscribe(ctx, s, 'kept', topic);
      await s.send(topic, {}, { text: 'before' });
      await s.waitMessages('gone', 1, WAIT);
      await s.waitMessages('kept', 1, WAIT);
      await s.unsubscribe('gone');
      await sendConfirmed(ctx, s, topic, {}, { text: 'after' });
      await s.waitMessages('kept', 2, WAIT);
      const gone = bodies(await settle(s, 'gone'));
      ctx.observe('unsubscribed got', gone);
      assert.deepEqual(gone, ['before']);
      assert.deepEqual(bodies(await s.messages('kept')), ['before', 'after']);
      await s.close();
    },
  },
  {
    id: 'tx-send',
    title: 'transaction begin/commit/abort with sends (aborted sends never arrive)',
    async run(ctx) {
      const q = dest(ctx);
      const s = await open(ctx, 'tx');
      await subscribe(ctx, s, 's', q);
      await s.begin('tx-1');
      await s.send(q, { transaction: 'tx-1' }, { text: 't1' });
      await s.send(q, { transaction: 'tx-1' }, { text: 't2' });
      assert.deepEqual(await settle(s, 's'), [], 'nothing before COMMIT');
      await s.commit('tx-1');
      await s.waitMessages('s', 2, WAIT);
      await s.begin('tx-2');
      await s.send(q, { transaction: 'tx-2' }, { text: 'aborted' });
      await s.abort('tx-2');
      await s.send(q, {}, { text: 'outside' });
      await s.waitMessages('s', 3, WAIT);
      const got = bodies(await settle(s, 's'));
      ctx.observe('received', got);
      assert.deepEqual(got, ['t1', 't2', 'outside']);
      await s.close();
    },
  },
  {
    id: 'tx-ack',
    title: 'acks inside transactions (committed ack sticks, aborted ack does not)',
    async run(ctx) {
      const q = dest(ctx);
      const a = await open(ctx, 'txa');
      await subscribe(ctx, a, 's', q, { ack: 'client-individual' });
      await a.send(q, {}, { text: 'keep-acked' });
      await a.send(q, {}, { text: 'ack-aborted' });
      await a.waitMessages('s', 2, WAIT);
      await a.begin('tx-ok');
      await a.ack('s', 0, { transaction: 'tx-ok' });
      await a.commit('tx-ok');
      await a.begin('tx-no');
      await a.ack('s', 1, { transaction: 'tx-no' });
      await a.abort('tx-no');
      // ActiveMQ may redeliver the un-acked message to this consumer right after ABORT.
      const early = bodies(await settle(a, 's')).slice(2);
      await a.close();
      const b = await open(ctx, 'txb');
      await subscribe(ctx, b, 's', q);
      await sendConfirmed(ctx, b, q, {}, { text: 'marker' });
      await b.waitMessages('s', 1, WAIT);
      const late = bodies(await settle(b, 's'));
      const again = [...early, ...late].filter((x) => x !== 'marker');
      ctx.observe('redelivered', again);
      assert.ok(again.includes('ack-aborted'), `the ack in the aborted transaction must not stick (${again})`);
      assert.ok(!again.includes('keep-acked'), 'the committed ack sticks');
      await b.close();
    },
  },
  {
    id: 'receipts',
    title: 'receipts for SEND and SUBSCRIBE',
    async run(ctx) {
      const s = await open(ctx, 'rcpt');
      const q = dest(ctx);
      await s.subscribe('s', q, { receipt: 'r-sub-1' });
      await s.send(q, { receipt: 'r-send-1' }, { text: 'with receipt' });
      await s.waitReceipt('r-sub-1', WAIT);
      await s.waitReceipt('r-send-1', WAIT);
      await s.waitMessages('s', 1, WAIT);
      const ids = (await s.events()).filter((e) => e.kind === 'receipt').map((e) => e.frame.headers['receipt-id']);
      ctx.observe('receipt ids', ids);
      assert.deepEqual(ids, ['r-sub-1', 'r-send-1']);
      await s.close();
    },
  },
  {
    id: 'disconnect',
    title: 'disconnect with its callback',
    async run(ctx) {
      const s = await open(ctx, 'bye');
      const r = await s.disconnect(WAIT);
      ctx.observe('callback', r.callback);
      assert.equal(r.callback, true, 'the disconnect callback ran');
      if (ctx.cell.client === 'v7') {
        // @stomp/stompjs 7 calls onDisconnect with the RECEIPT of its DISCONNECT.
        const ev = await s.waitEvent('disconnect', WAIT);
        assert.equal(ev.frame.command, 'RECEIPT');
      }
    },
  },
  {
    id: 'binary',
    title: 'binary body (`binaryBody`, all 256 byte values)',
    na: (cell) =>
      (cell.client === 'legacy' && NA.legacyBinary) || (cell.transport.startsWith('sockjs') && NA.sockjsBinary) || undefined,
    async run(ctx) {
      const s = await open(ctx, 'bin');
      const q = dest(ctx);
      await subscribe(ctx, s, 's', q);
      const hex = Array.from({ length: 512 }, (_, i) => ((i * 7 + 3) % 256).toString(16).padStart(2, '0')).join('');
      await s.send(q, { 'content-type': 'application/octet-stream' }, { hex });
      const [m] = await s.waitMessages('s', 1, WAIT, { hex: true });
      assert.equal(m.hex, hex, 'bytes arrive unchanged as a binary body');
      delete m.body;
      ctx.observe('message', normal(m, q));
      await s.close();
    },
  },
  {
    id: 'utf8-headers',
    title: 'UTF-8 header values and body',
    async run(ctx) {
      const s = await open(ctx, 'utf8');
      const q = dest(ctx);
      await subscribe(ctx, s, 's', q);
      const value = 'Zürich ✓ 日本語 😀';
      await s.send(q, { 'x-city': value }, { text: `body ${value}` });
      const [m] = await s.waitMessages('s', 1, WAIT);
      assert.equal(m.headers['x-city'], value);
      assert.equal(m.body, `body ${value}`);
      ctx.observe('message', normal(m, q));
      await s.close();
    },
  },
  {
    id: 'header-escapes',
    title: 'header values needing escapes (`:` and newline)',
    na: (cell) => (cell.client === 'legacy' ? NA.legacyEscapes : undefined),
    async run(ctx) {
      const s = await open(ctx, 'esc');
      const q = dest(ctx);
      await subscribe(ctx, s, 's', q);
      const value = 'key:value\nsecond line: ü';
      await s.send(q, { 'x-city': value }, { text: 'escaped' });
      const [m] = await s.waitMessages('s', 1, WAIT);
      assert.equal(m.headers['x-city'], value);
      ctx.observe('message', normal(m, q));
      await s.close();
    },
  },
  {
    id: 'large-body',
    title: '1 MiB body',
    async run(ctx) {
      const s = await open(ctx, 'big');
      const q = dest(ctx);
      await subscribe(ctx, s, 's', q);
      const size = 1024 * 1024;
      await s.send(q, {}, { pattern: size });
      const [m] = await s.waitMessages('s', 1, 30_000, { hash: true });
      const expected = await ctx.expectPattern(size);
      assert.equal(m.length, size);
      assert.equal(m.hash, expected);
      ctx.observe('message', normal(m, q));
      await s.close();
    },
  },
  {
    id: 'order-500',
    title: '500 messages in order',
    async run(ctx) {
      const s = await open(ctx, 'order');
      const q = dest(ctx);
      await subscribe(ctx, s, 's', q);
      const expected = Array.from({ length: 500 }, (_, i) => `m${i}`);
      for (const text of expected) await s.send(q, {}, { text });
      const got = await s.waitMessages('s', 500, 60_000);
      assert.deepEqual(bodies(got), expected);
      ctx.observe('count', got.length);
      await s.close();
    },
  },
  {
    id: 'destinations',
    title: 'destination kinds (RabbitMQ `/queue/` `/topic/` `/exchange/`; ActiveMQ `/queue/` `/topic/`)',
    async run(ctx) {
      const kinds = ctx.cell.broker === 'rabbitmq' ? ['queue', 'topic', 'exchange'] : ['queue', 'topic'];
      const s = await open(ctx, 'dest');
      const seen = {};
      for (const kind of kinds) {
        const d = dest(ctx, kind);
        await subscribe(ctx, s, `s-${kind}`, d);
        await s.send(d, {}, { text: `to ${kind}` });
        const [m] = await s.waitMessages(`s-${kind}`, 1, WAIT);
        assert.equal(m.body, `to ${kind}`);
        assert.equal(m.headers.destination, d);
        seen[kind] = normal(m, d);
      }
      ctx.observe('messages', seen);
      await s.close();
    },
  },
];

/** Every scenario, in table order. */
export const SCENARIOS = scenarios;

/** Why `scenario` does not apply to `cell` on `target` (or undefined when it does). */
export function notApplicable(scenario, cell, target) {
  return scenario.na?.(cell, target);
}
