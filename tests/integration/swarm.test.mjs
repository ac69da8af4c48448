// ctest-labels: docker swarm
// The swarm backend on a one-node Swarm of this file's own (a private
// dockerd on a bridge of its own, `swarm init` there; never the shared
// Engine): a 3-replica gateway and a 2-replica deployment become one Swarm
// service each, every instance RUNNING with a host-mode published address
// on the node's address (or its berth.advertise label) that answers HTTP
// as that instance; a caller's env is no template; a retry changes
// nothing, a different spec is already_exists, Get in another namespace is
// not_found, Delete removes the service (twice is fine). Updates are the
// Swarm's rolling updates: A -> B, scale 3 -> 5 -> 2 without replacing a
// task, a failing image rolled back (failed_precondition saying why). Logs
// of a deployment are its tasks'. An image from a registry with a
// credential is pulled with the credential berthd re-read on SIGHUP.
// --swarm-publish-mode ingress publishes through the routing mesh. A VM
// still becomes a local container of that Engine. An Engine in no swarm is
// refused at start.
// Everything is torn down at the end, on failure too.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { startBerthd, berthdSkipReason, rawRequest, waitFor } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE, TESTS_DIR } from "../lib/proto.mjs";
import { Engine, engineSocketPath } from "../lib/engine.mjs";
import { startRegistry, registrySkipReason } from "../lib/registry.mjs";
import { runBerthd } from "../lib/secure.mjs";
import path from "node:path";
import { PrivateSwarm, swarmSkipReason } from "../lib/swarm.mjs";

const skip = berthdSkipReason() || swarmSkipReason();
const registrySkip = skip ? undefined : await registrySkipReason();
const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const GW = "/krane.v1.GatewayService";
const DEP = "/krane.v1.DeploymentService";
const LOGS = "/berth.v1.LogService";
const VM = `/${VM_SERVICE}`;
const HTTPD_IMAGE = `berth-test/httpd-swarm:${RUN}`;
const IMAGE_A = `berth-test/swarm-a:${RUN}`;
const IMAGE_B = `berth-test/swarm-b:${RUN}`;
const IMAGE_BAD = `berth-test/swarm-bad:${RUN}`;
// Each replica writes its instance id where httpd serves it, then serves
// /www on the deployment port (in the background) and the gateway port.
const HTTPD_CMD = ["/bin/sh", "-c", 'echo "$BERTH_INSTANCE_ID" > /www/id && httpd -p 8080 -h /www && exec httpd -f -p 8040 -h /www'];
/** Serves /id and /v (the version) on the deployment port, after a log
 * line; ends at once on SIGTERM, so the Swarm need not wait to stop it. */
const serving = (version) => [
  "/bin/sh",
  "-c",
  `echo "$BERTH_INSTANCE_ID" > /www/id && echo ${version} > /www/v && echo "serving ${version} as $BERTH_INSTANCE_ID" && ` +
    "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait",
];
const EXITS_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"];
const RUNNING_MS = 90000; // a task of a fresh Swarm may take a while to run
const USER = "tester";
const PASS = "s3cret-pass";

const swarm = new PrivateSwarm();
let engine; // the private Engine
let d; // berthd with --backend swarm on it
let dir; // this file's temporary files
let authFile; // d's registry credentials
let reg; // a registry with a credential, unless registrySkip

async function ok(p, body, daemon = d) {
  const r = await rpc(daemon, p, body, { timeoutMs: 120000 });
  assert.equal(r.status, 200, `${p} ${JSON.stringify(body)}: ${r.text}`);
  return r.json;
}

async function fails(p, body, code, daemon = d) {
  const r = await rpc(daemon, p, body, { timeoutMs: 120000 });
  assert.notEqual(r.status, 200, `${p} should fail: ${r.text}`);
  assert.equal(r.json?.code, code, `${p}: ${r.text}`);
  return r.json;
}

/** Services of the private Swarm labelled with label=value. */
async function services(label, value) {
  const r = await engine.call("GET", "/services", { query: { filters: { label: [`${label}=${value}`] } } });
  return r.body;
}

