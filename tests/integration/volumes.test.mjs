// ctest-labels: docker
// Named volumes on the real Engine: made as berth-<vmId>-<name> with
// berthd's labels, mounted by name (never a host path), read-only when
// asked; a file written survives ShutdownVm/BootVm and, with keep, a
// DeleteVm and a CreateVm of the same id; without keep the volume is gone
// after DeleteVm. A volume of that name that berthd did not make (no
// labels of its own, or a local volume binding a host path) is refused and
// left as it was; bad names, duplicates and paths are invalid_argument
// naming the field, with nothing made.
//
// What the VM sees is read from its own output (GetLogs): at each start it
// prints what its volumes hold, then writes to them.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE } from "../lib/proto.mjs";

const berthdSkip = berthdSkipReason();
const [engine, engineWhy] = berthdSkip ? [undefined, undefined] : await connectEngine();
const skip = berthdSkip || engineWhy;

const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const TEST_LABEL = "berth.test";
const VM = `/${VM_SERVICE}`;
const LOGS = "/berth.v1.LogService";

// Prints what /data and /scratch hold and whether /ro takes a write, then
// writes to both and idles until SIGTERM.
const SHOW_AND_WRITE = [
  "sh",
  "-c",
  'echo "data=$(cat /data/note 2>/dev/null) scratch=$(cat /scratch/note 2>/dev/null) ro=$(touch /ro/x 2>/dev/null && echo writable || echo refused)"; ' +
    "echo here >/data/note; echo here >/scratch/note; trap 'exit 0' TERM; while true; do sleep 1; done",
];
const VOLUMES = [
  { name: "data", mountPath: "/data", keep: true },
  { name: "scratch", mountPath: "/scratch" },
  { name: "ro", mountPath: "/ro", readOnly: true },
];

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

/** The VM's printed lines once there are n of them. */
async function linesOf(vmId, n) {
  let last;
  const r = await waitFor(
    async () => {
      last = await ok(`${LOGS}/GetLogs`, { vmId });
      return (last.entries || []).length >= n ? last : false;
    },
    { timeoutMs: 15000, intervalMs: 100, what: `${n} lines of ${vmId}`, describe: () => JSON.stringify(last) },
  );
  return r.entries.map((e) => e.line);
}

/** A volume's inspect, or undefined when there is none. */
async function volume(name) {
  const r = await engine.call("GET", `/volumes/${encodeURIComponent(name)}`, { ok: [404] });
  return r.status === 404 ? undefined : r.body;
}

async function removeVolume(name) {
  await engine.call("DELETE", `/volumes/${encodeURIComponent(name)}`, { query: { force: "1" }, ok: [404] });
}

async function cleanup() {
  const all = await engine.listContainers(["berth.managed=true"]);
  const mine = all.filter((c) => Object.values(c.Labels || {}).some((v) => String(v).endsWith(RUN)));
  await Promise.all(mine.map((c) => engine.remove(c.Id)));
  const vols = (await engine.call("GET", "/volumes")).body.Volumes || [];
  for (const v of vols) if (v.Name.includes(RUN)) await removeVolume(v.Name);
}

