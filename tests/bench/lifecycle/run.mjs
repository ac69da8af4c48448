#!/usr/bin/env node
// Lifecycle benchmark: N create -> start -> stop -> remove cycles through
// berthd (CreateVm, BootVm, ShutdownVm, DeleteVm) against the same cycle made
// of raw Docker Engine API calls over the unix socket, in one run. The two
// alternate cycle by cycle (and swap who goes first every cycle) so that both
// see the same Engine and the same noise. Prints per-step and total medians
// and the ratio berthd / raw; the goal is <= 1.05.
//
//   BERTHD=build/berthd node tests/bench/lifecycle/run.mjs [options]
//     --cycles N       measured cycles per side (default 20, env BENCH_CYCLES)
//     --warmup N       cycles per side run first and not counted (default 2)
//     --client C       curl (default): one curl process per call for both
//                      sides (curl --unix-socket for the Engine);
//                      node: one keep-alive node:http client for both sides
//     --max-ratio X    exit 1 when the total ratio is above X
//     --json FILE      also write the results as JSON to FILE
//
// Both sides stop gracefully with the same 10 s grace period. The container
// runs a shell that exits as soon as it gets SIGTERM, so the stop measures
// the Engine's work, not a wait for the grace period to run out.

import { request as httpRequest, Agent } from "node:http";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { startBerthd, berthdSkipReason } from "../../lib/berthd.mjs";
import { connectEngine } from "../../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../../lib/image.mjs";

const STEPS = ["create", "start", "stop", "remove"];
const STOP_TIMEOUT_S = 10;
// `wait` returns as soon as a trapped signal arrives, so TERM ends PID 1 at
// once (a plain `sleep` would make the trap wait for the sleep to finish).
const COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"];
const VM_SERVICE = "/metal.vmprovisioner.v1.VmService";

const { values: opt } = parseArgs({
  options: {
    cycles: { type: "string", default: process.env.BENCH_CYCLES || "20" },
    warmup: { type: "string", default: "2" },
    client: { type: "string", default: "curl" },
    "max-ratio": { type: "string" },
    json: { type: "string" },
  },
});
const CYCLES = Number(opt.cycles);
const WARMUP = Number(opt.warmup);
if (!Number.isInteger(CYCLES) || CYCLES < 1 || !Number.isInteger(WARMUP) || WARMUP < 0) {
  throw new Error("--cycles must be a positive integer and --warmup a non-negative one");
}
if (!["node", "curl"].includes(opt.client)) throw new Error("--client is node or curl");

const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;

// --- transports -----------------------------------------------------------------

/**
 * One HTTP call; resolves { status, body } with body parsed as JSON when it
 * is. target: { socketPath } for the Engine, { host, port } for berthd.
 */
