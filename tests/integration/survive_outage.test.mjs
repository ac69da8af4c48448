// ctest-labels: docker outage
// An Engine outage while berthd runs. So as never to break the Engine other
// tests share, this file starts a second dockerd of its own: its own socket,
// data root, exec root, pidfile and bridge (never `--bridge none`, which
// deletes the host's docker0), no iptables changes, live-restore so its
// containers outlive it. berthd talks to that Engine only. With the Engine
// stopped, calls that need it answer `unavailable` within 1 s, reads keep
// answering from the registry and /readyz is 503; with the Engine back,
// berthd serves again within 5 s, by itself, and its registry matches the
// Engine, including a change made while berthd could not see it. A gateway
// and a deployment live through the outage too: while the Engine is down
// GetGateway and GetDeployment answer the last known answer within 1 s and
// their Create and Delete answer `unavailable` within 1 s; afterwards they
// serve live again.
// Everything is torn down at the end, on failure too.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { rpc as rpcTo, serviceRpc } from "../lib/rpc.mjs";
import { PrivateEngine } from "../lib/private_engine.mjs";
import { TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE, TESTS_DIR } from "../lib/proto.mjs";

const run = promisify(execFile);
const skip = berthdSkipReason();

const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const vmId = (tag) => `out-${tag}-${RUN}`;
const FAST_MS = 1000; // calls that need the Engine fail within this while it is down
const RECOVER_MS = 5000; // berthd serves again within this once the Engine is back
const EXITS_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"];
const IMAGE_SH = path.join(TESTS_DIR, "lib", "image.sh");
const GW = "/krane.v1.GatewayService";
const DEP = "/krane.v1.DeploymentService";
const REPLICA_IMAGE = `berth-test/gx-outage:${RUN}`; // TEST_IMAGE whose CMD runs until SIGTERM
const gxId = (tag) => `gx-${tag}-${RUN}`;
const ENGINE_TO_STATE = { created: "VM_STATE_CREATED", running: "VM_STATE_RUNNING", paused: "VM_STATE_PAUSED", exited: "VM_STATE_SHUTDOWN", dead: "VM_STATE_SHUTDOWN" };

// --- helpers -----------------------------------------------------------------

let d; // the daemon under test
let engine; // client of the private Engine (while it runs)
const priv = new PrivateEngine({ liveRestore: true, tag: "outage" });

const rpc = serviceRpc(() => d, VM_SERVICE);

