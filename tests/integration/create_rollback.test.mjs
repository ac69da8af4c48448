// A CreateVm that fails must leave nothing of its own behind and remove
// nothing of anyone else's, on the real Docker Engine: a create cut by its
// deadline while the Engine works leaves no orphan container and no stuck
// id, and a create that fails under the name of a container berthd did not
// make (labelled like ours, but not by this call) leaves that one running.

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

const RUN = `rc-${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const vmId = (tag) => `${tag}-${RUN}`;
const SLEEPER = { image: TEST_IMAGE, command: ["sleep", "3600"] };
// A registry that never resolves: the pull fails at once, as unavailable.
const ABSENT_IMAGE = `${RUN}.invalid/absent:1`;
const CUT_CALLS = 10;

let d; // the daemon under test

const rpc = serviceRpc(() => d, VM_SERVICE, { timeoutMs: 60000 });

async function ok(method, body) {
  const r = await rpc(method, body);
  assert.equal(r.status, 200, `${method} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  return r.json;
}

async function listedIds() {
  return ((await ok("ListVms", { pageSize: 1000 })).vms || []).map((v) => v.vmId);
}

/** Every container this run made: its VMs (by label) and the victims (by name). */
async function cleanup() {
  const all = await engine.listContainers([]);
  const mine = all.filter(
    (c) => String((c.Labels || {})["berth.vm_id"] || "").endsWith(RUN) || (c.Names || []).some((n) => n.endsWith(RUN)),
  );
  await Promise.all(mine.map((c) => engine.remove(c.Id)));
}

describe("CreateVm failures on the Docker Engine", { skip }, () => {
  before(async () => {
    await ensureTestImage(engine);
    d = await startBerthd({ backend: "docker", args: ["--stop-timeout", "2"] });
  });

  after(async () => {
    try {
      await cleanup();
    } finally {
      if (d && !d.exit) await d.kill();
    }
  });

  test("a create cut by its deadline leaves no container and no stuck id", async (t) => {
    let cut = 0;
    for (let i = 0; i < CUT_CALLS; i++) {
      const id = vmId(`cut${i}`);
      const timeoutMs = 1 + (i % 5);
      const r = await rpc("CreateVm", { vmId: id, config: { container: SLEEPER } }, { headers: { "Connect-Timeout-Ms": String(timeoutMs) } });
      const where = `CreateVm ${id} with ${timeoutMs} ms -> ${r.status} ${r.text}`;
      assert.ok(r.status === 200 || r.status === 504, where);
      if (r.status === 504) {
        cut++;
        assert.equal(r.json?.code, "deadline_exceeded", where);
        await waitFor(async () => (await engine.inspect(`berth-vm-${id}`)) === undefined, {
          timeoutMs: 15000,
          what: `no container berth-vm-${id} after: ${where}`,
        });
        await waitFor(async () => !(await listedIds()).includes(id), { timeoutMs: 15000, what: `ListVms without ${id}` });
        // The id is free: the same create without a deadline succeeds.
        assert.deepEqual(await ok("CreateVm", { vmId: id, config: { container: SLEEPER } }), { vmId: id, state: "VM_STATE_CREATED" });
      }
      const c = await engine.inspect(`berth-vm-${id}`);
      assert.ok(c, `berth-vm-${id} exists once the create succeeded`);
      assert.equal(c.Config.Labels["berth.vm_id"], id);
      assert.ok((await listedIds()).includes(id), `${id} is listed`);
      assert.deepEqual(await ok("DeleteVm", { vmId: id, force: true }), { success: true });
    }
    const reaped = d.logLines().filter((l) => /msg=docker\.reaped /.test(l) && l.includes(RUN)).length;
    t.diagnostic(`${cut} of ${CUT_CALLS} creates cut by their deadline; ${reaped} containers reaped`);
    // reap_gave_up is fine: a request cut before the Engine had all of it
    // makes nothing, so nothing shows up.
    assert.equal(
      d.logLines().filter((l) => /msg=docker\.reap_failed/.test(l) && l.includes(RUN)).length,
      0,
      `no reap failed:\n${d.stderr}`,
    );
  });

  test("a failed create removes nothing it did not make", async () => {
    const id = vmId("victim");
    // Labelled like a berthd VM but without berth.config: berthd skips it.
    const labels = { "berth.managed": "true", "berth.kind": "vm", "berth.vm_id": id };
    const victim = await engine.createContainer({ image: TEST_IMAGE, cmd: ["sleep", "3600"], name: `berth-vm-${id}`, labels });
    await engine.start(victim);
    const before = await engine.inspect(victim);

    const r = await rpc("CreateVm", { vmId: id, config: { container: { image: ABSENT_IMAGE } } });
    const where = `CreateVm ${id} with ${ABSENT_IMAGE} -> ${r.status} ${r.text}`;
    assert.notEqual(r.status, 200, where);
    assert.ok(["unavailable", "not_found", "already_exists"].includes(r.json?.code), where);

    const c = await engine.inspect(victim);
    assert.ok(c, `the victim still exists after: ${where}`);
    assert.equal(c.State.Running, true, `the victim still runs: ${JSON.stringify(c.State)}`);
    assert.equal(c.State.StartedAt, before.State.StartedAt, "the victim was not restarted");
    assert.equal(c.Name, `/berth-vm-${id}`);
    assert.ok(!(await listedIds()).includes(id), "the failed create left no VM");
  });
});
