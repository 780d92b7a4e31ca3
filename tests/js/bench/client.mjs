// One load client: a @stomp/stompjs 7 `Client` that either publishes to one destination as fast
// as its pair's window allows, or subscribes to it and records publish-to-delivery latency.
// Every row of the comparison runs this same code; only the socket under the Client differs
// (`ws` for ws:// URLs, TcpWebSocket for tcp:// ones).
//
// Run as a worker thread (node-load.mjs starts one per client, so that no two clients share a
// JavaScript thread) or called in the orchestrator's own thread (`--in-process`, to measure what
// sharing one thread costs). Either way it talks to the orchestrator over a MessagePort:
//   in:  {type:'go'}      a publisher starts sending
//        {type:'finish'}  disconnect, then reply {type:'result', ...} and close the port
//   out: {type:'ready', extensions}  connected (a subscriber: and its SUBSCRIBE has its RECEIPT)
//        {type:'error', text}
// Counters the orchestrator reads while the run goes are in a SharedArrayBuffer (see SLOT).

import { isMainThread, parentPort, workerData } from 'node:worker_threads';

import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

import { TcpWebSocket } from './tcp-websocket.mjs';

/** Int32 slots of the shared counters: one phase word, then SLOTS_PER_PAIR per pair. */
export const SLOT = {
  /** 0 warm-up, 1 measuring, 2 publishers stop. */
  PHASE: 0,
  /** First pair's slots start here. */
  PAIRS: 1,
  SLOTS_PER_PAIR: 3,
  /** Offsets within a pair: messages sent, deliveries, delivery count that wakes the publisher. */
  SENT: 0,
  DELIVERED: 1,
  WAKE_AT: 2,
};
export const PHASE = { WARMUP: 0, MEASURING: 1, STOP: 2 };

/** Digits of the send timestamp (process.hrtime nanoseconds) at the start of every body. */
const STAMP_DIGITS = 20;
/** Subprotocols a browser's stomp.js offers. */
const STOMP_SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];
/** Sends before a publisher yields to its event loop (to read, and to let writes drain). */
const SEND_BATCH = 64;
/** A publisher blocked by its window re-checks this often even without a wake-up, ms. */
const WINDOW_POLL_MS = 50;

/** The WebSocket (or WebSocket-shaped TCP socket) for `url`. */
function openSocket(url, deflate) {
  const u = new URL(url);
  if (u.protocol === 'tcp:') return new TcpWebSocket(u.hostname, Number(u.port));
  // `ws` offers permessage-deflate unless told not to, as browsers do; RabbitMQ's Web-STOMP
  // accepts it, the gateway does not. `deflate: false` stops the offer.
  return new WebSocket(url, STOMP_SUBPROTOCOLS, { perMessageDeflate: deflate });
}

/** Base index of pair `i`'s slots. */
function pairBase(i) {
  return SLOT.PAIRS + i * SLOT.SLOTS_PER_PAIR;
}

/**
 * Connects a stompjs Client; calls `onReady(client, extensions)` once STOMP is connected, with
 * the WebSocket extensions the server accepted ('' for none or TCP).
 */
function connect(cfg, port, onReady) {
  let closing = false;
  let socket = null;
  const fail = (text) => port.postMessage({ type: 'error', text: `${cfg.role}${cfg.pair}: ${text}` });
  const client = new Client({
    webSocketFactory: () => (socket = openSocket(cfg.url, cfg.deflate)),
    connectHeaders: { login: cfg.login, passcode: cfg.passcode },
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    reconnectDelay: 0,
    debug: () => {},
    onConnect: () => onReady(client, socket?.extensions || ''),
    onStompError: (f) => fail(`ERROR frame: ${f.headers.message || ''} ${f.body || ''}`.trim()),
    onWebSocketError: (e) => fail(`socket error: ${e.message || e.error?.message || 'unknown'}`),
    onWebSocketClose: (e) => {
      if (!closing) fail(`connection closed (code ${e.code})`);
    },
  });
  client.activate();
  return {
    client,
    stop: async () => {
      closing = true;
      await client.deactivate();
    },
  };
}

