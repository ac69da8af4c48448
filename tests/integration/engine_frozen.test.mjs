// An Engine that accepts connections but never answers (a frozen or wedged
// dockerd) must not hang berthd: calls under way end as unavailable within a
// few seconds, new ones fail at once, /readyz says 503, registry reads go on,
// and berthd serves again by itself once the Engine answers. The Engine is
// the shared one, reached through a proxy on a socket of the test's own that
// the test can freeze: while frozen, it forwards nothing either way and
// leaves new connections unanswered.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect } from "node:net";
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
// Ignores SIGTERM (a trap: under the init process the shell is not PID 1):
// a graceful stop waits out its grace.
const DEAF = { image: TEST_IMAGE, command: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"] };

/** A unix socket proxy to the Engine that can be frozen and thawed. */
class FreezableProxy {
  constructor(target, socketPath) {
    this.target = target;
    this.socketPath = socketPath;
    this.frozen = false;
    this.pairs = new Set(); // [client, upstream]
    this.server = createServer((client) => this.accept(client));
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.socketPath, resolve);
    });
  }

  accept(client) {
    const upstream = connect(this.target);
    const pair = [client, upstream];
    this.pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
    if (this.frozen) this.pause(pair);
  }

  pause([client, upstream]) {
    client.pause();
    upstream.pause();
    client.unpipe(upstream);
    upstream.unpipe(client);
  }

  freeze() {
    this.frozen = true;
    for (const p of this.pairs) this.pause(p);
  }

  thaw() {
    this.frozen = false;
    for (const [client, upstream] of this.pairs) {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      upstream.resume();
    }
  }

  close() {
    for (const [client, upstream] of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    return new Promise((resolve) => this.server.close(resolve));
  }
}

describe("a frozen Engine", { skip }, () => {
  let dir, proxy, d;
  const id = `frozen-${RUN}`;

  before(async () => {
    await ensureTestImage(engine);
    dir = mkdtempSync(path.join(tmpdir(), "berth-frozen-"));
    proxy = new FreezableProxy(engine.socketPath, path.join(dir, "engine.sock"));
    await proxy.listen();
    d = await startBerthd({ backend: "docker", args: ["--docker-socket", proxy.socketPath] });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      what: "/readyz 200 through the proxy",
    });
  });

  after(async () => {
    if (proxy) proxy.thaw();
    if (d) await d.kill();
    for (const c of await engine.listContainers([`berth.vm_id=${id}`])) await engine.remove(c.Id);
    if (proxy) await proxy.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("calls end as unavailable instead of hanging; berthd recovers once it answers", async () => {
    let r = await d.postJson(VM + "CreateVm", { vmId: id, config: { container: DEAF } });
    assert.equal(r.status, 200, r.text);
    r = await d.postJson(VM + "BootVm", { vmId: id });
    assert.equal(r.status, 200, r.text);

    proxy.freeze();
    // No client deadline: only berthd's own watch on its Engine can end it.
    const started = Date.now();
    const stuck = await rpc(d, VM + "ShutdownVm", { vmId: id, timeoutSeconds: 60 }, { timeoutMs: 30000 });
    const took = Date.now() - started;
    assert.equal(stuck.status, 503, stuck.text);
    assert.equal(stuck.json.code, "unavailable");
    assert.ok(took < 6000, `ShutdownVm on a frozen Engine answered after ${took} ms`);

    // Now that berthd knows, a call needing the Engine fails at once ...
    const t0 = Date.now();
    r = await d.postJson(VM + "PauseVm", { vmId: id });
    assert.equal(r.status, 503, r.text);
    assert.ok(Date.now() - t0 < 1000, `PauseVm took ${Date.now() - t0} ms`);
    // ... while reads from the registry go on, and /readyz says so.
    r = await d.postJson(VM + "GetVmInfo", { vmId: id });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.state, "VM_STATE_RUNNING");
    assert.equal((await d.request({ method: "GET", path: "/readyz" })).status, 503);

    proxy.thaw();
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 5000,
      what: "/readyz 200 once the Engine answers again",
    });
    // /readyz pings the Engine itself; the backend's probe clears its
    // "not answering" mark at its next beat, so the first call may still
    // be refused at once. It goes through within a probe interval or two.
    await waitFor(
      async () => {
        r = await d.postJson(VM + "ShutdownVm", { vmId: id, force: true });
        return r.status === 200 || (r.status === 503 && r.json?.code === "unavailable" ? false : assert.fail(r.text));
      },
      { timeoutMs: 5000, intervalMs: 100, what: "ShutdownVm once the Engine answers again", describe: () => r.text },
    );
    assert.equal(r.json.state, "VM_STATE_SHUTDOWN");
    r = await d.postJson(VM + "DeleteVm", { vmId: id });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(await d.stop(), { code: 0, signal: null }, d.stderr);
  });
});