function nodeCall(agent, target, method, path, body) {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers = payload ? { "Content-Type": "application/json", "Content-Length": String(payload.length) } : {};
  return new Promise((resolve, reject) => {
    const req = httpRequest({ ...target, agent, method, path, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => resolve({ status: res.statusCode, body: parse(Buffer.concat(chunks).toString("utf8")) }));
    });
    req.setTimeout(120000, () => req.destroy(new Error(`${method} ${path}: no answer within 120 s`)));
    req.on("error", reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** The same call made by a curl process; the status comes from -w. */
function curlCall(target, method, path, body) {
  const args = ["-s", "-X", method, "-w", "\n%{http_code}"];
  if (target.socketPath) args.push("--unix-socket", target.socketPath);
  if (body !== undefined) args.push("-H", "Content-Type: application/json", "--data-binary", JSON.stringify(body));
  args.push(target.socketPath ? `http://localhost${path}` : `http://${target.host}:${target.port}${path}`);
  return new Promise((resolve, reject) => {
    execFile("curl", args, { timeout: 120000 }, (err, stdout) => {
      if (err) return reject(new Error(`curl ${method} ${path}: ${err.message}`));
      const cut = stdout.lastIndexOf("\n");
      resolve({ status: Number(stdout.slice(cut + 1)), body: parse(stdout.slice(0, cut)) });
    });
  });
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function transport(target) {
  if (opt.client === "curl") return (method, path, body) => curlCall(target, method, path, body);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  return (method, path, body) => nodeCall(agent, target, method, path, body);
}

async function expect2xx(r, what) {
  if (r.status < 200 || r.status > 299) throw new Error(`${what}: HTTP ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

// --- the two sides ---------------------------------------------------------------

/** One cycle through berthd; resolves { create, start, stop, remove } in ms. */
async function berthdCycle(call, i) {
  const vmId = `bench-${RUN}-${i}`;
  const t = {};
  let t0 = performance.now();
  await expect2xx(await call("POST", `${VM_SERVICE}/CreateVm`, { vmId, config: { container: { image: TEST_IMAGE, command: COMMAND } } }), "CreateVm");
  t.create = performance.now() - t0;
  t0 = performance.now();
  await expect2xx(await call("POST", `${VM_SERVICE}/BootVm`, { vmId }), "BootVm");
  t.start = performance.now() - t0;
  t0 = performance.now();
  await expect2xx(await call("POST", `${VM_SERVICE}/ShutdownVm`, { vmId, timeoutSeconds: STOP_TIMEOUT_S }), "ShutdownVm");
  t.stop = performance.now() - t0;
  t0 = performance.now();
  await expect2xx(await call("POST", `${VM_SERVICE}/DeleteVm`, { vmId }), "DeleteVm");
  t.remove = performance.now() - t0;
  return t;
}

/** The same cycle as raw Engine API calls. */
async function rawCycle(call, prefix, i) {
  const name = `berth-bench-raw-${RUN}-${i}`;
  const body = {
    Image: TEST_IMAGE,
    Cmd: COMMAND,
    Env: [],
    Labels: { "berth.bench": RUN, "berth.kind": "bench" },
    HostConfig: { PidsLimit: 4096 },
  };
  const t = {};
  let t0 = performance.now();
  const created = await expect2xx(await call("POST", `${prefix}/containers/create?name=${encodeURIComponent(name)}`, body), "create");
  t.create = performance.now() - t0;
  const id = encodeURIComponent(created.Id);
  t0 = performance.now();
  await expect2xx(await call("POST", `${prefix}/containers/${id}/start`), "start");
  t.start = performance.now() - t0;
  t0 = performance.now();
  await expect2xx(await call("POST", `${prefix}/containers/${id}/stop?t=${STOP_TIMEOUT_S}`), "stop");
  t.stop = performance.now() - t0;
  t0 = performance.now();
  await expect2xx(await call("DELETE", `${prefix}/containers/${id}?force=true&v=true`), "remove");
  t.remove = performance.now() - t0;
  return t;
}

// --- statistics --------------------------------------------------------------------

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

function summary(samples) {
  const out = {};
  for (const step of [...STEPS, "total"]) {
    const xs = samples.map((t) => (step === "total" ? STEPS.reduce((a, s) => a + t[s], 0) : t[step]));
    out[step] = { median: quantile(xs, 0.5), p10: quantile(xs, 0.1), p90: quantile(xs, 0.9) };
  }
  return out;
}

// --- main ------------------------------------------------------------------------

async function main() {
  const why = berthdSkipReason();
  if (why) throw new Error(why);
  const [engine, engineWhy] = await connectEngine();
  if (!engine) throw new Error(engineWhy);
  await ensureTestImage(engine);

  const d = await startBerthd({ backend: "docker" });
  const [host, port] = d.address.split(":");
  const viaBerthd = transport({ host, port: Number(port) });
  const viaEngine = transport({ socketPath: engine.socketPath });
  const samples = { berthd: [], raw: [] };
  const started = Date.now();
  try {
    for (let i = 0; i < WARMUP + CYCLES; i++) {
      // Alternate who goes first, so neither side always follows the other.
      const order = i % 2 === 0 ? ["berthd", "raw"] : ["raw", "berthd"];
      for (const side of order) {
        const t = side === "berthd" ? await berthdCycle(viaBerthd, i) : await rawCycle(viaEngine, engine.prefix, i);
        if (i >= WARMUP) samples[side].push(t);
      }
    }
  } finally {
    // Whatever a failed cycle left: both sides' containers, by label.
    const left = [
      ...(await engine.listContainers([`berth.bench=${RUN}`])),
      ...(await engine.listContainers(["berth.managed=true", "berth.kind=vm"])).filter((c) => String(c.Labels["berth.vm_id"]).startsWith(`bench-${RUN}-`)),
    ];
    await Promise.all(left.map((c) => engine.remove(c.Id)));
    await d.stop();
  }

  const b = summary(samples.berthd);
  const r = summary(samples.raw);
  const ratio = b.total.median / r.total.median;
  const line = (name, x, y) =>
    `${name.padEnd(8)}${x.median.toFixed(1).padStart(10)}${y.median.toFixed(1).padStart(10)}${(x.median / y.median).toFixed(3).padStart(9)}` +
    `    ${x.p10.toFixed(1)}..${x.p90.toFixed(1)} / ${y.p10.toFixed(1)}..${y.p90.toFixed(1)}`;
  console.log(`lifecycle: ${CYCLES} cycles per side (+${WARMUP} warm-up), client ${opt.client}, image ${TEST_IMAGE}, Engine API v${engine.version.ApiVersion}, ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`${"step".padEnd(8)}${"berthd".padStart(10)}${"raw".padStart(10)}${"ratio".padStart(9)}    p10..p90 berthd / raw (ms)`);
  for (const step of STEPS) console.log(line(step, b[step], r[step]));
  console.log(line("total", b.total, r.total));
  console.log(`berthd/raw total median ratio: ${ratio.toFixed(3)} (goal <= 1.05)`);

  if (opt.json) {
    writeFileSync(opt.json, JSON.stringify({ cycles: CYCLES, warmup: WARMUP, client: opt.client, berthd: b, raw: r, ratio, samples }, null, 2));
  }
  if (opt["max-ratio"] !== undefined && ratio > Number(opt["max-ratio"])) {
    console.error(`ratio ${ratio.toFixed(3)} is above --max-ratio ${opt["max-ratio"]}`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exitCode = 1;
});
