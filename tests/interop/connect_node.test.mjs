// ctest-labels: docker
// @connectrpc/connect-node, the real Connect client, against berthd over
// HTTP/1.1: JSON and binary protobuf, the full VM lifecycle on the Docker
// backend (checked against the Engine itself) and once on the memory backend,
// plus the mapping of errors to ConnectError codes.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { waitFor } from "../lib/wait.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { vmProto, getService } from "../lib/proto.mjs";

const berthdSkip = berthdSkipReason();
const [engine, engineSkip] = berthdSkip ? [undefined, undefined] : await connectEngine();

// VM states as numbers (connect-node hands enums over as numbers).
const CREATED = 1;
const RUNNING = 2;
const PAUSED = 3;
const SHUTDOWN = 4;

const runTag = `${process.pid}-${Date.now().toString(36)}`;
const allIds = []; // every vm id this file asked for, for the final leak check

function client(d, useBinaryFormat, service = vmProto().service) {
  const transport = createConnectTransport({ baseUrl: d.url, httpVersion: "1.1", useBinaryFormat });
  return createClient(service, transport);
}

/** Iterate a server stream to its end, keeping its messages in `got`. */
async function drain(stream, got) {
  for await (const m of stream) got.push(m);
}

async function expectConnectError(promise, code, what) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ConnectError, `${what}: a ConnectError, got ${err}`);
    assert.equal(err.code, code, `${what}: code ${Code[err.code]} (${err.rawMessage}), want ${Code[code]}`);
    return true;
  });
}

/** The container that backs vmId, found by label; undefined when none. */
async function containerOf(vmId) {
  const list = await engine.listContainers([`berth.vm_id=${vmId}`]);
  assert.ok(list.length <= 1, `at most one container for ${vmId}: ${list.map((c) => c.Id)}`);
  return list[0];
}

/**
 * Drive one VM through its whole life. With `docker` set, every step is also
 * checked on the Engine: the container exists, runs, pauses, stops, goes.
 */
