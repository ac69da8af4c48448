// Twenty VMs at once against the real Docker Engine: created and booted in
// parallel, all listed (also page by page), all force-deleted in parallel,
// and none left behind in the Engine.
//
// berthd rebuilds its registry from every managed container of the Engine,
// so other suites' VMs may be listed too, and may change state while we
// look (the daemon follows the Engine's events). Counts are therefore
// checked on our ids exactly, and on the whole list for consistency within
// one walk; a walk that saw the other VMs change is walked again.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";
import { serviceRpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE } from "../lib/proto.mjs";

const [engine, engineWhy] = await connectEngine();
const skip = berthdSkipReason() || engineWhy;

const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const COUNT = 20;
const PAGE = 7;
const IDS = Array.from({ length: COUNT }, (_, i) => `par-${String(i).padStart(2, "0")}-${RUN}`);

let d; // the daemon under test

const rpc = serviceRpc(() => d, VM_SERVICE, { timeoutMs: 120000 });

async function ok(method, body) {
  const r = await rpc(method, body);
  assert.equal(r.status, 200, `${method} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  return r.json;
}

/** Our containers in the Engine (by berth.managed=true, then by our ids). */
async function ourContainers() {
  const all = await engine.listContainers(["berth.managed=true", "berth.kind=vm"]);
  return all.filter((c) => IDS.includes((c.Labels || {})["berth.vm_id"]));
}

/** Walk ListVms page by page; resolves { pages, vms, totals }. */
async function walk(request) {
  const pages = [];
  const vms = [];
  const totals = new Set();
  let token;
  for (;;) {
    const r = await ok("ListVms", { ...request, pageSize: PAGE, ...(token ? { pageToken: token } : {}) });
    const page = r.vms || [];
    assert.ok(page.length <= PAGE, `a page holds at most ${PAGE}: ${page.length}`);
    pages.push(page.map((v) => v.vmId));
    vms.push(...page);
    totals.add(r.totalCount || 0);
    token = r.nextPageToken;
    if (!token) break;
    assert.equal(page.length, PAGE, "only the last page is short");
    assert.ok(pages.length <= 1000, "paging ends");
  }
  return { pages, vms, totals };
}

/**
 * walk() until one walk saw a single totalCount on every page (other VMs did
 * not change under it); resolves that walk with `total`.
 */
async function stableWalk(request) {
  let w;
  for (let attempt = 0; attempt < 5; attempt++) {
    w = await walk(request);
    if (w.totals.size === 1) return { ...w, total: [...w.totals][0] };
  }
  assert.fail(`totalCount kept changing within a walk: ${JSON.stringify([...w.totals])}`);
}

describe(`${COUNT} VMs in parallel on the Docker Engine`, { skip }, () => {
  before(async () => {
    await ensureTestImage(engine);
    d = await startBerthd({ backend: "docker" });
  });

  after(async () => {
    try {
      await Promise.all((await ourContainers()).map((c) => engine.remove(c.Id)));
    } finally {
      if (d && !d.exit) await d.kill();
    }
  });

  test(`${COUNT} CreateVm + BootVm in parallel all succeed`, async () => {
    const results = await Promise.all(
      IDS.map(async (id) => {
        const c = await ok("CreateVm", { vmId: id, customerId: "parallel", config: { cpu: { vcpuCount: 1 }, container: { image: TEST_IMAGE, command: ["sleep", "3600"] } } });
        const b = await ok("BootVm", { vmId: id });
        return { c, b };
      }),
    );
    results.forEach(({ c, b }, i) => {
      assert.deepEqual(c, { vmId: IDS[i], state: "VM_STATE_CREATED" });
      assert.deepEqual(b, { success: true, state: "VM_STATE_RUNNING" });
    });
    const cs = await ourContainers();
    assert.equal(cs.length, COUNT, `${COUNT} containers in the Engine: ${cs.map((c) => c.Names[0]).join(" ")}`);
    for (const c of cs) assert.equal(c.State, "running", `${c.Names[0]} is running`);
    const names = cs.map((c) => c.Names[0].replace(/^\//, "")).sort();
    assert.deepEqual(names, IDS.map((id) => `berth-vm-${id}`).sort(), "one container per VM, named after it");
  });

  test("ListVms lists all of them as RUNNING", async () => {
    const r = await ok("ListVms", { pageSize: 1000 });
    assert.ok(r.totalCount >= COUNT, `totalCount ${r.totalCount} counts at least ours`);
    assert.equal(r.totalCount, (r.vms || []).length, "totalCount is the number listed when all fit one page");
    assert.equal(r.nextPageToken, undefined, "everything fits one page of 1000");
    const ours = (r.vms || []).filter((v) => IDS.includes(v.vmId));
    assert.deepEqual(ours.map((v) => v.vmId).sort(), [...IDS].sort());
    for (const v of ours) {
      assert.equal(v.state, "VM_STATE_RUNNING", v.vmId);
      assert.equal(v.customerId, "parallel");
      assert.equal(v.vcpuCount, 1);
    }
  });

  test(`pageSize ${PAGE} walks all of them with nextPageToken, stateFilter RUNNING`, async () => {
    const { pages, vms, total } = await stableWalk({ stateFilter: ["VM_STATE_RUNNING"] });
    const ids = vms.map((v) => v.vmId);
    assert.equal(new Set(ids).size, ids.length, `no VM served twice: ${JSON.stringify(pages)}`);
    assert.equal(ids.filter((id) => IDS.includes(id)).length, COUNT, `each of ours served once: ${JSON.stringify(pages)}`);
    assert.equal(ids.length, total, "totalCount is the number of VMs the walk served");
    assert.ok(total >= COUNT);
    assert.equal(pages.length, Math.ceil(total / PAGE), `${total} VMs make ${Math.ceil(total / PAGE)} pages of ${PAGE}`);
    for (const v of vms) assert.equal(v.state, "VM_STATE_RUNNING", `filter holds: ${v.vmId}`);

    // The order is stable: page by page, ours come as in the one-page answer.
    const whole = await ok("ListVms", { stateFilter: ["VM_STATE_RUNNING"], pageSize: 1000 });
    const ours = (list) => list.filter((id) => IDS.includes(id));
    assert.deepEqual(ours(ids), ours(whole.vms.map((v) => v.vmId)));
  });

  test("pageSize without a filter walks the same VMs; a filter nothing of ours matches lists none of ours", async () => {
    const { vms, total } = await stableWalk({});
    assert.equal(vms.length, total);
    for (const id of IDS) assert.equal(vms.filter((v) => v.vmId === id).length, 1, `${id} walked once`);
    const others = await ok("ListVms", { stateFilter: ["VM_STATE_PAUSED", "VM_STATE_CREATED"], pageSize: 1000 });
    assert.ok(!(others.vms || []).some((v) => IDS.includes(v.vmId)), "none of ours is PAUSED or CREATED");
    for (const v of others.vms || []) assert.ok(["VM_STATE_PAUSED", "VM_STATE_CREATED"].includes(v.state), `filter holds: ${v.vmId}`);
  });

  test(`${COUNT} DeleteVm force=true in parallel; none left behind`, async () => {
    const results = await Promise.all(IDS.map((id) => ok("DeleteVm", { vmId: id, force: true })));
    for (const r of results) assert.deepEqual(r, { success: true });
    assert.deepEqual(await ourContainers(), [], "the Engine holds none of them");
    const r = await ok("ListVms", { pageSize: 1000 });
    assert.deepEqual((r.vms || []).filter((v) => IDS.includes(v.vmId)), [], "berthd lists none of them");
    assert.equal(r.totalCount || 0, (r.vms || []).length);
    for (const id of IDS) {
      const g = await rpc("GetVmInfo", { vmId: id });
      assert.equal(g.status, 404, `${id}: ${g.text}`);
    }
  });
});
