// ctest-labels: docker swarm
// The swarm backend on a one-node Swarm of this file's own (a private
// dockerd on a bridge of its own, `swarm init` there; never the shared
// Engine): a 3-replica gateway and a 2-replica deployment become one Swarm
// service each, every instance RUNNING with a host-mode published address
// on the node's address that answers HTTP as that instance; a caller's env
// is no template; a retry changes nothing, a different spec is
// already_exists, Get in another namespace is not_found, Delete removes the
// service (twice is fine). A VM still becomes a local container of that
// Engine.
// Everything is torn down at the end, on failure too.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startBerthd, berthdSkipReason, rawRequest, waitFor } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE, TESTS_DIR } from "../lib/proto.mjs";
import path from "node:path";
import { PrivateSwarm, swarmSkipReason } from "../lib/swarm.mjs";

const skip = berthdSkipReason() || swarmSkipReason();
const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const GW = "/krane.v1.GatewayService";
const DEP = "/krane.v1.DeploymentService";
const VM = `/${VM_SERVICE}`;
const HTTPD_IMAGE = `berth-test/httpd-swarm:${RUN}`;
// Each replica writes its instance id where httpd serves it, then serves
// /www on the deployment port (in the background) and the gateway port.
const HTTPD_CMD = ["/bin/sh", "-c", 'echo "$BERTH_INSTANCE_ID" > /www/id && httpd -p 8080 -h /www && exec httpd -f -p 8040 -h /www'];
const EXITS_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"];
const RUNNING_MS = 90000; // a task of a fresh Swarm may take a while to run

const swarm = new PrivateSwarm();
let engine; // the private Engine
let d; // berthd with --backend swarm on it

async function ok(p, body) {
  const r = await rpc(d, p, body);
  assert.equal(r.status, 200, `${p} ${JSON.stringify(body)}: ${r.text}`);
  return r.json;
}

async function fails(p, body, code) {
  const r = await rpc(d, p, body);
  assert.notEqual(r.status, 200, `${p} should fail: ${r.text}`);
  assert.equal(r.json?.code, code, `${p}: ${r.text}`);
  return r.json;
}

/** Services of the private Swarm labelled with label=value. */
async function services(label, value) {
  const r = await engine.call("GET", "/services", { query: { filters: { label: [`${label}=${value}`] } } });
  return r.body;
}

/** Wait until Get reports n instances, all `running` with an address. */
async function allRunning(p, body, n, running) {
  let last;
  return waitFor(
    async () => {
      last = await rpc(d, p, body);
      const inst = last.json?.instances || [];
      return last.status === 200 && inst.length === n && inst.every((i) => i.status === running && i.address) ? last.json : false;
    },
    { timeoutMs: RUNNING_MS, intervalMs: 250, what: `${p} to report ${n} running instances`, describe: () => last?.text },
  );
}

/** GET /id from an instance address, once it answers. */
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
    { timeoutMs: 20000, intervalMs: 200, what: `HTTP on ${address}`, describe: () => String(lastErr) },
  );
}

/** Make HTTPD_IMAGE in the private Engine: TEST_IMAGE committed with HTTPD_CMD. */
async function commitHttpdImage() {
  const [repo, tag] = HTTPD_IMAGE.split(":");
  const id = await engine.createContainer({ image: TEST_IMAGE, cmd: ["true"] });
  try {
    const qs = new URLSearchParams({ container: id, repo, tag });
    qs.append("changes", `CMD ${JSON.stringify(HTTPD_CMD)}`);
    await engine.call("POST", `/commit?${qs}`);
  } finally {
    await engine.remove(id);
  }
}

