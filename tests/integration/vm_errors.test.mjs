// Every VmService error of issue 3 against the real Docker Engine: unknown
// ids, calls that do not fit the state, bad input, an image nobody has, and
// containers berthd does not own, which it must neither see nor touch. Each
// failed call is also checked for what it must not have done (no container
// made, no registry entry, no state change).

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
const vmId = (tag) => `err-${tag}-${RUN}`;
const SLEEPER = { image: TEST_IMAGE, command: ["sleep", "3600"] };
const MISSING_IMAGE = "berth-test/does-not-exist:1";
const HTTP_STATUS = { invalid_argument: 400, failed_precondition: 400, not_found: 404, already_exists: 409, unavailable: 503 };
const LIFECYCLE = [
  ["BootVm", {}],
  ["ShutdownVm", {}],
  ["ShutdownVm", { force: true }],
  ["PauseVm", {}],
  ["ResumeVm", {}],
  ["RebootVm", {}],
  ["RebootVm", { force: true }],
  ["DeleteVm", {}],
  ["DeleteVm", { force: true }],
  ["GetVmInfo", {}],
];

let d; // the daemon under test
const unmanaged = []; // ids of containers made behind berthd's back
const tried = new Set(); // every vmId this file asked CreateVm for

// --- helpers -----------------------------------------------------------------

const vmRpc = serviceRpc(() => d, VM_SERVICE, { timeoutMs: 60000 });

/** vmRpc, remembering every VM id a CreateVm tried (for the cleanup). */
const rpc = (method, body, opts) => {
  if (method === "CreateVm" && body && typeof body.vmId === "string") tried.add(body.vmId);
  return vmRpc(method, body, opts);
};

