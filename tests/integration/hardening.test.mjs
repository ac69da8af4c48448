// ctest-labels: docker
// What a container may do and which containers berthd acts on, on the real
// Engine: every default a created VM and a gateway replica get (docker
// inspect), tenant networks (one customer's VMs reach each other, another
// customer's cannot; a namespace's replicas answer to their object's id;
// networks go with their last container), two berthds with different
// instance ids on one Engine, a forged container that is never adopted, the
// registry allowlist, the host port range and the quotas.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { waitFor } from "../lib/wait.mjs";

const berthdSkip = berthdSkipReason();
const [engine, engineSkip] = berthdSkip ? [undefined, undefined] : await connectEngine();

const RUN = `${process.pid}-${Date.now().toString(36)}`;
const VM = "/metal.vmprovisioner.v1.VmService";
const GW = "/krane.v1.GatewayService";
const DEP = "/krane.v1.DeploymentService";
const MiB = 1024 * 1024;
const TEST_LABEL = "berth.test";
const HTTPD_IMAGE = `berth-test/httpd-hardening:${RUN}`;
// A VM that serves HTTP on 8080 until it is told to stop.
const HTTPD = ["httpd", "-f", "-p", "8080", "-h", "/"];

async function ok(d, path, body) {
  const r = await rpc(d, path, body);
  assert.equal(r.status, 200, `${path} ${JSON.stringify(body)}: ${r.text}`);
  return r.json;
}

async function fails(d, path, body, code, re) {
  const r = await rpc(d, path, body);
  assert.notEqual(r.status, 200, `${path} should fail: ${r.text}`);
  assert.equal(r.json?.code, code, `${path}: ${r.text}`);
  if (re) assert.match(r.json.message, re);
  return r.json;
}

async function docker(args = []) {
  const d = await startBerthd({ backend: "docker", args: ["--docker-socket", engine.socketPath, ...args] });
  await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
    timeoutMs: 15000,
    what: "GET /readyz to answer 200 with the docker backend",
    describe: () => `stderr:\n${d.stderr}`,
  });
  return d;
}

async function network(name) {
  const r = await engine.call("GET", `/networks/${encodeURIComponent(name)}`, { ok: [404] });
  return r.status === 404 ? undefined : r.body;
}

/** Run `cmd` in container `id`; resolves its exit code. */
async function exec(id, cmd, timeoutMs = 15000) {
  const made = await engine.call("POST", `/containers/${encodeURIComponent(id)}/exec`, { body: { Cmd: cmd, AttachStdout: false, AttachStderr: false } });
  await engine.call("POST", `/exec/${made.body.Id}/start`, { body: { Detach: true } });
  let last;
  await waitFor(
    async () => {
      last = (await engine.call("GET", `/exec/${made.body.Id}/json`)).body;
      return last.Running === false;
    },
    { timeoutMs, intervalMs: 100, what: `${cmd.join(" ")} to end`, describe: () => JSON.stringify(last) },
  );
  return last.ExitCode;
}

