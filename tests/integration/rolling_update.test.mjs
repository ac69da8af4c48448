// UpdateDeployment and ListDeployments on the real Engine: a rolling update
// of a 3-replica HTTP deployment from image A to image B under a client that
// keeps fetching from every instance address (no request fails, only B is
// left); scaling 3 -> 5 -> 2 with the other replicas untouched; an update to
// an image whose command fails, rolled back with the old containers as they
// were; berthd killed with SIGKILL in the middle of an update and started
// again (the deployment ends all A or all B, 3 replicas, nothing else); List
// paging over 30 deployments.
//
// The krane API has no command field: A, B and the failing image are made
// here from the test image through the Engine's commit endpoint, tagged for
// this run, and removed at the end.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startBerthd, berthdSkipReason, rawRequest } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { waitFor } from "../lib/wait.mjs";

const berthdSkip = berthdSkipReason();
const [engine, engineSkip] = berthdSkip ? [undefined, undefined] : await connectEngine();

const RUN = `${process.pid}-${Date.now().toString(36)}`;
const TEST_LABEL = "berth.test";
const TEST_VALUE = `rolling-${RUN}`;
const IMAGE_A = `berth-test/roll-a:${RUN}`;
const IMAGE_B = `berth-test/roll-b:${RUN}`;
const IMAGE_BAD = `berth-test/roll-bad:${RUN}`;
const NS = `roll-${RUN}`;
const DEP = "/krane.v1.DeploymentService";
// Fast updates: a new replica is ready after 300 ms of running, an old one
// leaves the answers 400 ms before it stops.
const UPDATE_ARGS = ["--update-min-ready-ms", "300", "--update-drain-ms", "400", "--update-health-timeout", "15"];

/** Serves /v (the version) on the deployment port. */
const serving = (version) => ["/bin/sh", "-c", `echo ${version} > /www/v && exec httpd -f -p 8080 -h /www`];

async function commitImage(ref, cmd) {
  const [repo, tag] = ref.split(":");
  const id = await engine.createContainer({ image: TEST_IMAGE, cmd: ["true"], labels: { [TEST_LABEL]: TEST_VALUE } });
  try {
    const qs = new URLSearchParams({ container: id, repo, tag });
    qs.append("changes", `CMD ${JSON.stringify(cmd)}`);
    qs.append("changes", `LABEL ${TEST_LABEL}=${TEST_VALUE}`);
    await engine.call("POST", `/commit?${qs}`);
  } finally {
    await engine.remove(id);
  }
}

const made = new Set(); // deployment ids this file asked for

function depId(name) {
  const id = `roll-${name}-${RUN}`;
  made.add(id);
  return id;
}

async function ok(d, method, body, headers = {}) {
  const r = await rpc(d, `${DEP}/${method}`, body, { headers, timeoutMs: 60000 });
  assert.equal(r.status, 200, `${method} ${JSON.stringify(body)}: ${r.text}`);
  return r.json;
}

/** The containers of deployment id: replicas (by index) and records. */
async function containersOf(id) {
  const all = (await engine.listContainers([`berth.deployment_id=${id}`])).filter((c) => c.State !== "removing");
  const replicas = all.filter((c) => !c.Labels["berth.record"]);
  replicas.sort((x, y) => Number(x.Labels["berth.replica"]) - Number(y.Labels["berth.replica"]));
  return { replicas, records: all.filter((c) => c.Labels["berth.record"]) };
}

async function fetchVersion(address) {
  const r = await rawRequest(`http://${address}`, { method: "GET", path: "/v", timeoutMs: 3000 });
  if (r.status !== 200) throw new Error(`GET http://${address}/v: HTTP ${r.status}`);
  return r.text.trim();
}

/** Get until every one of n instances runs and serves `version`. */
async function waitServing(d, id, n, version) {
  let last;
  return waitFor(
    async () => {
      const r = await rpc(d, `${DEP}/GetDeployment`, { namespace: NS, deploymentId: id });
      last = r.text;
      const inst = r.json?.instances || [];
      if (r.status !== 200 || inst.length !== n) return false;
      if (!inst.every((i) => i.status === "DEPLOYMENT_STATUS_RUNNING" && i.address)) return false;
      try {
        const seen = await Promise.all(inst.map((i) => fetchVersion(i.address)));
        return seen.every((v) => v === version) ? r.json : false;
      } catch {
        return false;
      }
    },
    { timeoutMs: 20000, intervalMs: 100, what: `${id}: ${n} instances serving ${version}`, describe: () => last },
  );
}

async function createServing(d, id, replicas, image = IMAGE_A, version = "A") {
  const spec = { namespace: NS, deploymentId: id, image, replicas };
  await ok(d, "CreateDeployment", { deployment: spec });
  await waitServing(d, id, replicas, version);
  return spec;
}