async function ok(method, body) {
  const r = await rpc(method, body);
  assert.equal(r.status, 200, `${method} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  return r.json;
}

/** A call that must fail with `code` (and its HTTP status), message matching `re`. */
async function fails(method, body, code, re) {
  const r = await rpc(method, body);
  const where = `${method} ${JSON.stringify(body)} -> ${r.status} ${r.text}`;
  assert.ok(r.json && typeof r.json === "object", `error body is JSON: ${where}`);
  assert.equal(r.json.code, code, where);
  assert.equal(r.status, HTTP_STATUS[code], `HTTP status of ${code}: ${where}`);
  if (re) assert.match(r.json.message || "", re, `message: ${where}`);
  return r.json;
}

async function stateOf(id) {
  return (await ok("GetVmInfo", { vmId: id })).state;
}

async function listedIds() {
  return ((await ok("ListVms", { pageSize: 1000 })).vms || []).map((v) => v.vmId);
}

/** berthd answers /healthz and its process is alive. */
async function assertDaemonAlive() {
  assert.equal(d.exit, undefined, `berthd exited: ${JSON.stringify(d.exit)}\n${d.stderr}`);
  const r = await d.request({ method: "GET", path: "/healthz" });
  assert.equal(r.status, 200);
}

/** Names of the Engine's containers whose name contains `part`. */
async function containersNamed(part) {
  const all = await engine.listContainers([]);
  return all.filter((c) => (c.Names || []).some((n) => n.includes(part))).map((c) => c.Names[0]);
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function cleanup() {
  const all = await engine.listContainers(["berth.managed=true"]);
  const mine = all.filter((c) => {
    const id = String((c.Labels || {})["berth.vm_id"] || "");
    return id.endsWith(RUN) || tried.has(id);
  });
  await Promise.all([...mine.map((c) => engine.remove(c.Id)), ...unmanaged.map((id) => engine.remove(id))]);
}

// --- the suite ----------------------------------------------------------------

describe("VmService errors on the Docker Engine", { skip }, () => {
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

  describe("unknown id", () => {
    for (const [method, extra] of LIFECYCLE) {
      test(`${method} ${JSON.stringify(extra)} of an unknown id -> not_found naming it`, async () => {
        const id = vmId("nobody");
        await fails(method, { vmId: id, ...extra }, "not_found", new RegExp(`'${escapeRe(id)}'`));
      });
    }

    test("an empty vmId in a lifecycle call -> invalid_argument naming vmId", async () => {
      for (const [method] of LIFECYCLE) await fails(method, { vmId: "" }, "invalid_argument", /vmId/);
    });
  });

  describe("calls that do not fit the state -> failed_precondition naming the state", () => {
    const id = vmId("fsm");
    let containerId;

    /** Each call fails naming `state`, and neither berthd nor the Engine changed. */
    async function refusedIn(state, calls, engineStatus) {
      for (const [method, extra] of calls) {
        await fails(method, { vmId: id, ...extra }, "failed_precondition", new RegExp(`'${escapeRe(id)}' is ${state}\\b`));
        assert.equal(await stateOf(id), `VM_STATE_${state}`, `${method} in ${state} changed nothing in berthd`);
        const c = await engine.inspect(containerId);
        assert.ok(c, `${method} in ${state} left the container`);
        assert.equal(c.State.Status, engineStatus, `${method} in ${state} changed nothing in the Engine`);
      }
    }

    before(async () => {
      await ok("CreateVm", { vmId: id, config: { container: SLEEPER } });
      containerId = (await engine.inspect(`berth-vm-${id}`)).Id;
    });

    test("CREATED: PauseVm, ResumeVm, ShutdownVm, RebootVm", async () => {
      await refusedIn(
        "CREATED",
        [["PauseVm", {}], ["ResumeVm", {}], ["ShutdownVm", {}], ["ShutdownVm", { force: true }], ["RebootVm", {}]],
        "created",
      );
    });

    test("RUNNING: ResumeVm, BootVm, DeleteVm without force", async () => {
      await ok("BootVm", { vmId: id });
      await refusedIn("RUNNING", [["ResumeVm", {}], ["BootVm", {}], ["DeleteVm", {}], ["DeleteVm", { force: false }]], "running");
    });

    test("PAUSED: PauseVm, BootVm, ShutdownVm, RebootVm, DeleteVm without force", async () => {
      await ok("PauseVm", { vmId: id });
      await refusedIn("PAUSED", [["PauseVm", {}], ["BootVm", {}], ["ShutdownVm", {}], ["RebootVm", {}], ["DeleteVm", {}]], "paused");
      await ok("ResumeVm", { vmId: id });
    });

    test("SHUTDOWN: ShutdownVm, PauseVm, ResumeVm, RebootVm", async () => {
      await ok("ShutdownVm", { vmId: id, force: true });
      await refusedIn("SHUTDOWN", [["ShutdownVm", {}], ["PauseVm", {}], ["ResumeVm", {}], ["RebootVm", {}]], "exited");
      assert.deepEqual(await ok("DeleteVm", { vmId: id }), { success: true });
      assert.equal(await engine.inspect(containerId), undefined);
    });
  });

  describe("bad input", () => {
    const noImage = [
      { description: "no config at all", config: undefined },
      { description: "an empty config", config: {} },
      { description: "a container without image", config: { container: { command: ["sleep", "1"] } } },
      { description: "an empty docker_image", config: { metadata: { docker_image: "" } } },
    ];
    for (const row of noImage) {
      test(`missing image (${row.description}) -> invalid_argument naming the field`, async () => {
        const id = vmId("noimg");
        const body = { vmId: id };
        if (row.config !== undefined) body.config = row.config;
        await fails("CreateVm", body, "invalid_argument", /config\.container\.image/);
        await fails("GetVmInfo", { vmId: id }, "not_found");
        assert.deepEqual(await containersNamed(`berth-vm-${id}`), []);
      });
    }

    test("an image the Engine lacks and cannot pull -> an error, and nothing left behind", async () => {
      const id = vmId("pull");
      const r = await rpc("CreateVm", { vmId: id, config: { container: { image: MISSING_IMAGE } } });
      const where = `${r.status} ${r.text}`;
      assert.notEqual(r.status, 200, where);
      assert.ok(r.json && ["not_found", "unavailable"].includes(r.json.code), `not_found (registry said no) or unavailable (registry unreachable): ${where}`);
      assert.equal(r.status, HTTP_STATUS[r.json.code], where);
      assert.match(r.json.message, new RegExp(escapeRe(MISSING_IMAGE)), `the message names the image: ${where}`);
      await assertDaemonAlive();
      assert.deepEqual(await containersNamed(`berth-vm-${id}`), [], "no container");
      await fails("GetVmInfo", { vmId: id }, "not_found");
      assert.ok(!(await listedIds()).includes(id), "not listed");
      // No registry entry left: the same id is free for a good create.
      await ok("CreateVm", { vmId: id, config: { container: SLEEPER } });
      assert.deepEqual(await ok("DeleteVm", { vmId: id }), { success: true });
    });

    const badIds = [
      { description: "64 characters", id: `a${"b".repeat(63 - RUN.length)}${RUN}` },
      { description: "a space", id: `web 1-${RUN}` },
      { description: "a slash", id: `web/1-${RUN}` },
      { description: "a colon", id: `web:1-${RUN}` },
      { description: "a non-ASCII letter", id: `wéb-1-${RUN}` },
      { description: "a newline", id: `web\n1-${RUN}` },
      { description: "a leading '-'", id: `-web-1-${RUN}` },
      { description: "a leading '.'", id: `.web-1-${RUN}` },
      { description: "a leading '_'", id: `_web-1-${RUN}` },
      { description: "a leading '..'", id: `..${RUN}` },
    ];
    for (const row of badIds) {
      test(`invalid vmId (${row.description}) -> invalid_argument naming vmId, no container`, async () => {
        await fails("CreateVm", { vmId: row.id, config: { container: SLEEPER } }, "invalid_argument", /vmId/);
        assert.ok(!(await listedIds()).includes(row.id));
      });
    }

    test("63 characters of [a-zA-Z0-9_.-] starting with a digit is a valid vmId", async () => {
      const id = `9Z_.-${"x".repeat(58 - RUN.length)}${RUN}`;
      assert.equal(id.length, 63);
      assert.deepEqual(await ok("CreateVm", { vmId: id, config: { container: SLEEPER } }), { vmId: id, state: "VM_STATE_CREATED" });
      assert.ok(await engine.inspect(`berth-vm-${id}`), "its container exists");
      assert.deepEqual(await ok("DeleteVm", { vmId: id }), { success: true });
    });

    test("an empty vmId is generated (a UUID) and names a real container", async () => {
      const r = await ok("CreateVm", { config: { container: SLEEPER } });
      assert.match(r.vmId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, `generated id: ${r.vmId}`);
      assert.equal(r.state, "VM_STATE_CREATED");
      const c = await engine.inspect(`berth-vm-${r.vmId}`);
      try {
        assert.ok(c, "its container exists");
        assert.equal(c.Config.Labels["berth.vm_id"], r.vmId);
        const again = await ok("CreateVm", { config: { container: SLEEPER } });
        assert.notEqual(again.vmId, r.vmId, "two generated ids differ");
        await ok("DeleteVm", { vmId: again.vmId });
        assert.deepEqual(await ok("DeleteVm", { vmId: r.vmId }), { success: true });
      } finally {
        // Generated ids do not end in RUN: remove by name whatever happened.
        await engine.remove(`berth-vm-${r.vmId}`);
      }
    });

    test("a duplicate vmId -> already_exists, and the first VM is untouched", async () => {
      const id = vmId("dup");
      await ok("CreateVm", { vmId: id, config: { container: SLEEPER } });
      await ok("BootVm", { vmId: id });
      const before = await engine.inspect(`berth-vm-${id}`);
      await fails("CreateVm", { vmId: id, config: { container: { image: TEST_IMAGE, command: ["sleep", "5"] } } }, "already_exists", new RegExp(`'${escapeRe(id)}'`));
      const after = await engine.inspect(`berth-vm-${id}`);
      assert.equal(after.Id, before.Id, "same container");
      assert.equal(after.State.StartedAt, before.State.StartedAt, "not restarted");
      assert.equal(after.State.Running, true);
      assert.deepEqual(after.Config.Cmd, SLEEPER.command, "its config is the first one");
      assert.equal(await stateOf(id), "VM_STATE_RUNNING");
      await ok("DeleteVm", { vmId: id, force: true });
    });

    const badFields = [
      { description: "ShutdownVm timeoutSeconds -1", method: "ShutdownVm", body: { timeoutSeconds: -1 }, field: /timeoutSeconds/ },
      { description: "ShutdownVm timeoutSeconds over an hour", method: "ShutdownVm", body: { timeoutSeconds: 2147483647 }, field: /timeoutSeconds/ },
      { description: "ListVms pageSize -1", method: "ListVms", body: { pageSize: -1 }, field: /pageSize/ },
      { description: "DeleteVm with an id no VM can have", method: "DeleteVm", body: { vmId: "../../etc", force: true }, field: /vmId/ },
      { description: "GetVmInfo with an id of 64 characters", method: "GetVmInfo", body: { vmId: "a".repeat(64) }, field: /vmId/ },
      { description: "ListVms stateFilter with a number that names no state", method: "ListVms", body: { stateFilter: [99] }, field: /stateFilter/ },
      { description: "ListVms pageToken not issued", method: "ListVms", body: { pageToken: "not a token!" }, field: /pageToken/ },
      { description: "a port above 65535", method: "CreateVm", body: { config: { container: { ...SLEEPER, ports: [{ containerPort: 70000 }] } } }, field: /containerPort/ },
      { description: "a protocol other than tcp/udp", method: "CreateVm", body: { config: { container: { ...SLEEPER, ports: [{ containerPort: 80, protocol: "sctp" }] } } }, field: /protocol/ },
      { description: "exposed_ports not a port list", method: "CreateVm", body: { config: { metadata: { docker_image: TEST_IMAGE, exposed_ports: "http" } } }, field: /exposed_ports/ },
      { description: "env_vars without '='", method: "CreateVm", body: { config: { metadata: { docker_image: TEST_IMAGE, env_vars: "JUSTANAME" } } }, field: /env_vars/ },
    ];
    for (const row of badFields) {
      test(`${row.description} -> invalid_argument naming the field`, async () => {
        const id = vmId("field");
        const body = row.method === "ListVms" ? row.body : { vmId: id, ...row.body };
        await fails(row.method, body, "invalid_argument", row.field);
        if (row.method === "CreateVm") assert.deepEqual(await containersNamed(`berth-vm-${id}`), []);
      });
    }

    const negative = [
      { description: "vcpuCount -1", config: { cpu: { vcpuCount: -1 } }, field: /config\.cpu\.vcpuCount/ },
      { description: "sizeBytes -1", config: { memory: { sizeBytes: "-1" } }, field: /config\.memory\.sizeBytes/ },
      { description: "sizeBytes int64 min", config: { memory: { sizeBytes: "-9223372036854775808" } }, field: /config\.memory\.sizeBytes/ },
    ];
    for (const row of negative) {
      test(`negative ${row.description} -> invalid_argument naming the field, nothing made`, async () => {
        const id = vmId("neg");
        await fails("CreateVm", { vmId: id, config: { ...row.config, container: SLEEPER } }, "invalid_argument", row.field);
        await fails("GetVmInfo", { vmId: id }, "not_found");
        assert.deepEqual(await containersNamed(`berth-vm-${id}`), []);
      });
    }
  });

  describe("containers berthd does not own", () => {
    const named = vmId("unm"); // its container is berth-vm-<named>
    const lookalike = vmId("look"); // labelled like ours but berth.managed missing
    const c = {}; // name -> { id, name, startedAt }

    before(async () => {
      const mk = async (key, name, labels = {}) => {
        const cid = await engine.createContainer({ image: TEST_IMAGE, cmd: ["sleep", "3600"], name, labels });
        unmanaged.push(cid);
        await engine.start(cid);
        const i = await engine.inspect(cid);
        c[key] = { id: cid, name: i.Name.replace(/^\//, ""), startedAt: i.State.StartedAt };
      };
      await mk("named", `berth-vm-${named}`);
      await mk("random", undefined); // the Engine picks a name
      await mk("lookalike", `berth-vm-${lookalike}`, { "berth.kind": "vm", "berth.vm_id": lookalike, "berth.managed": "false" });
    });

    /** Every id by which a client might try to reach those containers. */
    function candidateIds() {
      return [named, `berth-vm-${named}`, c.random.name, c.random.id.slice(0, 12), lookalike, c.lookalike.id.slice(0, 12)];
    }

    test("every lifecycle call naming them answers not_found", async () => {
      for (const id of candidateIds()) {
        for (const [method, extra] of [...LIFECYCLE, ["PauseVm", {}], ["DeleteVm", { force: true }]]) {
          await fails(method, { vmId: id, ...extra }, "not_found");
        }
      }
    });

    test("GET of GetVmInfo naming them answers not_found", async () => {
      for (const id of candidateIds()) {
        const msg = encodeURIComponent(JSON.stringify({ vmId: id }));
        const r = await d.request({ method: "GET", path: `/${VM_SERVICE}/GetVmInfo?encoding=json&message=${msg}` });
        assert.equal(r.status, 404, `${id}: ${r.text}`);
        assert.equal(r.json.code, "not_found");
      }
    });

    test("CreateVm over their names answers already_exists and removes nothing", async () => {
      await fails("CreateVm", { vmId: named, config: { container: SLEEPER } }, "already_exists", new RegExp(escapeRe(`berth-vm-${named}`)));
      await fails("CreateVm", { vmId: lookalike, config: { container: SLEEPER } }, "already_exists");
      // Still nothing to find afterwards: the failed creates left no entry.
      await fails("GetVmInfo", { vmId: named }, "not_found");
      await fails("DeleteVm", { vmId: named, force: true }, "not_found");
    });

    test("ListVms does not show them, not even after a restart of berthd", async () => {
      const ids = candidateIds();
      assert.deepEqual((await listedIds()).filter((x) => ids.includes(x)), []);
      // A second daemon rebuilds its registry from the Engine now that the
      // containers exist.
      const d2 = await startBerthd({ backend: "docker" });
      try {
        const r = await d2.postJson(`/${VM_SERVICE}/ListVms`, { pageSize: 1000 });
        assert.equal(r.status, 200, r.text);
        const listed = (r.json.vms || []).map((v) => v.vmId);
        assert.deepEqual(listed.filter((x) => ids.includes(x)), [], "the rebuild skipped them");
        const g = await d2.postJson(`/${VM_SERVICE}/GetVmInfo`, { vmId: lookalike });
        assert.equal(g.status, 404, g.text);
      } finally {
        const exit = await d2.stop();
        assert.equal(exit.code, 0, `second berthd exits cleanly: ${JSON.stringify(exit)}`);
      }
    });

    test("they are all still running, untouched", async () => {
      for (const [key, want] of Object.entries(c)) {
        const i = await engine.inspect(want.id);
        assert.ok(i, `${key} container still exists`);
        assert.equal(i.State.Running, true, `${key} still running: ${JSON.stringify(i.State)}`);
        assert.equal(i.State.Paused, false, `${key} not paused`);
        assert.equal(i.State.StartedAt, want.startedAt, `${key} never restarted`);
        assert.equal(i.Name, `/${want.name}`, `${key} not renamed`);
        assert.equal(i.Config.Labels["berth.managed"], key === "lookalike" ? "false" : undefined, `${key} labels unchanged`);
      }
      await assertDaemonAlive();
    });
  });
});