describe("named volumes on the Docker Engine", { skip }, () => {
  before(async () => {
    await ensureTestImage(engine);
    d = await startBerthd({ backend: "docker" });
  });

  after(async () => {
    try {
      await cleanup();
    } finally {
      if (d && !d.exit) await d.kill();
    }
  });

  test("labelled volumes mounted by name; files survive a reboot and, when kept, the VM", async () => {
    const vmId = `vol-${RUN}`;
    const name = (v) => `berth-${vmId}-${v}`;
    await ok(`${VM}/CreateVm`, { vmId, config: { container: { image: TEST_IMAGE, command: SHOW_AND_WRITE, volumes: VOLUMES } } });
    for (const v of ["data", "scratch", "ro"]) {
      const vol = await volume(name(v));
      assert.ok(vol, `${name(v)} made`);
      assert.equal(vol.Driver, "local");
      assert.deepEqual(vol.Labels, { "berth.managed": "true", "berth.instance": "default", "berth.kind": "vm", "berth.vm_id": vmId });
    }
    const c = await engine.inspect(`berth-vm-${vmId}`);
    assert.deepEqual(
      c.HostConfig.Mounts,
      [
        { Type: "volume", Source: name("data"), Target: "/data" },
        { Type: "volume", Source: name("scratch"), Target: "/scratch" },
        { Type: "volume", Source: name("ro"), Target: "/ro", ReadOnly: true },
      ],
    );
    assert.equal(c.HostConfig.Binds, null);
    assert.ok(c.Mounts.every((m) => m.Type === "volume"), JSON.stringify(c.Mounts));

    await ok(`${VM}/BootVm`, { vmId });
    assert.deepEqual(await linesOf(vmId, 1), ["data= scratch= ro=refused"]);
    await ok(`${VM}/ShutdownVm`, { vmId, timeoutSeconds: 5 });
    await ok(`${VM}/BootVm`, { vmId });
    assert.deepEqual((await linesOf(vmId, 2))[1], "data=here scratch=here ro=refused", "both files survive ShutdownVm/BootVm");

    // DeleteVm: the volumes without keep go, the kept one stays.
    await ok(`${VM}/DeleteVm`, { vmId, force: true });
    assert.equal(await volume(name("scratch")), undefined, "scratch removed with the VM");
    assert.equal(await volume(name("ro")), undefined, "ro removed with the VM");
    assert.ok(await volume(name("data")), "the kept volume stays");

    // A new VM of the same id mounts the kept volume again.
    await ok(`${VM}/CreateVm`, { vmId, config: { container: { image: TEST_IMAGE, command: SHOW_AND_WRITE, volumes: VOLUMES } } });
    await ok(`${VM}/BootVm`, { vmId });
    assert.deepEqual(await linesOf(vmId, 1), ["data=here scratch= ro=refused"], "the kept file is there, the others are new");
    await ok(`${VM}/DeleteVm`, { vmId, force: true });
    assert.ok(await volume(name("data")), "kept again");
    await removeVolume(name("data"));
  });

  test("a volume of that name that berthd did not make is refused and left alone", async () => {
    const vmId = `vol-foreign-${RUN}`;
    const vname = `berth-${vmId}-data`;
    const cfg = { container: { image: TEST_IMAGE, command: ["true"], volumes: [{ name: "data", mountPath: "/data" }] } };
    // Not labelled as berthd's.
    await engine.call("POST", "/volumes/create", { body: { Name: vname, Labels: { [TEST_LABEL]: RUN } } });
    let e = await fails(`${VM}/CreateVm`, { vmId, config: cfg }, "failed_precondition");
    assert.match(e.message, new RegExp(vname));
    assert.deepEqual((await volume(vname)).Labels, { [TEST_LABEL]: RUN }, "untouched");
    assert.equal(await engine.inspect(`berth-vm-${vmId}`), undefined);
    await fails(`${VM}/GetVmInfo`, { vmId }, "not_found");
    await removeVolume(vname);

    // Labelled as berthd's, but a local volume that binds a host path.
    await engine.call("POST", "/volumes/create", {
      body: {
        Name: vname,
        Driver: "local",
        DriverOpts: { type: "none", o: "bind", device: "/etc" },
        Labels: { "berth.managed": "true", "berth.instance": "default", "berth.kind": "vm", "berth.vm_id": vmId },
      },
    });
    e = await fails(`${VM}/CreateVm`, { vmId, config: cfg }, "failed_precondition");
    assert.match(e.message, /driver options/);
    assert.equal(await engine.inspect(`berth-vm-${vmId}`), undefined);
    assert.ok(await volume(vname), "left as it was");
    await removeVolume(vname);
  });

  test("bad names, duplicates and paths are refused naming the field; nothing is made", async () => {
    const vmId = `vol-bad-${RUN}`;
    const good = { name: "data", mountPath: "/data" };
    const rows = [
      [{ name: "Data", mountPath: "/b" }, /volumes\[1\]\.name/],
      [{ name: "-b", mountPath: "/b" }, /volumes\[1\]\.name/],
      [{ name: "b/c", mountPath: "/b" }, /volumes\[1\]\.name/],
      [{ name: "b".repeat(64), mountPath: "/b" }, /volumes\[1\]\.name/],
      [{ name: "", mountPath: "/b" }, /volumes\[1\]\.name/],
      [{ name: "data", mountPath: "/b" }, /volumes\[1\]\.name/],
      [{ name: "b", mountPath: "/data" }, /volumes\[1\]\.mountPath/],
      [{ name: "b", mountPath: "relative/path" }, /volumes\[1\]\.mountPath/],
      [{ name: "b", mountPath: "/" }, /volumes\[1\]\.mountPath/],
      [{ name: "b", mountPath: "/srv/../etc" }, /volumes\[1\]\.mountPath/],
      [{ name: "b" }, /volumes\[1\]\.mountPath/],
    ];
    for (const [bad, field] of rows) {
      const e = await fails(`${VM}/CreateVm`, { vmId, config: { container: { image: TEST_IMAGE, volumes: [good, bad] } } }, "invalid_argument");
      assert.match(e.message, field, JSON.stringify(bad));
    }
    assert.equal(await engine.inspect(`berth-vm-${vmId}`), undefined);
    assert.equal(await volume(`berth-${vmId}-data`), undefined, "no volume made for a refused VM");
  });
});
