#!/usr/bin/env node
// berthd's resident memory with 0, 1,000 and 10,000 VMs in its registry, in
// one berthd that grows from one count to the next: each VM created and
// booted, then RSS (VmRSS, RssAnon) read from /proc after the collector and
// a ListVms over all of them have run (so every path that copies the
// registry has touched its memory).
//
//   BERTHD=build/berthd node tests/bench/rss/run.mjs [--counts 0,1000,10000]
//       [--backend memory|docker] [--max-mib 12 --at 1000] [--json FILE]
//
// --backend memory (the default) keeps containers in berthd itself, so
// 10,000 fit anywhere; --backend docker makes real containers (take the
// Docker lock; they are removed at the end). --max-mib M --at N: exit 1
// when RSS with N VMs is above M MiB.

import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startBerthd, waitFor } from "../../lib/berthd.mjs";
import { connectEngine } from "../../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../../lib/image.mjs";
import { VM_SERVICE } from "../../lib/proto.mjs";
import { rssKiB } from "../lib/proc.mjs";

const { values: opts } = parseArgs({
  options: {
    counts: { type: "string", default: "0,1000,10000" },
    backend: { type: "string", default: "memory" },
    "max-mib": { type: "string" },
    at: { type: "string", default: "1000" },
    interval: { type: "string", default: "1" },
    json: { type: "string" },
  },
});
const COUNTS = opts.counts.split(",").map(Number).sort((a, b) => a - b);
const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const INSTANCE = `bench-rss-${RUN}`;
const BATCH = 16; // calls under way at once (below the per-address connection limit)
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

async function inBatches(items, fn) {
  for (let i = 0; i < items.length; i += BATCH) await Promise.all(items.slice(i, i + BATCH).map(fn));
}

async function main() {
  let engine;
  if (opts.backend === "docker") {
    const [e, why] = await connectEngine();
    if (!e) throw new Error(why);
    engine = e;
    await ensureTestImage(engine);
  }
  const max = COUNTS[COUNTS.length - 1];
  const d = await startBerthd({
    backend: opts.backend,
    args: ["--metrics-interval", opts.interval, "--instance-id", INSTANCE, "--max-vms", String(max + 10)],
    timeoutMs: 60000,
  });
  const call = async (method, body) => {
    const r = await d.postJson(`/${VM_SERVICE}/${method}`, body);
    if (r.status !== 200) throw new Error(`${method}: HTTP ${r.status} ${r.text}`);
    return r.json;
  };
  const results = [];
  let made = 0;
  let failed = false;
  try {
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, { timeoutMs: 60000, what: "berthd ready" });
    for (const n of COUNTS) {
      const ids = Array.from({ length: n - made }, (_, i) => `rss-${made + i}-${RUN}`);
      await inBatches(ids, async (id) => {
        await call("CreateVm", {
          vmId: id,
          customerId: "bench",
          config: {
            cpu: { vcpuCount: 1 },
            memory: { sizeBytes: String(32 << 20) },
            container: { image: TEST_IMAGE, command: ["sleep", "86400"], env: { ROLE: "bench" } },
          },
        });
        await call("BootVm", { vmId: id });
      });
      made = n;
      // Let the collector run over all of them, then list them all (pages).
      await sleep(3000);
      let token = "";
      let listed = 0;
      do {
        const page = await call("ListVms", { pageSize: 500, pageToken: token });
        listed += (page.vms || []).length;
        token = page.nextPageToken || "";
      } while (token);
      await d.request({ method: "GET", path: "/metrics", timeoutMs: 30000 });
      await sleep(1000);
      const m = rssKiB(d.child.pid);
      results.push({ vms: n, listed, ...m });
      console.log(`${n} VMs (${listed} listed): RSS ${(m.rss / 1024).toFixed(1)} MiB, anonymous ${(m.anon / 1024).toFixed(1)} MiB, ${m.threads} threads`);
      if (opts["max-mib"] && n === Number(opts.at) && m.rss / 1024 > Number(opts["max-mib"])) failed = true;
    }
    for (let i = 1; i < results.length; i++) {
      const a = results[i - 1];
      const b = results[i];
      if (b.vms > a.vms) console.log(`  ${a.vms} -> ${b.vms}: ${(((b.rss - a.rss) * 1024) / (b.vms - a.vms)).toFixed(0)} bytes per VM`);
    }
  } finally {
    await d.stop({ timeoutMs: 60000 }).catch(() => d.kill());
    if (engine) {
      const mine = (await engine.listContainers([`berth.instance=${INSTANCE}`])).map((c) => c.Id);
      // One at a time: many removals at once can deadlock the Engine's networking.
      for (const id of mine) await engine.remove(id).catch(() => {});
      const nets = await engine.call("GET", "/networks");
      for (const n of nets.body) {
        if (n.Name.endsWith(INSTANCE)) await engine.call("DELETE", `/networks/${n.Id}`, { ok: [404, 409] }).catch(() => {});
      }
    }
  }
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ date: new Date().toISOString(), backend: opts.backend, results }, null, 2));
  if (failed) {
    console.error(`rss: above ${opts["max-mib"]} MiB with ${opts.at} VMs`);
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