describe("rolling updates on the docker backend", { skip: berthdSkip || engineSkip }, () => {
  let d;

  before(async () => {
    await ensureTestImage(engine);
    await commitImage(IMAGE_A, serving("A"));
    await commitImage(IMAGE_B, serving("B"));
    await commitImage(IMAGE_BAD, ["/bin/sh", "-c", "exit 3"]);
    d = await startBerthd({
      backend: "docker",
      args: ["--docker-socket", engine.socketPath, "--publish-address", "127.0.0.1", ...UPDATE_ARGS],
    });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 15000,
      what: "/readyz 200",
      describe: () => d.stderr,
    });
  });

  after(async () => {
    if (d && !d.exit) await d.kill();
  });

  test("A -> B under a polling client: no failed request, only B left", async () => {
    const id = depId("ab");
    const spec = await createServing(d, id, 3);
    const before = await containersOf(id);

    // The client: read the instances, fetch from each address, again and
    // again, until told to stop.
    const seen = { A: 0, B: 0 };
    const failures = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const g = await rpc(d, `${DEP}/GetDeployment`, { namespace: NS, deploymentId: id });
        if (g.status !== 200) {
          failures.push(`GetDeployment: ${g.text}`);
          continue;
        }
        const running = (g.json.instances || []).filter((i) => i.status === "DEPLOYMENT_STATUS_RUNNING");
        if (running.length < 3) failures.push(`only ${running.length} running: ${g.text}`);
        await Promise.all(
          running.map(async (i) => {
            try {
              seen[await fetchVersion(i.address)]++;
            } catch (err) {
              failures.push(`${i.id} at ${i.address}: ${err.message}`);
            }
          }),
        );
      }
    })();

    const update = ok(d, "UpdateDeployment", { deployment: { ...spec, image: IMAGE_B } });
    // Meanwhile the object is busy: a Delete that cannot wait long answers aborted.
    await waitFor(async () => (await containersOf(id)).replicas.length > 3, { timeoutMs: 10000, what: "a new replica" });
    const del = await rpc(d, `${DEP}/DeleteDeployment`, { namespace: NS, deploymentId: id }, { headers: { "Connect-Timeout-Ms": "600" } });
    assert.equal(del.json?.code, "aborted", del.text);
    const answer = await update;
    polling = false;
    await poller;

    assert.deepEqual(answer.podIds, [0, 1, 2].map((i) => `${id}-${i}`));
    assert.deepEqual(failures, [], "no request failed during the update");
    assert.ok(seen.A > 0 && seen.B > 0, `the client saw both versions: ${JSON.stringify(seen)}`);
    await waitServing(d, id, 3, "B");
    const after = await containersOf(id);
    assert.equal(after.replicas.length, 3);
    for (const c of after.replicas) {
      assert.equal(c.Image, IMAGE_B);
      assert.equal(c.State, "running");
      assert.ok(!before.replicas.some((o) => o.Id === c.Id), "a new container");
      assert.match(c.Names[0], new RegExp(`^/berth-dep-${id}-\\d-g1$`));
    }
    assert.equal(after.records.length, 1, "one record");
    await ok(d, "DeleteDeployment", { namespace: NS, deploymentId: id });
    assert.equal((await engine.listContainers([`berth.deployment_id=${id}`])).length, 0);
  });

  test("scale 3 -> 5 -> 2: added at the next indexes, removed from the top, the rest untouched", async () => {
    const id = depId("scale");
    const spec = await createServing(d, id, 3);
    const three = (await containersOf(id)).replicas.map((c) => c.Id);

    await ok(d, "UpdateDeployment", { deployment: { ...spec, replicas: 5 } });
    const five = await containersOf(id);
    assert.equal(five.replicas.length, 5);
    assert.deepEqual(five.replicas.slice(0, 3).map((c) => c.Id), three, "replicas 0-2 are the same containers");
    assert.deepEqual(five.replicas.map((c) => c.Labels["berth.replica"]), ["0", "1", "2", "3", "4"]);
    await waitServing(d, id, 5, "A");

    const r = await ok(d, "UpdateDeployment", { deployment: { ...spec, replicas: 2 } });
    assert.deepEqual(r.podIds, [`${id}-0`, `${id}-1`]);
    const two = await containersOf(id);
    assert.deepEqual(two.replicas.map((c) => c.Id), three.slice(0, 2));
    assert.equal(two.records.length, 1);
    await waitServing(d, id, 2, "A");
    await ok(d, "DeleteDeployment", { namespace: NS, deploymentId: id });
  });

  test("an image whose command fails: failed_precondition, rolled back, the old replicas untouched", async () => {
    const id = depId("bad");
    const spec = await createServing(d, id, 3);
    const before = await containersOf(id);
    const r = await rpc(d, `${DEP}/UpdateDeployment`, { deployment: { ...spec, image: IMAGE_BAD } }, { timeoutMs: 60000 });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.code, "failed_precondition");
    assert.match(r.json.message, /replica 0 of the new spec (exited with code 3|keeps restarting|restarted)/);
    const after = await containersOf(id);
    assert.deepEqual(after.replicas.map((c) => [c.Id, c.State]), before.replicas.map((c) => [c.Id, "running"]));
    assert.equal(after.records.length, 0, "no record left either");
    await waitServing(d, id, 3, "A");
    await ok(d, "DeleteDeployment", { namespace: NS, deploymentId: id });
  });

  test("ListDeployments pages over 30 deployments of the Engine", async () => {
    const ns = `${NS}-list`;
    const ids = Array.from({ length: 30 }, (_, i) => depId(`l${String(i).padStart(2, "0")}`));
    for (let k = 0; k < ids.length; k += 10) {
      await Promise.all(ids.slice(k, k + 10).map((id) => ok(d, "CreateDeployment", { deployment: { namespace: ns, deploymentId: id, image: IMAGE_A, replicas: 1 } })));
    }
    const listed = [];
    let token = "";
    let pages = 0;
    do {
      const r = await ok(d, "ListDeployments", { namespace: ns, pageSize: 7, pageToken: token });
      assert.equal(r.totalCount, 30);
      pages++;
      for (const s of r.deployments) {
        assert.equal(s.image, IMAGE_A);
        assert.equal(s.replicas, 1);
        listed.push(s.deploymentId);
      }
      token = r.nextPageToken || "";
    } while (token);
    assert.equal(pages, 5);
    assert.deepEqual(listed, [...ids].sort());
    await Promise.all(ids.map((id) => ok(d, "DeleteDeployment", { namespace: ns, deploymentId: id })));
    const r = await ok(d, "ListDeployments", { namespace: ns });
    assert.equal(r.totalCount ?? 0, 0);
  });

  test("kill -9 in the middle of an update: after a restart all A or all B, 3 replicas, nothing else", async () => {
    // Slow readiness, so the kill lands while the update is under way.
    const args = ["--docker-socket", engine.socketPath, "--publish-address", "127.0.0.1", "--update-min-ready-ms", "1500", "--update-drain-ms", "200"];
    const id = depId("crash");
    const spec = await createServing(d, id, 3);
    await d.stop();
    d = await startBerthd({ backend: "docker", args });
    const pending = rpc(d, `${DEP}/UpdateDeployment`, { deployment: { ...spec, image: IMAGE_B } }, { timeoutMs: 60000 }).catch((err) => err);
    await waitFor(async () => (await containersOf(id)).replicas.some((c) => c.Labels["berth.generation"] === "1" && c.State === "running"), {
      timeoutMs: 15000,
      intervalMs: 50,
      what: "the first new replica running",
    });
    await d.kill();
    await pending;

    d = await startBerthd({ backend: "docker", args: [...args.slice(0, 4), ...UPDATE_ARGS] });
    let last;
    const settled = await waitFor(
      async () => {
        const { replicas, records } = await containersOf(id);
        last = JSON.stringify({ replicas: replicas.map((c) => [c.Names[0], c.Image, c.State]), records: records.length });
        const images = new Set(replicas.map((c) => c.Image));
        return replicas.length === 3 && images.size === 1 && replicas.every((c) => c.State === "running") && records.length <= 1 ? [...images][0] : false;
      },
      { timeoutMs: 20000, intervalMs: 100, what: `${id} settled after the restart`, describe: () => `${last}\n${d.stderr}` },
    );
    assert.ok(settled === IMAGE_A || settled === IMAGE_B, settled);
    const { replicas } = await containersOf(id);
    assert.deepEqual(replicas.map((c) => c.Labels["berth.replica"]), ["0", "1", "2"]);
    await waitServing(d, id, 3, settled === IMAGE_A ? "A" : "B");
    // Settled for good: an update to the other image runs normally.
    const other = settled === IMAGE_A ? IMAGE_B : IMAGE_A;
    await ok(d, "UpdateDeployment", { deployment: { ...spec, image: other } });
    await waitServing(d, id, 3, other === IMAGE_A ? "A" : "B");
    await ok(d, "DeleteDeployment", { namespace: NS, deploymentId: id });
  });

  test("SIGTERM: graceful exit 0; nothing of this run is left", async () => {
    assert.deepEqual(await d.stop(), { code: 0, signal: null }, d.stderr);
    for (const id of made) assert.deepEqual(await engine.listContainers([`berth.deployment_id=${id}`]), [], id);
  });
});

after(async () => {
  if (!engine) return;
  for (const id of made) for (const c of await engine.listContainers([`berth.deployment_id=${id}`])) await engine.remove(c.Id);
  for (const c of await engine.listContainers([`${TEST_LABEL}=${TEST_VALUE}`])) await engine.remove(c.Id);
  for (const ref of [IMAGE_A, IMAGE_B, IMAGE_BAD]) {
    await engine.call("DELETE", `/images/${encodeURIComponent(ref)}`, { query: { force: "1" }, ok: [404, 409] });
  }
});
