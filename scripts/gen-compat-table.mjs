#!/usr/bin/env node
// Generates docs/COMPATIBILITY.md from the latest matrix run (tests/js/artifacts/compat.json,
// written by tests/js/matrix.test.mjs) and, when present, the differential run
// (tests/js/artifacts/differential.json, written by tests/js/differential.test.mjs).
//
// Usage: node scripts/gen-compat-table.mjs [--check]
//   --check   exit 1 if the run has a failure or a cell/scenario is missing (nothing written)
//
// One row per scenario, one column per cell (grouped by broker): ✅ passed, ❌ failed, n/a with a
// footnote giving the reason.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const COMPAT = path.join(root, 'tests/js/artifacts/compat.json');
const DIFF = path.join(root, 'tests/js/artifacts/differential.json');
const OUT = path.join(root, 'docs/COMPATIBILITY.md');

const TRANSPORT_SHORT = {
  ws: 'ws',
  wss: 'wss',
  'sockjs-websocket': 'SockJS ws',
  'sockjs-xhr-streaming': 'SockJS xhr-stream',
};
const CLIENT_SHORT = { v7: 'v7', legacy: '2.3.3' };
const BROKER_NAME = { rabbitmq: 'RabbitMQ', activemq: 'ActiveMQ' };

/** Findings behind the scenarios' broker and client special cases (kept with the generator). */
const NOTES = [
  '## Notes for page authors',
  '',
  '- **ActiveMQ heart-beats**: ActiveMQ 5.17 writes its first heart-beat late (2 s after',
  '  CONNECTED for a 1000 ms interval, 3 s for 2000 ms, then on time). With `heartbeatIncoming:',
  '  1000` (v7) / `heartbeat.incoming = 1000` (2.3.3) that lands on stomp.js\'s 2×interval',
  '  deadline and the client sometimes closes a healthy connection after ~2 s. Ask for 2000 ms',
  '  or more (or 0) against ActiveMQ. It echoes the pair swapped (`1000,2000` → `2000,1000`), as',
  '  RabbitMQ does.',
  '- **ActiveMQ NACK** does not redeliver the message to the same consumer (its redelivery',
  '  policy decides, by default towards the dead-letter queue); RabbitMQ requeues it and',
  '  redelivers it with `redelivered:true`. ActiveMQ ignores `host`.',
  '- **RabbitMQ destinations**: a message sent to `/exchange/amq.topic/KEY` arrives with',
  '  `destination:/topic/KEY`; other exchanges keep `/exchange/NAME/KEY`.',
  '- **stompjs 2.3.3 over SockJS xhr-streaming**: `client.disconnect()` closes the socket right',
  '  after sending DISCONNECT, and sockjs-client aborts an `xhr_send` still in flight, so an ACK',
  '  sent just before can be lost (the message is redelivered later). Ask for a receipt on the',
  '  ACK before disconnecting. This is client-side; the scenarios do so.',
  '- **Heart-beat EOLs**: the EOL a broker writes after each frame reaches the page as its own',
  '  heart-beat message (stomp.js logs `<<< PONG`), even when heart-beats are 0,0. Harmless for',
  '  both clients; the heart-beat scenarios count only beats on an idle connection.',
  '',
];

