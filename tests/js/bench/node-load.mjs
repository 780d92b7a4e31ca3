#!/usr/bin/env node
// Throughput and latency of Node STOMP clients (@stomp/stompjs 7) on one load: P publisher /
// subscriber pairs, one destination each, bodies of B bytes that start with a send timestamp,
// publishers as fast as a window of undelivered messages per pair allows. The issue's own load
// (issue 8: "4 publisher/subscriber pairs, 100 B bodies, Node clients") is the default.
//
//   node tests/js/bench/node-load.mjs --url ws://127.0.0.1:15674/ws [--login L --passcode P]
//     [--pairs 4] [--secs 5] [--warmup 1] [--window 1000] [--body-bytes 100]
//     [--watch NAME=PID ...] [--in-process] [--no-deflate] [--label TEXT] [--json]
//
// URLs: ws://HOST:PORT/PATH (the `ws` package) or tcp://HOST:PORT (STOMP over plain TCP through
// a WebSocket-shaped adapter); the client code is the same. Each client runs in its own worker
// thread unless --in-process (all in this thread). Over ws:// the client offers
// permessage-deflate, as `ws` and browsers do by default, unless --no-deflate; the report says
// whether the server took it. Timeline: connect all, subscribers wait for their SUBSCRIBE's
// RECEIPT, publishers start, --warmup seconds, then the measured --secs window, then publishers
// stop and the run drains (bounded) to count lost messages.
// Throughput = deliveries inside the window / its length; latency = deliveries inside it.
// --watch NAME=PID samples that process's utime+stime (/proc/PID/stat) over the window; the
// first watched process also gets CPU µs per delivered message. This process is always watched
// as "clients", and the whole machine as "host" (busy cores, from /proc/stat). Every wait is
// bounded; the process exits within about a minute whatever happens.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';

import { PHASE, SLOT, runClient } from './client.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Time allowed for every client to connect (and subscribe), ms. */
const READY_TIMEOUT_MS = 15_000;
/** Time allowed after the window for in-flight messages to arrive, ms. */
const DRAIN_TIMEOUT_MS = 5_000;
/** Time allowed for clients to disconnect and report, ms. */
const FINISH_TIMEOUT_MS = 10_000;
/** /proc/PID/stat clock ticks per second (CLK_TCK; 100 on Linux). */
const CLOCK_TICKS_PER_SEC = 100;
/** Error texts kept for the report. */
const MAX_ERROR_SAMPLES = 5;

