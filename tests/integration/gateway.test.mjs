// ctest-labels: docker
// GatewayService and DeploymentService on the real Engine: replica sets of a
// busybox httpd image, every instance answering HTTP on its advertised
// address, retries, different-spec conflicts, rollback of a set whose
// replicas cannot start, idempotent deletes, the UNKEY_ environment krane
// sets, and encrypted secrets passed through (berthd without a vault).
//
// The krane API has no command field, so this file makes two images of its
// own from the test image through the Engine's commit endpoint (one whose
// CMD serves HTTP on the gateway and deployment ports, one that cannot start:
// its working directory is a file), tagged for this run, and removes them at
// the end.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startBerthd, berthdSkipReason, rawRequest } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { waitFor } from "../lib/wait.mjs";

const berthdSkip = berthdSkipReason();
const [engine, engineSkip] = berthdSkip ? [undefined, undefined] : await connectEngine();

const runTag = `${process.pid}-${Date.now().toString(36)}`;
const TEST_LABEL = "berth.test";
const testLabelValue = `gateway-${runTag}`;
const HTTPD_IMAGE = `berth-test/httpd-gw:${runTag}`;
const BROKEN_IMAGE = `berth-test/broken-gw:${runTag}`;

const GW = "/krane.v1.GatewayService";
const DEP = "/krane.v1.DeploymentService";

// Each replica writes its instance id where httpd serves it, then serves
// /www on the deployment port (in the background) and the gateway port.
const HTTPD_CMD = [
  "/bin/sh",
  "-c",
  'echo "$BERTH_INSTANCE_ID" > /www/id && httpd -p 8080 -h /www && exec httpd -f -p 8040 -h /www',
];

/**
 * Make `repo:tag` from TEST_IMAGE with the given CMD: create a container (not
 * started), commit it with CMD and a label for this run, remove it.
 */
async function commitImage(ref, cmd, extra = []) {
  const [repo, tag] = ref.split(":");
  const id = await engine.createContainer({ image: TEST_IMAGE, cmd: ["true"], labels: { [TEST_LABEL]: testLabelValue } });
  try {
    const qs = new URLSearchParams({ container: id, repo, tag });
    qs.append("changes", `CMD ${JSON.stringify(cmd)}`);
    qs.append("changes", `LABEL ${TEST_LABEL}=${testLabelValue}`);
    for (const change of extra) qs.append("changes", change);
    await engine.call("POST", `/commit?${qs}`);
  } finally {
    await engine.remove(id);
  }
}

/** Every container of this run: by our ids and by the images' label. */
async function leftovers(ids) {
  const seen = new Map();
  for (const [label, id] of ids) {
    for (const c of await engine.listContainers([`${label}=${id}`])) seen.set(c.Id, c);
  }
  for (const c of await engine.listContainers([`${TEST_LABEL}=${testLabelValue}`])) seen.set(c.Id, c);
  return [...seen.values()];
}

const made = []; // [label, id] of every object this file asked for

function gatewayId(name) {
  const id = `gw-${name}-${runTag}`;
  made.push(["berth.gateway_id", id]);
  return id;
}

function deploymentId(name) {
  const id = `dep-${name}-${runTag}`;
  made.push(["berth.deployment_id", id]);
  return id;
}

async function ok(d, path, body) {
  const r = await rpc(d, path, body);
  assert.equal(r.status, 200, `${path} ${JSON.stringify(body)}: ${r.text}`);
  return r.json;
}

async function fails(d, path, body, code) {
  const r = await rpc(d, path, body);
  assert.notEqual(r.status, 200, `${path} should fail: ${r.text}`);
  assert.equal(r.json?.code, code, `${path}: ${r.text}`);
  return r.json;
}

/** Wait until Get reports `n` instances, all RUNNING with an address. */
async function waitAllRunning(d, path, body, n, running) {
  let last;
  return waitFor(
    async () => {
      last = await rpc(d, path, body);
      const inst = last.json?.instances || [];
      return last.status === 200 && inst.length === n && inst.every((i) => i.status === running && i.address) ? last.json : false;
    },
    { timeoutMs: 20000, intervalMs: 100, what: `${path} to report ${n} running instances`, describe: () => last?.text },
  );
}

