// A private Docker Engine with a one-node Swarm of its own, for tests of the
// swarm backend: its own socket, data root, exec root, pidfile and bridge on
// a free 10.213.x.0/24 (never `--bridge none`, never the shared Engine), no
// iptables changes, then `swarm init --advertise-addr` on the bridge's
// address. Host-mode published ports answer on that address. teardown()
// undoes everything, whatever state it is in.

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
const DOCKER = process.env.BERTH_DOCKER_CLI || "docker";

/** Why a private Swarm cannot run here, or undefined. */
export function swarmSkipReason() {
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "a private dockerd needs root";
  return undefined;
}

export class PrivateSwarm {
  constructor() {
    this.dir = undefined;
    this.bridge = `bs${randomBytes(4).toString("hex")}`; // <= 15 characters
    this.bridgeMade = false;
    this.child = undefined;
    this.exited = undefined;
    this.address = undefined; // the bridge's address: the node's
  }

  get socket() {
    return path.join(this.dir, "docker.sock");
  }
  get host() {
    return `unix://${this.socket}`;
  }
  get logFile() {
    return path.join(this.dir, "dockerd.log");
  }

  logTail(n = 30) {
    try {
      return readFileSync(this.logFile, "utf8").split("\n").slice(-n).join("\n");
    } catch {
      return "(no dockerd log)";
    }
  }

  /** The docker CLI against this Engine. */
  docker(args, opts = {}) {
    return run(DOCKER, ["-H", this.host, ...args], { maxBuffer: 1 << 26, ...opts });
  }

  /** Bridge, dockerd, swarm init; resolves an Engine client of it. */
  async start({ timeoutMs = 60000 } = {}) {
    this.dir = mkdtempSync(path.join(tmpdir(), "berth-swarm-"));
    this.pool = await freePool();
    writeFileSync(path.join(this.dir, "daemon.json"), poolConfig(this.pool));
    const { stdout } = await run("ip", ["-4", "-o", "addr", "show"]);
    let subnet;
    for (let tries = 0; tries < 64 && !subnet; tries++) {
      const x = 1 + Math.floor(Math.random() * 254);
      if (!stdout.includes(` 10.213.${x}.`)) subnet = `10.213.${x}`;
    }
    if (!subnet) throw new Error("no free 10.213.x.0/24 subnet for the test bridge");
    this.address = `${subnet}.1`;
    await run("ip", ["link", "add", this.bridge, "type", "bridge"]);
    this.bridgeMade = true;
    await run("ip", ["addr", "add", `${this.address}/24`, "dev", this.bridge]);
    await run("ip", ["link", "set", this.bridge, "up"]);

    const args = [
      "--config-file", path.join(this.dir, "daemon.json"),
      "--host", this.host,
      "--data-root", path.join(this.dir, "data"),
      "--exec-root", path.join(this.dir, "exec"),
      "--pidfile", path.join(this.dir, "docker.pid"),
      "--bridge", this.bridge,
      "--iptables=false",
      "--ip-masq=false",
    ];
    const log = openSync(this.logFile, "a");
    let spawnError;
    try {
      // Tasks use the images loaded into this Engine: no registry lookups.
      this.child = spawn(DOCKERD, args, { stdio: ["ignore", log, log], env: { ...process.env, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: "1" } });
    } finally {
      closeSync(log);
    }
    const child = this.child;
    this.exitPromise = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    this.exitPromise.then((e) => {
      this.exited = e;
    });
    child.on("error", (err) => {
      spawnError = err;
    });
    const engine = new Engine(this.socket);
    await waitFor(
      async () => {
        if (spawnError) throw new Error(`cannot run ${DOCKERD}: ${spawnError.message}`);
        if (this.exited) throw new Error(`the test's dockerd exited at start:\n${this.logTail()}`);
        try {
          return (await engine.raw("GET", "/_ping", { versioned: false, timeoutMs: 1000 })).status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs, intervalMs: 50, what: `the test's dockerd to answer on ${this.socket}`, describe: () => this.logTail() },
    );
    await engine.negotiate();
    await this.docker(["swarm", "init", "--advertise-addr", this.address]);
    this.swarmed = true;
    return engine;
  }

  /** Build the test image in this Engine with image.sh (no registry, no other Engine). */
  async buildTestImage(imageSh) {
    await run("sh", [imageSh], { env: { ...process.env, DOCKER_HOST: this.host, BERTH_DOCKER_SOCKET: this.socket } });
  }

  /** Leave the swarm, remove containers, stop dockerd and its containerd, unmount, delete bridge and dir. */
  async teardown() {
    const errors = [];
    const step = async (what, fn) => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err.message}`);
      }
    };
    if (this.child && !this.exited) {
      if (this.swarmed) await step("leave the swarm", () => this.docker(["swarm", "leave", "--force"]));
      await step("remove containers", async () => {
        const engine = new Engine(this.socket);
        await engine.negotiate();
        const all = await engine.listContainers([]);
        await Promise.all(all.map((c) => engine.remove(c.Id)));
      });
      await step("remove networks", async () => {
        const engine = new Engine(this.socket);
        await engine.negotiate();
        await removeNetworks(engine);
      });
      await step("stop dockerd", async () => {
        this.child.kill("SIGTERM");
        let timer;
        const late = new Promise((resolve) => (timer = setTimeout(() => resolve("late"), 30000)));
        const r = await Promise.race([this.exitPromise, late]);
        clearTimeout(timer);
        if (r === "late") {
          this.child.kill("SIGKILL");
          await this.exitPromise;
          throw new Error("dockerd did not exit within 30 s of SIGTERM");
        }
      });
      await step("stop its containerd", async () => {
        let pid;
        try {
          pid = Number(readFileSync(path.join(this.dir, "exec", "containerd", "containerd.pid"), "utf8").trim());
          if (!(pid > 0 && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(this.dir))) pid = undefined;
        } catch {
          pid = undefined;
        }
        if (pid === undefined) return;
        process.kill(pid, "SIGTERM");
        await waitFor(() => !existsSync(`/proc/${pid}`), { timeoutMs: 10000, what: `containerd ${pid} to exit` });
      });
    }
    if (this.dir) {
      await step("unmount", async () => {
        const text = readFileSync("/proc/self/mountinfo", "utf8");
        const points = [...new Set(text.split("\n").map((l) => l.split(" ")[4]).filter((p) => p && (p === this.dir || p.startsWith(`${this.dir}/`))))];
        points.sort((a, b) => b.length - a.length);
        for (const p of points) await run("umount", [p]).catch(() => run("umount", ["-l", p]));
      });
    }
    if (this.pool) await step("delete the pool's interfaces", () => deletePoolLinks(this.pool));
    if (this.bridgeMade) {
      await step("delete the bridge", async () => {
        await run("ip", ["link", "del", this.bridge]);
        this.bridgeMade = false;
      });
    }
    if (this.dir) await step("remove the temp dir", () => rmSync(this.dir, { recursive: true, force: true }));
    if (errors.length) throw new Error(`teardown of the test's swarm: ${errors.join("; ")}`);
  }
}
