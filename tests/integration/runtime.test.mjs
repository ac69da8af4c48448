// ctest-labels: docker
// The workload runtime on the real Engine: GetLogs of a VM that prints to
// stdout and stderr (tail, since and stream filters, unknown objects) and
// of a 3-replica deployment (every replica's lines merged in time order,
// each with its instance id, one instance alone); restart policies (the
// Engine's own, its real restarts of a VM that exits 1, ShutdownVm still
// stopping an ALWAYS VM, GetVmInfo's restart count).
//
// The krane API has no command field, so the deployment runs an image of
// this run's own, committed from the test image with a CMD that prints.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE } from "../lib/proto.mjs";

const berthdSkip = berthdSkipReason();
const [engine, engineWhy] = berthdSkip ? [undefined, undefined] : await connectEngine();
const skip = berthdSkip || engineWhy;

const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const TEST_LABEL = "berth.test";
const LOGGER_IMAGE = `berth-test/logger-rt:${RUN}`;
const VM = `/${VM_SERVICE}`;
const DEP = "/krane.v1.DeploymentService";
const LOGS = "/berth.v1.LogService";

// Prints two lines, waits, prints two more, then idles.
const PRINTER = [
  "sh",
  "-c",
  "echo out-1; echo err-1 >&2; echo out-2; sleep 1.5; echo out-3; echo err-2 >&2; exec sleep 3600",
];
const REPLICA_CMD = ["sh", "-c", 'echo "first $BERTH_INSTANCE_ID"; sleep 0.3; echo "second $BERTH_INSTANCE_ID"; exec sleep 3600'];

let d;

async function ok(path, body) {
  const r = await rpc(d, path, body);
  assert.equal(r.status, 200, `${path} ${JSON.stringify(body)}: ${r.text}`);
  return r.json;
}

async function fails(path, body, code) {
  const r = await rpc(d, path, body);
  assert.notEqual(r.status, 200, `${path} should fail: ${r.text}`);
  assert.equal(r.json?.code, code, `${path}: ${r.text}`);
  return r.json;
}

/** GetLogs until `check(entries)` holds; resolves the answer. */
async function logsUntil(body, check, what) {
  let last;
  return waitFor(
    async () => {
      last = await ok(`${LOGS}/GetLogs`, body);
      return check(last.entries || []) ? last : false;
    },
    { timeoutMs: 15000, intervalMs: 100, what, describe: () => `last: ${JSON.stringify(last)}` },
  );
}

const lines = (entries) => entries.map((e) => e.line);

async function commitImage(ref, cmd) {
  const [repo, tag] = ref.split(":");
  const id = await engine.createContainer({ image: TEST_IMAGE, cmd: ["true"], labels: { [TEST_LABEL]: RUN } });
  try {
    const qs = new URLSearchParams({ container: id, repo, tag });
    qs.append("changes", `CMD ${JSON.stringify(cmd)}`);
    qs.append("changes", `LABEL ${TEST_LABEL}=${RUN}`);
    await engine.call("POST", `/commit?${qs}`);
  } finally {
    await engine.remove(id);
  }
}

async function cleanup() {
  const all = await engine.listContainers(["berth.managed=true"]);
  const mine = all.filter((c) => Object.values(c.Labels || {}).some((v) => String(v).endsWith(RUN)));
  await Promise.all(mine.map((c) => engine.remove(c.Id)));
  for (const c of await engine.listContainers([`${TEST_LABEL}=${RUN}`])) await engine.remove(c.Id);
}

