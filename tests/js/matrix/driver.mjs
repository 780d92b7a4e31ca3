// The compatibility matrix's client driver: one STOMP client session per key, behind a small
// JSON-in/JSON-out API, so the same scenario code drives a client in Node and in Chromium (where
// the test calls it through `page.evaluate`). It imports nothing: the libraries come in through
// `createDriver({ StompJs, Stomp, SockJS, WebSocket })`, from npm in Node and from the served
// bundles in the page. Every wait takes a timeout; callbacks are recorded as events.

/** STOMP subprotocols a page's WebSocket offers. */
const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];
/** Default bound for a wait, in ms. */
const DEFAULT_WAIT_MS = 10_000;
/** Methods callable through the driver (and the page bridge). */
export const SESSION_METHODS = [
  'connect', 'subscribe', 'unsubscribe', 'send', 'ack', 'nack', 'begin', 'commit', 'abort',
  'waitMessages', 'messages', 'waitReceipt', 'waitEvent', 'events', 'heartbeats', 'disconnect',
  'close', 'sleep', 'transport',
];

/** Printable ASCII of `size` bytes with a position-dependent pattern. */
export function patternText(size) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const parts = [];
  let len = 0;
  for (let i = 0; len < size; i++) {
    const part = `${alphabet[i % alphabet.length]}${i}.`;
    parts.push(part);
    len += part.length;
  }
  return parts.join('').slice(0, size);
}