describe("gateways and deployments on a one-node Swarm", { skip }, () => {
  before(async () => {
    engine = await swarm.start();
    await swarm.buildTestImage(path.join(TESTS_DIR, "lib", "image.sh"));
    await commitHttpdImage();
    d = await startBerthd({ backend: "swarm", args: ["--docker-socket", swarm.socket, "--publish-address", "127.0.0.1"] });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 20000,
      what: "GET /readyz to answer 200 with the swarm backend",
      describe: () => `stderr:\n${d.stderr}`,
    });
  });

  after(async () => {
    try {
      if (d && !d.exit) await d.kill();
    } finally {
      await swarm.teardown();
    }
  });

  test("a 3-replica gateway is one service; its instances serve HTTP on the node's address", async () => {
    const id = `sgw-${RUN}`;
    const spec = { namespace: "integration", workspaceId: "ws_test", gatewayId: id, image: HTTPD_IMAGE, replicas: 3, env: { GREETING: "hi {{.Node.ID}}" } };
    assert.equal((await ok(`${GW}/CreateGateway`, { gateway: spec })).status, "GATEWAY_STATUS_PENDING");

    const svcs = await services("berth.gateway_id", id);
    assert.equal(svcs.length, 1, "one service");
    assert.equal(svcs[0].Spec.Name, `berth-gw-${id}`);
    assert.equal(svcs[0].Spec.Labels["berth.managed"], "true");
    assert.equal(svcs[0].Spec.Labels["berth.namespace"], "integration");
    assert.equal(svcs[0].Spec.Mode.Replicated.Replicas, 3);
    assert.ok(svcs[0].Spec.EndpointSpec.Ports.every((p) => p.PublishMode === "host"), JSON.stringify(svcs[0].Spec.EndpointSpec));

    const get = { namespace: "integration", gatewayId: id };
    const info = await allRunning(`${GW}/GetGateway`, get, 3, "GATEWAY_STATUS_RUNNING");
    assert.deepEqual(
      info.instances.map((i) => i.id),
      [0, 1, 2].map((i) => `${id}-${i}`),
    );
    for (const inst of info.instances) {
      assert.ok(inst.address.startsWith(`${swarm.address}:`), `${inst.address} is on the node's address ${swarm.address}`);
      assert.equal(await httpId(inst.address), inst.id, `${inst.address} is served by ${inst.id}`);
    }

    // A caller's env value reaches the tasks as it was, never as a Swarm template.
    const ctrs = await engine.listContainers([`berth.gateway_id=${id}`]);
    assert.equal(ctrs.length, 3, "three task containers on the node");
    assert.ok((await engine.inspect(ctrs[0].Id)).Config.Env.includes("GREETING=hi {{.Node.ID}}"));

    // A retry changes nothing; a different spec is refused; another namespace does not see it.
    assert.equal((await ok(`${GW}/CreateGateway`, { gateway: spec })).status, "GATEWAY_STATUS_PENDING");
    const again = await services("berth.gateway_id", id);
    assert.equal(again.length, 1);
    assert.equal(again[0].ID, svcs[0].ID, "the retry kept the service");
    assert.equal(again[0].Version.Index, svcs[0].Version.Index, "the retry did not update the service");
    await fails(`${GW}/CreateGateway`, { gateway: { ...spec, replicas: 2 } }, "already_exists");
    await fails(`${GW}/GetGateway`, { namespace: "other", gatewayId: id }, "not_found");

    assert.deepEqual(await ok(`${GW}/DeleteGateway`, get), {});
    assert.deepEqual(await services("berth.gateway_id", id), [], "no service left");
    assert.deepEqual(await ok(`${GW}/DeleteGateway`, get), {});
    await fails(`${GW}/GetGateway`, get, "not_found");
  });

  test("a 2-replica deployment serves on port 8080; delete leaves no service", async () => {
    const id = `sdep-${RUN}`;
    const spec = { namespace: "integration", deploymentId: id, image: HTTPD_IMAGE, replicas: 2, environmentSlug: "staging" };
    assert.equal((await ok(`${DEP}/CreateDeployment`, { deployment: spec })).status, "DEPLOYMENT_STATUS_PENDING");
    const get = { namespace: "integration", deploymentId: id };
    const info = await allRunning(`${DEP}/GetDeployment`, get, 2, "DEPLOYMENT_STATUS_RUNNING");
    for (const inst of info.instances) assert.equal(await httpId(inst.address), inst.id);
    const svcs = await services("berth.deployment_id", id);
    assert.equal(svcs.length, 1);
    assert.equal(svcs[0].Spec.Labels["berth.environment_slug"], "staging");

    assert.deepEqual(await ok(`${DEP}/DeleteDeployment`, get), {});
    assert.deepEqual(await services("berth.deployment_id", id), [], "no service left");
    await fails(`${DEP}/GetDeployment`, get, "not_found");
    // Swarm removes the tasks' containers by itself, soon.
    await waitFor(async () => (await engine.listContainers([`berth.deployment_id=${id}`])).length === 0, {
      timeoutMs: 30000,
      what: "the deployment's task containers to go",
    });
  });

  test("a service of berthd's name without berth.managed is never touched", async () => {
    const id = `sforeign-${RUN}`;
    const name = `berth-gw-${id}`;
    await swarm.docker(["service", "create", "--detach", "--name", name, "--label", `berth.gateway_id=${id}`, TEST_IMAGE, "sleep", "600"]);
    try {
      await fails(`${GW}/CreateGateway`, { gateway: { gatewayId: id, image: HTTPD_IMAGE, replicas: 1 } }, "already_exists");
      await fails(`${GW}/GetGateway`, { gatewayId: id }, "not_found");
      assert.deepEqual(await ok(`${GW}/DeleteGateway`, { gatewayId: id }), {});
      const r = await engine.call("GET", `/services/${name}`, { ok: [404] });
      assert.equal(r.status, 200, "the foreign service is still there");
    } finally {
      await swarm.docker(["service", "rm", name]);
    }
  });

  test("a VM is still a local container of the Engine", async () => {
    const vmId = `svm-${RUN}`;
    const created = await ok(`${VM}/CreateVm`, { vmId, config: { container: { image: TEST_IMAGE, command: EXITS_ON_TERM } } });
    assert.equal(created.state, "VM_STATE_CREATED");
    const ctrs = await engine.listContainers([`berth.vm_id=${vmId}`]);
    assert.equal(ctrs.length, 1, "one container");
    await ok(`${VM}/BootVm`, { vmId });
    await waitFor(async () => (await ok(`${VM}/GetVmInfo`, { vmId })).state === "VM_STATE_RUNNING", { timeoutMs: 20000, what: "the VM to run" });
    assert.equal((await engine.inspect(ctrs[0].Id)).State.Running, true);
    await ok(`${VM}/DeleteVm`, { vmId, force: true });
    assert.deepEqual(await engine.listContainers([`berth.vm_id=${vmId}`]), []);
  });
});
