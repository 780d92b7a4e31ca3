// Issue 7's compatibility matrix: one scenario list (tests/js/matrix/scenarios.mjs) run in every
// cell — broker (RabbitMQ, ActiveMQ) × transport (ws://, wss://, SockJS websocket, SockJS
// xhr-streaming) × client (@stomp/stompjs 7, stompjs 2.3.3) — each broker behind its own
// gateways, @stomp/stompjs 7 in Debian's Chromium on every transport. Results go to
// tests/js/artifacts/compat.json; `node scripts/gen-compat-table.mjs` turns them into
// docs/COMPATIBILITY.md.
//
// Environment: STOMPGATE_MATRIX_CELLS (comma-separated substrings of cell ids, e.g.
// `rabbitmq/ws/`) and STOMPGATE_MATRIX_SCENARIOS (scenario ids) narrow a run.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { CLIENT_AUTH, DIRECT_WS } from './harness.mjs';
import {
  CHROMIUM,
  allCells,
  cellLabel,
  launchChromium,
  makeCert,
  nodeSessions,
  pageSessions,
  startGateways,
  startStaticServer,
  writeArtifact,
} from './matrix/env.mjs';
import { dropControl, runCell } from './matrix/runner.mjs';
import { SCENARIOS } from './matrix/scenarios.mjs';

/** Cells run at once (each has its own queues; the drop gateway is shared one cell at a time). */
const CONCURRENCY = 4;
/** Bound for one cell, ms. */
const CELL_TIMEOUT_MS = 240_000;

const pick = (list, env, key) => {
  const wanted = (process.env[env] ?? '').split(',').filter(Boolean);
  return wanted.length ? list.filter((x) => wanted.some((w) => x[key].includes(w))) : list;
};
const cells = pick(allCells(), 'STOMPGATE_MATRIX_CELLS', 'id');
const scenarios = pick(SCENARIOS, 'STOMPGATE_MATRIX_SCENARIOS', 'id');

const skip = (DIRECT_WS && 'the matrix needs gateways') || (!existsSync(CHROMIUM) && `${CHROMIUM} missing`);

describe('compatibility matrix', { skip, concurrency: CONCURRENCY }, () => {
  const env = {};
  const results = {};

  before(async () => {
    env.cert = makeCert();
    env.gateways = await startGateways(env.cert);
    env.drop = {
      rabbitmq: dropControl(env.gateways.rabbitmq.drop),
      activemq: dropControl(env.gateways.activemq.drop),
    };
    env.static = await startStaticServer();
    env.browser = await launchChromium(env.cert);
  });

  after(async () => {
    const file = writeArtifact('compat.json', {
      generated: new Date().toISOString(),
      cells: cells.map((c) => ({ ...c, label: cellLabel(c) })),
      scenarios: scenarios.map(({ id, title }) => ({ id, title })),
      results,
    });
    process.stderr.write(`compatibility results: ${file}\n`);
    await env.browser?.close();
    await env.static?.close();
    await env.gateways?.stop();
    env.cert?.remove();
  });

  for (const cell of cells) {
    test(`${cell.id} (${cell.env})`, { timeout: CELL_TIMEOUT_MS }, async (t) => {
      const sessions = cell.env === 'chromium'
        ? await pageSessions(env.browser, env.static.url)
        : nodeSessions(env.cert);
      try {
        const gw = env.gateways[cell.broker];
        results[cell.id] = await runCell({
          cell,
          target: gw.main,
          refuse: gw.refuse,
          drop: env.drop[cell.broker],
          auth: CLIENT_AUTH,
          sessions,
          scenarios,
          each: (scenario, na, fn) => t.test(scenario.id, { skip: na ?? false }, fn),
        });
      } finally {
        await sessions.closeAll();
      }
      assert.deepEqual(sessions.errors ?? [], [], 'no page errors');
      const failed = Object.entries(results[cell.id]).filter(([, r]) => r.status === 'fail');
      assert.deepEqual(failed.map(([id, r]) => `${id}: ${r.error}`), []);
    });
  }
});
