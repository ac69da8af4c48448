// The collector's cgroup source against the real Docker Engine, with
// --metrics-interval 1: running VMs are sampled from their cgroup files
// (backendInfo.metrics_source "cgroup") with no Engine stats call at all,
// and for a busy and an idle VM the reading agrees with the Engine's own
// GET /containers/{id}/stats?stream=false within a tolerance (CPU percent,
// memory by docker stats' rule, processes, network bytes). A rebooted VM
// goes on being read from its new cgroup. A berthd whose cgroup root holds
// no container falls back to the Engine's stats streams, per container.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE } from "../lib/proto.mjs";

const [engine, engineWhy] = await connectEngine();
const skip = berthdSkipReason() || engineWhy;

const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const vmId = (tag) => `cg-${tag}-${RUN}`;
const MiB = 1024 * 1024;
const INTERVAL_MS = 1000;
const STATS_OP = "GET /containers/{id}/stats";

/** A VmService call on daemon d that must succeed; resolves its JSON answer. */
async function vmOk(d, method, body) {
  const r = await rpc(d, `/${VM_SERVICE}/${method}`, body);
  assert.equal(r.status, 200, `${method} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  return r.json;
}

async function bootVm(d, id, command) {
  await vmOk(d, "CreateVm", {
    vmId: id,
    config: {
      cpu: { vcpuCount: 1 },
      memory: { sizeBytes: String(256 * MiB) },
      container: { image: TEST_IMAGE, command },
    },
  });
  await vmOk(d, "BootVm", { vmId: id });
}

/** GetVmInfo once the VM has a sample newer than `after` that `pred` accepts. */
async function sampled(d, id, { after = 0, pred = () => true, timeoutMs = 10000 } = {}) {
  let last;
  return waitFor(
    async () => {
      last = await vmOk(d, "GetVmInfo", { vmId: id });
      const m = last.metrics;
      return m && Number(m.sampledAtUnixMs) > after && pred(last) ? last : false;
    },
    { timeoutMs, intervalMs: 100, what: `a sample of ${id}`, describe: () => JSON.stringify(last) },
  );
}

/** The value of one /metrics sample line (labels as written), or undefined. */
async function scrape(d) {
  const r = await d.request({ method: "GET", path: "/metrics" });
  assert.equal(r.status, 200);
  const lines = r.text.split("\n");
  return (name, labels = "") => {
    const l = lines.find((x) => x.startsWith(`${name}${labels} `));
    return l === undefined ? undefined : Number(l.slice(l.lastIndexOf(" ") + 1));
  };
}

/** The Engine's own one-shot stats of a container, read as docker stats reads them. */
async function engineStats(id) {
  const r = await engine.call("GET", `/containers/${id}/stats`, { query: { stream: "false" }, timeoutMs: 15000 });
  const s = r.body;
  const cpuDelta = s.cpu_stats.cpu_usage.total_usage - s.precpu_stats.cpu_usage.total_usage;
  const sysDelta = s.cpu_stats.system_cpu_usage - s.precpu_stats.system_cpu_usage;
  const online = s.cpu_stats.online_cpus || (s.cpu_stats.cpu_usage.percpu_usage || []).length;
  const st = s.memory_stats.stats || {};
  const reclaim = st.total_inactive_file !== undefined ? st.total_inactive_file : st.inactive_file || 0;
  let rx = 0;
  for (const n of Object.values(s.networks || {})) rx += n.rx_bytes;
  return {
    cpu: sysDelta > 0 && cpuDelta >= 0 ? (cpuDelta / sysDelta) * online * 100 : 0,
    memory: reclaim < s.memory_stats.usage ? s.memory_stats.usage - reclaim : s.memory_stats.usage,
    pids: s.pids_stats.current,
    rx,
  };
}

/** berthd's figures of a VM: GetVmInfo's metrics and /metrics' pids. */
async function berthStats(d, id, after) {
  const vm = await sampled(d, id, { after });
  const m = vm.metrics;
  const get = await scrape(d);
  return {
    vm,
    cpu: m.cpuUsagePercent || 0,
    memory: Number(m.memoryUsageBytes || 0),
    pids: get("berth_vm_pids", `{vm_id="${id}"}`),
    rx: Number((m.networkStats || {}).bytesReceived || 0),
    at: Number(m.sampledAtUnixMs),
  };
}

async function cleanup() {
  const all = await engine.listContainers(["berth.managed=true"]);
  const mine = all.filter((c) => String((c.Labels || {})["berth.vm_id"] || "").endsWith(RUN));
  await Promise.all(mine.map((c) => engine.remove(c.Id)));
}

describe("metrics from the kernel's cgroup files", { skip }, () => {
  const busy = vmId("busy");
  const idle = vmId("idle");
  let d;

  before(async () => {
    await ensureTestImage(engine);
    d = await startBerthd({
      backend: "docker",
      args: ["--metrics-interval", String(INTERVAL_MS / 1000), "--stop-timeout", "1"],
    });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 20000,
      what: "berthd to be ready",
    });
    await Promise.all([bootVm(d, busy, ["sh", "-c", "while :; do :; done"]), bootVm(d, idle, ["sleep", "3600"])]);
  });

  after(async () => {
    try {
      await cleanup();
    } finally {
      if (d && !d.exit) {
        const r = await d.stop();
        assert.equal(r.code, 0, `berthd exits cleanly: ${JSON.stringify(r)}\n${d.stderr.slice(-2000)}`);
      }
    }
  });

  test("running VMs are sampled from their cgroup, with no Engine stats call", async () => {
    for (const id of [busy, idle]) {
      const vm = await sampled(d, id);
      assert.equal(vm.backendInfo.metrics_source, "cgroup", `${id}: ${JSON.stringify(vm.backendInfo)}`);
      // The keys that were there before stay.
      for (const k of ["backend", "container_id", "container_name", "image", "customer_id"]) assert.ok(k in vm.backendInfo, k);
    }
    // Two more intervals of samples: still no stats stream, no stats call.
    const first = await sampled(d, busy);
    await sampled(d, busy, { after: Number(first.metrics.sampledAtUnixMs) });
    const get = await scrape(d);
    assert.equal(get("berth_collector_streams"), 0, "no Engine stats stream open");
    assert.equal(get("berth_engine_requests_total", `{operation="${STATS_OP}",outcome="ok"}`), undefined, "no Engine stats call");
    assert.ok(get("berth_vm_metrics_source", '{source="cgroup"}') >= 2, "both VMs counted under cgroup");
    assert.equal(get("berth_vm_metrics_source", '{source="engine"}'), 0);
  });

  test("a busy VM: CPU, memory, processes and network agree with the Engine's stats", async () => {
    // A CPU percent needs two readings: wait for the one after the first.
    const first = await sampled(d, busy);
    await sampled(d, busy, { after: Number(first.metrics.sampledAtUnixMs), pred: (vm) => vm.metrics.cpuUsagePercent > 0 });
    const e = await engineStats(first.backendInfo.container_id);
    const b = await berthStats(d, busy);
    const diag = `berthd ${JSON.stringify({ ...b, vm: undefined })} engine ${JSON.stringify(e)}`;
    // One vCPU spinning: about 100 % for both, whatever window each took.
    assert.ok(b.cpu > 60 && b.cpu <= 110, `berthd cpu: ${diag}`);
    assert.ok(e.cpu > 60 && e.cpu <= 110, `engine cpu: ${diag}`);
    assert.ok(Math.abs(b.cpu - e.cpu) <= 25, `cpu within 25 points: ${diag}`);
    assert.ok(Math.abs(b.memory - e.memory) <= 512 * 1024 + 0.05 * e.memory, `memory: ${diag}`);
    assert.equal(b.pids, e.pids, `pids: ${diag}`);
    assert.ok(Math.abs(b.rx - e.rx) <= 4096, `rx bytes: ${diag}`);
  });

  test("an idle VM: near 0 % CPU for both, the same memory and processes", async () => {
    const first = await sampled(d, idle);
    await sampled(d, idle, { after: Number(first.metrics.sampledAtUnixMs) });
    const e = await engineStats(first.backendInfo.container_id);
    const b = await berthStats(d, idle);
    const diag = `berthd ${JSON.stringify({ ...b, vm: undefined })} engine ${JSON.stringify(e)}`;
    assert.ok(b.cpu < 5 && e.cpu < 5, `cpu: ${diag}`);
    assert.ok(b.memory > 0 && Math.abs(b.memory - e.memory) <= 256 * 1024 + 0.05 * e.memory, `memory: ${diag}`);
    // sleep, and the init berthd gives every container.
    assert.ok(b.pids >= 1 && b.pids <= 2, `one or two processes: ${diag}`);
    assert.equal(b.pids, e.pids, `pids: ${diag}`);
  });

  test("samples stay younger than the interval", async () => {
    await sampled(d, busy);
    const until = Date.now() + 3 * INTERVAL_MS;
    const seen = new Set();
    let worst = 0;
    await waitFor(
      async () => {
        const m = (await vmOk(d, "GetVmInfo", { vmId: busy })).metrics;
        const age = Date.now() - Number(m.sampledAtUnixMs);
        worst = Math.max(worst, age);
        seen.add(m.sampledAtUnixMs);
        return Date.now() >= until;
      },
      { timeoutMs: 3 * INTERVAL_MS + 5000, intervalMs: 50, what: "three intervals of samples" },
    );
    // The interval plus the GetVmInfo round trip on a loaded machine.
    assert.ok(worst <= INTERVAL_MS + 250, `worst age ${worst} ms, interval ${INTERVAL_MS} ms`);
    assert.ok(seen.size >= 3, `the sample advanced: ${seen.size} distinct`);
  });

  test("a rebooted VM is read from its new cgroup", async () => {
    const before = await sampled(d, idle);
    const cid = before.backendInfo.container_id;
    const startedBefore = (await engine.inspect(cid)).State.StartedAt;
    await vmOk(d, "RebootVm", { vmId: idle });
    await waitFor(async () => (await engine.inspect(cid)).State.StartedAt !== startedBefore, {
      timeoutMs: 15000,
      what: `${idle} restarted`,
    });
    const restartedAt = Date.now();
    const vm = await sampled(d, idle, { after: restartedAt, timeoutMs: 10000 });
    assert.equal(vm.backendInfo.metrics_source, "cgroup");
    const b = await berthStats(d, idle, Number(vm.metrics.sampledAtUnixMs));
    const e = await engineStats(cid);
    assert.ok(b.pids >= 1 && b.pids === e.pids, `the new processes are counted: ${JSON.stringify({ ...b, vm: undefined })} engine ${JSON.stringify(e)}`);
    const get = await scrape(d);
    assert.equal(get("berth_collector_streams"), 0, "still no stats stream");
  });
});

describe("metrics fall back to the Engine when the cgroup files are not there", { skip }, () => {
  const vm = vmId("fallback");
  const emptyRoot = mkdtempSync(path.join(tmpdir(), "berth-cgroot-"));
  let d;

  before(async () => {
    await ensureTestImage(engine);
    d = await startBerthd({
      backend: "docker",
      args: ["--metrics-interval", "1", "--metrics-cgroup-root", emptyRoot, "--instance-id", `cgfb-${RUN}`, "--stop-timeout", "1"],
    });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 20000,
      what: "berthd to be ready",
    });
    await bootVm(d, vm, ["sleep", "3600"]);
  });

  after(async () => {
    try {
      // Through berthd, so its tenant network (of this instance) goes too.
      if (d && !d.exit) await rpc(d, `/${VM_SERVICE}/DeleteVm`, { vmId: vm, force: true });
      await cleanup();
    } finally {
      rmSync(emptyRoot, { recursive: true, force: true });
      if (d && !d.exit) {
        const r = await d.stop();
        assert.equal(r.code, 0, `berthd exits cleanly: ${JSON.stringify(r)}\n${d.stderr.slice(-2000)}`);
      }
    }
  });

  test("a VM whose cgroup is not under the root is sampled through its stats stream", async () => {
    const info = await sampled(d, vm, { timeoutMs: 15000 });
    assert.equal(info.backendInfo.metrics_source, "engine", JSON.stringify(info.backendInfo));
    assert.ok(Number(info.metrics.memoryUsageBytes) > 0);
    const get = await scrape(d);
    assert.equal(get("berth_collector_streams"), 1, "one stats stream");
    assert.equal(get("berth_vm_metrics_source", '{source="engine"}'), 1);
  });
});
