// Twenty VMs at once against the real Docker Engine: created and booted in
// parallel, all listed (also page by page), all force-deleted in parallel,
// and none left behind in the Engine.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";
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
let baseline; // VMs the daemon already knew (rebuilt from the Engine) before ours

function rpc(method, body) {
  return d.request({
    method: "POST",
    path: `/${VM_SERVICE}/${method}`,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    timeoutMs: 120000,
  });
}

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
    assert.ok(pages.length <= COUNT + 10, "paging ends");
  }
  return { pages, vms, totals };
}

describe(`${COUNT} VMs in parallel on the Docker Engine`, { skip }, () => {
  before(async () => {
    await ensureTestImage(engine);
    d = await startBerthd({ backend: "docker" });
    baseline = (await ok("ListVms", { pageSize: 1000 })).vms || [];
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
    assert.equal(r.totalCount, baseline.length + COUNT);
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
    const { pages, vms, totals } = await walk({ stateFilter: ["VM_STATE_RUNNING"] });
    const running = baseline.filter((v) => v.state === "VM_STATE_RUNNING").length + COUNT;
    const ids = vms.map((v) => v.vmId);
    assert.equal(new Set(ids).size, ids.length, `no VM served twice: ${JSON.stringify(pages)}`);
    assert.equal(ids.length, running, "every RUNNING VM served once");
    assert.deepEqual([...totals], [running], "totalCount is the number of matches on every page");
    assert.equal(pages.length, Math.ceil(running / PAGE));
    for (const id of IDS) assert.ok(ids.includes(id), `${id} walked`);
    for (const v of vms) assert.equal(v.state, "VM_STATE_RUNNING", `filter holds: ${v.vmId}`);

    // The order is stable: the pages put together are the one-page answer.
    const whole = await ok("ListVms", { stateFilter: ["VM_STATE_RUNNING"], pageSize: 1000 });
    assert.deepEqual(ids, whole.vms.map((v) => v.vmId));
  });

  test("pageSize without a filter walks the same VMs; a filter nothing matches lists none", async () => {
    const { vms, totals } = await walk({});
    assert.deepEqual([...totals], [baseline.length + COUNT]);
    for (const id of IDS) assert.ok(vms.some((v) => v.vmId === id), `${id} walked`);
    const paused = await ok("ListVms", { stateFilter: ["VM_STATE_PAUSED", "VM_STATE_CREATED"], pageSize: 1000 });
    assert.ok(!(paused.vms || []).some((v) => IDS.includes(v.vmId)), "none of ours is PAUSED or CREATED");
  });

  test(`${COUNT} DeleteVm force=true in parallel; none left behind`, async () => {
    const results = await Promise.all(IDS.map((id) => ok("DeleteVm", { vmId: id, force: true })));
    for (const r of results) assert.deepEqual(r, { success: true });
    assert.deepEqual(await ourContainers(), [], "the Engine holds none of them");
    const r = await ok("ListVms", { pageSize: 1000 });
    assert.deepEqual((r.vms || []).filter((v) => IDS.includes(v.vmId)), [], "berthd lists none of them");
    assert.equal(r.totalCount || 0, baseline.length);
    for (const id of IDS) {
      const g = await rpc("GetVmInfo", { vmId: id });
      assert.equal(g.status, 404, `${id}: ${g.text}`);
    }
  });
});
