// ctest-labels: docker
// The server streams on the real Engine, iterated by the real Connect client
// (@connectrpc/connect-node, JSON and binary): StreamLogs sees new lines as
// they are printed and ends when its VM is deleted; a client that leaves
// takes its Engine connection and thread with it; Watch tells the snapshot
// and each change in order, with the reason of one made behind berthd's
// back; two watchers at once. (watch_slow.test.mjs: a watcher that never
// reads.)

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readlinkSync, readdirSync } from "node:fs";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { waitFor } from "../lib/wait.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { vmProto, getService } from "../lib/proto.mjs";

const berthdSkip = berthdSkipReason();
const [engine, engineSkip] = berthdSkip ? [undefined, undefined] : await connectEngine();
const skip = berthdSkip || engineSkip;

const RUN = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const INSTANCE = `streams-${RUN}`;
const TICKER = ["sh", "-c", "i=0; while :; do echo out $i; echo err $i >&2; i=$((i+1)); sleep 0.2; done"];
const SNAPSHOT = 1;
const CREATED = 2;
const CHANGED = 3;
const DELETED = 4;

function clients(d, useBinaryFormat) {
  const transport = createConnectTransport({ baseUrl: d.url, httpVersion: "1.1", useBinaryFormat });
  return {
    vms: createClient(vmProto().service, transport),
    logs: createClient(getService("berth.v1.LogService"), transport),
    events: createClient(getService("berth.v1.EventService"), transport),
  };
}

/** Threads and open fds of a process. */
// Threads and descriptors of berthd, leaving out the files the metrics
// reader keeps open for each running VM (a VM's cgroup files and its
// /proc/<pid>/net/dev): they come with the VM's first sample, whenever the
// collector takes it, and stay while the VM runs.
function usage(pid) {
  const fds = readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return !/^\/sys\/fs\/cgroup\/|^\/proc\/\d+\/net\/dev$/.test(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      return false; // closed meanwhile
    }
  });
  return { threads: readdirSync(`/proc/${pid}/task`).length, fds: fds.length };
}

/** Iterate a stream in the background; `got` fills as messages come. */
function collect(stream, got) {
  return (async () => {
    try {
      for await (const m of stream) got.push(m);
      return { ended: "cleanly" };
    } catch (err) {
      if (err instanceof ConnectError) return { ended: Code[err.code], message: err.rawMessage };
      throw err;
    }
  })();
}

