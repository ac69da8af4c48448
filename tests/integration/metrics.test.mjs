// The metrics collector and /metrics against the real Docker Engine, with
// --metrics-interval 1 and every VM sampled through the Engine's stats
// streams (--metrics-cgroup-root "": the fallback of the cgroup source, see
// metrics_cgroup.test.mjs for the files): a VM burning CPU shows more than
// 50 % within two intervals, an idle one less than 5 %, a cached sample is never older than
// the interval (plus the Engine's own lag), memory grows when the container
// allocates, a paused VM is not sampled (its sample stops advancing) and a
// stopped one keeps its last values with no uptime; its ended stats stream
// counts as an Engine call. /metrics is parsed as the Prometheus text format
// (HELP/TYPE, label escaping, histogram consistency) and must hold every
// documented series.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { serviceRpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE } from "../lib/proto.mjs";

const [engine, engineWhy] = await connectEngine();
const skip = berthdSkipReason() || engineWhy;

const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const vmId = (tag) => `mx-${tag}-${RUN}`;
const MiB = 1024 * 1024;
const INTERVAL_MS = 1000;
// What a sample's age may exceed the interval by: the Engine's loop running
// over its second, delivery and the GetVmInfo round trip.
const AGE_MARGIN_MS = 500;

let d;

const rpc = serviceRpc(() => d, VM_SERVICE);

/** A VmService call that must succeed; resolves its JSON answer. */
async function vmOk(method, body) {
  const r = await rpc(method, body);
  assert.equal(r.status, 200, `${method} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  return r.json;
}

const info = (id) => vmOk("GetVmInfo", { vmId: id });

/** Create and boot a VM running `command` in the test image. */
async function bootVm(id, command, memoryBytes = 256 * MiB) {
  await vmOk("CreateVm", {
    vmId: id,
    config: {
      cpu: { vcpuCount: 1 },
      memory: { sizeBytes: String(memoryBytes) },
      container: { image: TEST_IMAGE, command },
    },
  });
  await vmOk("BootVm", { vmId: id });
}

/** The VM's metrics once it has any (sampledAtUnixMs set). */
async function firstMetrics(id, timeoutMs = 10000) {
  return waitFor(
    async () => {
      const m = (await info(id)).metrics;
      return m && Number(m.sampledAtUnixMs) > 0 ? m : false;
    },
    { timeoutMs, intervalMs: 100, what: `a first metrics sample of ${id}` },
  );
}

/** Metrics newer than `after` (a sampledAtUnixMs). */
async function nextMetrics(id, after, timeoutMs = 5000) {
  return waitFor(
    async () => {
      const m = (await info(id)).metrics;
      return m && Number(m.sampledAtUnixMs) > after ? m : false;
    },
    { timeoutMs, intervalMs: 100, what: `a sample of ${id} newer than ${after}` },
  );
}

async function cleanup() {
  const all = await engine.listContainers(["berth.managed=true"]);
  const mine = all.filter((c) => String((c.Labels || {})["berth.vm_id"] || "").endsWith(RUN));
  await Promise.all(mine.map((c) => engine.remove(c.Id)));
}

// --- the Prometheus text format ------------------------------------------------

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** Parse `name{k="v",...}` label text; throws on anything malformed. */
function parseLabels(s) {
  const labels = {};
  let i = 0;
  while (i < s.length) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(s.slice(i));
    assert.ok(m, `a label name at ${JSON.stringify(s.slice(i))}`);
    i += m[0].length;
    let v = "";
    for (;;) {
      assert.ok(i < s.length, `an unterminated label value in ${s}`);
      const c = s[i++];
      if (c === '"') break;
      if (c === "\\") {
        const e = s[i++];
        assert.ok(e === "\\" || e === '"' || e === "n", `a valid escape \\${e} in ${s}`);
        v += e === "n" ? "\n" : e;
      } else {
        assert.notEqual(c, "\n");
        v += c;
      }
    }
    assert.ok(!(m[1] in labels), `label ${m[1]} once in ${s}`);
    labels[m[1]] = v;
    if (i < s.length) {
      assert.equal(s[i], ",", `labels separated by commas: ${s}`);
      i++;
    }
  }
  return labels;
}

function parseValue(s) {
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (s === "NaN") return NaN;
  assert.match(s, /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `a number: ${s}`);
  return Number(s);
}

/** Check the exposition line by line; resolves { families, samples }. */
function parseExposition(text) {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  const families = new Map(); // name -> { help, type }
  const samples = [];
  const seenDone = new Set(); // families whose samples are over
  let current;
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      assert.ok(m, `a HELP or TYPE comment: ${line}`);
      assert.match(m[2], NAME);
      const f = families.get(m[2]) || {};
      const key = m[1].toLowerCase();
      assert.ok(!(key in f), `one ${m[1]} for ${m[2]}`);
      if (m[1] === "TYPE") assert.ok(["counter", "gauge", "histogram", "summary", "untyped"].includes(m[3]), line);
      f[key] = m[3];
      families.set(m[2], f);
      if (current && current !== m[2]) seenDone.add(current);
      current = m[2];
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
    const name = m[1];
    let family = name;
    if (!families.has(name)) family = name.replace(/_(bucket|sum|count)$/, "");
    const f = families.get(family);
    assert.ok(f && f.type, `TYPE of ${family} comes before its sample ${line}`);
    assert.ok(f.help, `HELP of ${family}`);
    assert.ok(!seenDone.has(family), `the samples of ${family} are together`);
    assert.equal(family, current, `sample ${name} under its own family's comments`);
    if (f.type === "counter") assert.match(family, /_total$/, `counter ${family} ends in _total`);
    samples.push({ name, family, labels: parseLabels(m[2] || ""), value: parseValue(m[3]) });
  }
  return { families, samples };
}