async function lifecycle(c, { tag, docker }) {
  const vmId = `conn-${tag}-${runTag}`;
  allIds.push(vmId);

  const created = await c.createVm({
    vmId,
    customerId: "interop",
    config: {
      cpu: { vcpuCount: 1 },
      memory: { sizeBytes: 64n * 1024n * 1024n },
      container: { image: TEST_IMAGE, command: ["sleep", "3600"], env: { GREETING: "hello world" } },
      metadata: { suite: "connect-node" },
    },
  });
  assert.equal(created.vmId, vmId);
  assert.equal(created.state, CREATED);

  let ctr;
  if (docker) {
    ctr = await containerOf(vmId);
    assert.ok(ctr, `a container labelled berth.vm_id=${vmId} exists after CreateVm`);
    assert.equal(ctr.Labels["berth.managed"], "true");
    assert.equal(ctr.Labels["berth.kind"], "vm");
    assert.notEqual(ctr.State, "running", "CreateVm does not start the container");
  }

  // A created VM can be neither paused nor shut down.
  await expectConnectError(c.pauseVm({ vmId }), Code.FailedPrecondition, "PauseVm on CREATED");

  let r = await c.bootVm({ vmId });
  assert.equal(r.state, RUNNING);
  let info = await c.getVmInfo({ vmId });
  assert.equal(info.vmId, vmId);
  assert.equal(info.state, RUNNING);
  assert.equal(info.config?.cpu?.vcpuCount, 1);
  if (docker) {
    await engine.waitForContainer(ctr.Id, (s) => s && s.State.Running && !s.State.Paused, { what: "container running after BootVm" });
    const ins = await engine.inspect(ctr.Id);
    assert.ok(ins.Config.Env.includes("GREETING=hello world"), `env passed: ${ins.Config.Env}`);
    assert.deepEqual(ins.Config.Cmd, ["sleep", "3600"]);
  }

  await expectConnectError(c.bootVm({ vmId }), Code.FailedPrecondition, "BootVm on RUNNING");
  await expectConnectError(c.deleteVm({ vmId }), Code.FailedPrecondition, "DeleteVm on RUNNING without force");
  await expectConnectError(c.resumeVm({ vmId }), Code.FailedPrecondition, "ResumeVm on RUNNING");

  r = await c.pauseVm({ vmId });
  assert.equal(r.state, PAUSED);
  assert.equal((await c.getVmInfo({ vmId })).state, PAUSED);
  if (docker) await engine.waitForContainer(ctr.Id, (s) => s && s.State.Paused, { what: "container paused after PauseVm" });

  await expectConnectError(c.rebootVm({ vmId }), Code.FailedPrecondition, "RebootVm on PAUSED");

  r = await c.resumeVm({ vmId });
  assert.equal(r.state, RUNNING);
  if (docker) await engine.waitForContainer(ctr.Id, (s) => s && s.State.Running && !s.State.Paused, { what: "container running after ResumeVm" });

  const startedBefore = docker ? (await engine.inspect(ctr.Id)).State.StartedAt : undefined;
  r = await c.rebootVm({ vmId });
  assert.equal(r.state, RUNNING);
  assert.equal((await c.getVmInfo({ vmId })).state, RUNNING);
  if (docker) {
    await engine.waitForContainer(ctr.Id, (s) => s && s.State.Running && s.State.StartedAt !== startedBefore, {
      what: "container restarted by RebootVm",
    });
  }

  r = await c.shutdownVm({ vmId, timeoutSeconds: 1 });
  assert.equal(r.state, SHUTDOWN);
  assert.equal((await c.getVmInfo({ vmId })).state, SHUTDOWN);
  if (docker) await engine.waitForContainer(ctr.Id, (s) => s && !s.State.Running, { what: "container stopped after ShutdownVm" });

  const listed = await c.listVms({ stateFilter: [SHUTDOWN] });
  assert.ok(listed.vms.some((v) => v.vmId === vmId && v.state === SHUTDOWN), "ListVms by state finds the VM");

  // SHUTDOWN -> BootVm -> RUNNING, then delete it running with force.
  r = await c.bootVm({ vmId });
  assert.equal(r.state, RUNNING);
  const del = await c.deleteVm({ vmId, force: true });
  assert.equal(del.success, true);
  if (docker) await engine.waitForContainer(ctr.Id, (s) => s === undefined, { what: "container removed after DeleteVm" });

  await expectConnectError(c.getVmInfo({ vmId }), Code.NotFound, "GetVmInfo after DeleteVm");
}

async function errorMapping(c) {
  await expectConnectError(c.getVmInfo({ vmId: `conn-missing-${runTag}` }), Code.NotFound, "GetVmInfo unknown id");
  await expectConnectError(c.bootVm({ vmId: `conn-missing-${runTag}` }), Code.NotFound, "BootVm unknown id");
  await expectConnectError(c.createVm({ vmId: `conn-noimage-${runTag}`, config: {} }), Code.InvalidArgument, "CreateVm without image");
}

describe("connect-node against berthd (docker backend)", { skip: berthdSkip || engineSkip }, () => {
  let d;

  before(async () => {
    await ensureTestImage(engine);
    d = await startBerthd({
      backend: "docker",
      args: ["--docker-socket", engine.socketPath, "--stop-timeout", "1", "--publish-address", "127.0.0.1"],
    });
    await waitReady(d);
  });

  after(async () => {
    if (d && !d.exit) await d.kill();
  });

  for (const [format, useBinaryFormat] of [["JSON", false], ["binary", true]]) {
    test(`full VM lifecycle, ${format}`, async () => {
      await lifecycle(client(d, useBinaryFormat), { tag: format.toLowerCase(), docker: true });
    });

    test(`error mapping, ${format}`, async () => {
      await errorMapping(client(d, useBinaryFormat));
    });
  }

  test("GetVmInfo reports the container in backendInfo", async () => {
    const c = client(d, true);
    const vmId = `conn-info-${runTag}`;
    allIds.push(vmId);
    await c.createVm({ vmId, config: { container: { image: TEST_IMAGE, command: ["sleep", "3600"] } } });
    try {
      const info = await c.getVmInfo({ vmId });
      const ctr = await containerOf(vmId);
      assert.ok(ctr, "container exists");
      const cid = info.backendInfo.container_id;
      assert.ok(cid && ctr.Id.startsWith(cid), `backendInfo.container_id '${cid}' names ${ctr.Id}`);
    } finally {
      await c.deleteVm({ vmId, force: true });
    }
  });

  test("SIGTERM: graceful exit 0", async () => {
    const r = await d.stop();
    assert.deepEqual(r, { code: 0, signal: null }, `stderr:\n${d.stderr}`);
  });

  test("no container of this run is left behind", async () => {
    const left = [];
    for (const id of allIds) {
      const list = await engine.listContainers([`berth.vm_id=${id}`]);
      left.push(...list.map((c) => `${id}:${c.Id.slice(0, 12)}`));
    }
    assert.deepEqual(left, []);
  });
});

