// The VmService lifecycle end to end against the real Docker Engine: a VM
// running busybox httpd is created, booted, fetched through the host port
// berthd reports, paused, resumed, rebooted, shut down (gracefully and by
// force), booted again and deleted, and at each step the Engine is asked
// whether the container really is what berthd says. The container spec
// (labels, limits, what is never granted) is checked in the Engine too.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { serviceRpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE } from "../lib/proto.mjs";

const [engine, engineWhy] = await connectEngine();
const skip = berthdSkipReason() || engineWhy;

// Unique per run, so repeated or parallel runs never share a container.
const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const vmId = (tag) => `lc-${tag}-${RUN}`;
const MiB = 1024 * 1024;
const STOP_TIMEOUT_S = 5;
const HTTPD = ["httpd", "-f", "-p", "8080", "-h", "/www"];
// A PID 1 that exits at once on SIGTERM, and one that ignores it.
const EXITS_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"];
const IGNORES_TERM = ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"];

let d; // the daemon under test

// --- helpers -----------------------------------------------------------------

/** POST a VmService method as JSON; resolves { status, json, text }. */
const rpc = serviceRpc(() => d, VM_SERVICE);

/** A call that must succeed; resolves its JSON answer. */
async function ok(method, body, opts) {
  const r = await rpc(method, body, opts);
  assert.equal(r.status, 200, `${method} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  assert.ok(r.json && typeof r.json === "object", `${method} answers a JSON object: ${r.text}`);
  return r.json;
}

async function info(id) {
  return ok("GetVmInfo", { vmId: id });
}

/** The Engine's view of a VM's container (by its name), or undefined. */
function inspectVm(id) {
  return engine.inspect(`berth-vm-${id}`);
}

/** GET http://127.0.0.1:port/ until it answers 200; resolves the body. */
async function fetchPage(port, what) {
  let last;
  return waitFor(
    async () => {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
        last = `HTTP ${r.status}`;
        return r.status === 200 ? await r.text() : false;
      } catch (err) {
        last = err.cause ? err.cause.message : err.message;
        return false;
      }
    },
    { timeoutMs: 15000, intervalMs: 100, what: `${what}: http://127.0.0.1:${port}/ to answer 200`, describe: () => `last: ${last}` },
  );
}

/** The host port berthd reports for container port 8080/tcp (asserted real). */
function reportedHostPort(vm, containerPort = 8080, protocol = "tcp") {
  const maps = (vm.networkInfo && vm.networkInfo.portMappings) || [];
  const m = maps.find((p) => p.containerPort === containerPort && (p.protocol || "tcp") === protocol);
  assert.ok(m, `a port mapping for ${containerPort}/${protocol} in ${JSON.stringify(vm.networkInfo)}`);
  assert.ok(Number.isInteger(m.hostPort) && m.hostPort > 0 && m.hostPort < 65536, `a real host port: ${JSON.stringify(m)}`);
  return m.hostPort;
}

/** The host port the Engine published for "8080/tcp". */
function engineHostPort(c, key = "8080/tcp") {
  const b = c.NetworkSettings && c.NetworkSettings.Ports && c.NetworkSettings.Ports[key];
  assert.ok(Array.isArray(b) && b.length > 0, `Engine publishes ${key}: ${JSON.stringify(c.NetworkSettings && c.NetworkSettings.Ports)}`);
  return Number(b[0].HostPort);
}

/** Remove every container this run made, whoever made it. */
async function cleanup() {
  const all = await engine.listContainers(["berth.managed=true"]);
  const mine = all.filter((c) => String((c.Labels || {})["berth.vm_id"] || "").endsWith(RUN));
  await Promise.all(mine.map((c) => engine.remove(c.Id)));
}

// --- the suite ----------------------------------------------------------------

