// ctest-labels: docker
// krane.v1 GatewayService and DeploymentService from real Connect clients:
// @connectrpc/connect-node (binary protobuf and JSON) and `buf curl` (binary),
// over HTTP/1.1 against berthd on the Docker backend. Create, Get, Update,
// List, Delete of a gateway and a deployment, plus the error codes clients
// see. Descriptors come from proto/ (see ../lib/proto.mjs).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { BUF, PROTO_DIR, bufEnv, getService } from "../lib/proto.mjs";
import { waitFor } from "../lib/wait.mjs";

const berthdSkip = berthdSkipReason();
const [engine, engineSkip] = berthdSkip ? [undefined, undefined] : await connectEngine();

const GATEWAY_SERVICE = "krane.v1.GatewayService";
const DEPLOYMENT_SERVICE = "krane.v1.DeploymentService";
const PENDING = 1; // GatewayStatus and DeploymentStatus share the numbers
const KNOWN_STATUSES = [1, 2, 3];

const runTag = `${process.pid}-${Date.now().toString(36)}`;
const made = []; // [label, id] for the leak check and the cleanup

function clients(d, useBinaryFormat) {
  const transport = createConnectTransport({ baseUrl: d.url, httpVersion: "1.1", useBinaryFormat });
  return {
    gw: createClient(getService(GATEWAY_SERVICE), transport),
    dep: createClient(getService(DEPLOYMENT_SERVICE), transport),
  };
}

async function expectConnectError(promise, code, what) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ConnectError, `${what}: a ConnectError, got ${err}`);
    assert.equal(err.code, code, `${what}: code ${Code[err.code]} (${err.rawMessage}), want ${Code[code]}`);
    return true;
  });
}

async function containerCount(label, id) {
  return (await engine.listContainers([`${label}=${id}`])).length;
}

/** The replica containers' ids (a set's record aside), sorted. */
async function replicaIds(label, id) {
  return (await engine.listContainers([`${label}=${id}`]))
    .filter((c) => !(c.Labels || {})["berth.record"])
    .map((c) => c.Id)
    .sort();
}