/** GET /id from an instance address; resolves the body once it answers. */
async function httpId(address) {
  let lastErr;
  return waitFor(
    async () => {
      try {
        const r = await rawRequest(`http://${address}`, { method: "GET", path: "/id", timeoutMs: 2000 });
        return r.status === 200 ? r.text.trim() : false;
      } catch (err) {
        lastErr = err;
        return false;
      }
    },
    { timeoutMs: 15000, intervalMs: 100, what: `HTTP on ${address}`, describe: () => String(lastErr) },
  );
}

async function idsOf(label, id) {
  return (await engine.listContainers([`${label}=${id}`])).map((c) => c.Id).sort();
}

describe("gateways and deployments on the docker backend", { skip: berthdSkip || engineSkip }, () => {
  let d;

  before(async () => {
    await ensureTestImage(engine);
    await commitImage(HTTPD_IMAGE, HTTPD_CMD);
    // A working directory that is a file: the runtime refuses to start the
    // container at all (a CMD that cannot exec would start: the init
    // process every container gets runs, then the CMD fails).
    await commitImage(BROKEN_IMAGE, ["/nonexistent"], ["WORKDIR /bin/busybox"]);
    d = await startBerthd({
      backend: "docker",
      args: ["--docker-socket", engine.socketPath, "--publish-address", "127.0.0.1"],
    });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 15000,
      what: "GET /readyz to answer 200 with the docker backend",
      describe: () => `stderr:\n${d.stderr}`,
    });
  });

  after(async () => {
    if (d && !d.exit) await d.kill();
  });

  test("a 3-replica gateway: every instance serves HTTP on its address; retry; conflict; delete", async () => {
    const gatewayIdValue = gatewayId("three");
    const spec = {
      namespace: "integration",
      workspaceId: "ws_test",
      gatewayId: gatewayIdValue,
      image: HTTPD_IMAGE,
      replicas: 3,
      cpuMillicores: 200,
      memorySizeMib: "64",
      env: { GREETING: "hello" },
    };
    const created = await ok(d, `${GW}/CreateGateway`, { gateway: spec });
    assert.equal(created.status, "GATEWAY_STATUS_PENDING");

    const ctrs = await engine.listContainers([`berth.gateway_id=${gatewayIdValue}`]);
    assert.equal(ctrs.length, 3, "three containers");
    const names = ctrs.map((c) => c.Names[0].replace(/^\//, "")).sort();
    assert.deepEqual(names, [0, 1, 2].map((i) => `berth-gw-${gatewayIdValue}-${i}`));
    const ins = await engine.inspect(ctrs.find((c) => c.Labels["berth.replica"] === "1").Id);
    assert.equal(ins.Config.Labels["berth.managed"], "true");
    assert.equal(ins.Config.Labels["berth.kind"], "gateway");
    assert.equal(ins.Config.Labels["berth.namespace"], "integration");
    assert.equal(ins.Config.Labels["berth.workspace_id"], "ws_test");
    assert.equal(ins.HostConfig.RestartPolicy.Name, "unless-stopped");
    assert.equal(ins.HostConfig.NanoCpus, 200_000_000);
    assert.equal(ins.HostConfig.Memory, 64 * 1024 * 1024);
    for (const e of [
      `BERTH_GATEWAY_ID=${gatewayIdValue}`,
      `BERTH_INSTANCE_ID=${gatewayIdValue}-1`,
      "BERTH_WORKSPACE_ID=ws_test",
      "GREETING=hello",
      "UNKEY_WORKSPACE_ID=ws_test",
      `UNKEY_GATEWAY_ID=${gatewayIdValue}`,
      `UNKEY_IMAGE=${HTTPD_IMAGE}`,
    ]) {
      assert.ok(ins.Config.Env.includes(e), `env ${e} in ${ins.Config.Env}`);
    }

    const get = { namespace: "integration", gatewayId: gatewayIdValue };
    const info = await waitAllRunning(d, `${GW}/GetGateway`, get, 3, "GATEWAY_STATUS_RUNNING");
    assert.deepEqual(
      info.instances.map((i) => i.id),
      [0, 1, 2].map((i) => `${gatewayIdValue}-${i}`),
    );
    assert.equal(info.address, info.instances[0].address, "gateway address = replica 0's");
    for (const inst of info.instances) {
      assert.match(inst.address, /^127\.0\.0\.1:\d+$/);
      assert.equal(await httpId(inst.address), inst.id, `${inst.address} is served by ${inst.id}`);
    }

    // A retry changes nothing; a different spec is refused.
    const before = await idsOf("berth.gateway_id", gatewayIdValue);
    assert.equal((await ok(d, `${GW}/CreateGateway`, { gateway: spec })).status, "GATEWAY_STATUS_PENDING");
    assert.deepEqual(await idsOf("berth.gateway_id", gatewayIdValue), before, "retry duplicated nothing");
    await fails(d, `${GW}/CreateGateway`, { gateway: { ...spec, replicas: 2 } }, "already_exists");
    await fails(d, `${GW}/CreateGateway`, { gateway: { ...spec, env: { GREETING: "bye" } } }, "already_exists");
    assert.deepEqual(await idsOf("berth.gateway_id", gatewayIdValue), before, "conflict changed nothing");

    // Delete removes every replica; twice is fine.
    assert.deepEqual(await ok(d, `${GW}/DeleteGateway`, get), {});
    assert.deepEqual(await idsOf("berth.gateway_id", gatewayIdValue), [], "no container left");
    assert.deepEqual(await ok(d, `${GW}/DeleteGateway`, get), {});
    await fails(d, `${GW}/GetGateway`, get, "not_found");
  });

  test("a replica that cannot start rolls the whole set back", async () => {
    const id = gatewayId("broken");
    const err = await rpc(d, `${GW}/CreateGateway`, { gateway: { gatewayId: id, image: BROKEN_IMAGE, replicas: 3 } });
    assert.notEqual(err.status, 200, `create of an image that cannot exec must fail: ${err.text}`);
    assert.ok(err.json?.code && err.json.code !== "ok", err.text);
    assert.deepEqual(await idsOf("berth.gateway_id", id), [], "zero containers after the rollback");
    await fails(d, `${GW}/GetGateway`, { gatewayId: id }, "not_found");

    const depId = deploymentId("broken");
    const derr = await rpc(d, `${DEP}/CreateDeployment`, { deployment: { deploymentId: depId, image: BROKEN_IMAGE, replicas: 2 } });
    assert.notEqual(derr.status, 200, derr.text);
    assert.deepEqual(await idsOf("berth.deployment_id", depId), [], "zero deployment containers after the rollback");
  });

  test("unknown ids: Get not_found, Delete succeeds", async () => {
    const id = `gw-missing-${runTag}`;
    const e = await fails(d, `${GW}/GetGateway`, { gatewayId: id }, "not_found");
    assert.match(e.message, /not found/);
    await fails(d, `${DEP}/GetDeployment`, { deploymentId: id }, "not_found");
    assert.deepEqual(await ok(d, `${GW}/DeleteGateway`, { gatewayId: id }), {});
    assert.deepEqual(await ok(d, `${DEP}/DeleteDeployment`, { deploymentId: id }), {});
  });

  test("without a vault an encrypted secrets blob reaches every replica as UNKEY_SECRETS_BLOB, and no label", async () => {
    const id = deploymentId("secret");
    const blob = Buffer.from("sealed-\u00ff-blob\n");
    const b64 = blob.toString("base64");
    const spec = { deploymentId: id, image: HTTPD_IMAGE, replicas: 2, encryptedSecretsBlob: b64 };
    await ok(d, `${DEP}/CreateDeployment`, { deployment: spec });
    const ids = await idsOf("berth.deployment_id", id);
    assert.equal(ids.length, 2);
    for (const cid of ids) {
      const ins = await engine.inspect(cid);
      assert.ok(ins.Config.Env.includes(`UNKEY_SECRETS_BLOB=${b64}`), `blob in ${ins.Config.Env}`);
      const labels = JSON.stringify(ins.Config.Labels);
      assert.ok(!labels.includes(b64) && !labels.includes("sealed"), `the blob in the labels: ${labels}`);
    }
    // The digest covers the blob: the same one is a retry, another a new spec.
    await ok(d, `${DEP}/CreateDeployment`, { deployment: spec });
    assert.deepEqual(await idsOf("berth.deployment_id", id), ids);
    await fails(d, `${DEP}/CreateDeployment`, { deployment: { ...spec, encryptedSecretsBlob: Buffer.from("other").toString("base64") } }, "already_exists");
    assert.deepEqual(await ok(d, `${DEP}/DeleteDeployment`, { deploymentId: id }), {});
  });

  test("a 2-replica deployment on port 8080: HTTP, retry, conflict, delete", async () => {
    const id = deploymentId("two");
    const spec = {
      namespace: "integration",
      deploymentId: id,
      image: HTTPD_IMAGE,
      replicas: 2,
      environmentSlug: "staging",
      environmentId: "env_1",
      buildId: "build_1",
    };
    assert.equal((await ok(d, `${DEP}/CreateDeployment`, { deployment: spec })).status, "DEPLOYMENT_STATUS_PENDING");
    const ctrs = await engine.listContainers([`berth.deployment_id=${id}`]);
    assert.equal(ctrs.length, 2);
    const ins = await engine.inspect(ctrs[0].Id);
    assert.equal(ins.Config.Labels["berth.kind"], "deployment");
    assert.equal(ins.Config.Labels["berth.environment_slug"], "staging");
    assert.ok(ins.Config.Env.includes("BERTH_ENVIRONMENT_SLUG=staging"), `${ins.Config.Env}`);
    assert.ok(ins.Config.Env.includes(`BERTH_DEPLOYMENT_ID=${id}`), `${ins.Config.Env}`);
    assert.ok(Object.keys(ins.HostConfig.PortBindings).includes("8080/tcp"), JSON.stringify(ins.HostConfig.PortBindings));

    const get = { namespace: "integration", deploymentId: id };
    const info = await waitAllRunning(d, `${DEP}/GetDeployment`, get, 2, "DEPLOYMENT_STATUS_RUNNING");
    for (const inst of info.instances) assert.equal(await httpId(inst.address), inst.id);

    const before = await idsOf("berth.deployment_id", id);
    await ok(d, `${DEP}/CreateDeployment`, { deployment: spec });
    assert.deepEqual(await idsOf("berth.deployment_id", id), before);
    await fails(d, `${DEP}/CreateDeployment`, { deployment: { ...spec, buildId: "build_2" } }, "already_exists");

    // A replica removed behind berthd's back: a retry makes it again.
    await engine.remove(before[0]);
    await ok(d, `${DEP}/CreateDeployment`, { deployment: spec });
    assert.equal((await idsOf("berth.deployment_id", id)).length, 2);

    assert.deepEqual(await ok(d, `${DEP}/DeleteDeployment`, get), {});
    assert.deepEqual(await idsOf("berth.deployment_id", id), []);
    assert.deepEqual(await ok(d, `${DEP}/DeleteDeployment`, get), {});
  });

  test("SIGTERM: graceful exit 0", async () => {
    const r = await d.stop();
    assert.deepEqual(r, { code: 0, signal: null }, `stderr:\n${d.stderr}`);
  });

  test("no container of this run is left behind", async () => {
    const left = await leftovers(made);
    assert.deepEqual(
      left.map((c) => `${c.Names[0]}:${c.State}`),
      [],
    );
  });
});

after(async () => {
  if (!engine) return;
  for (const c of await leftovers(made)) await engine.remove(c.Id);
  for (const ref of [HTTPD_IMAGE, BROKEN_IMAGE]) {
    await engine.call("DELETE", `/images/${encodeURIComponent(ref)}`, { query: { force: "1" }, ok: [404, 409] });
  }
});