/** Cumulative buckets, +Inf = _count, a _sum: for every histogram series. */
function checkHistograms({ families, samples }) {
  let checked = 0;
  for (const [name, f] of families) {
    if (f.type !== "histogram") continue;
    const series = new Map();
    for (const s of samples.filter((x) => x.family === name)) {
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(rest);
      const e = series.get(key) || { buckets: [], sum: undefined, count: undefined };
      if (s.name === `${name}_bucket`) {
        assert.ok(le !== undefined, `${name}_bucket has le`);
        e.buckets.push([parseValue(le), s.value]);
      } else if (s.name === `${name}_sum`) e.sum = s.value;
      else if (s.name === `${name}_count`) e.count = s.value;
      else assert.fail(`unexpected sample ${s.name} in histogram ${name}`);
      series.set(key, e);
    }
    for (const [key, e] of series) {
      assert.ok(e.buckets.length > 1, `${name}${key} has buckets`);
      for (let i = 1; i < e.buckets.length; i++) {
        assert.ok(e.buckets[i][0] > e.buckets[i - 1][0], `${name}${key}: le ascending`);
        assert.ok(e.buckets[i][1] >= e.buckets[i - 1][1], `${name}${key}: cumulative`);
      }
      const last = e.buckets[e.buckets.length - 1];
      assert.equal(last[0], Infinity, `${name}${key} ends with le="+Inf"`);
      assert.equal(last[1], e.count, `${name}${key}: +Inf bucket equals _count`);
      assert.ok(Number.isFinite(e.sum) && e.sum >= 0, `${name}${key} has a _sum`);
      checked++;
    }
  }
  return checked;
}

// --- the suite ------------------------------------------------------------------