/** One `buf curl` call; resolves { code, json, stdout, stderr }. */
function bufCurl(d, service, method, data) {
  const args = ["curl", "--schema", PROTO_DIR, "--protocol", "connect", "--timeout", "60s", "--data", JSON.stringify(data), `${d.url}/${service}/${method}`];
  return new Promise((resolve, reject) => {
    execFile(BUF, args, { env: bufEnv(), timeout: 90000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return reject(err);
      const code = err ? err.code : 0;
      const text = code === 0 ? stdout : stderr;
      const start = code === 0 ? text.indexOf("{") : text.search(/^\{/m);
      let json;
      if (start >= 0) {
        try {
          json = JSON.parse(text.slice(start));
        } catch {
          json = undefined;
        }
      }
      resolve({ code, json, stdout, stderr });
    });
  });
}

async function bufOk(d, service, method, data) {
  const r = await bufCurl(d, service, method, data);
  assert.equal(r.code, 0, `buf curl ${method} failed (${r.code}):\n${r.stderr}`);
  assert.ok(r.json, `buf curl ${method}: JSON on stdout: ${r.stdout}`);
  return r.json;
}

/** Create, Get, retry, Delete of one gateway and one deployment with connect-node. */
async function connectRoundTrip(d, useBinaryFormat) {
  const tag = useBinaryFormat ? "bin" : "json";
  const { gw, dep } = clients(d, useBinaryFormat);

  const gatewayId = `ik-gw-${tag}-${runTag}`;
  made.push(["berth.gateway_id", gatewayId]);
  const gateway = { namespace: "interop", workspaceId: "ws_interop", gatewayId, image: TEST_IMAGE, replicas: 2, cpuMillicores: 100, memorySizeMib: 32n, env: { SUITE: "connect-node" } };
  assert.equal((await gw.createGateway({ gateway })).status, PENDING);
  assert.equal((await gw.createGateway({ gateway })).status, PENDING, "a retry succeeds");
  assert.equal(await containerCount("berth.gateway_id", gatewayId), 2);
  await expectConnectError(gw.createGateway({ gateway: { ...gateway, replicas: 3 } }), Code.AlreadyExists, "different spec");
  const g = await gw.getGateway({ namespace: "interop", gatewayId });
  assert.deepEqual(
    g.instances.map((i) => i.id),
    [`${gatewayId}-0`, `${gatewayId}-1`],
  );
  for (const i of g.instances) assert.ok(KNOWN_STATUSES.includes(i.status), `status ${i.status}`);

  // Update: the same spec touches nothing; one replica less; unknown ids.
  const before = await replicaIds("berth.gateway_id", gatewayId);
  assert.deepEqual((await gw.updateGateway({ gateway })).podIds, [`${gatewayId}-0`, `${gatewayId}-1`]);
  assert.deepEqual(await replicaIds("berth.gateway_id", gatewayId), before);
  assert.deepEqual((await gw.updateGateway({ gateway: { ...gateway, replicas: 1 } })).podIds, [`${gatewayId}-0`]);
  const left = await replicaIds("berth.gateway_id", gatewayId);
  assert.equal(left.length, 1);
  assert.ok(before.includes(left[0]), "the replica left is one of the two");
  await expectConnectError(gw.updateGateway({ gateway: { ...gateway, gatewayId: `${gatewayId}-none` } }), Code.NotFound, "Update of an unknown id");
  await expectConnectError(gw.updateGateway({ gateway: { ...gateway, replicas: 0 } }), Code.InvalidArgument, "Update to zero replicas");
  const listed = await gw.listGateways({ namespace: "interop", pageSize: 1000 });
  const mine = listed.gateways.find((x) => x.gatewayId === gatewayId);
  assert.ok(mine, `ListGateways shows ${gatewayId}`);
  assert.equal(mine.replicas, 1);
  assert.equal(mine.image, TEST_IMAGE);
  assert.ok(listed.totalCount >= 1);
  await gw.deleteGateway({ namespace: "interop", gatewayId });
  assert.equal(await containerCount("berth.gateway_id", gatewayId), 0);
  await gw.deleteGateway({ namespace: "interop", gatewayId });
  await expectConnectError(gw.getGateway({ namespace: "interop", gatewayId }), Code.NotFound, "Get after Delete");

  const deploymentId = `ik-dep-${tag}-${runTag}`;
  made.push(["berth.deployment_id", deploymentId]);
  const deployment = { namespace: "interop", deploymentId, image: TEST_IMAGE, replicas: 1, environmentSlug: "test", buildId: "b1" };
  assert.equal((await dep.createDeployment({ deployment })).status, PENDING);
  const r = await dep.getDeployment({ namespace: "interop", deploymentId });
  assert.equal(r.instances.length, 1);
  assert.equal(r.instances[0].id, `${deploymentId}-0`);
  await expectConnectError(
    dep.createDeployment({ deployment: { ...deployment, deploymentId: `${deploymentId}-s`, encryptedSecretsBlob: new Uint8Array([1, 2, 3]) } }),
    Code.Unimplemented,
    "secrets blob",
  );
  await expectConnectError(dep.createDeployment({ deployment: { ...deployment, replicas: 0 } }), Code.InvalidArgument, "zero replicas");
  // The test image's shell exits at once: a new spec never becomes ready,
  // and the update is rolled back.
  const kept = await replicaIds("berth.deployment_id", deploymentId);
  assert.deepEqual((await dep.updateDeployment({ deployment })).podIds, [`${deploymentId}-0`]);
  await expectConnectError(dep.updateDeployment({ deployment: { ...deployment, buildId: "b2" } }), Code.FailedPrecondition, "an update that cannot become ready");
  assert.deepEqual(await replicaIds("berth.deployment_id", deploymentId), kept, "rolled back to the same container");
  const page = await dep.listDeployments({ namespace: "interop", pageSize: 1 });
  assert.equal(page.deployments.length, 1);
  assert.ok(page.totalCount >= 1);
  await dep.deleteDeployment({ namespace: "interop", deploymentId });
  assert.equal(await containerCount("berth.deployment_id", deploymentId), 0);
}

describe("krane services from Connect clients (docker backend)", { skip: berthdSkip || engineSkip }, () => {
  let d;

  before(async () => {
    await ensureTestImage(engine);
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

  test("connect-node, binary protobuf", async () => {
    await connectRoundTrip(d, true);
  });

  test("connect-node, JSON", async () => {
    await connectRoundTrip(d, false);
  });

  test("buf curl: gateway and deployment create, get, delete", async () => {
    const gatewayId = `ik-gw-buf-${runTag}`;
    made.push(["berth.gateway_id", gatewayId]);
    const created = await bufOk(d, GATEWAY_SERVICE, "CreateGateway", { gateway: { gatewayId, image: TEST_IMAGE, replicas: 2 } });
    assert.equal(created.status, "GATEWAY_STATUS_PENDING");
    const g = await bufOk(d, GATEWAY_SERVICE, "GetGateway", { gatewayId });
    assert.deepEqual(
      g.instances.map((i) => i.id),
      [`${gatewayId}-0`, `${gatewayId}-1`],
    );
    const u = await bufOk(d, GATEWAY_SERVICE, "UpdateGateway", { gateway: { gatewayId, image: TEST_IMAGE, replicas: 1 } });
    assert.deepEqual(u.podIds, [`${gatewayId}-0`]);
    const l = await bufOk(d, GATEWAY_SERVICE, "ListGateways", { pageSize: 1000 });
    const entry = (l.gateways || []).find((x) => x.gatewayId === gatewayId);
    assert.ok(entry, `ListGateways shows ${gatewayId}: ${JSON.stringify(l)}`);
    assert.equal(entry.replicas, 1);
    const nf = await bufCurl(d, GATEWAY_SERVICE, "UpdateGateway", { gateway: { gatewayId: `${gatewayId}-none`, image: TEST_IMAGE, replicas: 1 } });
    assert.equal(nf.json?.code, "not_found", nf.stderr);
    assert.deepEqual(await bufOk(d, GATEWAY_SERVICE, "DeleteGateway", { gatewayId }), {});
    assert.equal(await containerCount("berth.gateway_id", gatewayId), 0);
    const missing = await bufCurl(d, GATEWAY_SERVICE, "GetGateway", { gatewayId });
    assert.notEqual(missing.code, 0);
    assert.equal(missing.json?.code, "not_found", missing.stderr);

    const deploymentId = `ik-dep-buf-${runTag}`;
    made.push(["berth.deployment_id", deploymentId]);
    const dc = await bufOk(d, DEPLOYMENT_SERVICE, "CreateDeployment", { deployment: { deploymentId, image: TEST_IMAGE, replicas: 1 } });
    assert.equal(dc.status, "DEPLOYMENT_STATUS_PENDING");
    const dg = await bufOk(d, DEPLOYMENT_SERVICE, "GetDeployment", { deploymentId });
    assert.equal(dg.instances[0].id, `${deploymentId}-0`);
    assert.deepEqual((await bufOk(d, DEPLOYMENT_SERVICE, "UpdateDeployment", { deployment: { deploymentId, image: TEST_IMAGE, replicas: 1 } })).podIds, [`${deploymentId}-0`]);
    const dl = await bufOk(d, DEPLOYMENT_SERVICE, "ListDeployments", { pageSize: 1000 });
    assert.ok((dl.deployments || []).some((x) => x.deploymentId === deploymentId), JSON.stringify(dl));
    assert.deepEqual(await bufOk(d, DEPLOYMENT_SERVICE, "DeleteDeployment", { deploymentId }), {});
    assert.equal(await containerCount("berth.deployment_id", deploymentId), 0);
  });

  test("no container of this run is left behind", async () => {
    let n = 0;
    for (const [label, id] of made) n += await containerCount(label, id);
    assert.equal(n, 0);
  });
});

after(async () => {
  if (!engine) return;
  for (const [label, id] of made) {
    for (const c of await engine.listContainers([`${label}=${id}`])) await engine.remove(c.Id);
  }
});