describe("connect-node against berthd (memory backend)", { skip: berthdSkip }, () => {
  let d;

  before(async () => {
    d = await startBerthd({ backend: "memory" });
  });

  after(async () => {
    if (d && !d.exit) await d.kill();
  });

  test("full VM lifecycle, binary", async () => {
    await lifecycle(client(d, true), { tag: "mem", docker: false });
  });

  test("error mapping, JSON", async () => {
    await errorMapping(client(d, false));
  });

  // Watch: the snapshot of what exists, then the changes as they happen,
  // iterated by the real client until it aborts. StreamLogs needs a backend
  // that can follow (the Docker one): here its stream ends with unimplemented.
  for (const [format, useBinaryFormat] of [["JSON", false], ["binary", true]]) {
    test(`iterating Watch, ${format}: a SNAPSHOT, then CREATED and DELETED as they happen`, async () => {
      const vms = client(d, useBinaryFormat);
      const before = `watch-a-${format}-${runTag}`;
      const later = `watch-b-${format}-${runTag}`;
      await vms.createVm({ vmId: before, config: { container: { image: "x" } } });
      const c = client(d, useBinaryFormat, getService("berth.v1.EventService"));
      const abort = new AbortController();
      const got = [];
      const done = (async () => {
        try {
          for await (const ev of c.watch({ kinds: [1] }, { signal: abort.signal })) {
            if (ev.id === before || ev.id === later) got.push({ type: ev.type, id: ev.id, state: ev.state });
            if (got.length === 3) abort.abort();
          }
        } catch (err) {
          if (!(err instanceof ConnectError && err.code === Code.Canceled)) throw err;
        }
      })();
      await waitFor(() => got.length >= 1, { timeoutMs: 5000, what: "the snapshot event" });
      await vms.createVm({ vmId: later, config: { container: { image: "x" } } });
      await waitFor(() => got.length >= 2, { timeoutMs: 5000, what: "the created event" });
      await vms.deleteVm({ vmId: later });
      await done;
      assert.deepEqual(got, [
        { type: 1, id: before, state: "VM_STATE_CREATED" },
        { type: 2, id: later, state: "VM_STATE_CREATED" },
        { type: 4, id: later, state: "VM_STATE_CREATED" },
      ]);
      await vms.deleteVm({ vmId: before });
    });

    test(`iterating StreamLogs, ${format}: ConnectError unimplemented on a backend that cannot follow`, async () => {
      const c = client(d, useBinaryFormat, getService("berth.v1.LogService"));
      const got = [];
      await expectConnectError(drain(c.streamLogs({ vmId: "conn-none", tailLines: 5 }), got), Code.Unimplemented, `StreamLogs over ${format}`);
      assert.deepEqual(got, []);
    });
  }

  test("SIGTERM: graceful exit 0", async () => {
    const r = await d.stop();
    assert.deepEqual(r, { code: 0, signal: null }, `stderr:\n${d.stderr}`);
  });
});

// Remove whatever a failed run left, so the next run starts clean. The leak
// check above runs before this and reports any leftover as a failure.
after(async () => {
  if (!engine) return;
  for (const id of allIds) {
    for (const c of await engine.listContainers([`berth.vm_id=${id}`])) await engine.remove(c.Id);
  }
});

/** /readyz answers 200 once the backend (the Engine) answers. */
async function waitReady(d) {
  await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
    timeoutMs: 15000,
    what: "GET /readyz to answer 200 with the docker backend",
    describe: () => `stderr:\n${d.stderr}`,
  });
}