describe("metrics collector and /metrics", { skip }, () => {
  const burn = vmId("burn");
  const idle = vmId("idle");
  const mem = vmId("mem");

  before(async () => {
    await ensureTestImage(engine);
    d = await startBerthd({
      backend: "docker",
      args: ["--metrics-interval", String(INTERVAL_MS / 1000), "--stop-timeout", "1", "--metrics-cgroup-root", ""],
    });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 20000,
      what: "berthd to be ready",
    });
    await Promise.all([
      bootVm(burn, ["sh", "-c", "while :; do :; done"]),
      bootVm(idle, ["sleep", "3600"]),
      // Waits a few seconds so a small baseline is sampled first, then
      // holds a 64 MB string in the shell's memory (the loop keeps the shell
      // alive: a last simple command would be exec'd in its place).
      bootVm(mem, ["sh", "-c", "sleep 6; x=$(head -c 64000000 /dev/zero | tr '\\000' a); while :; do sleep 3600; done"]),
    ]);
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

  test("a VM burning CPU shows more than 50 % within two intervals", async () => {
    const first = await firstMetrics(burn);
    const m = await waitFor(
      async () => {
        const x = (await info(burn)).metrics;
        return x.cpuUsagePercent > 50 ? x : false;
      },
      { timeoutMs: 2 * INTERVAL_MS + 500, intervalMs: 100, what: `cpu > 50 % on ${burn}`, describe: () => JSON.stringify(first) },
    );
    assert.ok(m.cpuUsagePercent <= 110, `one vCPU cannot use much more than 100 %: ${m.cpuUsagePercent}`);
    assert.equal((await info(burn)).backendInfo.metrics_source, "engine", "sampled through the Engine");
    assert.ok(Number(m.uptimeSeconds || 0) >= 0);
  });

  test("an idle VM stays under 5 %", async () => {
    const first = await firstMetrics(idle);
    let seen;
    const quiet = await waitFor(
      async () => {
        seen = (await info(idle)).metrics;
        return (seen.cpuUsagePercent || 0) < 5 ? seen : false;
      },
      { timeoutMs: 3 * INTERVAL_MS, intervalMs: 100, what: `cpu < 5 % on ${idle}`, describe: () => `first ${JSON.stringify(first)}, last ${JSON.stringify(seen)}` },
    );
    const next = await nextMetrics(idle, Number(quiet.sampledAtUnixMs));
    assert.ok((next.cpuUsagePercent || 0) < 5, `still idle: ${JSON.stringify(next)}`);
  });

  test("samples stay within the interval and advance", async () => {
    const a = await firstMetrics(burn);
    const b = await nextMetrics(burn, Number(a.sampledAtUnixMs), 3 * INTERVAL_MS);
    const age = Date.now() - Number(b.sampledAtUnixMs);
    assert.ok(age <= INTERVAL_MS + AGE_MARGIN_MS, `sample age ${age} ms, interval ${INTERVAL_MS} ms`);
  });

  test("memory grows when the container allocates", async () => {
    const base = await firstMetrics(mem);
    const before = Number(base.memoryUsageBytes);
    assert.ok(before < 32 * MiB, `a small baseline before the allocation: ${before}`);
    const grown = await waitFor(
      async () => {
        const x = (await info(mem)).metrics;
        return Number(x.memoryUsageBytes) > before + 48 * MiB ? x : false;
      },
      { timeoutMs: 30000, intervalMs: 200, what: `memory of ${mem} to grow by 48 MiB from ${before}` },
    );
    assert.ok(Number(grown.memoryUsageBytes) < 256 * MiB, `below the limit: ${grown.memoryUsageBytes}`);
  });

  test("a cached sample is never older than the interval", async () => {
    await firstMetrics(burn);
    // (After the memory test, which needs the first seconds of its VM.)
    // Look often for four intervals: at no look is the sample older than
    // the interval (plus the margin), and it advanced every interval.
    const until = Date.now() + 4 * INTERVAL_MS;
    let worst = 0;
    const seen = new Set();
    await waitFor(
      async () => {
        const m = (await info(burn)).metrics;
        const age = Date.now() - Number(m.sampledAtUnixMs);
        worst = Math.max(worst, age);
        assert.ok(age <= INTERVAL_MS + AGE_MARGIN_MS, `sample age ${age} ms, interval ${INTERVAL_MS} ms`);
        seen.add(m.sampledAtUnixMs);
        return Date.now() >= until;
      },
      { timeoutMs: 4 * INTERVAL_MS + 5000, intervalMs: 50, what: "four intervals of samples" },
    );
    assert.ok(seen.size >= 3, `the sample advanced: ${seen.size} distinct in four intervals (worst age ${worst} ms)`);
  });

  test("/metrics is valid exposition text with every documented series", async () => {
    await firstMetrics(burn);
    await info(burn); // a GetVmInfo to count
    const r = await d.request({ method: "GET", path: "/metrics" });
    assert.equal(r.status, 200);
    assert.match(String(r.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    const parsed = parseExposition(r.text);
    assert.ok(checkHistograms(parsed) >= 2, "RPC and Engine histograms with series");

    const has = (name, labels = {}, pred = () => true) =>
      parsed.samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && pred(s.value));
    const need = (name, labels, pred, why) => assert.ok(has(name, labels, pred), `${why || "series"}: ${name} ${JSON.stringify(labels || {})}\n${r.text}`);
    const family = (name, type) => assert.equal((parsed.families.get(name) || {}).type, type, `family ${name} is a ${type}`);

    const getInfo = `/${VM_SERVICE}/GetVmInfo`;
    need("berth_rpc_requests_total", { procedure: getInfo, code: "ok" }, (v) => v >= 1);
    need("berth_rpc_duration_seconds_count", { procedure: getInfo }, (v) => v >= 1);
    need("berth_rpc_in_flight", { procedure: getInfo });
    need("berth_engine_requests_total", { operation: "POST /containers/{id}/start", outcome: "ok" }, (v) => v >= 3);
    need("berth_engine_request_duration_seconds_count", { operation: "POST /containers/create" }, (v) => v >= 3);
    need("berth_vms", { state: "running" }, (v) => v >= 3);
    for (const s of ["created", "paused", "shutdown"]) need("berth_vms", { state: s });
    family("berth_gateways", "gauge");
    family("berth_gateway_replicas", "gauge");
    family("berth_deployments", "gauge");
    family("berth_deployment_replicas", "gauge");
    need("berth_gateways");
    need("berth_deployments");
    need("berth_vm_cpu_usage_percent", { vm_id: burn }, (v) => v > 50);
    family("berth_vm_cpu_seconds_total", "counter");
    need("berth_vm_cpu_seconds_total", { vm_id: burn }, (v) => v > 0);
    need("berth_vm_memory_usage_bytes", { vm_id: burn }, (v) => v > 0);
    for (const n of [
      "berth_vm_network_receive_bytes_total",
      "berth_vm_network_transmit_bytes_total",
      "berth_vm_network_receive_packets_total",
      "berth_vm_network_transmit_packets_total",
      "berth_vm_block_read_bytes_total",
      "berth_vm_block_write_bytes_total",
      "berth_vm_block_read_ops_total",
      "berth_vm_block_write_ops_total",
    ]) {
      family(n, "counter");
      need(n, { vm_id: burn });
    }
    need("berth_collector_sweep_duration_seconds", {}, (v) => v > 0 && v <= 2 * INTERVAL_MS / 1000 + 1);
    need("berth_collector_sweeps_total", {}, (v) => v >= 1);
    need("berth_collector_errors_total");
    need("berth_collector_streams", {}, (v) => v >= 3);
  });

  test("berth_vm_cpu_seconds_total of a burning VM grows by about its percent", async () => {
    const read = async () => {
      const r = await d.request({ method: "GET", path: "/metrics" });
      const s = parseExposition(r.text).samples;
      const at = (name) => (s.find((x) => x.name === name && x.labels.vm_id === burn) || {}).value;
      return { t: Date.now(), seconds: at("berth_vm_cpu_seconds_total"), percent: at("berth_vm_cpu_usage_percent") };
    };
    await firstMetrics(burn);
    const a = await read();
    assert.ok(a.seconds > 0, `cpu seconds ${a.seconds}`);
    let b;
    await waitFor(
      async () => {
        b = await read();
        return b.t - a.t >= 2500;
      },
      { timeoutMs: 10000, intervalMs: 250, what: "2.5 s of burning" },
    );
    // Samples are at most a second old at either read: at least 1.5 s of a
    // VM above 50 % lies between them.
    assert.ok(b.seconds - a.seconds >= 0.4, `grew ${b.seconds - a.seconds} s in ${b.t - a.t} ms at ${b.percent} %`);
  });

  test("the process, build and engine series; promtool accepts the whole page", async () => {
    const r = await d.request({ method: "GET", path: "/metrics" });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-encoding"], undefined, "no gzip unless asked for");
    assert.equal(r.headers["vary"], "Accept-Encoding");
    // No family double-counts under sum(): no catch-all label value beside
    // the parts it sums up.
    for (const s of parseExposition(r.text).samples) {
      for (const [k, v] of Object.entries(s.labels)) assert.ok(!["all", "total", "any"].includes(v), `${s.name}{${k}="${v}"} overlaps its siblings`);
    }
    const parsed = parseExposition(r.text);
    const one = (name) => parsed.samples.find((s) => s.name === name);
    assert.ok(one("process_cpu_seconds_total").value > 0);
    assert.ok(one("process_resident_memory_bytes").value > 1 << 20);
    assert.ok(one("process_open_fds").value >= 3 && one("process_open_fds").value < one("process_max_fds").value);
    const start = one("process_start_time_seconds").value;
    assert.ok(start > Date.now() / 1000 - 3600 && start <= Date.now() / 1000 + 1, `start ${start}`);
    const build = one("berth_build_info");
    assert.equal(build.value, 1);
    assert.match(build.labels.version, /^\d+\.\d+\.\d+$/);
    assert.ok(build.labels.commit.length > 0);
    assert.equal(one("berth_engine_up").value, 1);
    // Replica states never overlap: running + not_running is all of them.
    for (const s of parsed.samples.filter((x) => x.name.endsWith("_replicas"))) {
      assert.ok(["running", "not_running"].includes(s.labels.state), `${s.name} state ${s.labels.state}`);
    }
    const promtool = process.env.BERTH_PROMTOOL;
    assert.ok(promtool, "BERTH_PROMTOOL is set by scripts/test (promtool from Debian's prometheus package)");
    const res = spawnSync(promtool, ["check", "metrics"], { input: r.text, encoding: "utf8" });
    assert.equal(res.status, 0, `promtool check metrics:\n${res.stdout}${res.stderr}`);

    // A scraper that takes gzip gets it; the page inside passes the same check.
    const z = await d.request({ method: "GET", path: "/metrics", headers: { "Accept-Encoding": "gzip" } });
    assert.equal(z.status, 200);
    assert.equal(z.headers["content-encoding"], "gzip");
    assert.equal(z.headers["vary"], "Accept-Encoding");
    assert.match(String(z.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    assert.deepEqual([z.body[0], z.body[1]], [0x1f, 0x8b], "a gzip stream on the wire");
    assert.ok(z.body.length < z.decoded.length / 2, `compressed ${z.body.length} of ${z.decoded.length} bytes`);
    assert.match(z.text, /^berth_build_info\{/m);
    const zres = spawnSync(promtool, ["check", "metrics"], { input: z.decoded, encoding: "utf8" });
    assert.equal(zres.status, 0, `promtool check metrics on the inflated page:\n${zres.stdout}${zres.stderr}`);
    const no = await d.request({ method: "GET", path: "/metrics", headers: { "Accept-Encoding": "gzip;q=0, br" } });
    assert.equal(no.headers["content-encoding"], undefined, "gzip;q=0 refuses gzip");
  });

  test("a paused VM is not sampled; resumed, it is again", async () => {
    const before = await firstMetrics(idle);
    await vmOk("PauseVm", { vmId: idle });
    const pausedAt = Date.now();
    // The collector reads the registry twice an interval; give it three
    // intervals, and at every look the sample must date from before the pause
    // (plus the one the Engine may have had under way).
    let last;
    await waitFor(
      async () => {
        const vm = await info(idle);
        assert.equal(vm.state, "VM_STATE_PAUSED");
        last = Number(vm.metrics.sampledAtUnixMs);
        assert.ok(last >= Number(before.sampledAtUnixMs));
        assert.ok(last <= pausedAt + 1500, `sample at ${last} taken ${last - pausedAt} ms after the pause`);
        return Date.now() - pausedAt > 3 * INTERVAL_MS + 500;
      },
      { timeoutMs: 10000, intervalMs: 200, what: "three intervals after the pause" },
    );
    const frozen = last;
    await waitFor(
      async () => {
        const vm = await info(idle);
        assert.equal(Number(vm.metrics.sampledAtUnixMs), frozen, "no new sample while paused");
        return Date.now() - pausedAt > 5 * INTERVAL_MS;
      },
      { timeoutMs: 10000, intervalMs: 200, what: "two more intervals while paused" },
    );
    await vmOk("ResumeVm", { vmId: idle });
    await nextMetrics(idle, frozen, 5 * INTERVAL_MS);
  });

  test("a stopped VM keeps its last sample with no uptime", async () => {
    const m = await firstMetrics(burn);
    await vmOk("ShutdownVm", { vmId: burn, force: true });
    const vm = await info(burn);
    assert.equal(vm.state, "VM_STATE_SHUTDOWN");
    assert.ok(vm.metrics, "metrics kept");
    assert.ok(Number(vm.metrics.sampledAtUnixMs) >= Number(m.sampledAtUnixMs));
    assert.equal(Number(vm.metrics.uptimeSeconds || 0), 0);
    const r = await d.request({ method: "GET", path: "/metrics" });
    assert.ok(!r.text.includes(`vm_id="${burn}"`), "a stopped VM has no per-VM series");
  });

  test("stats streams that ended count as Engine calls", async () => {
    // The paused and the stopped VM's streams ended above.
    const op = "GET /containers/{id}/stats";
    let last;
    await waitFor(
      async () => {
        last = await d.request({ method: "GET", path: "/metrics" });
        const { samples } = parseExposition(last.text);
        const ok = samples.find((s) => s.name === "berth_engine_requests_total" && s.labels.operation === op && s.labels.outcome === "ok");
        const count = samples.find((s) => s.name === "berth_engine_request_duration_seconds_count" && s.labels.operation === op);
        return ok && ok.value >= 1 && count && count.value >= ok.value;
      },
      { timeoutMs: 5000, intervalMs: 100, what: `${op} counted`, describe: () => last && last.text },
    );
  });
});
