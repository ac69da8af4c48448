// ctest-labels: docker swarm
// The swarm backend on a two-node Swarm of this file's own: a manager and a
// worker, each a private dockerd in a network namespace joined by a veth
// pair to a test bridge (tests/lib/swarm_netns.mjs). berthd, in the root
// namespace, drives the manager's socket. A 4-replica deployment spreads
// over both nodes, each instance's address is its own node's and answers
// HTTP as that instance; draining the worker moves its replicas to the
// manager, and berthd's Get shows them there within 10 s. berthd pointed
// at the worker refuses to start, saying it is no manager. Teardown leaves
// no namespace, bridge, iptables rule, network, directory or process.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { startBerthd, berthdSkipReason, rawRequest, waitFor } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { TEST_IMAGE } from "../lib/image.mjs";
import { TESTS_DIR } from "../lib/proto.mjs";
import { runBerthd } from "../lib/secure.mjs";
import { TwoNodeSwarm, netnsSkipReason } from "../lib/swarm_netns.mjs";

const skip = berthdSkipReason() || (await netnsSkipReason());
const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const DEP = "/krane.v1.DeploymentService";
const IMAGE = `berth-test/swarm2:${RUN}`;
// Serves /id; ends at once on SIGTERM, so a drained node's tasks stop
// without the Swarm's grace period.
const CMD = ["/bin/sh", "-c", `echo "$BERTH_INSTANCE_ID" > /www/id && trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait`];

const swarm = new TwoNodeSwarm();
let d;

/** TEST_IMAGE committed as IMAGE with CMD in one node's Engine. */
async function commitImage(engine) {
  const [repo, tag] = IMAGE.split(":");
  const id = await engine.createContainer({ image: TEST_IMAGE, cmd: ["true"] });
  try {
    const qs = new URLSearchParams({ container: id, repo, tag });
    qs.append("changes", `CMD ${JSON.stringify(CMD)}`);
    await engine.call("POST", `/commit?${qs}`);
  } finally {
    await engine.remove(id);
  }
}

/** GET /id from an address. */
async function idAt(address) {
  const r = await rawRequest(`http://${address}`, { method: "GET", path: "/id", timeoutMs: 2000 });
  return r.status === 200 ? r.text.trim() : `HTTP ${r.status}`;
}

/** Get until `pred(instances)` holds with 4 running instances that each answer as themselves. */
async function until(get, pred, what, timeoutMs) {
  let last;
  return waitFor(
    async () => {
      const r = await rpc(d, `${DEP}/GetDeployment`, get);
      last = r.text;
      const inst = r.json?.instances || [];
      if (r.status !== 200 || inst.length !== 4 || !inst.every((i) => i.status === "DEPLOYMENT_STATUS_RUNNING" && i.address)) return false;
      if (!pred(inst)) return false;
      try {
        const ids = await Promise.all(inst.map((i) => idAt(i.address)));
        return ids.every((v, k) => v === inst[k].id) ? inst : false;
      } catch {
        return false;
      }
    },
    { timeoutMs, intervalMs: 200, what, describe: () => last },
  );
}

describe("a deployment over a two-node Swarm", { skip }, () => {
  before(async () => {
    await swarm.start();
    await swarm.buildTestImage(path.join(TESTS_DIR, "lib", "image.sh"));
    await Promise.all([commitImage(swarm.manager.engine), commitImage(swarm.worker.engine)]);
    d = await startBerthd({ backend: "swarm", args: ["--docker-socket", swarm.manager.socket] });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 20000,
      what: "GET /readyz to answer 200 on the manager",
      describe: () => d.stderr,
    });
  });

  after(async () => {
    try {
      if (d && !d.exit) await d.kill();
    } finally {
      await swarm.teardown();
    }
  });

  test("4 replicas spread over both nodes; draining the worker moves them to the manager", async () => {
    const id = `spread-${RUN}`;
    const get = { namespace: "two", deploymentId: id };
    const r = await rpc(d, `${DEP}/CreateDeployment`, { deployment: { ...get, image: IMAGE, replicas: 4 } });
    assert.equal(r.status, 200, r.text);
    const { manager, worker } = swarm;
    const hostOf = (i) => i.address.slice(0, i.address.lastIndexOf(":"));

    const spread = await until(
      get,
      (inst) => inst.some((i) => hostOf(i) === manager.address) && inst.some((i) => hostOf(i) === worker.address),
      "4 instances on both nodes' addresses",
      60000,
    );
    assert.deepEqual(spread.map((i) => i.id), [0, 1, 2, 3].map((k) => `${id}-${k}`));
    assert.ok(spread.every((i) => [manager.address, worker.address].includes(hostOf(i))), JSON.stringify(spread));

    // Drain the worker: the Swarm moves its tasks, berthd's Get follows.
    const drained = Date.now();
    await manager.docker(["node", "update", "--availability", "drain", worker.id]);
    const moved = await until(get, (inst) => inst.every((i) => hostOf(i) === manager.address), "every instance on the manager", 10000);
    assert.ok(Date.now() - drained <= 10000, `Get showed the move within 10 s (${Date.now() - drained} ms)`);
    assert.deepEqual(moved.map((i) => i.id), [0, 1, 2, 3].map((k) => `${id}-${k}`), "the instances keep their ids");
    assert.match(d.stderr, new RegExp(`msg=swarm\\.instance kind=deployment id=${id} .*node_id=${worker.id.slice(0, 12)}`), "moves are logged with their nodes");

    const del = await rpc(d, `${DEP}/DeleteDeployment`, get);
    assert.equal(del.status, 200, del.text);
    assert.deepEqual((await manager.engine.call("GET", "/services")).body, [], "no service left");
  });

  test("berthd pointed at the worker refuses to start: it is no manager", () => {
    const r = runBerthd(["--backend", "swarm", "--docker-socket", swarm.worker.socket, "--listen", "127.0.0.1:0"]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /code=failed_precondition/);
    assert.match(r.stderr, /is a swarm worker, not a manager/);
  });

  test("SIGTERM: graceful exit 0", async () => {
    const e = await d.stop();
    assert.equal(e.code, 0, `graceful exit: ${d.stderr.slice(-2000)}`);
  });
});
