#!/usr/bin/env node
// Metrics at scale: with many running VMs, how old does a cached sample get?
// --metrics-interval promises a bound on the age of every VM's sample; this
// run boots --vms VMs (default 200), lets the collector settle, then scrapes
// /metrics every 250 ms for --watch seconds and reads the oldest
// berth_vm_metrics_age_seconds of all VMs in each scrape. It prints the worst
// and the 99th percentile of those, the collector's stream count and the
// share of VMs with a sample, against the interval.
//
//   BERTHD=build/berthd node tests/bench/metrics_scale/run.mjs [--vms 200]
//       [--interval 5] [--watch 30] [--strict]
//
// --strict: exit 1 when the worst age is above the interval or a VM never
// got a sample.

import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { startBerthd, waitFor } from "../../lib/berthd.mjs";
import { connectEngine } from "../../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../../lib/image.mjs";
import { VM_SERVICE } from "../../lib/proto.mjs";

const { values: opts } = parseArgs({
  options: {
    vms: { type: "string", default: "200" },
    interval: { type: "string", default: "5" },
    watch: { type: "string", default: "30" },
    strict: { type: "boolean", default: false },
  },
});
const VMS = Number(opts.vms);
const INTERVAL = Number(opts.interval);
const WATCH_S = Number(opts.watch);
const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const BATCH = 20; // creates and boots under way at once

/** The value of every sample of `name` in a Prometheus text body. */
function samples(text, name) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    out.push(Number(line.slice(line.lastIndexOf(" ") + 1)));
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

async function main() {
  const [engine, why] = await connectEngine();
  if (!engine) throw new Error(why);
  await ensureTestImage(engine);
  const d = await startBerthd({ backend: "docker", args: ["--metrics-interval", String(INTERVAL)] });
  const ids = Array.from({ length: VMS }, (_, i) => `bench-scale-${i}-${RUN}`);
  const call = async (method, body) => {
    const r = await d.postJson(`/${VM_SERVICE}/${method}`, body);
    if (r.status !== 200) throw new Error(`${method} ${JSON.stringify(body)}: HTTP ${r.status} ${r.text}`);
    return r.json;
  };
  let failed = false;
  try {
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, { timeoutMs: 20000, what: "berthd ready" });
    const t0 = Date.now();
    await inBatches(ids, async (id) => {
      await call("CreateVm", {
        vmId: id,
        config: { memory: { sizeBytes: String(32 << 20) }, container: { image: TEST_IMAGE, command: ["sh", "-c", "while :; do sleep 1; done"] } },
      });
      await call("BootVm", { vmId: id });
    });
    console.log(`${VMS} VMs created and booted in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const scrape = async () => (await d.request({ method: "GET", path: "/metrics", timeoutMs: 10000 })).text;
    // Settle: every VM has a sample.
    const settleStart = Date.now();
    await waitFor(async () => samples(await scrape(), "berth_vm_metrics_age_seconds").length >= VMS, {
      timeoutMs: 120000,
      intervalMs: 250,
      what: `a metrics sample for all ${VMS} VMs`,
    });
    console.log(`every VM sampled ${((Date.now() - settleStart) / 1000).toFixed(1)} s after the last boot`);

    const worst = [];
    let streams = 0;
    let covered = VMS;
    const until = Date.now() + WATCH_S * 1000;
    while (Date.now() < until) {
      const text = await scrape();
      const ages = samples(text, "berth_vm_metrics_age_seconds");
      covered = Math.min(covered, ages.length);
      if (ages.length > 0) worst.push(Math.max(...ages));
      streams = Math.max(streams, ...samples(text, "berth_collector_streams"), 0);
      await new Promise((res) => setTimeout(res, 250));
    }
    worst.sort((a, b) => a - b);
    const max = worst[worst.length - 1];
    console.log(
      `scrapes ${worst.length}: oldest sample per scrape p50 ${percentile(worst, 50).toFixed(2)} s, ` +
        `p99 ${percentile(worst, 99).toFixed(2)} s, max ${max.toFixed(2)} s; interval ${INTERVAL} s; ` +
        `ratio max/interval ${(max / INTERVAL).toFixed(2)}; streams ${streams}; VMs with a sample ${covered}/${VMS}`,
    );
    if (opts.strict && (max > INTERVAL || covered < VMS)) failed = true;
  } finally {
    await inBatches(ids, async (id) => {
      await d.postJson(`/${VM_SERVICE}/DeleteVm`, { vmId: id, force: true }).catch(() => {});
    });
    for (const c of await engine.listContainers(["berth.managed=true", "berth.kind=vm"])) {
      if ((c.Labels["berth.vm_id"] || "").endsWith(RUN)) await engine.remove(c.Id);
    }
    await d.stop();
  }
  if (failed) {
    console.error("metrics_scale: a sample was older than the interval, or a VM had none");
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