/** 32-bit FNV-1a of a string's UTF-16 code units, as 8 hex digits (a cheap body fingerprint). */
export function fingerprint(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const fromHex = (hex) => new Uint8Array((hex.match(/../g) ?? []).map((h) => parseInt(h, 16)));

/** A body spec (`{ text }`, `{ pattern: n }`, `{ hex }`) as a string or bytes. */
function bodyOf(spec = {}) {
  if (spec.hex !== undefined) return { binary: fromHex(spec.hex) };
  if (spec.pattern !== undefined) return { text: patternText(spec.pattern) };
  return { text: spec.text ?? '' };
}

/**
 * A received frame as plain JSON: `body` (text); `hex: true` adds the body's bytes as `hex`
 * (@stomp/stompjs 7 keeps them as `binaryBody`); `hash: true` replaces the body by
 * `{ length, hash }`.
 */
function frameView(frame, { hash = false, hex = false } = {}) {
  if (!frame || typeof frame !== 'object') return { command: null, headers: {}, body: String(frame) };
  const view = { command: frame.command, headers: { ...frame.headers }, body: frame.body ?? '' };
  if (hex && frame.binaryBody) view.hex = toHex(frame.binaryBody);
  if (hash) {
    view.length = view.body.length;
    view.hash = fingerprint(view.body);
    delete view.body;
  }
  return view;
}

/** One client connection and everything it observed. */
class Session {
  constructor(libs) {
    this.libs = libs;
    this.lib = null;
    this.client = null;
    this.socket = null;
    this.log = [];
    this.subs = new Map();
    this.receipts = new Set();
    this.beats = { pings: 0, pongs: 0 };
    this.waiters = new Set();
  }

  /** Re-checks pending waits. */
  wake() {
    for (const check of [...this.waiters]) check();
  }

  /** Records a callback. */
  record(kind, data = {}) {
    this.log.push({ kind, ...data });
    this.wake();
  }

  /** Resolves with `test()`'s first truthy value; rejects after `ms`. */
  until(test, ms, what) {
    const first = test();
    if (first) return Promise.resolve(first);
    return new Promise((resolve, reject) => {
      const check = () => {
        const r = test();
        if (!r) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      this.waiters.add(check);
    });
  }

  /** Counts heart-beats from both libraries' debug lines. */
  debugLine(line) {
    if (line === '>>> PING') this.beats.pings++;
    else if (line === '<<< PONG') this.beats.pongs++;
  }

  /** A WebSocket or a SockJS socket forced to one transport. */
  openSocket(opts) {
    if (opts.sockjs) {
      const sock = new this.libs.SockJS(opts.url, null, {
        transports: [opts.sockjs],
        timeout: opts.timeoutMs ?? DEFAULT_WAIT_MS,
      });
      this.socket = sock;
      return sock;
    }
    const ws = new this.libs.WebSocket(opts.url, SUBPROTOCOLS);
    this.socket = ws;
    return ws;
  }

  /**
   * Connects with `opts = { lib: 'v7'|'legacy', url, sockjs?, headers, heartbeat: {incoming,
   * outgoing}, timeoutMs }`. Resolves `{ ok: true, connected }` or `{ ok: false, error, events }`
   * when an ERROR or a close came first.
   */
  async connect(opts) {
    this.lib = opts.lib;
    if (opts.lib === 'v7') this.connectV7(opts);
    else this.connectLegacy(opts);
    const ms = opts.timeoutMs ?? DEFAULT_WAIT_MS;
    const first = await this.until(
      () => this.log.find((e) => ['connected', 'error', 'close'].includes(e.kind)),
      ms,
      `CONNECTED from ${opts.url}`,
    );
    if (first.kind === 'connected') return { ok: true, connected: first.frame };
    // Let the close that follows an ERROR arrive, so callers see both callbacks.
    await this.until(() => this.log.some((e) => e.kind === 'close'), 5_000, 'close').catch(() => {});
    return { ok: false, error: first, events: this.log.slice() };
  }

  connectV7(opts) {
    const { Client } = this.libs.StompJs;
    const hb = opts.heartbeat ?? { incoming: 0, outgoing: 0 };
    const client = new Client({
      webSocketFactory: () => this.openSocket(opts),
      connectHeaders: { ...opts.headers },
      reconnectDelay: 0,
      heartbeatIncoming: hb.incoming,
      heartbeatOutgoing: hb.outgoing,
      debug: (line) => this.debugLine(line),
    });
    client.onConnect = (f) => this.record('connected', { frame: frameView(f) });
    client.onStompError = (f) => this.record('error', { frame: frameView(f) });
    client.onWebSocketClose = (e) => this.record('close', { code: e?.code ?? null });
    client.onDisconnect = (f) => this.record('disconnect', { frame: frameView(f) });
    client.onUnhandledReceipt = (f) => this.receipt(f);
    client.onUnhandledMessage = (m) => this.record('unhandled-message', { frame: frameView(m) });
    this.client = client;
    client.activate();
  }

  connectLegacy(opts) {
    const Stomp = this.libs.Stomp;
    const client = Stomp.over(this.openSocket(opts));
    const hb = opts.heartbeat ?? { incoming: 0, outgoing: 0 };
    client.heartbeat = { outgoing: hb.outgoing, incoming: hb.incoming };
    client.debug = (line) => this.debugLine(line);
    client.onreceipt = (f) => this.receipt(f);
    this.client = client;
    client.connect(
      { ...opts.headers },
      (f) => this.record('connected', { frame: frameView(f) }),
      (err) => {
        // stompjs 2.3.3 calls the error callback with the ERROR frame, and with a string when
        // the socket closes.
        if (typeof err === 'string') this.record('close', { code: null, reason: err });
        else this.record('error', { frame: frameView(err) });
      },
    );
  }

  receipt(frame) {
    this.receipts.add(frame.headers['receipt-id']);
    this.record('receipt', { frame: frameView(frame) });
  }

  /** Subscribes with an explicit `id`; messages are kept under that id. */
  subscribe(id, destination, headers = {}) {
    const sub = { messages: [], handle: null };
    this.subs.set(id, sub);
    const onMessage = (m) => {
      sub.messages.push(m);
      this.wake();
    };
    sub.handle = this.client.subscribe(destination, onMessage, { ...headers, id });
    return sub.handle.id;
  }

  unsubscribe(id, headers = {}) {
    const sub = this.subs.get(id);
    if (this.lib === 'v7') sub.handle.unsubscribe(headers);
    else this.client.unsubscribe(id);
  }

  /** Sends a body spec (`{ text }`, `{ pattern }`, `{ hex }`). */
  send(destination, headers = {}, spec = {}) {
    const body = bodyOf(spec);
    if (this.lib === 'v7') {
      const frame = { destination, headers };
      if (body.binary) frame.binaryBody = body.binary;
      else frame.body = body.text;
      this.client.publish(frame);
    } else {
      if (body.binary) throw new Error('stompjs 2.3.3 has no binary bodies');
      this.client.send(destination, { ...headers }, body.text);
    }
  }

  message(subId, index) {
    const m = this.subs.get(subId)?.messages[index];
    if (!m) throw new Error(`no message ${index} on ${subId}`);
    return m;
  }

  ack(subId, index, headers = {}) {
    this.message(subId, index).ack({ ...headers });
  }

  nack(subId, index, headers = {}) {
    this.message(subId, index).nack({ ...headers });
  }

  begin(tx) {
    this.client.begin(tx);
  }

  commit(tx) {
    this.client.commit(tx);
  }

  abort(tx) {
    this.client.abort(tx);
  }

  /** The messages on `subId` so far (`opts.hash`: bodies as fingerprints). */
  messages(subId, opts = {}) {
    return (this.subs.get(subId)?.messages ?? []).map((m) => frameView(m, opts));
  }

  /** Resolves with the messages on `subId` once there are at least `n`. */
  async waitMessages(subId, n, ms = DEFAULT_WAIT_MS, opts = {}) {
    await this.until(
      () => (this.subs.get(subId)?.messages.length ?? 0) >= n,
      ms,
      `${n} messages on ${subId} (got ${this.subs.get(subId)?.messages.length ?? 0})`,
    );
    return this.messages(subId, opts);
  }

  async waitReceipt(id, ms = DEFAULT_WAIT_MS) {
    await this.until(() => this.receipts.has(id), ms, `RECEIPT ${id}`);
    return true;
  }

  /** Resolves with the first recorded event of `kind`. */
  waitEvent(kind, ms = DEFAULT_WAIT_MS) {
    return this.until(() => this.log.find((e) => e.kind === kind), ms, `event ${kind}`);
  }

  events() {
    return this.log.slice();
  }

  heartbeats() {
    return { ...this.beats };
  }

  /**
   * Disconnects the way pages do (v7: `deactivate()`, which sends DISCONNECT with a receipt;
   * 2.3.3: `disconnect(callback)`). Resolves `{ callback }`: whether the disconnect callback ran
   * within `ms`.
   */
  async disconnect(ms = DEFAULT_WAIT_MS) {
    if (this.lib === 'v7') {
      const done = this.client.deactivate();
      await this.until(() => this.log.some((e) => e.kind === 'disconnect'), ms, 'disconnect callback')
        .catch(() => {});
      await Promise.race([done, new Promise((r) => setTimeout(r, ms))]);
    } else {
      this.client.disconnect(() => this.record('disconnect', {}));
    }
    return { callback: this.log.some((e) => e.kind === 'disconnect') };
  }

  /** Drops the connection without DISCONNECT (clean-up). */
  async close() {
    if (!this.client) return;
    if (this.lib === 'v7') await this.client.deactivate({ force: true });
    else {
      this.client.ws.onclose = null;
      this.client._cleanUp(); // stops 2.3.3's heart-beat intervals (disconnect() would too)
    }
    // A peer that never closes (e.g. Web-STOMP after a refusal) must not keep the socket alive:
    // `ws` in Node has terminate(); browsers' WebSocket and SockJS have close().
    if (this.socket?.terminate) this.socket.terminate();
    else this.socket?.close?.();
  }

  /** The SockJS transport in use (`websocket`, `xhr-streaming`, …), or null for a WebSocket. */
  transport() {
    return this.socket?.transport ?? null;
  }

  sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
}

/** The driver: sessions by key, created on first use. */
export function createDriver(libs) {
  const sessions = new Map();
  return {
    /** Calls `method(...args)` on session `key`. */
    call(key, method, args = []) {
      if (!SESSION_METHODS.includes(method)) throw new Error(`no driver method ${method}`);
      let s = sessions.get(key);
      if (!s) {
        s = new Session(libs);
        sessions.set(key, s);
      }
      return s[method](...args);
    },
    /** Force-closes every session. */
    async closeAll() {
      const all = [...sessions.values()];
      sessions.clear();
      await Promise.all(all.map((s) => s.close().catch(() => {})));
    },
  };
}
