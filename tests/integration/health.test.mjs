// ctest-labels: docker
// Health checks on the real Engine. VMs: a check of their own that passes
// (HEALTHY) and one that fails (UNHEALTHY, the VM still RUNNING), the
// Engine's Healthcheck as sent (exec form, times in ns, the documented
// defaults), `disable` turning an image's HEALTHCHECK off, an image's own
// check applying without one, NONE without any, nothing while stopped, bad
// checks refused naming the field. A gateway of an image whose check fails
// until a file exists: its instances are PENDING while the check starts,
// RUNNING once it passes, PENDING again when it fails, and the gateway's
// address moves to the next healthy replica; /metrics counts VMs and
// replicas by health, each once.
//
// The images come from the test image through the Engine's commit endpoint
// (a HEALTHCHECK the krane API cannot ask for), tagged for this run and
// removed at the end; the check's file is made and removed by the Engine's
// exec endpoint.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE, getService } from "../lib/proto.mjs";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

const berthdSkip = berthdSkipReason();
const [engine, engineWhy] = berthdSkip ? [undefined, undefined] : await connectEngine();
const skip = berthdSkip || engineWhy;

const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const TEST_LABEL = "berth.test";
const VM = `/${VM_SERVICE}`;
const GW = "/krane.v1.GatewayService";
const IDLE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"];
// Healthy once /tmp/ready exists and while /tmp/sick does not. The start
// period keeps it "starting" (failures do not count) until it first passes.
const CHECKED_IMAGE = `berth-test/health-hc:${RUN}`;
const CHECK_CHANGE = 'HEALTHCHECK --interval=1s --timeout=2s --retries=1 --start-period=120s CMD ["sh", "-c", "test -f /tmp/ready && test ! -f /tmp/sick"]';
// The gateway's replicas serve HTTP on the gateway port (8040).
const GW_CMD = ["/bin/sh", "-c", "exec httpd -f -p 8040 -h /www"];

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

const info = (vmId) => ok(`${VM}/GetVmInfo`, { vmId });

/** GetVmInfo until its health is `want`; resolves the answer. */
async function healthIs(vmId, want, timeoutMs = 15000) {
  let last;
  return waitFor(
    async () => {
      last = await info(vmId);
      return last.health === want ? last : false;
    },
    { timeoutMs, intervalMs: 100, what: `${vmId} to be ${want}`, describe: () => JSON.stringify({ state: last?.state, health: last?.health }) },
  );
}

/** Run `cmd` in a container through the Engine's exec endpoint and wait for it to end. */
async function exec(id, cmd) {
  const made = await engine.call("POST", `/containers/${encodeURIComponent(id)}/exec`, { body: { Cmd: cmd } });
  await engine.call("POST", `/exec/${made.body.Id}/start`, { body: { Detach: true } });
  await waitFor(async () => (await engine.call("GET", `/exec/${made.body.Id}/json`)).body.Running === false, {
    timeoutMs: 5000,
    intervalMs: 50,
    what: `${cmd.join(" ")} in ${id} to end`,
  });
}

async function commitImage(ref, cmd, changes) {
  const [repo, tag] = ref.split(":");
  const id = await engine.createContainer({ image: TEST_IMAGE, cmd: ["true"], labels: { [TEST_LABEL]: RUN } });
  try {
    const qs = new URLSearchParams({ container: id, repo, tag });
    if (cmd) qs.append("changes", `CMD ${JSON.stringify(cmd)}`);
    qs.append("changes", `LABEL ${TEST_LABEL}=${RUN}`);
    for (const c of changes) qs.append("changes", c);
    await engine.call("POST", `/commit?${qs}`);
  } finally {
    await engine.remove(id);
  }
}