/** The tasks of a service meant to run: [{ ID, Slot, State, Image }], by slot. */
async function runningTasks(serviceId) {
  const r = await engine.call("GET", "/tasks", { query: { filters: { service: [serviceId], "desired-state": ["running"] } } });
  return r.body
    .map((t) => ({ ID: t.ID, Slot: t.Slot, State: t.Status.State, Image: t.Spec.ContainerSpec.Image }))
    .sort((a, b) => a.Slot - b.Slot);
}

/** Wait until Get reports n instances, all `running` with an address. */
async function allRunning(p, body, n, running, daemon = d) {
  let last;
  return waitFor(
    async () => {
      last = await rpc(daemon, p, body);
      const inst = last.json?.instances || [];
      return last.status === 200 && inst.length === n && inst.every((i) => i.status === running && i.address) ? last.json : false;
    },
    { timeoutMs: RUNNING_MS, intervalMs: 250, what: `${p} to report ${n} running instances`, describe: () => last?.text },
  );
}

/** GET <file> from an instance address, once it answers. */
async function httpGet(address, file = "/id") {
  let lastErr;
  return waitFor(
    async () => {
      try {
        const r = await rawRequest(`http://${address}`, { method: "GET", path: file, timeoutMs: 2000 });
        return r.status === 200 ? r.text.trim() : false;
      } catch (err) {
        lastErr = err;
        return false;
      }
    },
    { timeoutMs: 20000, intervalMs: 200, what: `HTTP ${file} on ${address}`, describe: () => String(lastErr) },
  );
}
const httpId = (address) => httpGet(address, "/id");

/** Get until every one of n instances runs and serves `version` as itself. */
async function servingAll(id, n, version) {
  let last;
  return waitFor(
    async () => {
      const r = await rpc(d, `${DEP}/GetDeployment`, { namespace: "swarm", deploymentId: id });
      last = r.text;
      const inst = r.json?.instances || [];
      if (r.status !== 200 || inst.length !== n || !inst.every((i) => i.status === "DEPLOYMENT_STATUS_RUNNING" && i.address)) return false;
      try {
        for (const i of inst) {
          const [v, who] = await Promise.all([
            rawRequest(`http://${i.address}`, { method: "GET", path: "/v", timeoutMs: 2000 }),
            rawRequest(`http://${i.address}`, { method: "GET", path: "/id", timeoutMs: 2000 }),
          ]);
          if (v.text.trim() !== version || who.text.trim() !== i.id) return false;
        }
      } catch {
        return false;
      }
      return r.json;
    },
    { timeoutMs: RUNNING_MS, intervalMs: 250, what: `${id}: ${n} instances serving ${version}`, describe: () => last },
  );
}

/** Make `ref` in the private Engine: TEST_IMAGE committed with `cmd`. */
async function commitImage(ref, cmd) {
  const [repo, tag] = ref.split(":");
  const id = await engine.createContainer({ image: TEST_IMAGE, cmd: ["true"] });
  try {
    const qs = new URLSearchParams({ container: id, repo, tag });
    qs.append("changes", `CMD ${JSON.stringify(cmd)}`);
    await engine.call("POST", `/commit?${qs}`);
  } finally {
    await engine.remove(id);
  }
}

function writeAuth(user, pass) {
  const auth = Buffer.from(`${user}:${pass}`).toString("base64");
  writeFileSync(authFile, JSON.stringify({ auths: reg ? { [reg.host]: { auth } } : {} }));
}

