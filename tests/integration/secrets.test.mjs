// ctest-labels: docker
// Secrets and the krane environment on the real Engine, with berthd
// decrypting through a fake vault (../lib/fake_vault.mjs, a real Connect
// server): every replica of a deployment sees the decrypted values and the
// UNKEY_ variables krane sets (`docker exec ... env`), and no value shows in
// the containers' labels (`docker inspect`), berthd's answers, /metrics or
// its (debug) log. A VM's env values reach its container but neither its
// berth.config label nor GetVmInfo. The pass-through mode (no vault) is in
// gateway.test.mjs, the vault's failures in vault.test.mjs.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { startFakeVault } from "../lib/fake_vault.mjs";
import { waitFor } from "../lib/wait.mjs";

const berthdSkip = berthdSkipReason();
const [engine, engineSkip] = berthdSkip ? [undefined, undefined] : await connectEngine();

const runTag = `${process.pid}-${Date.now().toString(36)}`;
const TEST_LABEL = "berth.test";
const testLabelValue = `secrets-${runTag}`;
const SLEEP_IMAGE = `berth-test/sleep-sec:${runTag}`;
const DEP = "/krane.v1.DeploymentService";
const VM = "/metal.vmprovisioner.v1.VmService";

const DB_PASSWORD = "db-pw-0b7e5c3a91";
const API_KEY = "api key=6d2f with spaces";
const PLAIN = "plain-env-value-44e1";
const VM_SECRET = "vm-secret-a83f20";
const VALUES = [DB_PASSWORD, API_KEY, PLAIN, VM_SECRET];

/** `env` run inside a running container, as lines. */
async function execEnv(id) {
  const ex = await engine.call("POST", `/containers/${id}/exec`, {
    body: { Cmd: ["env"], AttachStdout: true, AttachStderr: true, Tty: true },
  });
  const r = await engine.call("POST", `/exec/${ex.body.Id}/start`, { body: { Detach: false, Tty: true } });
  return String(r.body)
    .split(/\r?\n/)
    .filter((l) => l.length > 0);
}

function assertNoValues(where, text, values = VALUES) {
  for (const v of values) assert.ok(!text.includes(v), `${where} shows '${v}'`);
}

