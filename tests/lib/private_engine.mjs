// A private Docker Engine for tests that stop and start an Engine, which
// must never be the shared one: its own socket, data root, exec root,
// pidfile and bridge on a free 10.213.x.0/24 (never `--bridge none`, which
// deletes the host's docker0), no iptables changes, networks from a pool of
// its own (private_pool.mjs). start() and stop() may be called again and
// again with the same roots; teardown() undoes everything, whatever state it
// is in. The same Engine as survive_outage.test.mjs's, with live-restore a
// choice.

import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Engine } from "./engine.mjs";
import { waitFor } from "./wait.mjs";
import { freePool, poolConfig, removeNetworks, deletePoolLinks } from "./private_pool.mjs";

const run = promisify(execFile);
const DOCKERD = process.env.BERTH_DOCKERD || "dockerd";

/** Why a private dockerd cannot run here, or undefined. */
export function privateEngineSkipReason() {
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "a private dockerd needs root";
  return undefined;
}

/**
 * A second dockerd that lives in one temp dir and owns one bridge. start()
 * and stop() may be called again and again with the same roots; teardown()
 * undoes everything, whatever state it is in.
 */
export class PrivateEngine {
  /**
   * liveRestore: containers outlive a stopped dockerd (true), or the Engine
   * stops them and starts those whose restart policy says so when it starts
   * again (false), as on a host reboot.
   */
  constructor({ liveRestore = true, tag = "pe" } = {}) {
    this.liveRestore = liveRestore;
    this.tag = tag;
    this.dir = undefined;
    this.bridge = `${tag.slice(0, 2)}${randomBytes(4).toString("hex")}`; // <= 15 characters
    this.bridgeMade = false;
    this.child = undefined;
    this.exited = undefined;
    this.started = 0; // how many times it was started
  }

  get socket() {
    return path.join(this.dir, "docker.sock");
  }
  get logFile() {
    return path.join(this.dir, "dockerd.log");
  }
  get execRoot() {
    return path.join(this.dir, "exec");
  }

  logTail(n = 30) {
    try {
      return readFileSync(this.logFile, "utf8").split("\n").slice(-n).join("\n");
    } catch {
      return "(no dockerd log)";
    }
  }

