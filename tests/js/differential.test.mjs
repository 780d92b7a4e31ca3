// Issue 7's differential run: the matrix scenarios that apply, with both clients over ws:// in
// Node, against RabbitMQ's own Web-STOMP (the incumbent) and against stompgate → RabbitMQ's
// STOMP port. The observations (received commands, bodies and relevant headers, callbacks
// fired, pass/fail) must match, or the difference must be a known one listed below with its
// reason; results go to tests/js/artifacts/differential.json and into docs/COMPATIBILITY.md.
//
// Environment: STOMPGATE_TEST_WEBSTOMP (default ws://127.0.0.1:15674/ws; RabbitMQ's `guest`
// logs in over loopback).

import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { after, before, describe, test } from 'node:test';

import { CLIENT_AUTH, DIRECT_WS, RABBITMQ, startGateway, withTimeout } from './harness.mjs';
import { CLIENTS, nodeSessions, writeArtifact } from './matrix/env.mjs';
import { dropControl, runCell } from './matrix/runner.mjs';
import { SCENARIOS } from './matrix/scenarios.mjs';

const WEBSTOMP = process.env.STOMPGATE_TEST_WEBSTOMP || 'ws://127.0.0.1:15674/ws';
/** What Web-STOMP accepts from a loopback client. */
const WEBSTOMP_AUTH = { login: 'guest', passcode: 'guest' };

/**
 * Differences known and explained, by scenario id (and `id/client` when only one client sees
 * it). A difference not listed here fails the run.
 */
export const KNOWN_DIFFERENCES = {
  refusal:
    "RabbitMQ 3.10.8's Web-STOMP writes the ERROR (`Bad CONNECT`, `Access refused…`) but then " +
    'leaves the socket open (no close within 12 s when probed), so a page never learns the ' +
    'connection is dead; stompgate forwards the same ERROR and closes the socket right after it.',
  'disconnect/v7':
    "RabbitMQ 3.10.8's Web-STOMP closes the socket without writing the RECEIPT for DISCONNECT " +
    '(fixed upstream in 3.10.14), so `onDisconnect` never runs; through stompgate the RECEIPT ' +
    'arrives and the callback runs. (stompjs 2.3.3 calls its callback without waiting.)',
  'binary/v7':
    "RabbitMQ 3.10.8's Web-STOMP sends every frame as a WebSocket text message (its default " +
    '`web_stomp.ws_frame = text`), so a MESSAGE whose body is not UTF-8 is an invalid text frame ' +
    'and the browser fails the connection (1006/1007); stompgate (`--ws-frame auto`) sends such a ' +
    'frame as a binary message and the body arrives intact in `binaryBody`.',
};

/** Whether Web-STOMP answers at all (the run is skipped on machines without it). */
async function webstompUp() {
  const http = WEBSTOMP.replace(/^ws/, 'http');
  try {
    await fetch(http, { signal: AbortSignal.timeout(3_000) });
    return true;
  } catch {
    return false;
  }
}

const up = await webstompUp();
const skip = (DIRECT_WS && 'the differential run starts its own gateway') || (!up && `no Web-STOMP at ${WEBSTOMP}`);

/** A scenario result without timing, for comparison. */
const comparable = (r) => ({ status: r.status, obs: r.obs });

describe('differential: RabbitMQ Web-STOMP vs stompgate → RabbitMQ', { skip, concurrency: 2 }, () => {
  const env = {};
  const rows = [];

  before(async () => {
    const [gw, refuse] = await Promise.all([
      startGateway({ upstream: RABBITMQ, adminToken: true }),
      startGateway({ upstream: RABBITMQ, passcode: 'not-the-broker-passcode' }),
    ]);
    const target = (g) => ({ kind: 'gateway', adminUrl: g.adminUrl, adminHeaders: g.adminHeaders, url: () => g.wsUrl });
    env.stop = () => Promise.all([gw.stop(), refuse.stop()]);
    env.gateway = target(gw);
    env.refuse = target(refuse);
    env.webstomp = { kind: 'webstomp', url: () => WEBSTOMP };
  });

  after(async () => {
    writeArtifact('differential.json', { generated: new Date().toISOString(), webstomp: WEBSTOMP, rows });
    await env.stop?.();
  });

  for (const client of Object.keys(CLIENTS)) {
    test(`${CLIENTS[client]} over ws://: same observations`, { timeout: 240_000 }, async () => {
      const cell = { id: `rabbitmq/ws/${client}`, broker: 'rabbitmq', transport: 'ws', client, env: 'node' };
      const run = async (side) => {
        const sessions = nodeSessions(null);
        try {
          return await runCell({
            cell,
            target: side === 'gateway' ? env.gateway : env.webstomp,
            refuse: side === 'gateway' ? env.refuse : null,
            drop: side === 'gateway' ? dropControl(env.gateway) : null,
            auth: side === 'gateway' ? CLIENT_AUTH : WEBSTOMP_AUTH,
            sessions,
            scenarios: SCENARIOS,
          });
        } finally {
          await withTimeout(sessions.closeAll(), 10_000, 'clean-up').catch(() => {});
        }
      };
      const [webstomp, gateway] = await Promise.all([run('webstomp'), run('gateway')]);
      const unexplained = [];
      for (const s of SCENARIOS) {
        const w = webstomp[s.id];
        const g = gateway[s.id];
        if (w.status === 'na' || g.status === 'na') continue; // e.g. the admin API drop
        const same = isDeepStrictEqual(comparable(w), comparable(g));
        const reason = KNOWN_DIFFERENCES[`${s.id}/${client}`] ?? KNOWN_DIFFERENCES[s.id];
        rows.push({ client: CLIENTS[client], scenario: s.id, same, reason: same ? undefined : reason, webstomp: w, gateway: g });
        if (g.status !== 'pass') unexplained.push(`${s.id}: fails through stompgate: ${g.error}`);
        else if (!same && !reason) {
          unexplained.push(`${s.id}: Web-STOMP ${JSON.stringify(comparable(w))} vs stompgate ${JSON.stringify(comparable(g))}`);
        }
      }
      assert.deepEqual(unexplained, []);
    });
  }
});