/** One sample's value from an exposition text, or undefined. */
function sample(text, name, labels) {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",");
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{${want}} `)) return Number(line.slice(name.length + want.length + 3));
  }
  return undefined;
}

async function metrics() {
  const r = await d.request({ method: "GET", path: "/metrics" });
  assert.equal(r.status, 200);
  return r.text;
}

async function cleanup() {
  const all = await engine.listContainers(["berth.managed=true"]);
  const mine = all.filter((c) => Object.values(c.Labels || {}).some((v) => String(v).endsWith(RUN)));
  await Promise.all(mine.map((c) => engine.remove(c.Id)));
  for (const c of await engine.listContainers([`${TEST_LABEL}=${RUN}`])) await engine.remove(c.Id);
}

describe("health checks on the Docker Engine", { skip }, () => {
  before(async () => {
    await ensureTestImage(engine);
    await commitImage(CHECKED_IMAGE, GW_CMD, [CHECK_CHANGE]);
    d = await startBerthd({ backend: "docker" });
  });

  after(async () => {
    try {
      await cleanup();
      await engine.call("DELETE", `/images/${encodeURIComponent(CHECKED_IMAGE)}`, { query: { force: "1" }, ok: [404, 409] });
    } finally {
      if (d && !d.exit) await d.kill();
    }
  });

  test("a VM's check that passes: HEALTHY; the Engine's Healthcheck as asked, with the defaults", async () => {
    const vmId = `hc-pass-${RUN}`;
    await ok(`${VM}/CreateVm`, { vmId, config: { container: { image: TEST_IMAGE, command: IDLE, healthCheck: { command: ["true"], intervalMs: 300 } } } });
    const c = await engine.inspect(`berth-vm-${vmId}`);
    assert.deepEqual(c.Config.Healthcheck, { Test: ["CMD", "true"], Interval: 300000000, Timeout: 30000000000, Retries: 3 });
    // Created: no health to tell yet.
    assert.equal((await info(vmId)).health, undefined);
    await ok(`${VM}/BootVm`, { vmId });
    const healthy = await healthIs(vmId, "HEALTH_STATE_HEALTHY");
    assert.equal(healthy.state, "VM_STATE_RUNNING");
    const listed = await ok(`${VM}/ListVms`, {});
    assert.equal(listed.vms.find((v) => v.vmId === vmId)?.health, "HEALTH_STATE_HEALTHY");
    // Stopped: no health again.
    await ok(`${VM}/ShutdownVm`, { vmId, timeoutSeconds: 5 });
    assert.equal((await info(vmId)).health, undefined);
    await ok(`${VM}/DeleteVm`, { vmId });
  });

  test("a VM's check that fails: UNHEALTHY, and the VM still RUNNING", async () => {
    const vmId = `hc-fail-${RUN}`;
    await ok(`${VM}/CreateVm`, {
      vmId,
      config: { container: { image: TEST_IMAGE, command: IDLE, healthCheck: { command: ["false"], intervalMs: 300, timeoutMs: 1000, retries: 1, startPeriodMs: 100 } } },
    });
    const c = await engine.inspect(`berth-vm-${vmId}`);
    assert.deepEqual(c.Config.Healthcheck, { Test: ["CMD", "false"], Interval: 300000000, Timeout: 1000000000, StartPeriod: 100000000, Retries: 1 });
    // A watcher of this VM hears the verdict, with the reason.
    const events = createClient(getService("berth.v1.EventService"), createConnectTransport({ baseUrl: d.url, httpVersion: "1.1" }));
    const abort = new AbortController();
    const seen = [];
    const watching = (async () => {
      try {
        for await (const ev of events.watch({ kinds: [1], id: vmId }, { signal: abort.signal })) seen.push(ev);
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.Canceled)) throw err;
      }
    })();
    await waitFor(() => seen.length >= 1, { timeoutMs: 5000, what: "the snapshot" });
    await ok(`${VM}/BootVm`, { vmId });
    const sick = await healthIs(vmId, "HEALTH_STATE_UNHEALTHY");
    assert.equal(sick.state, "VM_STATE_RUNNING");
    await waitFor(() => seen.some((e) => e.reason === "health unhealthy" && e.health === "HEALTH_STATE_UNHEALTHY"), {
      timeoutMs: 5000,
      what: "a Watch event for the verdict",
      describe: () => JSON.stringify(seen.map((e) => [e.type, e.state, e.health, e.reason])),
    });
    abort.abort();
    await watching;
    // /metrics: each running VM once, by health.
    const text = await metrics();
    assert.ok(sample(text, "berth_vms_health", { health: "unhealthy" }) >= 1, text);
    const byHealth = ["none", "starting", "healthy", "unhealthy", "unknown"].reduce((n, h) => n + (sample(text, "berth_vms_health", { health: h }) ?? NaN), 0);
    assert.equal(byHealth, sample(text, "berth_vms", { state: "running" }), "berth_vms_health adds up to the running VMs");
    await ok(`${VM}/DeleteVm`, { vmId, force: true });
  });

  test("an image's check applies without one; disable turns it off; none: NONE", async () => {
    const own = `hc-image-${RUN}`;
    const off = `hc-off-${RUN}`;
    const plain = `hc-none-${RUN}`;
    await ok(`${VM}/CreateVm`, { vmId: own, config: { container: { image: CHECKED_IMAGE, command: IDLE } } });
    await ok(`${VM}/CreateVm`, { vmId: off, config: { container: { image: CHECKED_IMAGE, command: IDLE, healthCheck: { disable: true } } } });
    await ok(`${VM}/CreateVm`, { vmId: plain, config: { container: { image: TEST_IMAGE, command: IDLE } } });
    // The image's timings stay beside it; ["NONE"] is what turns the check off.
    assert.deepEqual((await engine.inspect(`berth-vm-${off}`)).Config.Healthcheck.Test, ["NONE"]);
    for (const vmId of [own, off, plain]) await ok(`${VM}/BootVm`, { vmId });
    // The image's check waits for /tmp/ready: starting, then healthy once it is there.
    assert.equal((await info(own)).health, "HEALTH_STATE_STARTING");
    await exec(`berth-vm-${own}`, ["touch", "/tmp/ready"]);
    await healthIs(own, "HEALTH_STATE_HEALTHY");
    assert.equal((await info(off)).health, "HEALTH_STATE_NONE");
    assert.equal((await info(plain)).health, "HEALTH_STATE_NONE");
    for (const vmId of [own, off, plain]) await ok(`${VM}/DeleteVm`, { vmId, force: true });
  });

  test("bad checks are refused naming the field; nothing is made", async () => {
    const base = { image: TEST_IMAGE, command: IDLE };
    const rows = [
      [{ disable: true, command: ["true"] }, /healthCheck\.disable/],
      [{ command: ["true", ""] }, /healthCheck\.command\[1\]/],
      [{ command: ["true"], intervalMs: -1 }, /healthCheck\.intervalMs/],
      [{ command: ["true"], timeoutMs: -1 }, /healthCheck\.timeoutMs/],
      [{ command: ["true"], retries: -2 }, /healthCheck\.retries/],
      [{ command: ["true"], startPeriodMs: -1 }, /healthCheck\.startPeriodMs/],
    ];
    for (const [healthCheck, field] of rows) {
      const e = await fails(`${VM}/CreateVm`, { vmId: `hc-bad-${RUN}`, config: { container: { ...base, healthCheck } } }, "invalid_argument");
      assert.match(e.message, field);
    }
    assert.equal(await engine.inspect(`berth-vm-hc-bad-${RUN}`), undefined);
  });

  test("an UpdateDeployment to an image whose check fails is rolled back: the old replicas untouched, nothing left of the new", async () => {
    const plain = `berth-test/health-plain:${RUN}`;
    const bad = `berth-test/health-bad:${RUN}`;
    await commitImage(plain, GW_CMD, []);
    await commitImage(bad, GW_CMD, ['HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["false"]']);
    try {
      const spec = { namespace: `hc-ns-${RUN}`, deploymentId: `hc-dep-${RUN}`, image: plain, replicas: 2 };
      await ok("/krane.v1.DeploymentService/CreateDeployment", { deployment: spec });
      const byLabel = async () => (await engine.listContainers([`berth.deployment_id=${spec.deploymentId}`])).filter((c) => c.Labels["berth.record"] !== "true");
      await waitFor(async () => (await byLabel()).filter((c) => c.State === "running").length === 2, { timeoutMs: 20000, what: "two running replicas" });
      const before = (await byLabel()).map((c) => c.Id).sort();
      const r = await fails("/krane.v1.DeploymentService/UpdateDeployment", { deployment: { ...spec, image: bad } }, "failed_precondition");
      assert.match(r.message, /unhealthy/);
      const after = await byLabel();
      assert.deepEqual(after.map((c) => c.Id).sort(), before, "the same containers, and no new one");
      assert.ok(after.every((c) => c.State === "running" && c.Image === plain), JSON.stringify(after.map((c) => [c.Image, c.State])));
      await ok("/krane.v1.DeploymentService/DeleteDeployment", { namespace: spec.namespace, deploymentId: spec.deploymentId });
    } finally {
      for (const img of [plain, bad]) await engine.call("DELETE", `/images/${encodeURIComponent(img)}`, { query: { force: "1" }, ok: [404, 409] });
    }
  });

  test("a gateway: PENDING while its check starts, RUNNING once it passes, the address moving off a replica that fails", async () => {
    const gatewayId = `hc-gw-${RUN}`;
    const get = () => ok(`${GW}/GetGateway`, { namespace: "hc", gatewayId });
    await ok(`${GW}/CreateGateway`, { gateway: { namespace: "hc", gatewayId, image: CHECKED_IMAGE, replicas: 2 } });
    const names = [0, 1].map((i) => `berth-gw-${gatewayId}-${i}`);
    // Both containers run, and their check has no verdict yet: PENDING, no address.
    for (const n of names) await engine.waitForContainer(n, (c) => c?.State?.Running === true);
    let g = await get();
    assert.deepEqual(
      g.instances.map((i) => i.status),
      ["GATEWAY_STATUS_PENDING", "GATEWAY_STATUS_PENDING"],
      JSON.stringify(g),
    );
    assert.equal(g.address, undefined, "no healthy replica, no address");
    let list = await ok(`${GW}/ListGateways`, { namespace: "hc" });
    assert.equal(list.gateways[0].running ?? 0, 0);

    for (const n of names) await exec(n, ["touch", "/tmp/ready"]);
    g = await waitFor(
      async () => {
        const r = await get();
        return r.instances.every((i) => i.status === "GATEWAY_STATUS_RUNNING") ? r : false;
      },
      { timeoutMs: 15000, intervalMs: 100, what: "both replicas healthy" },
    );
    assert.equal(g.address, g.instances[0].address, "the lowest healthy replica's address");
    list = await ok(`${GW}/ListGateways`, { namespace: "hc" });
    assert.equal(list.gateways[0].running, 2);
    assert.equal(list.gateways[0].status, "GATEWAY_STATUS_RUNNING");

    // Replica 0 fails its check: PENDING, and the address moves to replica 1.
    await exec(names[0], ["touch", "/tmp/sick"]);
    g = await waitFor(
      async () => {
        const r = await get();
        return r.instances[0].status === "GATEWAY_STATUS_PENDING" ? r : false;
      },
      { timeoutMs: 15000, intervalMs: 100, what: "replica 0 to fail its check" },
    );
    assert.equal(g.instances[1].status, "GATEWAY_STATUS_RUNNING");
    assert.equal(g.address, g.instances[1].address);
    assert.notEqual(g.address, g.instances[0].address);
    const text = await metrics();
    assert.equal(sample(text, "berth_gateway_replicas_health", { gateway_id: gatewayId, health: "unhealthy" }), 1, text);
    assert.equal(sample(text, "berth_gateway_replicas_health", { gateway_id: gatewayId, health: "healthy" }), 1, text);
    assert.equal(sample(text, "berth_gateway_replicas", { gateway_id: gatewayId, state: "running" }), 2, "unhealthy still runs");

    // It recovers: back to RUNNING, and the address back to replica 0.
    await exec(names[0], ["rm", "/tmp/sick"]);
    g = await waitFor(
      async () => {
        const r = await get();
        return r.instances[0].status === "GATEWAY_STATUS_RUNNING" ? r : false;
      },
      { timeoutMs: 15000, intervalMs: 100, what: "replica 0 to pass its check again" },
    );
    assert.equal(g.address, g.instances[0].address);
    await ok(`${GW}/DeleteGateway`, { namespace: "hc", gatewayId });
  });
});