/** A command that exits 0 when http://host:port/ answers, else not. */
function httpProbe(host, port) {
  return ["sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${port} | grep -q '^HTTP/1'`];
}

function ipOn(c, net) {
  return c.NetworkSettings.Networks[net]?.IPAddress;
}

/** Make `ref` from TEST_IMAGE with a CMD (the krane API has no command). */
async function commitImage(ref, cmd) {
  const [repo, tag] = ref.split(":");
  const id = await engine.createContainer({ image: TEST_IMAGE, cmd: ["true"], labels: { [TEST_LABEL]: RUN } });
  try {
    const qs = new URLSearchParams({ container: id, repo, tag });
    qs.append("changes", `CMD ${JSON.stringify(cmd)}`);
    await engine.call("POST", `/commit?${qs}`);
  } finally {
    await engine.remove(id);
  }
}

/** Every default of a container berthd made. */
function assertDefaults(c, { instance = "default", memory = 1024 * MiB } = {}) {
  const h = c.HostConfig;
  assert.ok((h.SecurityOpt || []).some((o) => /^no-new-privileges(:true)?$/.test(o)), `no-new-privileges: ${JSON.stringify(h.SecurityOpt)}`);
  for (const cap of ["NET_RAW", "MKNOD"]) assert.ok((h.CapDrop || []).some((x) => x.replace(/^CAP_/, "") === cap), `${cap} dropped: ${JSON.stringify(h.CapDrop)}`);
  assert.equal(h.Init, true, "an init process");
  assert.equal(h.CgroupnsMode, "private");
  assert.equal(h.LogConfig.Type, "json-file");
  assert.deepEqual(h.LogConfig.Config, { "max-size": "10m", "max-file": "3" });
  assert.equal(h.PidsLimit, 1024);
  assert.equal(h.Memory, memory);
  assert.equal(h.Privileged, false);
  assert.ok(!h.CapAdd || h.CapAdd.length === 0, `no added capabilities: ${JSON.stringify(h.CapAdd)}`);
  assert.ok(!h.Binds || h.Binds.length === 0);
  assert.ok(!h.Devices || h.Devices.length === 0);
  assert.ok(!h.Sysctls || Object.keys(h.Sysctls).length === 0);
  for (const m of ["PidMode", "IpcMode"]) assert.notEqual(h[m], "host", m);
  assert.equal(c.Config.Labels["berth.instance"], instance);
  assert.equal(c.Config.Labels["berth.managed"], "true");
}

describe("hardening on the docker backend", { skip: berthdSkip || engineSkip }, () => {
  let d;
  const cleanup = []; // container labels of this file's objects

  before(async () => {
    await ensureTestImage(engine);
    await commitImage(HTTPD_IMAGE, ["/bin/sh", "-c", 'echo "$BERTH_INSTANCE_ID" > /www/id 2>/dev/null || (mkdir -p /www && echo "$BERTH_INSTANCE_ID" > /www/id); exec httpd -f -p 8040 -h /www']);
    d = await docker();
  });

  after(async () => {
    if (d && !d.exit) await d.kill();
    for (const label of cleanup) for (const c of await engine.listContainers([label])) await engine.remove(c.Id);
    // Networks a failed test left behind (their containers removed above).
    const nets = (await engine.call("GET", "/networks", { query: { filters: { label: ["berth.managed=true"] } } })).body;
    for (const n of nets) if (n.Name.includes(RUN)) await engine.call("DELETE", `/networks/${n.Id}`, { ok: [404, 409] });
    await engine.call("DELETE", `/images/${encodeURIComponent(HTTPD_IMAGE)}`, { query: { force: "1" }, ok: [404, 409] });
  });

  test("a VM and a gateway replica get every default; their networks go with their last container", async () => {
    const vm = `hd-vm-${RUN}`;
    const customer = `cust-${RUN}`;
    cleanup.push(`berth.vm_id=${vm}`);
    await ok(d, `${VM}/CreateVm`, { vmId: vm, customerId: customer, config: { container: { image: TEST_IMAGE, command: HTTPD } } });
    const c = await engine.inspect(`berth-vm-${vm}`);
    assertDefaults(c);
    assert.deepEqual(Object.keys(c.NetworkSettings.Networks), [`berth-c-${customer}`], "on the customer's network alone");
    const net = await network(`berth-c-${customer}`);
    assert.ok(net, "the customer's network was made");
    assert.equal(c.HostConfig.NetworkMode, net.Id, "joined by id");
    assert.equal(net.Driver, "bridge");
    assert.equal(net.Labels["berth.managed"], "true");
    assert.equal(net.Labels["berth.instance"], "default");
    // Init: a busybox httpd stops at once on ShutdownVm instead of waiting
    // out the grace period.
    await ok(d, `${VM}/BootVm`, { vmId: vm });
    const t0 = Date.now();
    await ok(d, `${VM}/ShutdownVm`, { vmId: vm, timeoutSeconds: 20 });
    assert.ok(Date.now() - t0 < 10000, `stopped in ${Date.now() - t0} ms`);
    await ok(d, `${VM}/DeleteVm`, { vmId: vm, force: true });
    assert.equal(await network(`berth-c-${customer}`), undefined, "the network went with its last VM");

    const gw = `hd-gw-${RUN}`;
    const ns = `ns-${RUN}`;
    cleanup.push(`berth.gateway_id=${gw}`);
    await ok(d, `${GW}/CreateGateway`, { gateway: { namespace: ns, gatewayId: gw, image: TEST_IMAGE, replicas: 1 } });
    const [replica] = await engine.listContainers([`berth.gateway_id=${gw}`]);
    const r = await engine.inspect(replica.Id);
    assertDefaults(r);
    assert.deepEqual(Object.keys(r.NetworkSettings.Networks), [`berth-ns-${ns}`]);
    assert.ok(r.NetworkSettings.Networks[`berth-ns-${ns}`].Aliases.includes(gw), `alias ${gw}: ${JSON.stringify(r.NetworkSettings.Networks)}`);
    await ok(d, `${GW}/DeleteGateway`, { namespace: ns, gatewayId: gw });
    assert.equal(await network(`berth-ns-${ns}`), undefined, "the namespace's network went with its last replica");
  });

  test("tenant networks: one customer's VMs reach each other, another customer's cannot", async () => {
    const [a, b] = [`ta-${RUN}`, `tb-${RUN}`];
    const ids = { a1: `hd-a1-${RUN}`, a2: `hd-a2-${RUN}`, b1: `hd-b1-${RUN}` };
    for (const [k, id] of Object.entries(ids)) {
      cleanup.push(`berth.vm_id=${id}`);
      await ok(d, `${VM}/CreateVm`, { vmId: id, customerId: k.startsWith("a") ? a : b, config: { container: { image: TEST_IMAGE, command: HTTPD } } });
      await ok(d, `${VM}/BootVm`, { vmId: id });
    }
    const a2 = await engine.inspect(`berth-vm-${ids.a2}`);
    const b1 = await engine.inspect(`berth-vm-${ids.b1}`);
    const a2ip = ipOn(a2, `berth-c-${a}`);
    const b1ip = ipOn(b1, `berth-c-${b}`);
    assert.ok(a2ip && b1ip, `addresses on the tenant networks: ${a2ip} ${b1ip}`);
    // (The test image's wget crashes; its nc speaks HTTP well enough.)
    const wget = (ip) => httpProbe(ip, 8080);
    assert.equal(await exec(`berth-vm-${ids.a1}`, wget(a2ip)), 0, "a1 reaches a2 (same customer)");
    assert.notEqual(await exec(`berth-vm-${ids.a1}`, wget(b1ip)), 0, "a1 cannot reach b1 (another customer)");
    assert.notEqual(await exec(`berth-vm-${ids.b1}`, wget(a2ip)), 0, "b1 cannot reach a2");
    await ok(d, `${VM}/DeleteVm`, { vmId: ids.a1, force: true });
    assert.ok(await network(`berth-c-${a}`), "a2 still holds customer a's network");
    await ok(d, `${VM}/DeleteVm`, { vmId: ids.a2, force: true });
    await ok(d, `${VM}/DeleteVm`, { vmId: ids.b1, force: true });
    assert.equal(await network(`berth-c-${a}`), undefined);
    assert.equal(await network(`berth-c-${b}`), undefined);
  });

  test("a namespace's replicas reach each other by their object's id", async () => {
    const ns = `nsa-${RUN}`;
    const gw = `hd-gwa-${RUN}`;
    const dep = `hd-dep-${RUN}`;
    cleanup.push(`berth.gateway_id=${gw}`, `berth.deployment_id=${dep}`);
    await ok(d, `${GW}/CreateGateway`, { gateway: { namespace: ns, gatewayId: gw, image: HTTPD_IMAGE, replicas: 1 } });
    await ok(d, `${DEP}/CreateDeployment`, { deployment: { namespace: ns, deploymentId: dep, image: HTTPD_IMAGE, replicas: 1 } });
    const [g] = await engine.listContainers([`berth.gateway_id=${gw}`]);
    await engine.waitForContainer(g.Id, (c) => c?.State?.Running);
    // The Engine's DNS on the namespace's network answers the object's id;
    // that address serves the deployment's replica.
    let code;
    await waitFor(async () => (code = await exec(g.Id, ["sh", "-c", `${httpProbe(`$(nslookup ${dep} | sed -n 's/^Address:[[:space:]]*//p' | tail -1)`, 8040)[2]}`])) === 0, {
      timeoutMs: 15000,
      what: `the gateway to reach ${dep} by name`,
      describe: () => `exit ${code}`,
    });
    assert.notEqual(await exec(g.Id, ["sh", "-c", `nslookup ${dep}-absent >/dev/null 2>&1`]), 0, "an unknown name does not resolve");
    await ok(d, `${DEP}/DeleteDeployment`, { namespace: ns, deploymentId: dep });
    await ok(d, `${GW}/DeleteGateway`, { namespace: ns, gatewayId: gw });
    assert.equal(await network(`berth-ns-${ns}`), undefined);
  });

  test("two berthds with different instance ids never see or touch each other's objects", async () => {
    const [ix, iy] = [`hx-${RUN}`, `hy-${RUN}`];
    const x = await docker(["--instance-id", ix]);
    const y = await docker(["--instance-id", iy]);
    try {
      const vx = `hd-x-${RUN}`;
      const vy = `hd-y-${RUN}`;
      cleanup.push(`berth.vm_id=${vx}`, `berth.vm_id=${vy}`);
      await ok(x, `${VM}/CreateVm`, { vmId: vx, customerId: "shared", config: { container: { image: TEST_IMAGE, command: HTTPD } } });
      await ok(y, `${VM}/CreateVm`, { vmId: vy, customerId: "shared", config: { container: { image: TEST_IMAGE, command: HTTPD } } });
      const cx = await engine.inspect(`berth-vm-${vx}`);
      assertDefaults(cx, { instance: ix });
      assert.deepEqual(Object.keys(cx.NetworkSettings.Networks), [`berth-c-shared-${ix}`], "one customer on two instances: two networks");
      assert.equal((await network(`berth-c-shared-${ix}`)).Labels["berth.instance"], ix);
      const listed = async (daemon) => ((await ok(daemon, `${VM}/ListVms`, {})).vms || []).map((v) => v.vmId);
      assert.ok((await listed(x)).includes(vx) && !(await listed(x)).includes(vy));
      assert.ok((await listed(y)).includes(vy) && !(await listed(y)).includes(vx));
      assert.ok(!(await listed(d)).includes(vx) && !(await listed(d)).includes(vy), "the default instance sees neither");
      await fails(y, `${VM}/GetVmInfo`, { vmId: vx }, "not_found");
      await fails(y, `${VM}/BootVm`, { vmId: vx }, "not_found");
      await fails(y, `${VM}/DeleteVm`, { vmId: vx, force: true }, "not_found");
      // A restarted y still does not adopt x's.
      await y.kill();
      const y2 = await docker(["--instance-id", iy]);
      try {
        assert.ok(!(await listed(y2)).includes(vx) && (await listed(y2)).includes(vy));
        await ok(y2, `${VM}/DeleteVm`, { vmId: vy, force: true });
      } finally {
        await y2.kill();
      }
      assert.ok(await engine.inspect(`berth-vm-${vx}`), "x's VM is still there");
      await ok(x, `${VM}/DeleteVm`, { vmId: vx, force: true });
      assert.equal(await network(`berth-c-shared-${ix}`), undefined);
      assert.equal(await network(`berth-c-shared-${iy}`), undefined);
    } finally {
      if (!x.exit) await x.kill();
      if (!y.exit) await y.kill();
    }
  });

  test("a labelled container with host privileges is never adopted, at start or by events", async () => {
    const inst = `hf-${RUN}`;
    const forge = async (vmId, host) => {
      cleanup.push(`berth.vm_id=${vmId}`);
      const labels = { "berth.managed": "true", "berth.kind": "vm", "berth.vm_id": vmId, "berth.instance": inst, "berth.created": "1" };
      const r = await engine.call("POST", "/containers/create", { query: { name: `berth-vm-${vmId}` }, body: { Image: TEST_IMAGE, Cmd: HTTPD, Labels: labels, HostConfig: host } });
      return r.body.Id;
    };
    const f1 = `hd-forged1-${RUN}`;
    const f2 = `hd-forged2-${RUN}`;
    const id1 = await forge(f1, { Privileged: true });
    const x = await docker(["--instance-id", inst]);
    try {
      await x.waitForLog(/msg=docker\.forged/, { timeoutMs: 10000 });
      await fails(x, `${VM}/GetVmInfo`, { vmId: f1 }, "not_found");
      await fails(x, `${VM}/BootVm`, { vmId: f1 }, "not_found");
      await fails(x, `${VM}/DeleteVm`, { vmId: f1, force: true }, "not_found");
      assert.equal((await engine.inspect(id1)).State.Running, false, "left alone");
      // One made while berthd runs, with the host's network, started.
      const id2 = await forge(f2, { NetworkMode: "host" });
      await engine.start(id2);
      await waitFor(() => x.logLines().filter((l) => /msg=docker\.forged/.test(l)).length >= 2, { timeoutMs: 10000, what: "the second forged container to be logged" });
      await fails(x, `${VM}/GetVmInfo`, { vmId: f2 }, "not_found");
      assert.ok(!((await ok(x, `${VM}/ListVms`, {})).vms || []).some((v) => v.vmId === f1 || v.vmId === f2));
      assert.equal((await engine.inspect(id2)).State.Running, true, "left alone");
    } finally {
      await x.kill();
    }
  });

  test("--allowed-registries: an image from elsewhere is permission_denied before any pull", async () => {
    const x = await docker(["--instance-id", `hr-${RUN}`, "--allowed-registries", "registry.invalid:5000"]);
    try {
      const vm = `hd-reg-${RUN}`;
      cleanup.push(`berth.vm_id=${vm}`);
      for (const image of [TEST_IMAGE, "127.0.0.1:2375/x:1", "registry.invalid:5001/x"]) {
        await fails(x, `${VM}/CreateVm`, { vmId: vm, config: { container: { image } } }, "permission_denied", /allowed-registries/);
      }
      await fails(x, `${GW}/CreateGateway`, { gateway: { gatewayId: `hd-reggw-${RUN}`, image: "ghcr.io/a/b:1", replicas: 1 } }, "permission_denied");
      assert.equal(await engine.inspect(`berth-vm-${vm}`), undefined, "nothing was made");
      assert.ok(!x.logLines().some((l) => /msg=docker\.pull/.test(l)));
    } finally {
      await x.kill();
    }
    const y = await docker(["--instance-id", `hr-${RUN}`, "--allowed-registries", "docker.io"]);
    try {
      const vm = `hd-reg2-${RUN}`;
      cleanup.push(`berth.vm_id=${vm}`);
      await ok(y, `${VM}/CreateVm`, { vmId: vm, config: { container: { image: TEST_IMAGE } } });
      await ok(y, `${VM}/DeleteVm`, { vmId: vm, force: true });
    } finally {
      await y.kill();
    }
  });

  test("host ports: inside --host-port-range or 0", async () => {
    const vm = `hd-port-${RUN}`;
    cleanup.push(`berth.vm_id=${vm}`);
    await fails(d, `${VM}/CreateVm`, { vmId: vm, config: { container: { image: TEST_IMAGE, ports: [{ containerPort: 80, hostPort: 8080 }] } } }, "invalid_argument", /ports\[0\]\.hostPort.*30000-39999/);
    const port = 30000 + Math.floor(Math.random() * 10000);
    await ok(d, `${VM}/CreateVm`, { vmId: vm, config: { container: { image: TEST_IMAGE, ports: [{ containerPort: 80, hostPort: port }, { containerPort: 81 }] } } });
    const c = await engine.inspect(`berth-vm-${vm}`);
    assert.equal(c.HostConfig.PortBindings["80/tcp"][0].HostPort, String(port));
    assert.equal(c.HostConfig.PortBindings["81/tcp"][0].HostPort, "");
    await ok(d, `${VM}/DeleteVm`, { vmId: vm, force: true });
  });

  test("quotas: --max-vms, --max-vms-per-customer, --max-replicas-total", async () => {
    const m = await startBerthd({ args: ["--max-vms", "3", "--max-vms-per-customer", "2", "--max-replicas-total", "3"] });
    try {
      const mk = (id, customerId) => rpc(m, `${VM}/CreateVm`, { vmId: id, customerId, config: { container: { image: TEST_IMAGE } } });
      assert.equal((await mk("q1", "a")).status, 200);
      assert.equal((await mk("q2", "a")).status, 200);
      await fails(m, `${VM}/CreateVm`, { vmId: "q3", customerId: "a", config: { container: { image: TEST_IMAGE } } }, "resource_exhausted", /--max-vms-per-customer 2/);
      assert.equal((await mk("q3", "b")).status, 200);
      await fails(m, `${VM}/CreateVm`, { vmId: "q4", customerId: "c", config: { container: { image: TEST_IMAGE } } }, "resource_exhausted", /--max-vms 3/);
      await fails(m, `${VM}/CreateVm`, { vmId: "q5", customerId: "x".repeat(129), config: { container: { image: TEST_IMAGE } } }, "invalid_argument", /customerId/);
      await ok(m, `${GW}/CreateGateway`, { gateway: { gatewayId: "g1", image: TEST_IMAGE, replicas: 2 } });
      await fails(m, `${DEP}/CreateDeployment`, { deployment: { deploymentId: "d1", image: TEST_IMAGE, replicas: 2 } }, "resource_exhausted", /--max-replicas-total 3/);
      await ok(m, `${DEP}/CreateDeployment`, { deployment: { deploymentId: "d1", image: TEST_IMAGE, replicas: 1 } });
    } finally {
      await m.kill();
    }
  });
});
