// ctest-labels: secrets
// berthd decrypting deployments' secrets through a vault (--vault-url), on
// the memory backend: the fake vault of ../lib/fake_vault.mjs is a real
// Connect server (connect-node). What berthd sends (keyring, ciphertexts,
// bearer token); a wrong keyring, a refusing vault and an unreachable one
// make nothing; a new token file is read on SIGHUP (a broken one keeps the
// token in use); an https vault that asks for a client certificate; and no
// secret value or token in berthd's answers, /metrics or log lines. The
// values reaching the containers are shown on the real Engine by
// secrets.test.mjs.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { Code } from "@connectrpc/connect";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { startFakeVault } from "../lib/fake_vault.mjs";
import { tempDir, removeDir, makePki } from "../lib/secure.mjs";

const skip = berthdSkipReason();
const DEP = "/krane.v1.DeploymentService";
const SECRET_A = "pw-7f3d1c9e-alpha";
const SECRET_B = "key 5b8e=04 beta";
const TOKEN_1 = "vault-token-1-9c2e";
const TOKEN_2 = "vault-token-2-41ad";

function deployment(id, vault, { keyring = "env_v", envId = "env_v", secrets = { DB_PASSWORD: SECRET_A, API_KEY: SECRET_B } } = {}) {
  return {
    namespace: "vault",
    deploymentId: id,
    image: "busybox:1.36",
    replicas: 2,
    environmentId: envId,
    environmentSlug: "production",
    encryptedSecretsBlob: vault.secretsBlob(keyring, secrets).toString("base64"),
  };
}

/** Every answer and line berthd gave so far holds none of the values. */
function assertNoValues(where, text) {
  for (const v of [SECRET_A, SECRET_B, TOKEN_1, TOKEN_2]) assert.ok(!text.includes(v), `${where} shows '${v}'`);
}

async function listed(d) {
  const r = await rpc(d, `${DEP}/ListDeployments`, { namespace: "vault" });
  assert.equal(r.status, 200, r.text);
  return r;
}