describe("secrets and the krane environment on the docker backend", { skip: berthdSkip || engineSkip }, () => {
  let vault, d;
  const depId = `dep-sec-${runTag}`;
  const vmId = `vm-sec-${runTag}`;
  const answers = [];

  before(async () => {
    await ensureTestImage(engine);
    const id = await engine.createContainer({ image: TEST_IMAGE, cmd: ["true"], labels: { [TEST_LABEL]: testLabelValue } });
    try {
      const [repo, tag] = SLEEP_IMAGE.split(":");
      const qs = new URLSearchParams({ container: id, repo, tag });
      qs.append("changes", 'CMD ["sleep", "3600"]');
      qs.append("changes", `LABEL ${TEST_LABEL}=${testLabelValue}`);
      await engine.call("POST", `/commit?${qs}`);
    } finally {
      await engine.remove(id);
    }
    vault = await startFakeVault();
    d = await startBerthd({
      backend: "docker",
      logLevel: "debug",
      args: ["--docker-socket", engine.socketPath, "--vault-url", vault.url, "--region", "eu-test-1"],
    });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 15000,
      what: "GET /readyz to answer 200",
      describe: () => d.stderr,
    });
  });

  after(async () => {
    if (d && !d.exit) {
      await rpc(d, `${DEP}/DeleteDeployment`, { namespace: "secrets", deploymentId: depId });
      await rpc(d, `${VM}/DeleteVm`, { vmId: vmId, force: true });
      await d.kill();
    }
    for (const c of [
      ...(await engine.listContainers([`berth.deployment_id=${depId}`])),
      ...(await engine.listContainers([`berth.vm_id=${vmId}`])),
      ...(await engine.listContainers([`${TEST_LABEL}=${testLabelValue}`])),
    ])
      await engine.remove(c.Id);
    await engine.call("DELETE", `/images/${encodeURIComponent(SLEEP_IMAGE)}`, { ok: [404, 409] });
    await vault?.close();
  });

  test("every replica gets the decrypted secrets and krane's UNKEY_ names; labels, answers, /metrics and logs do not", async () => {
    const deployment = {
      namespace: "secrets",
      deploymentId: depId,
      image: SLEEP_IMAGE,
      replicas: 2,
      environmentId: "env_sec",
      environmentSlug: "production",
      buildId: "build_1",
      env: { PLAIN_SETTING: PLAIN },
      encryptedSecretsBlob: vault.secretsBlob("env_sec", { DB_PASSWORD, API_KEY }).toString("base64"),
    };
    const created = await rpc(d, `${DEP}/CreateDeployment`, { deployment });
    assert.equal(created.status, 200, created.text);
    answers.push(created.text);
    assert.equal(vault.calls.length, 3);
    assert.ok(vault.calls.every((c) => c.keyring === "env_sec"));

    const ctrs = await engine.listContainers([`berth.deployment_id=${depId}`]);
    assert.equal(ctrs.length, 2);
    for (const c of ctrs) {
      const index = c.Labels["berth.replica"];
      await engine.waitForContainer(c.Id, (s) => s?.State?.Running, { what: `replica ${index} to run` });
      const env = await execEnv(c.Id);
      for (const want of [
        `DB_PASSWORD=${DB_PASSWORD}`,
        `API_KEY=${API_KEY}`,
        `PLAIN_SETTING=${PLAIN}`,
        `UNKEY_DEPLOYMENT_ID=${depId}`,
        "UNKEY_ENVIRONMENT_ID=env_sec",
        "UNKEY_ENVIRONMENT_SLUG=production",
        "UNKEY_REGION=eu-test-1",
        `UNKEY_INSTANCE_ID=${depId}-${index}`,
        `BERTH_INSTANCE_ID=${depId}-${index}`,
      ]) {
        assert.ok(env.includes(want), `replica ${index}: ${want} in\n${env.join("\n")}`);
      }
      assert.ok(!env.some((l) => l.startsWith("UNKEY_SECRETS_BLOB=")), "no blob once decrypted");
      const ins = await engine.inspect(c.Id);
      assertNoValues(`the labels of replica ${index}`, JSON.stringify(ins.Config.Labels));
    }

    // A retry: the same blob, the same spec; nothing new.
    const again = await rpc(d, `${DEP}/CreateDeployment`, { deployment });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(
      (await engine.listContainers([`berth.deployment_id=${depId}`])).map((c) => c.Id).sort(),
      ctrs.map((c) => c.Id).sort(),
    );
    const get = await rpc(d, `${DEP}/GetDeployment`, { namespace: "secrets", deploymentId: depId });
    assert.equal(get.status, 200, get.text);
    const list = await rpc(d, `${DEP}/ListDeployments`, { namespace: "secrets" });
    assert.equal(list.status, 200, list.text);
    answers.push(again.text, get.text, list.text);
  });

  test("a VM's env values reach its container, not its berth.config label or GetVmInfo", async () => {
    const created = await rpc(d, `${VM}/CreateVm`, {
      vmId,
      config: {
        container: { image: SLEEP_IMAGE, env: { VM_SECRET } },
        metadata: { env_vars: `LEGACY=${VM_SECRET}` },
      },
    });
    assert.equal(created.status, 200, created.text);
    const boot = await rpc(d, `${VM}/BootVm`, { vmId });
    assert.equal(boot.status, 200, boot.text);
    const [c] = await engine.listContainers([`berth.vm_id=${vmId}`]);
    await engine.waitForContainer(c.Id, (s) => s?.State?.Running, { what: "the VM to run" });
    assert.ok((await execEnv(c.Id)).includes(`VM_SECRET=${VM_SECRET}`));
    const ins = await engine.inspect(c.Id);
    const label = JSON.parse(ins.Config.Labels["berth.config"]);
    assert.deepEqual(label.container.env, { VM_SECRET: "" });
    assert.equal(label.metadata.env_vars, "LEGACY=");
    assertNoValues("the VM's labels", JSON.stringify(ins.Config.Labels));
    const info = await rpc(d, `${VM}/GetVmInfo`, { vmId });
    assert.equal(info.status, 200, info.text);
    assert.deepEqual(info.json.config.container.env, { VM_SECRET: "" });
    answers.push(created.text, boot.text, info.text);
  });

  test("no value in the answers, /metrics or berthd's log", async () => {
    const metrics = await d.request({ method: "GET", path: "/metrics" });
    assert.equal(metrics.status, 200);
    assertNoValues("/metrics", metrics.text);
    for (const a of answers) assertNoValues("an answer", a);
    assertNoValues("the log", d.stderr);
    assert.match(d.stderr, /level=debug msg=engine\.request/, "the log is at debug level");
  });
});