  /** The temp dir, the config file and the bridge with a free 10.213.x.1/24. */
  async prepare() {
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
      throw new Error("a second dockerd needs root: run this test as root (it starts its own Engine and bridge)");
    }
    this.dir = mkdtempSync(path.join(tmpdir(), `berth-${this.tag}-`));
    this.pool = await freePool();
    writeFileSync(path.join(this.dir, "daemon.json"), poolConfig(this.pool));
    const { stdout } = await run("ip", ["-4", "-o", "addr", "show"]);
    let subnet;
    for (let tries = 0; tries < 64 && !subnet; tries++) {
      const x = 1 + Math.floor(Math.random() * 254);
      if (!stdout.includes(` 10.213.${x}.`)) subnet = `10.213.${x}`;
    }
    if (!subnet) throw new Error("no free 10.213.x.0/24 subnet for the test bridge");
    await run("ip", ["link", "add", this.bridge, "type", "bridge"]);
    this.bridgeMade = true;
    await run("ip", ["addr", "add", `${subnet}.1/24`, "dev", this.bridge]);
    await run("ip", ["link", "set", this.bridge, "up"]);
  }

  /** Start dockerd and wait until its socket answers /_ping. */
  async start({ timeoutMs = 30000 } = {}) {
    const args = [
      "--config-file", path.join(this.dir, "daemon.json"),
      "--host", `unix://${this.socket}`,
      "--data-root", path.join(this.dir, "data"),
      "--exec-root", this.execRoot,
      "--pidfile", path.join(this.dir, "docker.pid"),
      "--bridge", this.bridge,
      "--iptables=false",
      "--ip-masq=false",
    ];
    if (this.liveRestore) args.push("--live-restore");
    const log = openSync(this.logFile, "a");
    let spawnError;
    try {
      this.child = spawn(DOCKERD, args, { stdio: ["ignore", log, log] });
    } finally {
      closeSync(log);
    }
    this.started++;
    this.exited = undefined;
    const child = this.child;
    const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    child.on("error", (err) => {
      spawnError = err;
    });
    exited.then((e) => {
      if (this.child === child) this.exited = e;
    });
    this.exitPromise = exited;
    const engine = new Engine(this.socket);
    await waitFor(
      async () => {
        if (spawnError) throw new Error(`cannot run ${DOCKERD} (set BERTH_DOCKERD to its path): ${spawnError.message}`);
        if (this.exited) throw new Error(`the test's dockerd exited at start (${JSON.stringify(this.exited)}):\n${this.logTail()}`);
        try {
          const r = await engine.raw("GET", "/_ping", { versioned: false, timeoutMs: 1000 });
          return r.status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs, intervalMs: 50, what: `the test's dockerd to answer on ${this.socket}`, describe: () => this.logTail() },
    );
    await engine.negotiate();
    return engine;
  }

  get running() {
    return this.child !== undefined && this.exited === undefined;
  }

  /** SIGTERM dockerd and wait for it to exit (SIGKILL past the deadline, then fail). */
  async stop({ timeoutMs = 30000 } = {}) {
    if (!this.running) return this.exited;
    this.child.kill("SIGTERM");
    let timer;
    const late = new Promise((resolve) => {
      timer = setTimeout(() => resolve("late"), timeoutMs);
    });
    const r = await Promise.race([this.exitPromise, late]);
    clearTimeout(timer);
    if (r === "late") {
      this.child.kill("SIGKILL");
      await this.exitPromise;
      throw new Error(`the test's dockerd did not exit within ${timeoutMs} ms of SIGTERM:\n${this.logTail()}`);
    }
    return r;
  }

  /** The containerd dockerd started for itself, when its pidfile names a live one. */
  containerdPid() {
    for (const f of [path.join(this.execRoot, "containerd", "containerd.pid")]) {
      try {
        const pid = Number(readFileSync(f, "utf8").trim());
        if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(this.dir)) return pid;
      } catch {
        // no pidfile or no such process
      }
    }
    return undefined;
  }

  /** Mount points under the temp dir, deepest first. */
  mountsUnder() {
    let text = "";
    try {
      text = readFileSync("/proc/self/mountinfo", "utf8");
    } catch {
      return [];
    }
    const points = text
      .split("\n")
      .map((l) => l.split(" ")[4])
      .filter((p) => p && (p === this.dir || p.startsWith(`${this.dir}/`)))
      .map((p) => p.replace(/\\040/g, " "));
    return [...new Set(points)].sort((a, b) => b.length - a.length);
  }

  /** Undo everything: containers, dockerd, its containerd, mounts, bridge, dir. */
  async teardown() {
    const errors = [];
    const step = async (what, fn) => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err.message}`);
      }
    };
    if (this.dir && this.started > 0) {
      // Containers may outlive a stopped dockerd (live-restore): bring it back to remove them.
      await step("restart dockerd for cleanup", async () => {
        if (!this.running) await this.start();
      });
      await step("remove containers", async () => {
        const engine = new Engine(this.socket);
        await engine.negotiate();
        const all = await engine.listContainers([]);
        await Promise.all(all.map((c) => engine.remove(c.Id)));
        const left = await engine.listContainers([]);
        if (left.length) throw new Error(`still there: ${left.map((c) => c.Id).join(", ")}`);
      });
      await step("remove networks", async () => {
        const engine = new Engine(this.socket);
        await engine.negotiate();
        await removeNetworks(engine);
      });
      await step("stop dockerd", () => this.stop());
      await step("stop its containerd", async () => {
        const pid = this.containerdPid();
        if (pid === undefined) return;
        process.kill(pid, "SIGTERM");
        await waitFor(() => !existsSync(`/proc/${pid}`), { timeoutMs: 10000, what: `containerd ${pid} to exit` });
      });
    }
    if (this.dir) {
      await step("unmount", async () => {
        for (const p of this.mountsUnder()) await run("umount", [p]).catch(() => run("umount", ["-l", p]));
      });
    }
    if (this.pool) await step("delete the pool's interfaces", () => deletePoolLinks(this.pool));
    if (this.bridgeMade) {
      await step("delete the bridge", async () => {
        await run("ip", ["link", "del", this.bridge]);
        this.bridgeMade = false;
      });
    }
    if (this.dir) {
      await step("remove the temp dir", () => rmSync(this.dir, { recursive: true, force: true }));
    }
    if (errors.length) throw new Error(`teardown of the test's dockerd: ${errors.join("; ")}`);
  }
}