describe("GetLogs on the Docker Engine", { skip }, () => {
  before(async () => {
    await ensureTestImage(engine);
    await commitImage(LOGGER_IMAGE, REPLICA_CMD);
    d = await startBerthd({ backend: "docker" });
  });

  after(async () => {
    try {
      await cleanup();
      await engine.call("DELETE", `/images/${encodeURIComponent(LOGGER_IMAGE)}`, { query: { force: "1" }, ok: [404, 409] });
    } finally {
      if (d && !d.exit) await d.kill();
    }
  });

  test("a VM's stdout and stderr: all, tail, stream filters, since", async () => {
    const vmId = `logs-vm-${RUN}`;
    await ok(`${VM}/CreateVm`, { vmId, config: { container: { image: TEST_IMAGE, command: PRINTER } } });
    // Created, never started: no lines yet, not an error.
    assert.deepEqual((await ok(`${LOGS}/GetLogs`, { vmId })).entries || [], []);
    await ok(`${VM}/BootVm`, { vmId });
    const all = await logsUntil({ vmId }, (e) => e.length === 5, "all five lines");
    // stdout and stderr are read apart by the Engine: only each stream's own order is fixed.
    assert.deepEqual(new Set(lines(all.entries).slice(3)), new Set(["out-3", "err-2"]));
    assert.deepEqual(new Set(lines(all.entries).slice(0, 3)), new Set(["out-1", "err-1", "out-2"]));
    assert.ok(!all.truncated);
    const times = all.entries.map((e) => BigInt(e.timeUnixNs));
    for (let i = 1; i < times.length; i++) assert.ok(times[i] >= times[i - 1], "oldest first");
    const nowNs = BigInt(Date.now()) * 1000000n;
    assert.ok(times[0] > nowNs - 120n * 1000000000n && times[0] <= nowNs, `a real time: ${times[0]}`);
    for (const e of all.entries) {
      assert.equal(e.stream, e.line.startsWith("err") ? "LOG_STREAM_STDERR" : "LOG_STREAM_STDOUT", JSON.stringify(e));
      assert.equal(e.instanceId, undefined, "a VM's lines carry no instance id");
    }

    const tail = await ok(`${LOGS}/GetLogs`, { vmId, tailLines: 2 });
    assert.deepEqual(new Set(lines(tail.entries)), new Set(["out-3", "err-2"]));

    const out = await ok(`${LOGS}/GetLogs`, { vmId, stream: "LOG_STREAM_STDOUT" });
    assert.deepEqual(lines(out.entries), ["out-1", "out-2", "out-3"]);
    // The tail counts the lines of the stream asked for (the last line of all is err-2).
    const lastOut = await ok(`${LOGS}/GetLogs`, { vmId, stream: "LOG_STREAM_STDOUT", tailLines: 1 });
    assert.deepEqual(lines(lastOut.entries), ["out-3"]);
    const err = await ok(`${LOGS}/GetLogs`, { vmId, stream: "LOG_STREAM_STDERR", tailLines: 1 });
    assert.deepEqual(lines(err.entries), ["err-2"]);

    // Since the time of the second group's first line (ms, rounded down): that group only.
    const since = all.entries[3].timeUnixNs.slice(0, -6);
    const late = await ok(`${LOGS}/GetLogs`, { vmId, sinceUnixMs: since });
    assert.deepEqual(new Set(lines(late.entries)), new Set(["out-3", "err-2"]));

    // After a shutdown the lines are still there.
    await ok(`${VM}/ShutdownVm`, { vmId, timeoutSeconds: 1 });
    assert.equal((await ok(`${LOGS}/GetLogs`, { vmId })).entries.length, 5);
    await ok(`${VM}/DeleteVm`, { vmId, force: true });
    await fails(`${LOGS}/GetLogs`, { vmId }, "not_found");
  });

  test("bad requests and unknown objects", async () => {
    let e = await fails(`${LOGS}/GetLogs`, {}, "invalid_argument");
    assert.match(e.message, /vmId/);
    e = await fails(`${LOGS}/GetLogs`, { vmId: "a", deploymentId: "b" }, "invalid_argument");
    assert.match(e.message, /deploymentId/);
    e = await fails(`${LOGS}/GetLogs`, { vmId: "a", tailLines: 10001 }, "invalid_argument");
    assert.match(e.message, /tailLines/);
    await fails(`${LOGS}/GetLogs`, { vmId: `nope-${RUN}` }, "not_found");
    await fails(`${LOGS}/GetLogs`, { gatewayId: `nope-${RUN}` }, "not_found");
    await fails(`${LOGS}/GetLogs`, { deploymentId: `nope-${RUN}` }, "not_found");
  });

  test("a 3-replica deployment: lines merged in time order with instance ids", async () => {
    const deploymentId = `logs-dep-${RUN}`;
    await ok(`${DEP}/CreateDeployment`, { deployment: { deploymentId, namespace: "rt", image: LOGGER_IMAGE, replicas: 3 } });
    const ids = [0, 1, 2].map((i) => `${deploymentId}-${i}`);
    const all = await logsUntil({ deploymentId, namespace: "rt" }, (e) => e.length === 6, "six lines of three replicas");
    const times = all.entries.map((e) => BigInt(e.timeUnixNs));
    for (let i = 1; i < times.length; i++) assert.ok(times[i] >= times[i - 1], `merged oldest first: ${JSON.stringify(all.entries)}`);
    for (const id of ids) {
      const mine = all.entries.filter((e) => e.instanceId === id);
      assert.deepEqual(lines(mine), [`first ${id}`, `second ${id}`], `${id}'s lines, in order`);
    }
    const one = await ok(`${LOGS}/GetLogs`, { deploymentId, namespace: "rt", instanceId: ids[1], tailLines: 1 });
    assert.deepEqual(one.entries.map((e) => [e.instanceId, e.line]), [[ids[1], `second ${ids[1]}`]]);
    await fails(`${LOGS}/GetLogs`, { deploymentId, namespace: "rt", instanceId: `${deploymentId}-9` }, "not_found");
    await fails(`${LOGS}/GetLogs`, { deploymentId, namespace: "other" }, "not_found");
    await ok(`${DEP}/DeleteDeployment`, { deploymentId, namespace: "rt" });
  });

  test("restart policy ON_FAILURE: the Engine's policy, real restarts up to the limit", async () => {
    const vmId = `restart-fail-${RUN}`;
    const command = ["sh", "-c", "echo attempt; exit 1"];
    await ok(`${VM}/CreateVm`, {
      vmId,
      config: { container: { image: TEST_IMAGE, command, restartPolicy: { mode: "RESTART_MODE_ON_FAILURE", maxRetries: 2 } } },
    });
    const name = `berth-vm-${vmId}`;
    const c = await engine.inspect(name);
    assert.deepEqual(c.HostConfig.RestartPolicy, { Name: "on-failure", MaximumRetryCount: 2 });
    await rpc(d, `${VM}/BootVm`, { vmId }); // it may already have exited by the answer
    let last;
    await waitFor(
      async () => {
        last = await engine.inspect(name);
        return last.RestartCount === 2 && !last.State.Running && !last.State.Restarting;
      },
      { timeoutMs: 30000, intervalMs: 100, what: "two restarts, then stopped", describe: () => JSON.stringify(last && last.State) },
    );
    assert.equal(last.State.ExitCode, 1);
    // berthd tells the Engine's count, and the last run's exit.
    let vmInfo;
    await waitFor(
      async () => {
        vmInfo = await ok(`${VM}/GetVmInfo`, { vmId });
        return vmInfo.restartCount === 2 && vmInfo.state === "VM_STATE_SHUTDOWN";
      },
      { timeoutMs: 10000, intervalMs: 100, what: "GetVmInfo to show two restarts", describe: () => JSON.stringify(vmInfo) },
    );
    assert.equal(vmInfo.backendInfo.exit_code, "1");
    // Each run printed its line: three runs in all.
    const logs = await logsUntil({ vmId }, (e) => e.length === 3, "one line per run");
    assert.deepEqual(lines(logs.entries), ["attempt", "attempt", "attempt"]);
    await ok(`${VM}/DeleteVm`, { vmId, force: true });
  });

  test("restart policy ALWAYS: ShutdownVm still stops it", async () => {
    const vmId = `restart-always-${RUN}`;
    await ok(`${VM}/CreateVm`, {
      vmId,
      config: {
        container: {
          image: TEST_IMAGE,
          command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
          restartPolicy: { mode: "RESTART_MODE_ALWAYS" },
        },
      },
    });
    const name = `berth-vm-${vmId}`;
    assert.deepEqual((await engine.inspect(name)).HostConfig.RestartPolicy.Name, "always");
    await ok(`${VM}/BootVm`, { vmId });
    const r = await ok(`${VM}/ShutdownVm`, { vmId, timeoutSeconds: 5 });
    assert.equal(r.state, "VM_STATE_SHUTDOWN");
    assert.equal((await ok(`${VM}/GetVmInfo`, { vmId })).state, "VM_STATE_SHUTDOWN");
    const c = await engine.inspect(name);
    assert.equal(c.State.Running, false, JSON.stringify(c.State));
    assert.equal(c.RestartCount, 0);
    assert.equal((await ok(`${VM}/GetVmInfo`, { vmId })).restartCount, undefined, "0 restarts: left out");
    await ok(`${VM}/DeleteVm`, { vmId });
  });

  test("bad restart policies are refused", async () => {
    const base = { image: TEST_IMAGE, command: ["true"] };
    const e = await fails(
      `${VM}/CreateVm`,
      { vmId: `rt-bad-${RUN}`, config: { container: { ...base, restartPolicy: { mode: "RESTART_MODE_ALWAYS", maxRetries: 1 } } } },
      "invalid_argument",
    );
    assert.match(e.message, /restartPolicy\.maxRetries/);
    assert.equal(await engine.inspect(`berth-vm-rt-bad-${RUN}`), undefined);
  });
});
