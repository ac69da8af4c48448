// ctest-labels: docker outage
// Restart policies across an Engine restart, on a private dockerd of this
// file's own (never the shared Engine) started without live-restore, so its
// stop stops every container as a host reboot would, and its start brings
// back those whose policy says so. berthd follows: a RUNNING VM with ALWAYS
// or UNLESS_STOPPED is RUNNING again, one with no policy is SHUTDOWN; a VM
// that ShutdownVm stopped stays SHUTDOWN with UNLESS_STOPPED and, by the
// Engine's own rule for ALWAYS, comes back. ShutdownVm still stops an
// ALWAYS VM afterwards, and the Engine leaves it stopped.
// Everything is torn down at the end, on failure too.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { serviceRpc } from "../lib/rpc.mjs";
import { PrivateEngine, privateEngineSkipReason } from "../lib/private_engine.mjs";
import { TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE, TESTS_DIR } from "../lib/proto.mjs";

const run = promisify(execFile);
const skip = berthdSkipReason() || privateEngineSkipReason();

const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const EXITS_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"];
const IMAGE_SH = path.join(TESTS_DIR, "lib", "image.sh");
const ENGINE_BACK_MS = 15000; // berthd's registry matches the Engine within this once it is back

let d; // the daemon under test
let engine; // client of the private Engine (while it runs)
const priv = new PrivateEngine({ liveRestore: false, tag: "restart" });
const rpc = serviceRpc(() => d, VM_SERVICE);

async function ok(method, body, opts) {
  const r = await rpc(method, body, opts);
  assert.equal(r.status, 200, `${method} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  return r.json;
}

const vm = (tag, mode, extra = {}) => ({
  vmId: `rs-${tag}-${RUN}`,
  config: { container: { image: TEST_IMAGE, command: EXITS_ON_TERM, ...(mode ? { restartPolicy: { mode } } : {}), ...extra } },
});

const state = async (vmId) => (await ok("GetVmInfo", { vmId })).state;

describe("restart policies across an Engine restart", { skip }, () => {
  const always = vm("always", "RESTART_MODE_ALWAYS");
  const unless = vm("unless", "RESTART_MODE_UNLESS_STOPPED");
  const never = vm("no", undefined);
  const alwaysStopped = vm("always-stopped", "RESTART_MODE_ALWAYS");
  const unlessStopped = vm("unless-stopped", "RESTART_MODE_UNLESS_STOPPED");
  const all = [always, unless, never, alwaysStopped, unlessStopped];

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
    d = await startBerthd({ backend: "docker", args: ["--docker-socket", priv.socket] });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz", timeoutMs: 5000 })).status === 200, {
      timeoutMs: 10000,
      what: "/readyz 200 on the private Engine",
      describe: () => d.stderr,
    });
  });

  after(async () => {
    try {
      if (d && !d.exit) await d.kill();
    } finally {
      await priv.teardown();
    }
  });

  test("set up: five VMs, three running, two stopped by ShutdownVm", async () => {
    for (const v of all) await ok("CreateVm", v);
    for (const v of all) await ok("BootVm", { vmId: v.vmId });
    for (const v of [alwaysStopped, unlessStopped]) assert.equal((await ok("ShutdownVm", { vmId: v.vmId, timeoutSeconds: 5 })).state, "VM_STATE_SHUTDOWN");
    const c = await engine.inspect(`berth-vm-${always.vmId}`);
    assert.equal(c.HostConfig.RestartPolicy.Name, "always");
  });

  test("the Engine stops and starts again; berthd shows what it brought back", async () => {
    const exit = await priv.stop();
    assert.ok(exit && (exit.code === 0 || exit.signal === "SIGTERM"), `dockerd exit: ${JSON.stringify(exit)}`);
    engine = await priv.start();
    // The Engine's own view: its policies, applied at its start.
    const want = {
      [always.vmId]: "running",
      [unless.vmId]: "running",
      [never.vmId]: "exited",
      [alwaysStopped.vmId]: "running", // ALWAYS: back with the Engine, even after a ShutdownVm
      [unlessStopped.vmId]: "exited",
    };
    for (const [vmId, s] of Object.entries(want)) {
      await engine.waitForContainer(`berth-vm-${vmId}`, (c) => c?.State?.Status === s, { timeoutMs: ENGINE_BACK_MS, what: `${vmId} ${s} in the Engine` });
    }
    // berthd follows, by itself.
    const states = async () => Object.fromEntries(await Promise.all(all.map(async (v) => [v.vmId, await state(v.vmId)])));
    let last;
    await waitFor(
      async () => {
        last = await states();
        return Object.entries(want).every(([id, s]) => last[id] === (s === "running" ? "VM_STATE_RUNNING" : "VM_STATE_SHUTDOWN"));
      },
      { timeoutMs: ENGINE_BACK_MS, intervalMs: 100, what: "berthd's states to match the Engine's", describe: () => `${JSON.stringify(last)}\n${d.stderr.slice(-2000)}` },
    );
  });

  test("ShutdownVm still stops the ALWAYS VM, and the Engine leaves it stopped", async () => {
    assert.equal((await ok("ShutdownVm", { vmId: always.vmId, timeoutSeconds: 5 })).state, "VM_STATE_SHUTDOWN");
    const before = await engine.inspect(`berth-vm-${always.vmId}`);
    assert.equal(before.State.Running, false, JSON.stringify(before.State));
    // Over ten times the Engine's first restart delay (100 ms), it stays down.
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      const c = await engine.inspect(`berth-vm-${always.vmId}`);
      assert.equal(c.State.Running || c.State.Restarting, false, `restarted by the Engine: ${JSON.stringify(c.State)}`);
      assert.equal(c.RestartCount, before.RestartCount);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await state(always.vmId), "VM_STATE_SHUTDOWN");
    // And it boots again as usual.
    assert.equal((await ok("BootVm", { vmId: always.vmId })).state, "VM_STATE_RUNNING");
    for (const v of all) await ok("DeleteVm", { vmId: v.vmId, force: true });
  });
});