describe("secrets through a vault (memory backend)", { skip }, () => {
  let dir, tokenFile, vault, d;
  const answers = [];

  before(async () => {
    dir = tempDir("vault");
    tokenFile = path.join(dir, "token");
    writeFileSync(tokenFile, `${TOKEN_1}\n`);
    vault = await startFakeVault({ token: TOKEN_1 });
    d = await startBerthd({
      logLevel: "debug",
      args: ["--vault-url", `${vault.url}/`, "--vault-token-file", tokenFile, "--region", "eu-test-1"],
    });
  });

  after(async () => {
    if (d && !d.exit) await d.kill();
    await vault?.close();
    removeDir(dir);
  });

  test("a create decrypts the blob and each value with the environment's keyring and the token", async () => {
    const dep = deployment("v-ok", vault);
    const r = await rpc(d, `${DEP}/CreateDeployment`, { deployment: dep });
    assert.equal(r.status, 200, r.text);
    answers.push(r.text);
    assert.equal(vault.calls.length, 3, "the blob and two values");
    for (const c of vault.calls) {
      assert.equal(c.keyring, "env_v");
      assert.equal(c.authorization, `Bearer ${TOKEN_1}`);
    }
    assert.equal(vault.calls[0].encrypted, Buffer.from(dep.encryptedSecretsBlob, "base64").toString("utf8"));

    // A retry with the same blob is the same spec (the digest covers the
    // blob, not what the vault makes of it).
    const again = await rpc(d, `${DEP}/CreateDeployment`, { deployment: dep });
    assert.equal(again.status, 200, again.text);
    const get = await rpc(d, `${DEP}/GetDeployment`, { namespace: "vault", deploymentId: "v-ok" });
    assert.equal(get.status, 200, get.text);
    assert.equal(get.json.instances.length, 2);
    answers.push(get.text, (await listed(d)).text);
  });

  test("a wrong keyring, a refusing vault, no environment id: failed_precondition or invalid_argument, nothing made", async () => {
    const wrong = await rpc(d, `${DEP}/CreateDeployment`, { deployment: deployment("v-wrong", vault, { keyring: "env_v", envId: "env_other" }) });
    assert.equal(wrong.json?.code, "failed_precondition", wrong.text);
    assert.match(wrong.json.message, /encryptedSecretsBlob/);
    assert.match(wrong.json.message, /not_found/, "the vault's code is named");

    vault.refuse = Code.PermissionDenied;
    const refused = await rpc(d, `${DEP}/CreateDeployment`, { deployment: deployment("v-refused", vault) });
    vault.refuse = undefined;
    assert.equal(refused.json?.code, "failed_precondition", refused.text);
    assert.match(refused.json.message, /permission_denied/);

    const noEnv = await rpc(d, `${DEP}/CreateDeployment`, { deployment: { ...deployment("v-noenv", vault), environmentId: "" } });
    assert.equal(noEnv.json?.code, "invalid_argument", noEnv.text);
    assert.match(noEnv.json.message, /deployment\.environmentId/);

    const ids = (await listed(d)).json.deployments.map((x) => x.deploymentId);
    assert.deepEqual(ids, ["v-ok"], "only the first deployment exists");
    answers.push(wrong.text, refused.text, noEnv.text);
  });

  test("SIGHUP reads a new token file; a broken one keeps the token in use", async () => {
    vault.token = TOKEN_2;
    const before = await rpc(d, `${DEP}/CreateDeployment`, { deployment: deployment("v-rotated", vault) });
    assert.equal(before.json?.code, "failed_precondition", before.text);
    assert.match(before.json.message, /unauthenticated/);

    writeFileSync(tokenFile, `${TOKEN_2}\n`);
    const reloads = () => d.logLines().filter((l) => /msg=vault\.reload code=ok/.test(l)).length;
    const n = reloads();
    d.child.kill("SIGHUP");
    await waitFor(() => reloads() > n, { what: "the vault token reload", describe: () => d.stderr });
    const after = await rpc(d, `${DEP}/CreateDeployment`, { deployment: deployment("v-rotated", vault) });
    assert.equal(after.status, 200, after.text);
    assert.equal(vault.calls.at(-1).authorization, `Bearer ${TOKEN_2}`);

    writeFileSync(tokenFile, "\n");
    d.child.kill("SIGHUP");
    const warn = await d.waitForLog(/msg=vault\.reload code=invalid_argument/);
    assert.match(warn, /holds no token/);
    const kept = await rpc(d, `${DEP}/UpdateDeployment`, { deployment: deployment("v-rotated", vault) });
    assert.equal(kept.status, 200, kept.text);
    assert.equal(vault.calls.at(-1).authorization, `Bearer ${TOKEN_2}`, "the token in use is kept");
    answers.push(before.text, after.text, kept.text);
  });

  test("an unreachable vault is unavailable and makes nothing; back, it serves again", async () => {
    const port = Number(new URL(vault.url).port);
    await vault.close();
    const down = await rpc(d, `${DEP}/CreateDeployment`, { deployment: deployment("v-down", vault) });
    assert.equal(down.json?.code, "unavailable", down.text);
    assert.match(down.json.message, /vault cannot be reached/);
    assert.ok(!(await listed(d)).json.deployments.some((x) => x.deploymentId === "v-down"));
    await vault.start(port);
    const up = await rpc(d, `${DEP}/CreateDeployment`, { deployment: deployment("v-down", vault) });
    assert.equal(up.status, 200, up.text);
    answers.push(down.text, up.text);
  });

  test("no value or token in the answers, /metrics or the log", async () => {
    const metrics = await d.request({ method: "GET", path: "/metrics" });
    assert.equal(metrics.status, 200);
    assertNoValues("/metrics", metrics.text);
    for (const a of answers) assertNoValues("an answer", a);
    assertNoValues("the log", d.stderr);
    assert.match(d.stderr, /msg=krane\.created kind=deployment id=v-ok/, "the log is the daemon's (debug) log");
  });
});

describe("an https vault that asks for a client certificate", { skip }, () => {
  let dir, pki, vault;

  before(async () => {
    dir = tempDir("vault-tls");
    pki = makePki(dir);
    vault = await startFakeVault({ tls: { key: pki.read("srv.key"), cert: pki.read("srv.pem"), ca: pki.read("ca.pem") } });
  });

  after(async () => {
    await vault?.close();
    removeDir(dir);
  });

  test("the CA file and client certificate are used; without the certificate the vault cannot be reached", async () => {
    const url = vault.url.replace("127.0.0.1", "localhost");
    const withCert = await startBerthd({
      args: ["--vault-url", url, "--vault-ca-file", pki.file("ca.pem"), "--vault-client-cert", pki.file("cli.pem"), "--vault-client-key", pki.file("cli.key")],
    });
    try {
      const r = await rpc(withCert, `${DEP}/CreateDeployment`, { deployment: deployment("v-tls", vault) });
      assert.equal(r.status, 200, r.text);
    } finally {
      await withCert.stop();
    }
    const noCert = await startBerthd({ args: ["--vault-url", url, "--vault-ca-file", pki.file("ca.pem")] });
    try {
      const r = await rpc(noCert, `${DEP}/CreateDeployment`, { deployment: deployment("v-tls", vault) });
      assert.equal(r.json?.code, "unavailable", r.text);
    } finally {
      await noCert.stop();
    }
    // The system's CAs do not know the test CA.
    const noCa = await startBerthd({ args: ["--vault-url", url] });
    try {
      const r = await rpc(noCa, `${DEP}/CreateDeployment`, { deployment: deployment("v-tls", vault) });
      assert.equal(r.json?.code, "unavailable", r.text);
      assert.match(r.json.message, /certificate/i);
    } finally {
      await noCa.stop();
    }
  });
});