describe("server streams on the Docker Engine", { skip }, () => {
  let d;

  before(async () => {
    await ensureTestImage(engine);
    d = await startBerthd({ backend: "docker", args: ["--instance-id", INSTANCE, "--stream-queue-bytes", "8192"] });
  });

  after(async () => {
    try {
      for (const c of await engine.listContainers([`berth.instance=${INSTANCE}`])) await engine.remove(c.Id);
      await engine.removeManagedNetworks(INSTANCE);
    } finally {
      if (d && !d.exit) await d.kill();
    }
  });

  for (const [format, bin] of [["JSON", false], ["binary", true]]) {
    test(`StreamLogs over ${format}: the tail, then new lines within a second, then a clean end when the VM is deleted`, async () => {
      const { vms, logs } = clients(d, bin);
      const vmId = `logs-${bin ? "b" : "j"}-${RUN}`;
      await vms.createVm({ vmId, config: { container: { image: TEST_IMAGE, command: TICKER } } });
      await vms.bootVm({ vmId });
      await waitFor(async () => (await logs.getLogs({ vmId })).entries.length >= 4, { timeoutMs: 10000, what: "the VM to print" });
      const got = [];
      const began = Date.now();
      const done = collect(logs.streamLogs({ vmId, tailLines: 2 }), got);
      // The tail first: the last two lines, of both streams.
      await waitFor(() => got.length >= 2, { timeoutMs: 5000, what: "the tail" });
      // Then a line printed after the stream began, within a second of it.
      await waitFor(() => got.some((e) => Number(e.timeUnixNs / 1000000n) > began + 100), { timeoutMs: 3000, what: "a new line" });
      const fresh = got.find((e) => Number(e.timeUnixNs / 1000000n) > began + 100);
      assert.ok(Date.now() - Number(fresh.timeUnixNs / 1000000n) < 1500, "the new line came within a second or so");
      const lines = got.map((e) => e.line);
      assert.ok(lines.some((l) => l.startsWith("out ")) && lines.some((l) => l.startsWith("err ")), `both streams: ${lines}`);
      const times = got.map((e) => e.timeUnixNs);
      assert.equal(new Set(times).size, times.length, "no line twice");
      await vms.deleteVm({ vmId, force: true });
      const end = await done;
      assert.deepEqual(end, { ended: "cleanly" });
    });
  }

  test("a StreamLogs client that leaves takes its Engine connection and its thread with it", async () => {
    const { vms, logs } = clients(d, false);
    const vmId = `leave-${RUN}`;
    await vms.createVm({ vmId, config: { container: { image: TEST_IMAGE, command: TICKER } } });
    await vms.bootVm({ vmId });
    const base = usage(d.child.pid);
    const abort = new AbortController();
    const got = [];
    const done = collect(logs.streamLogs({ vmId, tailLines: 1 }, { signal: abort.signal }), got);
    await waitFor(() => got.length >= 3, { timeoutMs: 5000, what: "lines to flow" });
    const during = usage(d.child.pid);
    assert.ok(during.threads > base.threads, `a follower thread while it streams (${during.threads} vs ${base.threads})`);
    abort.abort();
    assert.equal((await done).ended, "Canceled");
    await waitFor(
      () => {
        const now = usage(d.child.pid);
        return now.threads <= base.threads && now.fds <= base.fds;
      },
      { timeoutMs: 5000, what: "the thread and fds to go", describe: () => JSON.stringify({ base, now: usage(d.child.pid) }) },
    );
    await vms.deleteVm({ vmId, force: true });
  });

  test("Watch: the snapshot, then create, boot, pause, a kill behind berthd's back and delete, in order, with reasons; two watchers see the same", async () => {
    const { vms, events } = clients(d, true);
    const old = `w-old-${RUN}`;
    const vmId = `w-new-${RUN}`;
    await vms.createVm({ vmId: old, config: { container: { image: TEST_IMAGE, command: TICKER } } });
    const watchers = [clients(d, false).events, events].map((c) => {
      const abort = new AbortController();
      const got = [];
      const done = collect(c.watch({ kinds: [1] }, { signal: abort.signal }), got);
      return { abort, got, done, mine: () => got.filter((e) => e.id === old || e.id === vmId).map((e) => [e.type, e.id, e.state, e.reason]) };
    });
    for (const w of watchers) await waitFor(() => w.mine().length >= 1, { timeoutMs: 5000, what: "the snapshot" });
    await vms.createVm({ vmId, config: { container: { image: TEST_IMAGE, command: TICKER } } });
    await vms.bootVm({ vmId });
    await vms.pauseVm({ vmId });
    await vms.resumeVm({ vmId });
    const c = (await engine.listContainers([`berth.vm_id=${vmId}`]))[0];
    await engine.kill(c.Id);
    for (const w of watchers) await waitFor(() => w.mine().some((e) => e[3].startsWith("exited")), { timeoutMs: 5000, what: "the kill" });
    await vms.deleteVm({ vmId, force: true });
    for (const w of watchers) await waitFor(() => w.mine().some((e) => e[0] === DELETED), { timeoutMs: 5000, what: "the delete" });
    const want = [
      [SNAPSHOT, old, "VM_STATE_CREATED", ""],
      [CREATED, vmId, "VM_STATE_CREATED", ""],
      [CHANGED, vmId, "VM_STATE_RUNNING", ""],
      [CHANGED, vmId, "VM_STATE_PAUSED", ""],
      [CHANGED, vmId, "VM_STATE_RUNNING", ""],
      [CHANGED, vmId, "VM_STATE_SHUTDOWN", "exited 137"],
      [DELETED, vmId, "VM_STATE_SHUTDOWN", ""],
    ];
    for (const w of watchers) {
      assert.deepEqual(w.mine(), want);
      w.abort.abort();
      assert.equal((await w.done).ended, "Canceled");
    }
    await vms.deleteVm({ vmId: old, force: true });
  });
});
