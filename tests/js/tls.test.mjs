// wss:// through the gateway to RabbitMQ with Node's `ws` client trusting a test CA made at
// test time (openssl): a STOMP round trip, certificate rotation during a live session (the old
// session keeps working, the next handshake presents the new certificate), and mutual TLS
// accepted and refused.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { test } from 'node:test';

import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

import {
  CLIENT_AUTH, DIRECT_WS, STOMP_SUBPROTOCOLS, WAIT_MS, collect, startGateway, uniqueName, withTimeout,
} from './harness.mjs';

/** How long the gateway's certificate watcher may take to notice new files (it polls every 2 s). */
const ROTATION_WAIT_MS = 10_000;

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA (`name`-ca.pem/-key.pem) in `dir`. */
function makeCa(dir, name) {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=${name} test CA`, '-keyout', `${name}-ca-key.pem`, '-out', `${name}-ca.pem`], dir);
}

/** A leaf certificate signed by CA `ca`, with SANs for loopback (server) or a client CN. */
function makeLeaf(dir, ca, name, cn, serverSide) {
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, serverSide
    ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'
    : 'extendedKeyUsage=clientAuth\n');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}`,
    '-keyout', `${name}-key.pem`, '-out', `${name}.csr`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}-ca.pem`, '-CAkey', `${ca}-ca-key.pem`,
    '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', `${name}.pem`], dir);
}

function pki() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompgate-tls-'));
  makeCa(dir, 'main');
  makeCa(dir, 'other');
  makeLeaf(dir, 'main', 'server', 'localhost', true);
  makeLeaf(dir, 'main', 'server2', 'localhost', true);
  makeLeaf(dir, 'main', 'client', 'browser-1', false);
  makeLeaf(dir, 'other', 'rogue', 'rogue', false);
  const f = (n) => path.join(dir, n);
  return { dir, f, read: (n) => fs.readFileSync(f(n)) };
}

/** Connects @stomp/stompjs 7 over `ws` with TLS options; resolves once CONNECTED. */
function connectWss(url, tlsOpts) {
  const client = new Client({
    webSocketFactory: () => new WebSocket(url, STOMP_SUBPROTOCOLS, tlsOpts),
    connectHeaders: { ...CLIENT_AUTH, host: '/' },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  const connected = new Promise((resolve, reject) => {
    client.onConnect = () => resolve(client);
    client.onStompError = (f) => reject(new Error(`STOMP ERROR ${f.headers.message}`));
    client.onWebSocketClose = (e) => reject(new Error(`closed before CONNECTED (${e?.code})`));
    client.onWebSocketError = () => reject(new Error('WebSocket error before CONNECTED'));
  });
  client.activate();
  return withTimeout(connected, WAIT_MS, `CONNECTED over ${url}`).catch(async (e) => {
    await client.deactivate({ force: true });
    throw e;
  });
}

/** The SHA-256 fingerprint of the certificate the TLS listener presents now. */
function presentedFingerprint(hostPort, ca) {
  const [host, port] = hostPort.split(':');
  return withTimeout(new Promise((resolve, reject) => {
    const s = tls.connect({ host, port: Number(port), ca, servername: 'localhost' }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  }), WAIT_MS, 'a TLS handshake');
}

function fingerprintOf(pem) {
  return new X509Certificate(pem).fingerprint256;
}

async function roundTrip(client) {
  const queue = `/queue/${uniqueName('tls')}`;
  const inbox = collect(client, queue);
  await new Promise((r) => setTimeout(r, 100));
  client.publish({ destination: queue, body: 'over wss' });
  const [m] = await inbox.waitFor(1);
  assert.equal(m.body, 'over wss');
}

test('wss:// round trip, and rotation during a live session', { skip: DIRECT_WS ? 'gateway only' : false }, async (t) => {
  const p = pki();
  const cert = p.f('live-cert.pem');
  const key = p.f('live-key.pem');
  fs.copyFileSync(p.f('server.pem'), cert);
  fs.copyFileSync(p.f('server-key.pem'), key);
  const gw = await startGateway({ t, args: ['--tls-listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key] });
  const tlsAddr = gw.listeners['client-tls'];
  assert.ok(tlsAddr, 'the gateway prints its TLS listener');
  const ca = p.read('main-ca.pem');
  const client = await connectWss(`wss://${tlsAddr}/ws`, { ca, servername: 'localhost' });
  t.after(() => client.deactivate());
  await roundTrip(client);

  assert.equal(await presentedFingerprint(tlsAddr, ca), fingerprintOf(p.read('server.pem')));
  // Rotate: write the new pair (key first, as cert-manager's atomic swap would present both).
  fs.copyFileSync(p.f('server2-key.pem'), key);
  fs.copyFileSync(p.f('server2.pem'), cert);
  const wanted = fingerprintOf(p.read('server2.pem'));
  const deadline = Date.now() + ROTATION_WAIT_MS;
  let seen;
  while (Date.now() < deadline && (seen = await presentedFingerprint(tlsAddr, ca)) !== wanted) {
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(seen, wanted, 'the next handshake presents the new certificate');
  await roundTrip(client); // the session opened before the rotation carries on
});

test('mutual TLS: a certificate from the client CA is accepted, others refused', { skip: DIRECT_WS ? 'gateway only' : false }, async (t) => {
  const p = pki();
  const gw = await startGateway({
    t,
    args: ['--tls-listen', '127.0.0.1:0', '--tls-cert', p.f('server.pem'), '--tls-key', p.f('server-key.pem'),
      '--tls-client-ca', p.f('main-ca.pem'), '--tls-client-auth', 'required'],
  });
  const url = `wss://${gw.listeners['client-tls']}/ws`;
  const ca = p.read('main-ca.pem');
  const good = await connectWss(url, { ca, cert: p.read('client.pem'), key: p.read('client-key.pem') });
  await roundTrip(good);
  await good.deactivate();
  await assert.rejects(connectWss(url, { ca }), /closed before CONNECTED|error/i, 'no client certificate');
  await assert.rejects(
    connectWss(url, { ca, cert: p.read('rogue.pem'), key: p.read('rogue-key.pem') }),
    /closed before CONNECTED|error/i,
    'a certificate from another CA',
  );
});