/** Publishes stamped bodies to cfg.destination while the pair's window has room. */
function runPublisher(cfg, port, shared) {
  const base = pairBase(cfg.pair);
  const pad = 'x'.repeat(Math.max(0, cfg.bodyBytes - STAMP_DIGITS));
  // Resume when this many deliveries have freed room, so that a blocked publisher is woken once
  // per batch rather than once per delivery.
  const refill = Math.max(1, Math.min(SEND_BATCH, Math.floor(cfg.window / 4)));
  let client = null;
  let started = false;

  const pump = () => {
    if (Atomics.load(shared, SLOT.PHASE) >= PHASE.STOP || !client.connected) return;
    for (let n = 0; n < SEND_BATCH; n++) {
      const sent = shared[base + SLOT.SENT];
      if (sent - Atomics.load(shared, base + SLOT.DELIVERED) >= cfg.window) {
        void waitForRoom(sent - cfg.window + refill).then(pump);
        return;
      }
      const stamp = process.hrtime.bigint().toString().padStart(STAMP_DIGITS, '0');
      client.publish({ destination: cfg.destination, body: stamp + pad });
      Atomics.store(shared, base + SLOT.SENT, sent + 1);
    }
    setImmediate(pump);
  };

  // Waits until the pair's deliveries reach `target` (the subscriber notifies), or a poll period.
  const waitForRoom = async (target) => {
    const at = base + SLOT.DELIVERED;
    Atomics.store(shared, base + SLOT.WAKE_AT, target);
    for (;;) {
      const seen = Atomics.load(shared, at);
      if (seen >= target || Atomics.load(shared, SLOT.PHASE) >= PHASE.STOP) break;
      const w = Atomics.waitAsync(shared, at, seen, WINDOW_POLL_MS);
      if (w.async) await w.value;
    }
    Atomics.store(shared, base + SLOT.WAKE_AT, 0);
  };

  const conn = connect(cfg, port, (c, extensions) => {
    client = c;
    port.postMessage({ type: 'ready', extensions });
  });
  return {
    onMessage: (m) => {
      if (m.type === 'go' && !started && client) {
        started = true;
        pump();
      }
    },
    finish: async () => ({ sent: shared[base + SLOT.SENT] }),
    stop: conn.stop,
  };
}

/** Subscribes to cfg.destination; counts deliveries and records latency while measuring. */
function runSubscriber(cfg, port, shared) {
  const base = pairBase(cfg.pair);
  const latenciesUs = [];
  const onMessage = (msg) => {
    const now = process.hrtime.bigint();
    const delivered = Atomics.add(shared, base + SLOT.DELIVERED, 1) + 1;
    const wakeAt = Atomics.load(shared, base + SLOT.WAKE_AT);
    if (wakeAt !== 0 && delivered >= wakeAt) Atomics.notify(shared, base + SLOT.DELIVERED);
    if (Atomics.load(shared, SLOT.PHASE) === PHASE.MEASURING) {
      latenciesUs.push(Number(now - BigInt(msg.body.slice(0, STAMP_DIGITS))) / 1000);
    }
  };
  const conn = connect(cfg, port, (client, extensions) => {
    const receipt = `sub-${cfg.pair}`;
    client.watchForReceipt(receipt, () => port.postMessage({ type: 'ready', extensions }));
    client.subscribe(cfg.destination, onMessage, { receipt, ack: 'auto' });
  });
  return {
    onMessage: () => {},
    finish: async () => ({ latenciesUs: Float64Array.from(latenciesUs) }),
    stop: conn.stop,
  };
}

/**
 * Runs one client on `port` (cfg: role 'pub'|'sub', pair, url, login, passcode, destination,
 * bodyBytes, window, deflate; shared: Int32Array over the SharedArrayBuffer).
 */
export function runClient(cfg, port, shared) {
  const role = cfg.role === 'pub' ? runPublisher(cfg, port, shared) : runSubscriber(cfg, port, shared);
  port.on('message', async (m) => {
    if (m.type !== 'finish') {
      role.onMessage(m);
      return;
    }
    const result = await role.finish();
    await role.stop().catch(() => {});
    port.postMessage({ type: 'result', ...result });
    port.close();
  });
}

if (!isMainThread && workerData?.bench === 'stompgate-node-load') {
  const { cfg, port, sab } = workerData;
  runClient(cfg, port, new Int32Array(sab));
  // The worker's own parentPort is unused: everything goes through `port`.
  parentPort?.unref();
}