function parseArgs(argv) {
  const a = {
    url: '', login: 'stompgate', passcode: 'stompgate-secret', pairs: 4, secs: 5, warmup: 1,
    window: 1000, bodyBytes: 100, deflate: true, watch: [], inProcess: false, label: '', json: false,
  };
  const num = (v, name) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} wants a positive number, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} wants a value`);
      return argv[++i];
    };
    switch (k) {
      case '--url': a.url = v(); break;
      case '--login': a.login = v(); break;
      case '--passcode': a.passcode = v(); break;
      case '--pairs': a.pairs = num(v(), 'pairs'); break;
      case '--secs': a.secs = num(v(), 'secs'); break;
      case '--warmup': a.warmup = Number(v()); break;
      case '--window': a.window = num(v(), 'window'); break;
      case '--body-bytes': a.bodyBytes = num(v(), 'body-bytes'); break;
      case '--watch': {
        const [name, pid] = v().split('=');
        a.watch.push({ name, pid: num(pid, 'watch PID') });
        break;
      }
      case '--in-process': a.inProcess = true; break;
      case '--no-deflate': a.deflate = false; break;
      case '--label': a.label = v(); break;
      case '--json': a.json = true; break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  if (!a.url) throw new Error('--url is required (ws://HOST:PORT/PATH or tcp://HOST:PORT)');
  const host = new URL(a.url).hostname;
  if (host !== '127.0.0.1' && host !== 'localhost') throw new Error(`loopback only: ${a.url}`);
  return a;
}

/** utime+stime of PID in seconds, or null if it cannot be read. */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_SEC;
  } catch {
    return null;
  }
}

/** CPU seconds all cores of this machine spent busy (not idle or waiting for I/O), or null. */
function hostBusySeconds() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((x, y) => x + y, 0);
    return (total - f[3] - f[4]) / CLOCK_TICKS_PER_SEC;
  } catch {
    return null;
  }
}

/** Starts one client (worker thread or in this thread); returns its port and a kill switch. */
function startClient(cfg, sab, inProcess) {
  const { port1, port2 } = new MessageChannel();
  if (inProcess) {
    runClient(cfg, port2, new Int32Array(sab));
    return { port: port1, kill: () => port1.close() };
  }
  const worker = new Worker(path.join(here, 'client.mjs'), {
    workerData: { bench: 'stompgate-node-load', cfg, port: port2, sab },
    transferList: [port2],
  });
  return { port: port1, worker, kill: () => worker.terminate() };
}

/** Resolves once `n` messages of `type` arrived on the clients' ports, or rejects at `ms`. */
function waitFor(clients, type, ms, onEach = () => {}) {
  return new Promise((resolve, reject) => {
    let left = clients.length;
    const timer = setTimeout(() => reject(new Error(`${left} clients sent no '${type}' in ${ms} ms`)), ms);
    for (const c of clients) {
      c.port.on('message', (m) => {
        if (m.type !== type) return;
        onEach(c, m);
        if (--left === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
  });
}

function percentile(sorted, q) {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
}

async function run(a) {
  const tag = `${process.pid}.${Date.now().toString(36)}`;
  const sab = new SharedArrayBuffer(4 * (SLOT.PAIRS + a.pairs * SLOT.SLOTS_PER_PAIR));
  const shared = new Int32Array(sab);
  const errors = [];
  let errorCount = 0;
  const clients = [];
  for (let pair = 0; pair < a.pairs; pair++) {
    for (const role of ['sub', 'pub']) {
      const cfg = {
        role, pair, url: a.url, login: a.login, passcode: a.passcode, window: a.window,
        bodyBytes: a.bodyBytes, deflate: a.deflate, destination: `/topic/stompgate-node.${tag}.${pair}`,
      };
      const c = { role, ...startClient(cfg, sab, a.inProcess) };
      c.port.on('message', (m) => {
        if (m.type !== 'error') return;
        errorCount++;
        if (errors.length < MAX_ERROR_SAMPLES) errors.push(m.text);
      });
      clients.push(c);
    }
  }
  const pairTotals = () => {
    let sent = 0, delivered = 0, lost = 0;
    for (let i = 0; i < a.pairs; i++) {
      const s = Atomics.load(shared, SLOT.PAIRS + i * SLOT.SLOTS_PER_PAIR + SLOT.SENT);
      const d = Atomics.load(shared, SLOT.PAIRS + i * SLOT.SLOTS_PER_PAIR + SLOT.DELIVERED);
      sent += s; delivered += d; lost += Math.max(0, s - d);
    }
    return { sent, delivered, lost };
  };

  try {
    const extensions = new Set();
    await waitFor(clients, 'ready', READY_TIMEOUT_MS, (c, m) => extensions.add(m.extensions || 'none'));
    for (const c of clients) if (c.role === 'pub') c.port.postMessage({ type: 'go' });
    await sleep(a.warmup * 1000);

    const watched = [...a.watch, { name: 'clients', pid: process.pid }];
    const host0 = hostBusySeconds();
    const cpu0 = watched.map((w) => cpuSeconds(w.pid));
    const d0 = pairTotals().delivered;
    const t0 = process.hrtime.bigint();
    Atomics.store(shared, SLOT.PHASE, PHASE.MEASURING);
    await sleep(a.secs * 1000);
    Atomics.store(shared, SLOT.PHASE, PHASE.STOP);
    const t1 = process.hrtime.bigint();
    const d1 = pairTotals().delivered;
    const cpu1 = watched.map((w) => cpuSeconds(w.pid));
    const host1 = hostBusySeconds();
    const windowSecs = Number(t1 - t0) / 1e9;
    const inWindow = d1 - d0;

    const drainUntil = Date.now() + DRAIN_TIMEOUT_MS;
    while (pairTotals().lost > 0 && Date.now() < drainUntil) await sleep(20);
    const totals = pairTotals();

    const lat = [];
    const finished = waitFor(clients, 'result', FINISH_TIMEOUT_MS, (c, m) => {
      if (m.latenciesUs) for (const x of m.latenciesUs) lat.push(x);
    });
    for (const c of clients) c.port.postMessage({ type: 'finish' });
    await finished.catch((e) => {
      errorCount++;
      errors.push(`finish: ${e.message}`);
    });
    lat.sort((x, y) => x - y);

    const cpu = {};
    watched.forEach((w, i) => {
      if (cpu0[i] === null || cpu1[i] === null) return;
      const s = cpu1[i] - cpu0[i];
      cpu[w.name] = { pid: w.pid, cores: s / windowSecs, us_per_msg: inWindow ? (s * 1e6) / inWindow : null };
    });
    if (host0 !== null && host1 !== null) cpu.host = { cores: (host1 - host0) / windowSecs, us_per_msg: null };
    return {
      label: a.label, url: a.url, pairs: a.pairs, body_bytes: a.bodyBytes, window: a.window,
      warmup_secs: a.warmup, window_secs: windowSecs,
      deflate_offered: a.deflate, ws_extensions: [...extensions].join(' | '),
      threads: a.inProcess ? 'one thread for all clients' : 'one worker thread per client',
      sent: totals.sent, delivered: totals.delivered, delivered_in_window: inWindow,
      delivered_per_sec: inWindow / windowSecs,
      latency: {
        samples: lat.length, p50_us: percentile(lat, 0.5), p99_us: percentile(lat, 0.99),
        p999_us: percentile(lat, 0.999), max_us: Math.round(lat.at(-1) ?? 0),
      },
      errors: errorCount, error_samples: errors, lost: totals.lost, cpu,
      cpu_of: a.watch[0]?.name ?? null,
    };
  } finally {
    for (const c of clients) c.kill();
  }
}

function main() {
  let a;
  try {
    a = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`node-load: ${e.message}`);
    process.exit(64);
  }
  // Whatever hangs, the run ends: connect + warm-up + window + drain + finish, plus slack.
  const limitMs = READY_TIMEOUT_MS + (a.warmup + a.secs) * 1000 + DRAIN_TIMEOUT_MS + FINISH_TIMEOUT_MS + 10_000;
  setTimeout(() => {
    console.error(`node-load: gave up after ${limitMs} ms`);
    process.exit(2);
  }, limitMs).unref();
  run(a).then(
    (r) => {
      if (a.json) {
        console.log(JSON.stringify(r));
      } else {
        const cpu = Object.entries(r.cpu)
          .map(([n, c]) => `${n} ${c.cores.toFixed(2)} cores${c.us_per_msg === null ? '' : ` ${c.us_per_msg.toFixed(1)} µs/msg`}`)
          .join(', ');
        console.log(
          `${r.label || r.url}: ${Math.round(r.delivered_per_sec)} msg/s in ${r.window_secs.toFixed(2)} s ` +
            `(${r.threads}; ws extensions: ${r.ws_extensions}); latency µs p50=${r.latency.p50_us} p99=${r.latency.p99_us} ` +
            `max=${r.latency.max_us}; sent=${r.sent} delivered=${r.delivered} lost=${r.lost} ` +
            `errors=${r.errors}${r.error_samples.length ? ` (${r.error_samples.join('; ')})` : ''}; CPU: ${cpu}`,
        );
      }
      process.exit(0);
    },
    (e) => {
      console.error(`node-load: ${e.message}`);
      process.exit(1);
    },
  );
}

main();
