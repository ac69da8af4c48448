#!/usr/bin/env node
// Metrics at scale: N running VMs (busybox `sleep`), --metrics-interval I,
// and in one run, for each N of --vms:
//
//   1. the CPU window (--window s, nothing scraped): berthd's CPU, and the
//      Engine's (dockerd, its containerd, the shims of the VMs' containers);
//   2. the age window (--watch s): /metrics scraped every 250 ms, the oldest
//      berth_vm_metrics_age_seconds of each scrape (p50, p99, worst), and
//      where the samples came from (berth_vm_metrics_source);
//   3. berthd stopped (its containers keep running), the same CPU window
//      again for the Engine alone: the difference is what berthd's sampling
//      costs the Engine.
//
// berthd's RSS with the N VMs is printed too. The VMs get an --instance-id
// of their own; every container and network the run makes is removed at
// the end (and on failure).
//
//   BERTHD=build/berthd node tests/bench/metrics_scale/run.mjs
//       [--vms 100,1000] [--interval 1] [--window 30] [--watch 30]
//       [--source cgroup|engine] [--engine private|shared] [--strict]
//       [--json FILE]
//
// --engine private (the default, needs root): a dockerd of the run's own
// (tests/lib/private_engine.mjs), so the Engine's CPU is that of the VMs'
// alone and nothing else on the host restarts or loads it; the test image
// is imported into it. --engine shared: the host's Engine.
// --source engine runs berthd with --metrics-cgroup-root "" (every VM
// through the Engine's stats streams, as before the cgroup source).
// --strict: exit 1 when the worst age is above the interval or a VM never
// got a sample. Take the Docker lock around it: it loads the machine.

import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startBerthd, waitFor } from "../../lib/berthd.mjs";
import { connectEngine } from "../../lib/engine.mjs";
import { PrivateEngine } from "../../lib/private_engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../../lib/image.mjs";
import { VM_SERVICE } from "../../lib/proto.mjs";
import { cpuSum, engineProcesses, rssKiB } from "../lib/proc.mjs";

const { values: opts } = parseArgs({
  options: {
    vms: { type: "string", default: "100,1000" },
    interval: { type: "string", default: "1" },
    window: { type: "string", default: "30" },
    watch: { type: "string", default: "30" },
    source: { type: "string", default: "cgroup" },
    engine: { type: "string", default: "private" },
    strict: { type: "boolean", default: false },
    json: { type: "string" },
  },
});
const COUNTS = opts.vms.split(",").map(Number);
const INTERVAL = Number(opts.interval);
const WINDOW_S = Number(opts.window);
const WATCH_S = Number(opts.watch);
const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const INSTANCE = `bench-ms-${RUN}`;
const BATCH = 8; // creates and boots under way at once
// VMs per customer: each customer's VMs get a tenant network of their own,
// and an Engine whose address pool hands out /24s fits 253 on one.
const PER_CUSTOMER = 200;

/** The value (and labels text) of every sample of `name` in a Prometheus text body. */
function samples(text, name) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    out.push({ labels: rest[0] === "{" ? rest.slice(1, rest.indexOf("}")) : "", value: Number(line.slice(line.lastIndexOf(" ") + 1)) });
  }
  return out;
}

function percentile(sorted, p) {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

async function inBatches(items, fn) {
  for (let i = 0; i < items.length; i += BATCH) await Promise.all(items.slice(i, i + BATCH).map(fn));
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const pct = (sec, windowS) => (100 * sec) / windowS;

/** CPU seconds of each group over windowS seconds, as % of one core. */
async function cpuWindow(groups, windowS) {
  const before = Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, cpuSum(pids)]));
  const t0 = Date.now();
  await sleep(windowS * 1000);
  const secs = (Date.now() - t0) / 1000;
  return Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, pct(cpuSum(pids) - before[k], secs)]));
}

// One removal at a time: the Engine (20.10's libnetwork) can deadlock when
// many containers of one network go at once.
async function removeAll(engine) {
  const mine = (await engine.listContainers([`berth.instance=${INSTANCE}`])).map((c) => c.Id);
  for (const id of mine) await engine.remove(id).catch(() => {});
  const nets = await engine.call("GET", "/networks");
  for (const n of nets.body) {
    if (n.Name.endsWith(INSTANCE)) await engine.call("DELETE", `/networks/${n.Id}`, { ok: [404, 409] }).catch(() => {});
  }
  return mine.length;
}