/** Escapes a table cell. */
const cellText = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The matrix section: legend, one table per broker, footnotes. */
function matrixSection(run) {
  const notes = [];
  const noteFor = (reason) => {
    let i = notes.indexOf(reason);
    if (i < 0) i = notes.push(reason) - 1;
    return i + 1;
  };
  const lines = [];
  const failures = [];
  for (const broker of Object.keys(BROKER_NAME)) {
    const cells = run.cells.filter((c) => c.broker === broker);
    if (!cells.length) continue;
    lines.push(`### ${BROKER_NAME[broker]}`, '');
    const head = cells.map((c) => `${TRANSPORT_SHORT[c.transport]}<br>${CLIENT_SHORT[c.client]}${c.env === 'chromium' ? ' 🌐' : ''}`);
    lines.push(`| scenario | ${head.join(' | ')} |`);
    lines.push(`|---|${cells.map(() => ':-:').join('|')}|`);
    for (const s of run.scenarios) {
      const marks = cells.map((c) => {
        const r = run.results[c.id]?.[s.id];
        if (!r) {
          failures.push(`${c.id} ${s.id}: not run`);
          return '—';
        }
        if (r.status === 'pass') return '✅';
        if (r.status === 'na') return `n/a[^${noteFor(r.reason)}]`;
        failures.push(`${c.id} ${s.id}: ${r.error}`);
        return '❌';
      });
      lines.push(`| ${cellText(s.title)} | ${marks.join(' | ')} |`);
    }
    lines.push('');
  }
  lines.push(...notes.map((n, i) => `[^${i + 1}]: ${n}`), '');
  return { lines, failures };
}

/** The differential section: per scenario, same or the differences with their reasons. */
function differentialSection(diff) {
  const lines = [
    '## Differential run: RabbitMQ Web-STOMP vs stompgate → RabbitMQ',
    '',
    `Generated ${diff.generated} by \`tests/js/differential.test.mjs\`: the scenarios that apply`,
    `run with each client over \`ws://\` against RabbitMQ's own Web-STOMP (${diff.webstomp}) and`,
    'against stompgate in front of RabbitMQ\'s STOMP port; the observations (commands, bodies,',
    'relevant headers, callbacks fired) are compared.',
    '',
    '| client | scenario | Web-STOMP | stompgate | result |',
    '|---|---|---|---|---|',
  ];
  for (const row of diff.rows) {
    const show = (r) => (r.status === 'pass' ? 'passes' : r.status === 'na' ? 'n/a' : `fails: ${r.error}`);
    const verdict = row.same ? 'same' : `**differs**: ${row.reason ?? 'unexplained'}`;
    lines.push(`| ${row.client} | ${row.scenario} | ${cellText(show(row.webstomp))} | ${cellText(show(row.gateway))} | ${cellText(verdict)} |`);
  }
  lines.push('');
  return lines;
}

function main() {
  const check = process.argv.includes('--check');
  if (!existsSync(COMPAT)) {
    console.error(`no ${path.relative(root, COMPAT)}: run the matrix first (node --test tests/js/matrix.test.mjs)`);
    process.exit(1);
  }
  const run = JSON.parse(readFileSync(COMPAT, 'utf8'));
  const { lines, failures } = matrixSection(run);
  if (check) {
    for (const f of failures) console.error(f);
    process.exit(failures.length ? 1 : 0);
  }
  const out = [
    '# Compatibility',
    '',
    '<!-- Generated by scripts/gen-compat-table.mjs from the latest test run; do not edit by hand. -->',
    '',
    'What stomp.js pages do, run through stompgate against each broker, on every transport, with',
    'both clients: `@stomp/stompjs` 7 (v7) and the old `stompjs` 2.3.3. 🌐 marks cells run in',
    'headless Chromium (Debian\'s, driven by playwright-core); the others run in Node. Each broker',
    'has its own gateway; `wss://` uses the gateway\'s TLS listener with a test certificate.',
    `Scenarios: \`tests/js/matrix/scenarios.mjs\`. Latest run: ${run.generated}.`,
    '',
    '## Matrix',
    '',
    ...lines,
  ];
  out.push(...NOTES);
  if (existsSync(DIFF)) out.push(...differentialSection(JSON.parse(readFileSync(DIFF, 'utf8'))));
  out.push(
    '## Regenerate',
    '',
    '```sh',
    'cd tests/js && node --test matrix.test.mjs differential.test.mjs',
    'node scripts/gen-compat-table.mjs',
    '```',
    '',
  );
  writeFileSync(OUT, out.join('\n'));
  console.log(`wrote ${path.relative(root, OUT)}${failures.length ? ` (${failures.length} failures)` : ''}`);
}

main();
