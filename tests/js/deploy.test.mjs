// The deployment files stay in step with the binary: the ConfigMap's TOML passes
// `--check-config`, and the probes point at admin endpoints that answer. (scripts/test-deploy.sh
// goes further: it renders, validates and runs them.)

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DIRECT_WS, REPO_ROOT, runGateway, startGateway } from './harness.mjs';

const K8S = path.join(REPO_ROOT, 'deploy', 'kubernetes');

/** The block scalar under `key: |` in a YAML file, de-indented (enough for our own manifests). */
function blockScalar(yamlText, key) {
  const lines = yamlText.split('\n');
  const start = lines.findIndex((l) => l.trim() === `${key}: |`);
  assert.ok(start >= 0, `no \`${key}: |\` block`);
  const body = [];
  let indent = null;
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') { body.push(''); continue; }
    const lead = line.length - line.trimStart().length;
    indent ??= lead;
    if (lead < indent) break;
    body.push(line.slice(indent));
  }
  return body.join('\n');
}

/** Every `path:` under an `httpGet` probe, and every `healthcheck --url`, in a manifest. */
function probePaths(yamlText) {
  const http = [...yamlText.matchAll(/httpGet:\s*\n\s*path:\s*(\S+)/g)].map((m) => m[1]);
  const exec = [...yamlText.matchAll(/"healthcheck", "--url", "http:\/\/127\.0\.0\.1:8081(\/[^"]*)"/g)]
    .map((m) => m[1]);
  return [...http, ...exec];
}

describe('deploy/', { skip: DIRECT_WS ? 'no gateway in direct mode' : false }, () => {
  test('the ConfigMap TOML passes --check-config', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'stompgate-deploy-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const toml = blockScalar(readFileSync(path.join(K8S, 'base', 'configmap.yaml'), 'utf8'), 'stompgate.toml');
    assert.match(toml, /upstream_passcode_file/);
    assert.doesNotMatch(toml, /^upstream_passcode\s*=/m, 'the passcode belongs in the Secret');
    const config = path.join(dir, 'stompgate.toml');
    const passcode = path.join(dir, 'passcode');
    const token = path.join(dir, 'admin-token');
    writeFileSync(config, toml);
    writeFileSync(passcode, 'change-me\n', { mode: 0o600 });
    writeFileSync(token, 'change-me-too\n', { mode: 0o600 });
    // The Secrets are mounted elsewhere in the pod; point the file options at local copies. The
    // broker address is the container's STOMPGATE_UPSTREAM env in the manifests.
    const r = await runGateway([
      '--config', config, '--upstream-passcode-file', passcode, '--admin-token-file', token,
      '--upstream', '127.0.0.1:61613', '--check-config',
    ]);
    assert.equal(r.code, 0, `--check-config failed:\n${r.stdout}${r.stderr}`);
  });

  test('the probes in the manifests answer 200 on the admin listener', async (t) => {
    const manifests = ['base/deployment.yaml', 'overlays/sidecar-rabbitmq/rabbitmq.yaml']
      .map((f) => readFileSync(path.join(K8S, f), 'utf8'));
    const paths = [...new Set(manifests.flatMap(probePaths))].sort();
    assert.deepEqual(paths, ['/healthz', '/readyz']);
    const gw = await startGateway({ t });
    for (const p of paths) {
      const resp = await fetch(`${gw.adminUrl}${p}`);
      assert.equal(resp.status, 200, `${p} answered ${resp.status}`);
    }
  });
});