async function runOne(engine, pe, n) {
  const args = ["--metrics-interval", String(INTERVAL), "--instance-id", INSTANCE, "--max-vms", String(n + 10), "--stop-timeout", "1"];
  args.push("--docker-socket", engine.socketPath);
  if (opts.source === "engine") args.push("--metrics-cgroup-root", "");
  let d = await startBerthd({ backend: "docker", args, timeoutMs: 60000 });
  const rss0 = rssKiB(d.child.pid);
  const ids = Array.from({ length: n }, (_, i) => `ms-${i}-${RUN}`);
  const call = async (method, body) => {
    const r = await d.postJson(`/${VM_SERVICE}/${method}`, body);
    if (r.status !== 200) throw new Error(`${method} ${JSON.stringify(body)}: HTTP ${r.status} ${r.text}`);
    return r.json;
  };
  const scrape = async () => (await d.request({ method: "GET", path: "/metrics", timeoutMs: 20000 })).text;
  const result = { vms: n, interval_s: INTERVAL, source: opts.source };
  try {
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, { timeoutMs: 60000, what: "berthd ready" });
    const t0 = Date.now();
    await inBatches(ids, async (id) => {
      await call("CreateVm", {
        vmId: id,
        customerId: `c${Math.floor(Number(id.split("-")[1]) / PER_CUSTOMER)}`,
        config: { memory: { sizeBytes: String(32 << 20) }, container: { image: TEST_IMAGE, command: ["sleep", "86400"] } },
      });
      await call("BootVm", { vmId: id });
    });
    result.boot_s = (Date.now() - t0) / 1000;
    console.log(`[${n}] ${n} VMs created and booted in ${result.boot_s.toFixed(1)} s`);
    await waitFor(async () => samples(await scrape(), "berth_vm_metrics_age_seconds").length >= n, {
      timeoutMs: 300000,
      intervalMs: 1000,
      what: `a metrics sample for all ${n} VMs`,
    });
    const cids = (await engine.listContainers([`berth.instance=${INSTANCE}`])).map((c) => c.Id);
    const eng = engineProcesses(engine.socketPath, cids);
    if (pe) {
      eng.dockerd = pe.child.pid;
      eng.containerd = pe.containerdPid() || 0;
    }
    if (!eng.dockerd) throw new Error(`no dockerd serving ${engine.socketPath} found in /proc`);
    await sleep(3 * INTERVAL * 1000); // settle

    // 1. CPU, nothing scraped.
    const groups = { berthd: [d.child.pid], dockerd: [eng.dockerd], containerd: eng.containerd ? [eng.containerd] : [], shims: eng.shims };
    const withB = await cpuWindow(groups, WINDOW_S);
    result.rss_kib = rssKiB(d.child.pid);
    result.rss0_kib = rss0;

    // 2. Ages.
    const worst = [];
    let covered = n;
    let streams = 0;
    const sources = {};
    const until = Date.now() + WATCH_S * 1000;
    while (Date.now() < until) {
      const text = await scrape();
      const ages = samples(text, "berth_vm_metrics_age_seconds").map((s) => s.value);
      covered = Math.min(covered, ages.length);
      if (ages.length > 0) worst.push(Math.max(...ages));
      for (const s of samples(text, "berth_collector_streams")) streams = Math.max(streams, s.value);
      for (const s of samples(text, "berth_vm_metrics_source")) sources[s.labels] = s.value;
      await sleep(250);
    }
    worst.sort((a, b) => a - b);
    result.age = { scrapes: worst.length, p50: percentile(worst, 50), p99: percentile(worst, 99), worst: worst[worst.length - 1] };
    result.covered = covered;
    result.streams = streams;
    result.sources = sources;

    // 3. berthd stopped: the Engine alone.
    const r = await d.stop({ timeoutMs: 60000 });
    if (r.code !== 0) throw new Error(`berthd exited ${JSON.stringify(r)}`);
    d = null;
    await sleep(2000);
    delete groups.berthd;
    const without = await cpuWindow(groups, WINDOW_S);
    result.cpu_pct = { with_berthd: withB, without_berthd: without };
    const engWith = withB.dockerd + withB.containerd + withB.shims;
    const engWithout = without.dockerd + without.containerd + without.shims;
    result.engine_stats_pct = engWith - engWithout;

    const f = (x) => x.toFixed(2);
    console.log(
      `[${n}] oldest sample per scrape (${worst.length} scrapes): p50 ${f(result.age.p50)} s, p99 ${f(result.age.p99)} s, worst ${f(result.age.worst)} s; ` +
        `interval ${INTERVAL} s; VMs with a sample ${covered}/${n}; streams ${streams}; sources ${JSON.stringify(sources)}`,
    );
    console.log(
      `[${n}] CPU % of one core over ${WINDOW_S} s: berthd ${f(withB.berthd)}; Engine with berthd: dockerd ${f(withB.dockerd)}, containerd ${f(withB.containerd)}, ` +
        `shims ${f(withB.shims)} (sum ${f(engWith)}); berthd stopped: dockerd ${f(without.dockerd)}, containerd ${f(without.containerd)}, ` +
        `shims ${f(without.shims)} (sum ${f(engWithout)}); Engine CPU due to berthd ${f(result.engine_stats_pct)}`,
    );
    console.log(`[${n}] berthd RSS ${(rss0.rss / 1024).toFixed(1)} MiB at start, ${(result.rss_kib.rss / 1024).toFixed(1)} MiB with ${n} running VMs (${result.rss_kib.threads} threads)`);
    return result;
  } catch (err) {
    if (d) console.error(`berthd ${d.exit ? `exited ${JSON.stringify(d.exit)}` : "runs"}; its last lines:\n${d.stderr.split("\n").slice(-40).join("\n")}`);
    throw err;
  } finally {
    if (d) await d.stop({ timeoutMs: 60000 }).catch(() => d.kill());
    const removed = await removeAll(engine);
    console.log(`[${n}] removed ${removed} containers`);
  }
}

async function main() {
  let engine;
  let pe;
  if (opts.engine === "private") {
    pe = new PrivateEngine({ liveRestore: false, tag: "ms" });
    await pe.prepare();
    engine = await pe.start({ timeoutMs: 60000 });
  } else {
    const [e, why] = await connectEngine();
    if (!e) throw new Error(why);
    engine = e;
  }
  const results = [];
  let failed = false;
  try {
    await ensureTestImage(engine);
    for (const n of COUNTS) {
      const r = await runOne(engine, pe, n);
      results.push(r);
      if (opts.strict && (r.age.worst > INTERVAL || r.covered < n)) failed = true;
    }
  } finally {
    await removeAll(engine).catch((err) => console.error(`cleanup: ${err.message}`));
    if (pe && !pe.running) console.error(`the run's dockerd exited ${JSON.stringify(pe.exited)}:\n${pe.logTail(40)}`);
    if (pe) await pe.teardown();
  }
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ date: new Date().toISOString(), results }, null, 2));
  if (failed) {
    console.error("metrics_scale: a sample was older than the interval, or a VM had none");
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
