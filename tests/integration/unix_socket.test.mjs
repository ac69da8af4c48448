// ctest-labels: auth
// The unix socket listener (--listen unix:PATH) of the real berthd (memory
// backend): --socket-mode and --socket-group on the socket, the peer's
// uid/pid as the caller, a regular file at PATH never replaced, a stale
// socket replaced and a live one left to its owner; and the safe default for
// TCP: no non-loopback listener without auth unless --insecure-listen.

import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { statSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { berthdSkipReason } from "../lib/berthd.mjs";
import { tempDir, removeDir, spawnBerthd, call, runBerthd } from "../lib/secure.mjs";

const skip = berthdSkipReason();
const LIST = "/metal.vmprovisioner.v1.VmService/ListVms";

/** A group other than ours, by name and id, or undefined. */
function otherGroup() {
  for (const name of ["daemon", "nogroup", "users"]) {
    try {
      const line = execFileSync("getent", ["group", name], { encoding: "utf8" }).trim();
      const gid = Number(line.split(":")[2]);
      if (gid !== process.getgid()) return { name, gid };
    } catch {
      // not on this system
    }
  }
  return undefined;
}

describe("unix socket listener", { skip }, () => {
  const dir = tempDir("unix");
  after(() => removeDir(dir));

  test("default mode 0660; the peer's uid and pid are the caller", async () => {
    const sock = path.join(dir, "default.sock");
    const d = await spawnBerthd(["--listen", `unix:${sock}`]);
    try {
      assert.equal(d.address, `unix:${sock}`);
      const st = statSync(sock);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o660);
      const r = await call({ socketPath: sock }, { path: LIST, body: {} });
      assert.equal(r.status, 200, r.text);
      await d.waitForLog(new RegExp(`msg=rpc .*caller="unix:uid=${process.getuid()},pid=${process.pid}"`));
    } finally {
      assert.equal((await d.stop()).code, 0, d.stderr);
    }
  });

  test("--socket-mode and --socket-group are set on the socket", async () => {
    const g = otherGroup();
    const sock = path.join(dir, "group.sock");
    const args = ["--listen", `unix:${sock}`, "--socket-mode", "0600"];
    if (g) args.push("--socket-group", g.name);
    const d = await spawnBerthd(args);
    try {
      const st = statSync(sock);
      assert.equal(st.mode & 0o777, 0o600);
      if (g) assert.equal(st.gid, g.gid);
    } finally {
      assert.equal((await d.stop()).code, 0, d.stderr);
    }
    if (g) {
      const d2 = await spawnBerthd(["--listen", `unix:${sock}`, "--socket-group", String(g.gid)]);
      try {
        assert.equal(statSync(sock).gid, g.gid);
      } finally {
        assert.equal((await d2.stop()).code, 0, d2.stderr);
      }
    }
  });

  test("an unknown group refuses to start", async () => {
    const sock = path.join(dir, "nogroup.sock");
    await assert.rejects(spawnBerthd(["--listen", `unix:${sock}`, "--socket-group", "no-such-group-berth"], { timeoutMs: 5000 }), /socket-group/);
  });

  test("a regular file at the path is never replaced", async () => {
    const file = path.join(dir, "precious");
    writeFileSync(file, "keep me\n");
    await assert.rejects(spawnBerthd(["--listen", `unix:${file}`], { timeoutMs: 5000 }), /not a socket/);
    assert.equal(readFileSync(file, "utf8"), "keep me\n");
  });

  test("a stale socket is replaced; a live one is left to its owner", async () => {
    const sock = path.join(dir, "stale.sock");
    // A live socket: another process accepts on it.
    const srv = net.createServer();
    await new Promise((res) => srv.listen(sock, res));
    await assert.rejects(spawnBerthd(["--listen", `unix:${sock}`], { timeoutMs: 5000 }), /another process accepts/);
    await new Promise((res) => srv.close(res));
    // A stale one: its daemon was killed and left it behind.
    const killed = await spawnBerthd(["--listen", `unix:${sock}`]);
    await killed.kill();
    assert.ok(statSync(sock).isSocket());
    const d = await spawnBerthd(["--listen", `unix:${sock}`]);
    try {
      const r = await call({ socketPath: sock }, { method: "GET", path: "/healthz" });
      assert.equal(r.status, 200);
    } finally {
      assert.equal((await d.stop()).code, 0, d.stderr);
    }
  });
});

describe("non-loopback TCP listener", { skip }, () => {
  test("refused without tokens or mTLS", () => {
    const r = runBerthd(["--backend", "memory", "--listen", "0.0.0.0:0"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /not a loopback address.*--insecure-listen/);
  });

  test("--insecure-listen starts it, with a warning at every start", async () => {
    for (let i = 0; i < 2; i++) {
      const d = await spawnBerthd(["--listen", "0.0.0.0:0", "--insecure-listen"]);
      try {
        const line = d.logLines().find((l) => /msg=server\.insecure_listen/.test(l));
        assert.ok(line, d.stderr);
        assert.match(line, /^ts=\S+ level=warn /, "not a warning");
      } finally {
        assert.equal((await d.stop()).code, 0, d.stderr);
      }
    }
  });

  test("a loopback listener draws no such warning", async () => {
    const d = await spawnBerthd(["--listen", "127.0.0.1:0"]);
    try {
      assert.ok(!/server\.insecure_listen/.test(d.stderr));
    } finally {
      assert.equal((await d.stop()).code, 0, d.stderr);
    }
  });

  test("a token file allows it", async () => {
    const dir = tempDir("nonloop");
    try {
      const file = path.join(dir, "tokens");
      writeFileSync(file, "t0ken-for-nonloopback\n");
      const d = await spawnBerthd(["--listen", "0.0.0.0:0", "--auth-token-file", file]);
      try {
        assert.ok(!/server\.insecure_listen/.test(d.stderr));
      } finally {
        assert.equal((await d.stop()).code, 0, d.stderr);
      }
    } finally {
      removeDir(dir);
    }
  });
});
