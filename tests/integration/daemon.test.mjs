// The daemon around the RPCs (issue 2 and 3): a Connect-Timeout-Ms deadline
// bounds the Engine calls under it; SIGTERM stops accepting yet lets the
// request under way finish, and a clean one logs no warning; slow or idle
// clients cannot hold the server; and with no Engine at start berthd still
// serves, answering unavailable at once.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { rpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";

const [engine, engineWhy] = await connectEngine();
const skip = berthdSkipReason() || engineWhy;
const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const VM = "/metal.vmprovisioner.v1.VmService/";

// busybox sh as PID 1 ignores SIGTERM: a graceful stop waits out the grace
// period, so a ShutdownVm takes as long as timeoutSeconds says.
// Ignores SIGTERM (trap: with an init process the shell is no longer PID 1,
// which alone would have made it deaf).
const DEAF = { image: TEST_IMAGE, command: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"] };

async function removeOurs() {
  if (!engine) return;
  for (const c of await engine.listContainers(["berth.managed=true", "berth.kind=vm"])) {
    if ((c.Labels["berth.vm_id"] || "").endsWith(RUN)) await engine.remove(c.Id).catch(() => {});
  }
}

async function runningVm(d, id) {
  let r = await d.postJson(VM + "CreateVm", { vmId: id, config: { container: DEAF } });
  assert.equal(r.status, 200, r.text);
  r = await d.postJson(VM + "BootVm", { vmId: id });
  assert.equal(r.status, 200, r.text);
}

/** A TCP connection that is open (or rejects when it cannot be opened). */
function openSocket(address) {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const s = connect({ host, port: Number(port) }, () => resolve(s));
    s.once("error", reject);
  });
}

/** A keep-alive connection the server has accepted and answered once. */
async function heldConnection(address) {
  const sock = await openSocket(address);
  sock.on("error", () => {});
  await new Promise((resolve, reject) => {
    sock.once("data", resolve);
    sock.once("close", () => reject(new Error("closed before answering")));
    sock.write("GET /healthz HTTP/1.1\r\nHost: berthd\r\n\r\n");
  });
  return sock;
}

/** Resolves once the peer closed (or reset) the connection. */
function closedByPeer(sock) {
  return new Promise((resolve) => {
    if (sock.destroyed) return resolve();
    sock.once("close", resolve);
    sock.on("error", () => {});
    sock.resume();
  });
}

