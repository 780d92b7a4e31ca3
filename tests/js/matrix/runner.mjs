// Runs the scenario list in one cell and collects per-scenario results and observations, for the
// matrix (tests/js/matrix.test.mjs) and the differential run (tests/js/differential.test.mjs).

import { randomUUID } from 'node:crypto';

import { withTimeout } from '../harness.mjs';
import { fingerprint, patternText } from './driver.mjs';
import { TRANSPORTS } from './env.mjs';
import { notApplicable } from './scenarios.mjs';

/** Upper bound for one scenario, ms (its own waits are shorter). */
const SCENARIO_TIMEOUT_MS = 90_000;
/** RabbitMQ's management API (guest works over loopback), for deleting test queues. */
const RABBITMQ_MANAGEMENT = process.env.STOMPGATE_TEST_RABBITMQ_MANAGEMENT || 'http://127.0.0.1:15672';
/** How long the drop gateway's admin API is polled for the new session, ms. */
const SESSION_APPEAR_MS = 5_000;

const patternHashes = new Map();
/** The fingerprint of `patternText(size)` (what the driver sends for `{ pattern: size }`). */
function expectPattern(size) {
  if (!patternHashes.has(size)) patternHashes.set(size, fingerprint(patternText(size)));
  return patternHashes.get(size);
}

/** Deletes RabbitMQ queues a cell declared (best effort: a leftover queue is only clutter). */
async function deleteRabbitQueues(names) {
  const auth = `Basic ${Buffer.from('guest:guest').toString('base64')}`;
  await Promise.all(
    names.map((n) =>
      fetch(`${RABBITMQ_MANAGEMENT}/api/queues/%2F/${encodeURIComponent(n)}`, {
        method: 'DELETE',
        headers: { authorization: auth },
        signal: AbortSignal.timeout(5_000),
      }).catch(() => {}),
    ),
  );
}

/** Session ids live on a gateway (its admin `/connections`). */
async function sessionIds(gw) {
  const resp = await fetch(`${gw.adminUrl}/connections`, {
    headers: gw.adminHeaders,
    signal: AbortSignal.timeout(5_000),
  });
  return (await resp.json()).filter((c) => c.connected).map((c) => c.id);
}

/**
 * Exclusive use of a gateway for the drop scenario: while one cell holds it, the only new
 * session on it is that cell's, so the admin API identifies it.
 */
export function dropControl(gw) {
  let chain = Promise.resolve();
  return {
    exclusive(fn) {
      const run = chain.then(() => fn(gw));
      chain = run.catch(() => {});
      return run;
    },
    ids: sessionIds,
    async newId(target, before) {
      const deadline = Date.now() + SESSION_APPEAR_MS;
      for (;;) {
        const fresh = (await sessionIds(target)).filter((id) => !before.includes(id));
        if (fresh.length === 1) return fresh[0];
        if (Date.now() > deadline) throw new Error(`expected one new session, saw ${fresh.length}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

/**
 * Runs `scenarios` in `cell` against `target` and returns `{ [scenarioId]: result }` where a
 * result is `{ status: 'pass'|'fail'|'na', reason?, error?, ms, obs }`.
 *
 * `sessions(key)` gives a driver session; `refuse` is the target for the refusal scenario (a
 * gateway with a wrong broker passcode; null: send a wrong passcode instead); `drop` is a
 * `dropControl` (or null); `auth` the client's login/passcode; `each(scenario, fn)` wraps each
 * scenario run (e.g. as a node:test subtest).
 */
export async function runCell({ cell, target, sessions, refuse = null, drop = null, auth, scenarios, each }) {
  const results = {};
  const slug = `${cell.broker}-${cell.transport}-${cell.client}-${target.kind}`;
  for (const scenario of scenarios) {
    const reason = notApplicable(scenario, cell, target);
    if (reason) {
      results[scenario.id] = { status: 'na', reason, obs: {} };
      await each?.(scenario, reason, async () => {});
      continue;
    }
    const obs = {};
    const queues = [];
    const ctx = {
      cell,
      target,
      refuse,
      drop,
      auth,
      sockjs: TRANSPORTS[cell.transport].sockjs,
      queues,
      name: (prefix) => `mx-${prefix}-${slug}-${randomUUID().slice(0, 8)}`,
      session: (key) => sessions.session(`${scenario.id}/${key}`),
      observe: (k, v) => {
        obs[k] = v;
      },
      expectPattern,
    };
    const started = Date.now();
    const result = { status: 'pass', obs };
    results[scenario.id] = result;
    const body = async () => {
      try {
        await withTimeout(scenario.run(ctx), SCENARIO_TIMEOUT_MS, `scenario ${scenario.id}`);
      } catch (err) {
        result.status = 'fail';
        result.error = String(err?.message ?? err).slice(0, 2_000);
        throw err;
      } finally {
        result.ms = Date.now() - started;
        if (cell.broker === 'rabbitmq') await deleteRabbitQueues(queues);
      }
    };
    if (each) await each(scenario, null, body);
    else await body().catch(() => {});
  }
  return results;
}