describe("VM lifecycle on the Docker Engine", { skip }, () => {
  before(async () => {
    await ensureTestImage(engine);
    // A short default grace period: httpd as PID 1 ignores SIGTERM, so a
    // graceful RebootVm waits all of it out.
    d = await startBerthd({ backend: "docker", args: ["--stop-timeout", String(STOP_TIMEOUT_S)] });
  });

  after(async () => {
    try {
      await cleanup();
    } finally {
      if (d && !d.exit) await d.kill();
    }
  });

  describe("a VM running httpd", () => {
    const id = vmId("web");
    const customer = `cust-${RUN}`;
    const storagePath = `/var/lib/berth-test-${RUN}/root.img`;
    const kernelPath = `/var/lib/berth-test-${RUN}/vmlinuz`;
    const config = {
      cpu: { vcpuCount: 1 },
      memory: { sizeBytes: String(64 * MiB) },
      boot: { kernelPath, initrdPath: `/var/lib/berth-test-${RUN}/initrd`, kernelArgs: "console=ttyS0" },
      storage: [{ id: "rootfs", path: storagePath, isRootDevice: true, interfaceType: "virtio-blk" }],
      network: [{ id: "eth0", tapDevice: "tap-test0", macAddress: "02:00:00:00:00:01", mode: "NETWORK_MODE_IPV4_ONLY" }],
      console: { enabled: true, output: `/var/lib/berth-test-${RUN}/console.log` },
      metadata: { team: "integration" },
      container: {
        image: TEST_IMAGE,
        command: HTTPD,
        env: { GREETING: "hello, world=1" },
        ports: [{ containerPort: 8080, hostPort: 0, protocol: "tcp" }],
      },
    };
    let containerId;
    let hostPort;

    test("CreateVm answers CREATED and the Engine holds a created container", async () => {
      const r = await ok("CreateVm", { vmId: id, customerId: customer, config });
      assert.deepEqual(r, { vmId: id, state: "VM_STATE_CREATED" });
      const c = await inspectVm(id);
      assert.ok(c, `container berth-vm-${id} exists`);
      assert.equal(c.Name, `/berth-vm-${id}`);
      assert.equal(c.State.Status, "created");
      assert.equal(c.Config.Image, TEST_IMAGE);
      assert.deepEqual(c.Config.Cmd, HTTPD);
      containerId = c.Id;
    });

    test("the container carries berth's labels", async () => {
      const labels = (await inspectVm(id)).Config.Labels;
      assert.equal(labels["berth.managed"], "true");
      assert.equal(labels["berth.kind"], "vm");
      assert.equal(labels["berth.vm_id"], id);
      assert.equal(labels["berth.customer_id"], customer);
    });

    test("cpu and memory become Engine limits; env and ports are applied", async () => {
      const c = await inspectVm(id);
      assert.equal(c.HostConfig.NanoCpus, 1e9, "vcpuCount 1 -> NanoCpus 1e9");
      assert.equal(c.HostConfig.Memory, 64 * MiB, "memory.sizeBytes -> HostConfig.Memory");
      assert.ok((c.Config.Env || []).includes("GREETING=hello, world=1"), `Env: ${JSON.stringify(c.Config.Env)}`);
      assert.ok(c.Config.ExposedPorts && "8080/tcp" in c.Config.ExposedPorts, `ExposedPorts: ${JSON.stringify(c.Config.ExposedPorts)}`);
      const b = c.HostConfig.PortBindings && c.HostConfig.PortBindings["8080/tcp"];
      assert.ok(Array.isArray(b) && b.length === 1, `PortBindings: ${JSON.stringify(c.HostConfig.PortBindings)}`);
      assert.equal(b[0].HostIp, "127.0.0.1", "published on the default publish address");
      assert.ok(b[0].HostPort === "" || b[0].HostPort === "0", `host port left to the Engine: ${JSON.stringify(b[0])}`);
    });

    test("the container gets no host privileges and a PIDs limit", async () => {
      const h = (await inspectVm(id)).HostConfig;
      assert.equal(h.Privileged, false, "not privileged");
      assert.ok(!h.CapAdd || h.CapAdd.length === 0, `no added capabilities: ${JSON.stringify(h.CapAdd)}`);
      assert.ok(!h.Binds || h.Binds.length === 0, `no bind mounts: ${JSON.stringify(h.Binds)}`);
      assert.ok(!h.Mounts || h.Mounts.length === 0, `no mounts: ${JSON.stringify(h.Mounts)}`);
      assert.ok(!h.Devices || h.Devices.length === 0, `no devices: ${JSON.stringify(h.Devices)}`);
      assert.notEqual(h.NetworkMode, "host", "not on the host network");
      assert.notEqual(h.PidMode, "host", "not in the host PID namespace");
      assert.notEqual(h.IpcMode, "host", "not in the host IPC namespace");
      assert.ok(Number.isInteger(h.PidsLimit) && h.PidsLimit > 0, `a PIDs limit: ${h.PidsLimit}`);
    });

    test("storage, boot and console paths are returned but never mounted", async () => {
      const c = await inspectVm(id);
      const everything = JSON.stringify({ mounts: c.Mounts, host: c.HostConfig, volumes: c.Config.Volumes });
      for (const p of [storagePath, kernelPath, `/var/lib/berth-test-${RUN}`]) {
        assert.ok(!everything.includes(p), `${p} appears nowhere in the container's mounts or host config`);
      }
      assert.deepEqual(c.Mounts, [], "the container has no mounts at all");
      const vm = await info(id);
      assert.deepEqual(vm.config.storage, config.storage, "storage returned as submitted");
      assert.deepEqual(vm.config.boot, config.boot, "boot returned as submitted");
      assert.deepEqual(vm.config.console, config.console, "console returned as submitted");
      assert.deepEqual(vm.config.network, config.network, "network returned as submitted");
    });

    test("GetVmInfo of the CREATED VM: config as submitted, backend info", async () => {
      const vm = await info(id);
      assert.equal(vm.vmId, id);
      assert.equal(vm.state, "VM_STATE_CREATED");
      // Proto3 JSON leaves defaults out: hostPort 0 comes back absent.
      // Env values are not kept (they may be secrets): the names are.
      const expected = structuredClone(config);
      delete expected.container.ports[0].hostPort;
      expected.container.env = { GREETING: "" };
      assert.deepEqual(vm.config, expected);
      assert.equal(vm.backendInfo.backend, "docker");
      assert.equal(vm.backendInfo.container_id, containerId);
      assert.equal(vm.backendInfo.container_name, `berth-vm-${id}`);
      assert.equal(vm.backendInfo.image, TEST_IMAGE);
    });

    test("BootVm: RUNNING, a real host port, and the page is served through it", async () => {
      const r = await ok("BootVm", { vmId: id });
      assert.deepEqual(r, { success: true, state: "VM_STATE_RUNNING" });
      const c = await inspectVm(id);
      assert.equal(c.State.Running, true, `Engine state: ${JSON.stringify(c.State)}`);
      const vm = await info(id);
      assert.equal(vm.state, "VM_STATE_RUNNING");
      hostPort = reportedHostPort(vm);
      assert.equal(hostPort, engineHostPort(c), "the reported host port is the one the Engine published");
      const ip = c.NetworkSettings.IPAddress || Object.values(c.NetworkSettings.Networks || {})[0]?.IPAddress;
      assert.equal(vm.networkInfo.ipAddress, ip, "the container IP is reported");
      assert.equal(await fetchPage(hostPort, "httpd after BootVm"), "berth-test\n");
    });

    test("ListVms lists it with its sizes and customer", async () => {
      const r = await ok("ListVms", { pageSize: 1000 });
      const v = (r.vms || []).find((x) => x.vmId === id);
      assert.ok(v, `${id} in ListVms`);
      assert.equal(v.state, "VM_STATE_RUNNING");
      assert.equal(v.vcpuCount, 1);
      assert.equal(v.memorySizeBytes, String(64 * MiB));
      assert.equal(v.customerId, customer);
      assert.deepEqual(v.metadata, { team: "integration" });
      assert.ok(Number(v.createdTimestamp) > 0 && Number(v.modifiedTimestamp) >= Number(v.createdTimestamp));
    });

    test("PauseVm is visible in the Engine, ResumeVm undoes it", async () => {
      assert.deepEqual(await ok("PauseVm", { vmId: id }), { success: true, state: "VM_STATE_PAUSED" });
      let c = await inspectVm(id);
      assert.equal(c.State.Paused, true, `Engine State.Paused after PauseVm: ${JSON.stringify(c.State)}`);
      assert.equal(c.State.Status, "paused");
      assert.equal((await info(id)).state, "VM_STATE_PAUSED");

      assert.deepEqual(await ok("ResumeVm", { vmId: id }), { success: true, state: "VM_STATE_RUNNING" });
      c = await inspectVm(id);
      assert.equal(c.State.Paused, false, `Engine State.Paused after ResumeVm: ${JSON.stringify(c.State)}`);
      assert.equal(c.State.Running, true);
      assert.equal((await info(id)).state, "VM_STATE_RUNNING");
      assert.equal(await fetchPage(hostPort, "httpd after ResumeVm"), "berth-test\n");
    });

    for (const force of [false, true]) {
      test(`RebootVm (force=${force}) restarts the container and it serves again`, async () => {
        const before = await inspectVm(id);
        const t0 = Date.now();
        const r = await ok("RebootVm", { vmId: id, force }, { timeoutMs: 60000 });
        const took = Date.now() - t0;
        assert.deepEqual(r, { success: true, state: "VM_STATE_RUNNING" });
        if (force) assert.ok(took < STOP_TIMEOUT_S * 1000, `force reboot skips the ${STOP_TIMEOUT_S} s grace period (${took} ms)`);
        const c = await inspectVm(id);
        assert.equal(c.State.Running, true);
        assert.ok(Date.parse(c.State.StartedAt) > Date.parse(before.State.StartedAt), `StartedAt moved: ${before.State.StartedAt} -> ${c.State.StartedAt}`);
        assert.equal(c.Id, containerId, "the same container, restarted");
        const vm = await info(id);
        assert.equal(vm.state, "VM_STATE_RUNNING");
        hostPort = reportedHostPort(vm);
        assert.equal(hostPort, engineHostPort(c), "the host port is read back after the restart");
        assert.equal(await fetchPage(hostPort, `httpd after RebootVm force=${force}`), "berth-test\n");
      });
    }

    test("ShutdownVm (graceful, short timeout) leaves the container exited", async () => {
      const r = await ok("ShutdownVm", { vmId: id, timeoutSeconds: 1 }, { timeoutMs: 60000 });
      assert.deepEqual(r, { success: true, state: "VM_STATE_SHUTDOWN" });
      const c = await inspectVm(id);
      assert.equal(c.State.Running, false, `Engine state: ${JSON.stringify(c.State)}`);
      assert.equal(c.State.Status, "exited");
      const vm = await info(id);
      assert.equal(vm.state, "VM_STATE_SHUTDOWN");
      assert.ok("exit_code" in vm.backendInfo, `exit code reported: ${JSON.stringify(vm.backendInfo)}`);
    });

    test("BootVm from SHUTDOWN runs it again and it serves again", async () => {
      assert.deepEqual(await ok("BootVm", { vmId: id }), { success: true, state: "VM_STATE_RUNNING" });
      const c = await inspectVm(id);
      assert.equal(c.State.Running, true);
      assert.equal(c.Id, containerId, "the same container, started again");
      const vm = await info(id);
      assert.equal(vm.state, "VM_STATE_RUNNING");
      hostPort = reportedHostPort(vm);
      assert.equal(hostPort, engineHostPort(c));
      assert.equal(await fetchPage(hostPort, "httpd after the second BootVm"), "berth-test\n");
    });

    test("DeleteVm force=true removes the running container (Engine 404)", async () => {
      assert.deepEqual(await ok("DeleteVm", { vmId: id, force: true }), { success: true });
      assert.equal(await engine.inspect(containerId), undefined, "the Engine no longer knows the container");
      const r = await rpc("GetVmInfo", { vmId: id });
      assert.equal(r.status, 404, r.text);
      assert.equal(r.json.code, "not_found");
      const list = await ok("ListVms", { pageSize: 1000 });
      assert.ok(!(list.vms || []).some((v) => v.vmId === id), "no longer listed");
    });
  });

  describe("ShutdownVm graceful versus force", () => {
    test("graceful: the container gets SIGTERM and exits by itself (exit 0, well before the timeout)", async () => {
      const id = vmId("term");
      await ok("CreateVm", { vmId: id, config: { container: { image: TEST_IMAGE, command: EXITS_ON_TERM } } });
      await ok("BootVm", { vmId: id });
      const t0 = Date.now();
      const r = await ok("ShutdownVm", { vmId: id, timeoutSeconds: 30 }, { timeoutMs: 60000 });
      const took = Date.now() - t0;
      assert.deepEqual(r, { success: true, state: "VM_STATE_SHUTDOWN" });
      const c = await inspectVm(id);
      assert.equal(c.State.Running, false);
      assert.equal(c.State.ExitCode, 0, `exited by its TERM trap, not killed: ${JSON.stringify(c.State)}`);
      assert.ok(took < 15000, `a graceful stop that the container honours does not wait out the timeout (${took} ms)`);
      assert.equal((await info(id)).backendInfo.exit_code, "0");
      assert.deepEqual(await ok("DeleteVm", { vmId: id }), { success: true }, "a SHUTDOWN VM is deleted without force");
      assert.equal(await inspectVm(id), undefined);
    });

    test("force: a container that ignores SIGTERM is killed at once", async () => {
      const id = vmId("kill");
      await ok("CreateVm", { vmId: id, config: { container: { image: TEST_IMAGE, command: IGNORES_TERM } } });
      await ok("BootVm", { vmId: id });
      const t0 = Date.now();
      const r = await ok("ShutdownVm", { vmId: id, force: true, timeoutSeconds: 30 }, { timeoutMs: 60000 });
      const took = Date.now() - t0;
      assert.deepEqual(r, { success: true, state: "VM_STATE_SHUTDOWN" });
      const c = await inspectVm(id);
      assert.equal(c.State.Running, false);
      assert.equal(c.State.ExitCode, 137, `killed with SIGKILL: ${JSON.stringify(c.State)}`);
      assert.ok(took < 10000, `force does not wait for a grace period (${took} ms)`);
      assert.equal((await info(id)).state, "VM_STATE_SHUTDOWN");
      assert.deepEqual(await ok("DeleteVm", { vmId: id, force: true }), { success: true });
      assert.equal(await inspectVm(id), undefined);
    });
  });

  describe("metadata fallbacks", () => {
    test("docker_image, exposed_ports and env_vars from metadata make the container, entries trimmed as metald did", async () => {
      const id = vmId("meta");
      const metadata = { docker_image: TEST_IMAGE, exposed_ports: "8080/tcp, 5353/udp", env_vars: "A=1, B=two" };
      await ok("CreateVm", { vmId: id, config: { metadata, container: { command: HTTPD } } });
      const c = await inspectVm(id);
      assert.ok(c, "container exists");
      assert.equal(c.Config.Image, TEST_IMAGE, "image from metadata docker_image");
      assert.ok(c.Config.Env.includes("A=1") && c.Config.Env.includes("B=two"), `Env from env_vars: ${JSON.stringify(c.Config.Env)}`);
      assert.ok(!c.Config.Env.includes(" B=two"), "the blank after the comma is dropped");
      assert.deepEqual(Object.keys(c.Config.ExposedPorts || {}).sort(), ["5353/udp", "8080/tcp"], "ExposedPorts from exposed_ports");
      assert.deepEqual(Object.keys(c.HostConfig.PortBindings || {}).sort(), ["5353/udp", "8080/tcp"], "both published");

      await ok("BootVm", { vmId: id });
      const vm = await info(id);
      assert.deepEqual(vm.config.metadata, { ...metadata, env_vars: "A=,B=" }, "metadata returned as submitted, but for the env values");
      const port = reportedHostPort(vm);
      assert.equal(port, engineHostPort(await inspectVm(id)));
      reportedHostPort(vm, 5353, "udp");
      assert.equal(await fetchPage(port, "httpd of the metadata VM"), "berth-test\n");
      assert.deepEqual(await ok("DeleteVm", { vmId: id, force: true }), { success: true });
      assert.equal(await inspectVm(id), undefined);
    });

    test("config.container wins over metadata", async () => {
      const id = vmId("prec");
      const metadata = { docker_image: "berth-test/does-not-exist:1", exposed_ports: "9999/tcp", env_vars: "FROM=metadata" };
      const container = { image: TEST_IMAGE, command: ["sleep", "60"], env: { FROM: "container" }, ports: [{ containerPort: 7070 }] };
      await ok("CreateVm", { vmId: id, config: { metadata, container } });
      const c = await inspectVm(id);
      assert.equal(c.Config.Image, TEST_IMAGE);
      assert.ok(c.Config.Env.includes("FROM=container") && !c.Config.Env.includes("FROM=metadata"), `Env: ${JSON.stringify(c.Config.Env)}`);
      assert.deepEqual(Object.keys(c.Config.ExposedPorts || {}), ["7070/tcp"], "a port without protocol is tcp");
      assert.deepEqual(await ok("DeleteVm", { vmId: id }), { success: true }, "a CREATED VM is deleted without force");
      assert.equal(await inspectVm(id), undefined);
    });

    test("vcpuCount 2 -> NanoCpus 2e9; no cpu -> no limit, no memory -> the default 1 GiB", async () => {
      const a = vmId("cpu2");
      const b = vmId("nolim");
      await ok("CreateVm", { vmId: a, config: { cpu: { vcpuCount: 2 }, memory: { sizeBytes: String(128 * MiB) }, container: { image: TEST_IMAGE } } });
      await ok("CreateVm", { vmId: b, config: { container: { image: TEST_IMAGE } } });
      const ca = await inspectVm(a);
      const cb = await inspectVm(b);
      assert.equal(ca.HostConfig.NanoCpus, 2e9);
      assert.equal(ca.HostConfig.Memory, 128 * MiB);
      assert.equal(cb.HostConfig.NanoCpus, 0);
      assert.equal(cb.HostConfig.Memory, 1024 * MiB, "--default-memory-mib");
      assert.ok(cb.HostConfig.PidsLimit > 0, "the PIDs limit is there without any config");
      await ok("DeleteVm", { vmId: a });
      await ok("DeleteVm", { vmId: b });
      assert.equal(await inspectVm(a), undefined);
      assert.equal(await inspectVm(b), undefined);
    });
  });
});