describe("gateways and deployments on a one-node Swarm", { skip }, () => {
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "berth-swarm-test-"));
    authFile = path.join(dir, "auths.json");
    const registry = registrySkip ? undefined : startRegistry({ users: { [USER]: PASS } });
    registry?.catch(() => {}); // awaited below, after the Engine is up
    engine = await swarm.start();
    await swarm.buildTestImage(path.join(TESTS_DIR, "lib", "image.sh"));
    await Promise.all([
      commitImage(HTTPD_IMAGE, HTTPD_CMD),
      commitImage(IMAGE_A, serving("A")),
      commitImage(IMAGE_B, serving("B")),
      commitImage(IMAGE_BAD, ["/bin/sh", "-c", "echo failing; exit 3"]),
    ]);
    reg = await registry;
    writeAuth(USER, "not-the-password");
    d = await startBerthd({
      backend: "swarm",
      args: [
        "--docker-socket", swarm.socket,
        "--publish-address", "127.0.0.1",
        "--registry-auth-file", authFile,
        "--update-min-ready-ms", "300",
        "--update-health-timeout", "30",
      ],
    });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 20000,
      what: "GET /readyz to answer 200 with the swarm backend",
      describe: () => `stderr:\n${d.stderr}`,
    });
  });

  after(async () => {
    try {
      if (d && !d.exit) await d.kill();
      if (reg) await reg.stop();
    } finally {
      try {
        await swarm.teardown();
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  test("a 3-replica gateway is one service; its instances serve HTTP on the node's address", async () => {
    const id = `sgw-${RUN}`;
    const spec = { namespace: "integration", workspaceId: "ws_test", gatewayId: id, image: HTTPD_IMAGE, replicas: 3, env: { GREETING: "hi {{.Node.ID}}" } };
    assert.equal((await ok(`${GW}/CreateGateway`, { gateway: spec })).status, "GATEWAY_STATUS_PENDING");

    const svcs = await services("berth.gateway_id", id);
    assert.equal(svcs.length, 1, "one service");
    assert.equal(svcs[0].Spec.Name, `berth-gw-${id}`);
    assert.equal(svcs[0].Spec.Labels["berth.managed"], "true");
    assert.equal(svcs[0].Spec.Labels["berth.namespace"], "integration");
    assert.equal(svcs[0].Spec.Mode.Replicated.Replicas, 3);
    assert.ok(svcs[0].Spec.EndpointSpec.Ports.every((p) => p.PublishMode === "host"), JSON.stringify(svcs[0].Spec.EndpointSpec));
    assert.deepEqual(
      [svcs[0].Spec.UpdateConfig.Parallelism, svcs[0].Spec.UpdateConfig.Order, svcs[0].Spec.UpdateConfig.FailureAction],
      [1, "start-first", "rollback"],
    );

    const get = { namespace: "integration", gatewayId: id };
    const info = await allRunning(`${GW}/GetGateway`, get, 3, "GATEWAY_STATUS_RUNNING");
    assert.deepEqual(
      info.instances.map((i) => i.id),
      [0, 1, 2].map((i) => `${id}-${i}`),
    );
    for (const inst of info.instances) {
      assert.ok(inst.address.startsWith(`${swarm.address}:`), `${inst.address} is on the node's address ${swarm.address}`);
      assert.equal(await httpId(inst.address), inst.id, `${inst.address} is served by ${inst.id}`);
    }

    // A caller's env value reaches the tasks as it was, never as a Swarm template.
    const ctrs = await engine.listContainers([`berth.gateway_id=${id}`]);
    assert.equal(ctrs.length, 3, "three task containers on the node");
    assert.ok((await engine.inspect(ctrs[0].Id)).Config.Env.includes("GREETING=hi {{.Node.ID}}"));

    // A retry changes nothing; a different spec is refused; another namespace does not see it.
    assert.equal((await ok(`${GW}/CreateGateway`, { gateway: spec })).status, "GATEWAY_STATUS_PENDING");
    const again = await services("berth.gateway_id", id);
    assert.equal(again.length, 1);
    assert.equal(again[0].ID, svcs[0].ID, "the retry kept the service");
    assert.equal(again[0].Version.Index, svcs[0].Version.Index, "the retry did not update the service");
    await fails(`${GW}/CreateGateway`, { gateway: { ...spec, replicas: 2 } }, "already_exists");
    await fails(`${GW}/GetGateway`, { namespace: "other", gatewayId: id }, "not_found");

    // The node's label berth.advertise is the address answers name; the
    // published ports answer there too.
    const node = (await engine.call("GET", "/info")).body.Swarm.NodeID;
    await swarm.docker(["node", "update", "--label-add", "berth.advertise=127.0.0.1", node]);
    try {
      const relabelled = await allRunning(`${GW}/GetGateway`, get, 3, "GATEWAY_STATUS_RUNNING");
      for (const inst of relabelled.instances) {
        assert.match(inst.address, /^127\.0\.0\.1:\d+$/);
        assert.equal(await httpId(inst.address), inst.id);
      }
    } finally {
      await swarm.docker(["node", "update", "--label-rm", "berth.advertise", node]);
    }

    assert.deepEqual(await ok(`${GW}/DeleteGateway`, get), {});
    assert.deepEqual(await services("berth.gateway_id", id), [], "no service left");
    assert.deepEqual(await ok(`${GW}/DeleteGateway`, get), {});
    await fails(`${GW}/GetGateway`, get, "not_found");
  });

  test("a 2-replica deployment serves on port 8080; delete leaves no service", async () => {
    const id = `sdep-${RUN}`;
    const spec = { namespace: "integration", deploymentId: id, image: HTTPD_IMAGE, replicas: 2, environmentSlug: "staging" };
    assert.equal((await ok(`${DEP}/CreateDeployment`, { deployment: spec })).status, "DEPLOYMENT_STATUS_PENDING");
    const get = { namespace: "integration", deploymentId: id };
    const info = await allRunning(`${DEP}/GetDeployment`, get, 2, "DEPLOYMENT_STATUS_RUNNING");
    for (const inst of info.instances) assert.equal(await httpId(inst.address), inst.id);
    const svcs = await services("berth.deployment_id", id);
    assert.equal(svcs.length, 1);
    assert.equal(svcs[0].Spec.Labels["berth.environment_slug"], "staging");

    assert.deepEqual(await ok(`${DEP}/DeleteDeployment`, get), {});
    assert.deepEqual(await services("berth.deployment_id", id), [], "no service left");
    await fails(`${DEP}/GetDeployment`, get, "not_found");
    // Swarm removes the tasks' containers by itself, soon.
    await waitFor(async () => (await engine.listContainers([`berth.deployment_id=${id}`])).length === 0, {
      timeoutMs: 30000,
      what: "the deployment's task containers to go",
    });
  });

  test("update A -> B, scale 3 -> 5 -> 2, a failing image rolled back; logs are the tasks'", async () => {
    const id = `supd-${RUN}`;
    const spec = { namespace: "swarm", deploymentId: id, image: IMAGE_A, replicas: 3 };
    const get = { namespace: "swarm", deploymentId: id };
    await ok(`${DEP}/CreateDeployment`, { deployment: spec });
    await servingAll(id, 3, "A");
    const [svc] = await services("berth.deployment_id", id);
    const tasksA = await runningTasks(svc.ID);

    // A -> B: the Swarm's rolling update; the answer waits for it.
    const upd = await ok(`${DEP}/UpdateDeployment`, { deployment: { ...spec, image: IMAGE_B } });
    assert.deepEqual(upd.podIds, [0, 1, 2].map((i) => `${id}-${i}`));
    const tasksB = await runningTasks(svc.ID);
    assert.deepEqual(tasksB.map((t) => [t.Slot, t.State, t.Image]), [1, 2, 3].map((s) => [s, "running", IMAGE_B]), "the update was done when answered");
    assert.ok(tasksB.every((t) => !tasksA.some((a) => a.ID === t.ID)), "every task replaced");
    assert.equal((await engine.call("GET", `/services/${svc.ID}`)).body.UpdateStatus.State, "completed");
    await servingAll(id, 3, "B");

    // Scaling changes the count only: no task is replaced.
    const up = await ok(`${DEP}/UpdateDeployment`, { deployment: { ...spec, image: IMAGE_B, replicas: 5 } });
    assert.deepEqual(up.podIds, [0, 1, 2, 3, 4].map((i) => `${id}-${i}`));
    const five = await runningTasks(svc.ID);
    assert.equal(five.length, 5);
    assert.ok(tasksB.every((t) => five.some((f) => f.ID === t.ID)), "the three tasks are still the same");
    await servingAll(id, 5, "B");
    const down = await ok(`${DEP}/UpdateDeployment`, { deployment: { ...spec, image: IMAGE_B, replicas: 2 } });
    const two = await runningTasks(svc.ID);
    assert.equal(two.length, 2);
    assert.ok(two.every((t) => five.some((f) => f.ID === t.ID)), "the two left were among the five");
    // Which two the Swarm kept is its choice: the answer and Get name them.
    assert.deepEqual(down.podIds, two.map((t) => `${id}-${t.Slot - 1}`));
    const after2 = await servingAll(id, 2, "B");
    assert.deepEqual(after2.instances.map((i) => i.id), down.podIds);
    const listed = await ok(`${DEP}/ListDeployments`, { namespace: "swarm" });
    const mine = listed.deployments.find((x) => x.deploymentId === id);
    assert.equal(mine?.replicas, 2, JSON.stringify(listed));

    // A failing image: the Swarm rolls back, berthd says why.
    const before = await runningTasks(svc.ID);
    const r = await rpc(d, `${DEP}/UpdateDeployment`, { deployment: { ...spec, image: IMAGE_BAD, replicas: 2 } }, { timeoutMs: 120000 });
    assert.equal(r.json?.code, "failed_precondition", r.text);
    assert.match(r.json.message, /replica \d+ of the new spec (failed|rejected): .*exit \(3\).*; rolled back/);
    // Answered once the old spec runs again, its count whole.
    const rolled = await runningTasks(svc.ID);
    assert.deepEqual(rolled.map((t) => [t.Image, t.State]), [[IMAGE_B, "running"], [IMAGE_B, "running"]], "the old spec runs");
    assert.deepEqual(rolled.map((t) => t.Slot), before.map((t) => t.Slot), "in the same slots");
    await servingAll(id, 2, "B");

    // Logs of each instance come from its task.
    let last;
    await waitFor(
      async () => {
        last = await ok(`${LOGS}/GetLogs`, get);
        const lines = (last.entries || []).map((e) => `${e.instanceId} ${e.line}`);
        return down.podIds.every((p) => lines.includes(`${p} serving B as ${p}`));
      },
      { timeoutMs: 15000, intervalMs: 250, what: "each instance's log line", describe: () => JSON.stringify(last) },
    );

    assert.deepEqual(await ok(`${DEP}/DeleteDeployment`, get), {});
    assert.deepEqual(await services("berth.deployment_id", id), [], "no service left");
    await fails(`${DEP}/UpdateDeployment`, { deployment: spec }, "not_found");
  });

  test("an image from a registry with a credential: refused, then pulled with the credential SIGHUP re-read", { skip: registrySkip }, async () => {
    const ref = await reg.push(TEST_IMAGE, `team/app:${RUN}`, USER, { dockerHost: swarm.host });
    const id = `sreg-${RUN}`;
    const spec = { namespace: "swarm", deploymentId: id, image: ref, replicas: 1 };
    const e = await fails(`${DEP}/CreateDeployment`, { deployment: spec }, "permission_denied");
    assert.match(e.message, new RegExp(`registry '${reg.host.replace(/\./g, "\\.")}'`));
    assert.deepEqual(await services("berth.deployment_id", id), [], "nothing made");

    writeAuth(USER, PASS);
    d.child.kill("SIGHUP");
    await d.waitForLog(/registry_auth_loaded/);
    await ok(`${DEP}/CreateDeployment`, { deployment: spec });
    const [svc] = await services("berth.deployment_id", id);
    assert.equal(svc.Spec.TaskTemplate.ContainerSpec.Image, ref);
    await allRunning(`${DEP}/GetDeployment`, { namespace: "swarm", deploymentId: id }, 1, "DEPLOYMENT_STATUS_RUNNING");
    assert.match(reg.log, /"(HEAD|GET) \/v2\/team\/app\/manifests\/\S+ HTTP\/1\.1" 200 /, "pulled with the credential");
    assert.ok(!d.logLines().some((l) => l.includes(PASS) || l.includes(Buffer.from(`${USER}:${PASS}`).toString("base64"))), "no credential in a log line");
    assert.ok(!JSON.stringify(svc).includes(Buffer.from(`${USER}:${PASS}`).toString("base64")), "no credential in the service");
    await ok(`${DEP}/DeleteDeployment`, { namespace: "swarm", deploymentId: id });
  });

  test("--swarm-publish-mode ingress: the routing mesh's port on the node's address", async () => {
    const d2 = await startBerthd({ backend: "swarm", args: ["--docker-socket", swarm.socket, "--swarm-publish-mode", "ingress"] });
    try {
      const id = `sing-${RUN}`;
      await ok(`${DEP}/CreateDeployment`, { deployment: { namespace: "swarm", deploymentId: id, image: HTTPD_IMAGE, replicas: 1 } }, d2);
      // The Swarm's allocator gives the port soon after the create.
      const svc = await waitFor(async () => (await services("berth.deployment_id", id)).find((x) => x.Endpoint?.Ports?.length), {
        timeoutMs: 10000,
        what: "the mesh's port",
      });
      assert.equal(svc.Spec.EndpointSpec.Ports[0].PublishMode, "ingress");
      const port = svc.Endpoint.Ports[0].PublishedPort;
      assert.ok(port >= 30000 && port <= 32767, `a port of the swarm's range: ${port}`);
      const info = await allRunning(`${DEP}/GetDeployment`, { namespace: "swarm", deploymentId: id }, 1, "DEPLOYMENT_STATUS_RUNNING", d2);
      assert.equal(info.instances[0].address, `${swarm.address}:${port}`);
      await ok(`${DEP}/DeleteDeployment`, { namespace: "swarm", deploymentId: id }, d2);
    } finally {
      const e = await d2.stop();
      assert.equal(e.code, 0, `graceful exit: ${d2.stderr.slice(-2000)}`);
    }
  });

  test("a service of berthd's name without berth.managed is never touched", async () => {
    const id = `sforeign-${RUN}`;
    const name = `berth-gw-${id}`;
    await swarm.docker(["service", "create", "--detach", "--name", name, "--label", `berth.gateway_id=${id}`, TEST_IMAGE, "sleep", "600"]);
    try {
      await fails(`${GW}/CreateGateway`, { gateway: { gatewayId: id, image: HTTPD_IMAGE, replicas: 1 } }, "already_exists");
      await fails(`${GW}/GetGateway`, { gatewayId: id }, "not_found");
      await fails(`${GW}/UpdateGateway`, { gateway: { gatewayId: id, image: HTTPD_IMAGE, replicas: 1 } }, "not_found");
      assert.deepEqual(await ok(`${GW}/DeleteGateway`, { gatewayId: id }), {});
      const r = await engine.call("GET", `/services/${name}`, { ok: [404] });
      assert.equal(r.status, 200, "the foreign service is still there");
    } finally {
      await swarm.docker(["service", "rm", name]);
    }
  });

  test("a VM is still a local container of the Engine", async () => {
    const vmId = `svm-${RUN}`;
    const created = await ok(`${VM}/CreateVm`, { vmId, config: { container: { image: TEST_IMAGE, command: EXITS_ON_TERM } } });
    assert.equal(created.state, "VM_STATE_CREATED");
    const ctrs = await engine.listContainers([`berth.vm_id=${vmId}`]);
    assert.equal(ctrs.length, 1, "one container");
    await ok(`${VM}/BootVm`, { vmId });
    await waitFor(async () => (await ok(`${VM}/GetVmInfo`, { vmId })).state === "VM_STATE_RUNNING", { timeoutMs: 20000, what: "the VM to run" });
    assert.equal((await engine.inspect(ctrs[0].Id)).State.Running, true);
    await ok(`${VM}/DeleteVm`, { vmId, force: true });
    assert.deepEqual(await engine.listContainers([`berth.vm_id=${vmId}`]), []);
  });

  test("an Engine in no swarm is refused at start, saying so", async (t) => {
    // The shared Engine is never made a swarm: it only answers GET /info here.
    let info;
    try {
      const shared = new Engine(engineSocketPath());
      await shared.negotiate();
      info = (await shared.call("GET", "/info")).body;
    } catch {
      t.skip("no shared Engine answers");
      return;
    }
    if (info.Swarm?.LocalNodeState !== "inactive") {
      t.skip("the shared Engine is in a swarm");
      return;
    }
    const r = runBerthd(["--backend", "swarm", "--docker-socket", engineSocketPath(), "--listen", "127.0.0.1:0"]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /code=failed_precondition/);
    assert.match(r.stderr, /is in no swarm/);
  });

  test("SIGTERM: graceful exit 0, the swarm followed until then", async () => {
    const e = await d.stop();
    assert.equal(e.code, 0, `graceful exit: ${d.stderr.slice(-2000)}`);
  });
});