describe("daemon behaviour on the real Engine", { skip }, () => {
  before(async () => {
    await ensureTestImage(engine);
  });
  after(removeOurs);

  test("Connect-Timeout-Ms bounds the Engine calls under the handler", async (t) => {
    const d = await startBerthd({ backend: "docker" });
    t.after(() => d.kill());
    const id = `dl-${RUN}`;
    await runningVm(d, id);

    const started = Date.now();
    const r = await d.postJson(VM + "ShutdownVm", { vmId: id, timeoutSeconds: 30 }, { "Connect-Timeout-Ms": "800" });
    const took = Date.now() - started;
    assert.equal(r.status, 504, r.text);
    assert.equal(r.json.code, "deadline_exceeded");
    assert.ok(took < 5000, `answered after ${took} ms; the deadline was 800 ms`);

    const exit = await d.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, d.stderr);
  });

  test("SIGTERM lets the request under way finish and refuses new connections", async (t) => {
    const d = await startBerthd({ backend: "docker" });
    t.after(() => d.kill());
    const id = `term-${RUN}`;
    await runningVm(d, id);

    // A graceful stop of a container that ignores SIGTERM takes ~2 s.
    const slow = d.postJson(VM + "ShutdownVm", { vmId: id, timeoutSeconds: 2 });
    await waitFor(async () => {
      const m = await d.request({ method: "GET", path: "/metrics" });
      return /berth_rpc_in_flight\{procedure="[^"]*ShutdownVm"\} 1\b/.test(m.text);
    }, { what: "the ShutdownVm call to be under way" });
    d.child.kill("SIGTERM");
    await d.waitForLog(/msg=daemon\.stopping/);
    await assert.rejects(openSocket(d.address).then((s) => s.destroy()), "a new connection after SIGTERM is refused");

    const r = await slow;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.state, "VM_STATE_SHUTDOWN");
    const exit = await d.exited();
    assert.deepEqual(exit, { code: 0, signal: null }, d.stderr);
  });

  test("a clean SIGTERM with a running VM (event and stats streams open) logs no warning and exits 0", async (t) => {
    const d = await startBerthd({ backend: "docker", args: ["--metrics-interval", "1"] });
    t.after(() => d.kill());
    const id = `calm-${RUN}`;
    let r = await d.postJson(VM + "CreateVm", { vmId: id, config: { container: { image: TEST_IMAGE, command: ["sleep", "600"] } } });
    assert.equal(r.status, 200, r.text);
    r = await d.postJson(VM + "BootVm", { vmId: id });
    assert.equal(r.status, 200, r.text);
    // A sample means the collector's stats stream is open; the watcher
    // follows the Engine's events meanwhile.
    await waitFor(async () => {
      const i = await d.postJson(VM + "GetVmInfo", { vmId: id });
      return i.json && i.json.metrics && Number(i.json.metrics.sampledAtUnixMs) > 0;
    }, { timeoutMs: 10000, what: "a metrics sample of the VM" });
    const exit = await d.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, d.stderr);
    const loud = d.logLines().filter((l) => /\blevel=(warn|error)\b/.test(l));
    assert.deepEqual(loud, [], `warnings on a clean stop:\n${d.stderr}`);
    assert.ok(d.logLines().some((l) => /msg=daemon\.stopped\b/.test(l)), d.stderr);
  });

  test("a call waiting on a busy VM gives up at its deadline; past the grace period SIGTERM cuts Engine calls short", async (t) => {
    const d = await startBerthd({ backend: "docker", args: ["--shutdown-grace", "1"] });
    t.after(() => d.kill());
    const id = `busy-${RUN}`;
    await runningVm(d, id);

    // Holds the VM for up to 10 minutes: the container ignores SIGTERM.
    const slow = rpc(d, VM + "ShutdownVm", { vmId: id, timeoutSeconds: 600 }, { timeoutMs: 60000 }).then((r) => r.status, (e) => e.code || "error");
    await waitFor(async () => {
      const m = await d.request({ method: "GET", path: "/metrics" });
      return /berth_rpc_in_flight\{procedure="[^"]*ShutdownVm"\} 1\b/.test(m.text);
    }, { what: "the ShutdownVm call to be under way" });

    let started = Date.now();
    const r = await d.postJson(VM + "DeleteVm", { vmId: id, force: true }, { "Connect-Timeout-Ms": "1000" });
    assert.equal(r.status, 504, r.text);
    assert.equal(r.json.code, "deadline_exceeded");
    assert.match(r.json.message, /busy/);
    assert.ok(Date.now() - started < 3000, `DeleteVm answered after ${Date.now() - started} ms`);
    assert.equal((await engine.inspect(`berth-vm-${id}`)).State.Running, true, "the waiting DeleteVm did nothing");

    started = Date.now();
    const exit = await d.stop({ timeoutMs: 10000 });
    assert.deepEqual(exit, { code: 0, signal: null }, d.stderr);
    assert.ok(Date.now() - started < 6000, `exit took ${Date.now() - started} ms with a 1 s grace period`);
    const status = await slow;
    assert.notEqual(status, 200, "the cut ShutdownVm must not claim success");
  });

  test("no Engine at start: berthd serves, /readyz is 503, RPCs answer unavailable at once", async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), "berth-noengine-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const d = await startBerthd({ backend: "docker", args: ["--docker-socket", path.join(dir, "absent.sock")] });
    t.after(() => d.kill());

    assert.equal((await d.request({ method: "GET", path: "/healthz" })).status, 200);
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 503, {
      what: "/readyz to answer 503",
    });
    for (const [method, body] of [
      ["CreateVm", { vmId: `ne-${RUN}`, config: { container: DEAF } }],
      ["ListVms", {}],
      ["GetVmInfo", { vmId: `ne-${RUN}` }],
    ]) {
      const started = Date.now();
      const r = await d.postJson(VM + method, body);
      assert.equal(r.status, 503, `${method}: ${r.text}`);
      assert.equal(r.json.code, "unavailable");
      assert.ok(Date.now() - started < 1000, `${method} took ${Date.now() - started} ms`);
    }
    // Bad input is still named, whatever the Engine does.
    const bad = await d.postJson(VM + "CreateVm", { vmId: "-bad" });
    assert.equal(bad.status, 400);
    assert.match(bad.json.message, /vmId/);

    const exit = await d.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, d.stderr);
  });
});

describe("slow and idle clients", { skip: berthdSkipReason() }, () => {
  test("an idle connection is closed after --idle-timeout", async (t) => {
    const d = await startBerthd({ args: ["--idle-timeout", "1"] });
    t.after(() => d.kill());
    const sock = await openSocket(d.address);
    sock.write("POST /metal.vmprovisioner.v1.VmService/ListVms HTTP/1.1\r\nHost: x\r\n"); // never finished
    const started = Date.now();
    await Promise.race([
      closedByPeer(sock),
      new Promise((_, reject) => setTimeout(() => reject(new Error("the server kept an idle connection 10 s")), 10000)),
    ]);
    assert.ok(Date.now() - started >= 500, "closed too early for a 1 s idle timeout");
    assert.equal((await d.postJson(VM + "ListVms", {})).status, 200, "still serving");
    assert.deepEqual(await d.stop(), { code: 0, signal: null }, d.stderr);
  });

  test("past --max-connections new connections are turned away, and served again once room is made", async (t) => {
    const d = await startBerthd({ args: ["--max-connections", "2", "--idle-timeout", "30"] });
    t.after(() => d.kill());
    const held = [await heldConnection(d.address), await heldConnection(d.address)];
    const third = await d.postJson(VM + "ListVms", {}).then(
      (r) => r.status,
      (e) => e.code || "error",
    );
    assert.notEqual(third, 200, "a third connection was served while two were held");
    for (const s of held) s.destroy();
    await waitFor(async () => {
      try {
        return (await d.postJson(VM + "ListVms", {})).status === 200;
      } catch {
        return false;
      }
    }, { what: "a request to be served after the held connections closed" });
    assert.deepEqual(await d.stop(), { code: 0, signal: null }, d.stderr);
  });
});