async function ok(method, body, opts) {
  const r = await rpc(method, body, opts);
  assert.equal(r.status, 200, `${method} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  return r.json;
}

const krane = (p, body, opts) => rpcTo(d, p, body, opts);

async function kraneOk(p, body) {
  const r = await krane(p, body);
  assert.equal(r.status, 200, `${p} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  return r.json;
}

/** Wait until Get at p reports n instances, all `running` with an address. */
async function allRunning(p, body, n, running) {
  let last;
  return waitFor(
    async () => {
      last = await krane(p, body);
      const inst = (last.json && last.json.instances) || [];
      return last.status === 200 && inst.length === n && inst.every((i) => i.status === running && i.address) ? last.json : false;
    },
    { timeoutMs: 20000, intervalMs: 100, what: `${p} to report ${n} running instances`, describe: () => last && last.text },
  );
}

/** REPLICA_IMAGE in the private Engine: TEST_IMAGE committed with a CMD that runs until SIGTERM. */
async function commitReplicaImage() {
  const [repo, tag] = REPLICA_IMAGE.split(":");
  const id = await engine.createContainer({ image: TEST_IMAGE, cmd: ["true"] });
  try {
    const qs = new URLSearchParams({ container: id, repo, tag });
    qs.append("changes", `CMD ${JSON.stringify(EXITS_ON_TERM)}`);
    await engine.call("POST", `/commit?${qs}`);
  } finally {
    await engine.remove(id);
  }
}

async function readyz() {
  return (await d.request({ method: "GET", path: "/readyz", timeoutMs: 5000 })).status;
}

/** id -> state of every VM berthd lists (page by page). */
async function listedStates() {
  const out = {};
  let pageToken;
  do {
    const r = await ok("ListVms", pageToken ? { pageSize: 1000, pageToken } : { pageSize: 1000 });
    for (const v of r.vms || []) out[v.vmId] = v.state;
    pageToken = r.nextPageToken;
  } while (pageToken);
  return out;
}

/** id -> state the Engine holds for every container labelled berth.managed=true, kind vm. */
async function engineStates() {
  const out = {};
  for (const c of await engine.listContainers(["berth.managed=true", "berth.kind=vm"])) {
    out[c.Labels["berth.vm_id"]] = ENGINE_TO_STATE[c.State] || `engine:${c.State}`;
  }
  return out;
}

/** A map as a string that does not depend on key order. */
const canon = (o) => JSON.stringify(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

// --- the suite ----------------------------------------------------------------

describe("an Engine outage while berthd runs", { skip }, () => {
  const up = vmId("up"); // RUNNING through the outage
  const fresh = vmId("fresh"); // CREATED, booted after the outage
  const victim = vmId("victim"); // RUNNING; its process dies while the Engine is down

  before(async () => {
    await priv.prepare();
    engine = await priv.start();
    try {
      await run("sh", [IMAGE_SH], {
        env: { ...process.env, BERTH_TEST_IMAGE: TEST_IMAGE, BERTH_DOCKER_SOCKET: priv.socket, DOCKER_HOST: `unix://${priv.socket}` },
        timeout: 120000,
      });
    } catch (err) {
      throw new Error(`importing ${TEST_IMAGE} into the test's dockerd failed: ${err.message}\n${err.stderr || ""}`);
    }
    assert.ok(await engine.imageExists(TEST_IMAGE), `${TEST_IMAGE} in the test's dockerd`);
    d = await startBerthd({ backend: "docker", args: ["--docker-socket", priv.socket] });
    await waitFor(async () => (await readyz()) === 200, { timeoutMs: 10000, what: "/readyz 200 on the private Engine", describe: () => d.stderr });
  });

  after(async () => {
    try {
      if (d && !d.exit) await d.kill();
    } finally {
      await priv.teardown();
    }
  });

  test("set up: VMs on the private Engine", async () => {
    for (const id of [up, fresh, victim]) await ok("CreateVm", { vmId: id, config: { container: { image: TEST_IMAGE, command: EXITS_ON_TERM } } });
    await ok("BootVm", { vmId: up });
    await ok("BootVm", { vmId: victim });
    assert.deepEqual(await listedStates(), { [up]: "VM_STATE_RUNNING", [fresh]: "VM_STATE_CREATED", [victim]: "VM_STATE_RUNNING" });
    assert.deepEqual(await engineStates(), await listedStates());
  });

  const gw = gxId("gw"); // a 2-replica gateway through the outage
  const dep = gxId("dep"); // a 1-replica deployment through the outage
  const gwGet = { namespace: "outage", gatewayId: gw };
  const depGet = { namespace: "outage", deploymentId: dep };
  let gwBefore, depBefore; // their last answers before the outage

  test("set up: a gateway and a deployment on the private Engine", async () => {
    await commitReplicaImage();
    await kraneOk(`${GW}/CreateGateway`, { gateway: { namespace: "outage", gatewayId: gw, image: REPLICA_IMAGE, replicas: 2 } });
    await kraneOk(`${DEP}/CreateDeployment`, { deployment: { namespace: "outage", deploymentId: dep, image: REPLICA_IMAGE, replicas: 1 } });
    gwBefore = await allRunning(`${GW}/GetGateway`, gwGet, 2, "GATEWAY_STATUS_RUNNING");
    depBefore = await allRunning(`${DEP}/GetDeployment`, depGet, 1, "DEPLOYMENT_STATUS_RUNNING");
    assert.ok(gwBefore.address, `the gateway has an address: ${JSON.stringify(gwBefore)}`);
  });

  test("the Engine stops: its dockerd exits on SIGTERM, the VM containers live on", async () => {
    const victimPid = (await engine.inspect(`berth-vm-${victim}`)).State.Pid;
    assert.ok(victimPid > 0, "the victim runs");
    const exit = await priv.stop();
    assert.ok(exit && (exit.code === 0 || exit.signal === "SIGTERM"), `dockerd exit: ${JSON.stringify(exit)}`);
    assert.ok(existsSync(`/proc/${victimPid}`), "live-restore keeps the containers running");
    // A change berthd cannot see as it happens: the victim's workload dies.
    process.kill(victimPid, "SIGKILL");
    // Gone, or a zombie (its status file may vanish between two looks).
    const dead = () => {
      try {
        return /^State:\s+Z/m.test(readFileSync(`/proc/${victimPid}/status`, "utf8"));
      } catch {
        return true;
      }
    };
    await waitFor(dead, {
      timeoutMs: 5000,
      what: "the victim's workload to die",
    });
  });

  const needEngine = [
    { description: "BootVm of a CREATED VM", method: "BootVm", body: () => ({ vmId: fresh }) },
    { description: "ShutdownVm of a RUNNING VM", method: "ShutdownVm", body: () => ({ vmId: up }) },
    { description: "PauseVm of a RUNNING VM", method: "PauseVm", body: () => ({ vmId: up }) },
    { description: "CreateVm", method: "CreateVm", body: () => ({ vmId: vmId("late"), config: { container: { image: TEST_IMAGE, command: EXITS_ON_TERM } } }) },
    { description: "DeleteVm of a CREATED VM", method: "DeleteVm", body: () => ({ vmId: fresh }) },
  ];
  for (const row of needEngine) {
    test(`Engine down: ${row.description} answers unavailable within ${FAST_MS} ms`, async () => {
      const t0 = Date.now();
      const r = await rpc(row.method, row.body(), { timeoutMs: 10000 });
      const took = Date.now() - t0;
      assert.equal(r.status, 503, `${row.method} -> ${r.status} ${r.text}`);
      assert.equal(r.json && r.json.code, "unavailable", r.text);
      assert.ok(took < FAST_MS, `${row.method} answered in ${took} ms`);
    });
  }

  const kraneNeedEngine = [
    { description: "CreateGateway", path: `${GW}/CreateGateway`, body: () => ({ gateway: { namespace: "outage", gatewayId: gxId("late"), image: REPLICA_IMAGE, replicas: 1 } }) },
    { description: "CreateGateway retry of the existing gateway", path: `${GW}/CreateGateway`, body: () => ({ gateway: { namespace: "outage", gatewayId: gw, image: REPLICA_IMAGE, replicas: 2 } }) },
    { description: "DeleteGateway", path: `${GW}/DeleteGateway`, body: () => gwGet },
    { description: "UpdateGateway", path: `${GW}/UpdateGateway`, body: () => ({ gateway: { namespace: "outage", gatewayId: gw, image: REPLICA_IMAGE, replicas: 1 } }) },
    { description: "CreateDeployment", path: `${DEP}/CreateDeployment`, body: () => ({ deployment: { namespace: "outage", deploymentId: gxId("late"), image: REPLICA_IMAGE, replicas: 1 } }) },
    { description: "DeleteDeployment", path: `${DEP}/DeleteDeployment`, body: () => depGet },
    { description: "GetGateway of an id berthd never saw", path: `${GW}/GetGateway`, body: () => ({ gatewayId: gxId("never") }) },
    { description: "GetGateway in another namespace", path: `${GW}/GetGateway`, body: () => ({ namespace: "other", gatewayId: gw }) },
  ];
  for (const row of kraneNeedEngine) {
    test(`Engine down: ${row.description} answers unavailable within ${FAST_MS} ms`, async () => {
      const t0 = Date.now();
      const r = await krane(row.path, row.body(), { timeoutMs: 10000 });
      const took = Date.now() - t0;
      assert.equal(r.status, 503, `${row.path} -> ${r.status} ${r.text}`);
      assert.equal(r.json && r.json.code, "unavailable", r.text);
      assert.ok(took < FAST_MS, `${row.path} answered in ${took} ms`);
    });
  }

  test(`Engine down: GetGateway and GetDeployment answer the last known answer within ${FAST_MS} ms`, async () => {
    for (const [p, body, before] of [
      [`${GW}/GetGateway`, gwGet, gwBefore],
      [`${DEP}/GetDeployment`, depGet, depBefore],
    ]) {
      const t0 = Date.now();
      const r = await krane(p, body, { timeoutMs: 10000 });
      const took = Date.now() - t0;
      assert.equal(r.status, 200, `${p} -> ${r.status} ${r.text}`);
      assert.deepEqual(r.json, before, `${p} answers what it answered before the outage`);
      assert.ok(took < FAST_MS, `${p} answered in ${took} ms`);
    }
  });

  test(`Engine down: ListGateways and ListDeployments answer from memory within ${FAST_MS} ms`, async () => {
    for (const [p, field, id, replicas] of [
      [`${GW}/ListGateways`, "gateways", gw, 2],
      [`${DEP}/ListDeployments`, "deployments", dep, 1],
    ]) {
      const t0 = Date.now();
      const r = await krane(p, { namespace: "outage" }, { timeoutMs: 10000 });
      const took = Date.now() - t0;
      assert.equal(r.status, 200, `${p} -> ${r.status} ${r.text}`);
      const entry = (r.json[field] || []).find((x) => x.gatewayId === id || x.deploymentId === id);
      assert.ok(entry, `${p} lists ${id}: ${r.text}`);
      assert.equal(entry.replicas, replicas);
      assert.equal(entry.image, REPLICA_IMAGE);
      assert.ok(took < FAST_MS, `${p} answered in ${took} ms`);
    }
  });

  test("Engine down: GetVmInfo and ListVms answer from the registry, /readyz is 503", async () => {
    const t0 = Date.now();
    assert.equal((await ok("GetVmInfo", { vmId: up })).state, "VM_STATE_RUNNING");
    assert.equal((await ok("GetVmInfo", { vmId: fresh })).state, "VM_STATE_CREATED");
    const listed = await listedStates();
    assert.deepEqual(Object.keys(listed).sort(), [up, fresh, victim].sort(), "nothing lost, nothing added by the failed calls");
    assert.equal(await readyz(), 503);
    assert.ok(Date.now() - t0 < 3 * FAST_MS, `reads do not wait on the Engine (${Date.now() - t0} ms)`);
  });

  test(`the Engine is back: berthd serves again within ${RECOVER_MS} ms and matches the Engine`, async () => {
    engine = await priv.start();
    const t0 = Date.now();
    await waitFor(async () => (await readyz()) === 200, { timeoutMs: RECOVER_MS, intervalMs: 50, what: "/readyz 200 after the Engine came back", describe: () => d.stderr });
    await waitFor(
      async () => {
        const r = await rpc("BootVm", { vmId: fresh }, { timeoutMs: RECOVER_MS });
        if (r.status === 200) return true;
        assert.equal(r.json && r.json.code, "unavailable", `BootVm while recovering -> ${r.status} ${r.text}`);
        return false;
      },
      { timeoutMs: Math.max(1, RECOVER_MS - (Date.now() - t0)), intervalMs: 50, what: "BootVm to succeed after the Engine came back" },
    );
    const took = Date.now() - t0;
    assert.ok(took <= RECOVER_MS, `serving again after ${took} ms`);
    assert.equal((await ok("GetVmInfo", { vmId: fresh })).state, "VM_STATE_RUNNING");

    // The registry follows the Engine, including the victim that died unseen.
    const engineNow = await engineStates();
    assert.equal(engineNow[victim], "VM_STATE_SHUTDOWN", `the Engine saw the victim die: ${JSON.stringify(engineNow)}`);
    await waitFor(async () => canon(await listedStates()) === canon(await engineStates()), {
      timeoutMs: RECOVER_MS,
      what: "ListVms to match the Engine",
      describe: async () => `ListVms: ${JSON.stringify(await listedStates())}\nEngine: ${JSON.stringify(await engineStates())}`,
    });
    assert.deepEqual(await listedStates(), await engineStates());
  });

  test("after the outage every lifecycle call works again", async () => {
    assert.equal((await ok("ShutdownVm", { vmId: up, timeoutSeconds: 5 }, { timeoutMs: 30000 })).state, "VM_STATE_SHUTDOWN");
    assert.equal((await ok("BootVm", { vmId: victim })).state, "VM_STATE_RUNNING");
    const late = vmId("late");
    assert.equal((await ok("CreateVm", { vmId: late, config: { container: { image: TEST_IMAGE, command: EXITS_ON_TERM } } })).state, "VM_STATE_CREATED");
    assert.deepEqual(await ok("DeleteVm", { vmId: late }), { success: true });
    assert.deepEqual(await listedStates(), await engineStates());
  });

  test("after the outage gateways and deployments serve live again", async () => {
    // Live again: a change made now shows at once.
    const killed = (await engine.listContainers([`berth.gateway_id=${gw}`, "berth.replica=1"]))[0];
    assert.ok(killed, "replica 1 of the gateway is still there");
    await kraneOk(`${GW}/GetGateway`, gwGet);
    await engine.call("POST", `/containers/${killed.Id}/stop`, { query: { t: "5" } });
    const after = await kraneOk(`${GW}/GetGateway`, gwGet);
    assert.equal(after.instances[1].status, "GATEWAY_STATUS_TERMINATING", JSON.stringify(after));
    // A retry restarts it; Create and Delete work again.
    await kraneOk(`${GW}/CreateGateway`, { gateway: { namespace: "outage", gatewayId: gw, image: REPLICA_IMAGE, replicas: 2 } });
    await allRunning(`${GW}/GetGateway`, gwGet, 2, "GATEWAY_STATUS_RUNNING");
    const late = { namespace: "outage", gatewayId: gxId("late") };
    await kraneOk(`${GW}/CreateGateway`, { gateway: { ...late, image: REPLICA_IMAGE, replicas: 1 } });
    await allRunning(`${GW}/GetGateway`, late, 1, "GATEWAY_STATUS_RUNNING");
    for (const [p, body] of [
      [`${GW}/DeleteGateway`, late],
      [`${GW}/DeleteGateway`, gwGet],
      [`${DEP}/DeleteDeployment`, depGet],
    ]) {
      assert.deepEqual(await kraneOk(p, body), {});
    }
    for (const [p, body] of [
      [`${GW}/GetGateway`, gwGet],
      [`${DEP}/GetDeployment`, depGet],
    ]) {
      const r = await krane(p, body);
      assert.equal(r.json && r.json.code, "not_found", `${p} after delete -> ${r.status} ${r.text}`);
    }
    assert.deepEqual(await engine.listContainers(["berth.managed=true", "berth.kind=gateway"]), []);
    assert.deepEqual(await engine.listContainers(["berth.managed=true", "berth.kind=deployment"]), []);
  });
});
