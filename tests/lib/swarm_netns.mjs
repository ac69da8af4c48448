// A two-node Docker Swarm of a test's own, each node a private dockerd in a
// network namespace of its own (ENGINES.md): one bridge in the root
// namespace on a free 10.215.x.0/24 (.1), a veth pair per namespace into it
// (.11 the manager, .12 the worker), each dockerd started with
// `nsenter --net=` (not `ip netns exec`, which remounts /sys) with its own
// socket, data root, exec root, pidfile and address pool, iptables kept in
// its namespace; one rule in DOCKER-USER lets the bridge's traffic through
// the root namespace's FORWARD chain. The manager runs `swarm init`, the
// worker joins with the join token. teardown() undoes everything, whatever
// state it is in: the swarm left, containers, dockerds and their
// containerds stopped, mounts, namespaces, veths, the bridge, the iptables
// rule and the directory gone.

import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, existsSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Engine } from "./engine.mjs";
import { waitFor } from "./wait.mjs";
import { freePool, poolConfig, removeNetworks } from "./private_pool.mjs";

const run = promisify(execFile);
const DOCKERD = process.env.BERTH_DOCKERD || "dockerd";
const DOCKER = process.env.BERTH_DOCKER_CLI || "docker";

/** Why a two-node swarm cannot run here, or undefined. */
export async function netnsSkipReason() {
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "network namespaces and dockerd need root";
  for (const [bin, args] of [
    ["nsenter", ["--version"]],
    ["ip", ["-V"]],
    ["iptables", ["--version"]],
  ]) {
    try {
      await run(bin, args);
    } catch (err) {
      if (err.code === "ENOENT") return `${bin} is not installed`;
    }
  }
  try {
    await run("iptables", ["-S", "DOCKER-USER"]);
  } catch {
    return "no DOCKER-USER chain (the shared Engine manages iptables here)";
  }
  return undefined;
}

/** One dockerd in its namespace. */
class Node {
  constructor(swarm, role, address) {
    this.swarm = swarm;
    this.role = role; // "manager" | "worker"
    this.address = address;
    this.netns = `${swarm.tag}-${role[0]}`;
    this.veth = `${swarm.tag}${role[0]}`; // root side; <= 15 characters
    this.peer = `${swarm.tag}${role[0]}p`;
    this.dir = path.join(swarm.dir, role);
    this.child = undefined;
    this.exited = undefined;
    this.nsMade = false;
    this.vethMade = false;
    this.id = undefined; // its swarm node id
  }

  get socket() {
    return path.join(this.dir, "d.sock");
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

  docker(args, opts = {}) {
    return run(DOCKER, ["-H", this.host, ...args], { maxBuffer: 1 << 26, ...opts });
  }

  /** The namespace, its veth into the bridge, its address. */
  async plumb() {
    await run("ip", ["netns", "add", this.netns]);
    this.nsMade = true;
    await run("ip", ["link", "add", this.veth, "type", "veth", "peer", "name", this.peer]);
    this.vethMade = true;
    await run("ip", ["link", "set", this.peer, "netns", this.netns]);
    await run("ip", ["link", "set", this.veth, "master", this.swarm.bridge]);
    await run("ip", ["link", "set", this.veth, "up"]);
    await run("ip", ["-n", this.netns, "addr", "add", `${this.address}/24`, "dev", this.peer]);
    await run("ip", ["-n", this.netns, "link", "set", this.peer, "up"]);
    await run("ip", ["-n", this.netns, "link", "set", "lo", "up"]);
  }

  /** dockerd in the namespace; resolves an Engine client once it answers. */
  async start({ timeoutMs = 60000 } = {}) {
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(path.join(this.dir, "daemon.json"), poolConfig(this.swarm.pool));
    const args = [
      `--net=/var/run/netns/${this.netns}`,
      DOCKERD,
      "--config-file", path.join(this.dir, "daemon.json"),
      "--host", this.host,
      "--data-root", path.join(this.dir, "data"),
      "--exec-root", path.join(this.dir, "exec"),
      "--pidfile", path.join(this.dir, "d.pid"),
    ];
    const log = openSync(this.logFile, "a");
    let spawnError;
    try {
      // Tasks use the images loaded into each Engine: no registry lookups.
      this.child = spawn("nsenter", args, { stdio: ["ignore", log, log], env: { ...process.env, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: "1" } });
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
        if (spawnError) throw new Error(`cannot run nsenter ${DOCKERD}: ${spawnError.message}`);
        if (this.exited) throw new Error(`the ${this.role}'s dockerd exited at start:\n${this.logTail()}`);
        try {
          return (await engine.raw("GET", "/_ping", { versioned: false, timeoutMs: 1000 })).status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs, intervalMs: 50, what: `the ${this.role}'s dockerd to answer on ${this.socket}`, describe: () => this.logTail() },
    );
    await engine.negotiate();
    this.engine = engine;
    return engine;
  }

  /** Leave the swarm, remove containers and networks, stop dockerd and its containerd. */
  async stop(step) {
    if (!this.child || this.exited) return;
    if (this.swarmed) await step(`${this.role}: leave the swarm`, () => this.docker(["swarm", "leave", "--force"]));
    await step(`${this.role}: remove containers`, async () => {
      const all = await this.engine.listContainers([]);
      await Promise.all(all.map((c) => this.engine.remove(c.Id)));
    });
    await step(`${this.role}: remove networks`, () => removeNetworks(this.engine));
    await step(`${this.role}: stop dockerd`, async () => {
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
    await step(`${this.role}: stop its containerd`, async () => {
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

  /** The namespace (and with it the veth pair). */
  async unplumb(step) {
    if (this.nsMade) {
      await step(`${this.role}: delete the namespace`, async () => {
        await run("ip", ["netns", "del", this.netns]);
        this.nsMade = false;
      });
    }
    if (this.vethMade) {
      await step(`${this.role}: delete the veth`, async () => {
        const { stdout } = await run("ip", ["-o", "link", "show"]);
        if (stdout.includes(` ${this.veth}@`) || stdout.includes(` ${this.veth}:`)) await run("ip", ["link", "del", this.veth]);
        this.vethMade = false;
      });
    }
  }
}

export class TwoNodeSwarm {
  constructor() {
    this.tag = `bn${randomBytes(3).toString("hex")}`; // 8 characters
    this.bridge = `${this.tag}br`;
    this.dir = undefined;
    this.bridgeMade = false;
    this.ruleMade = false;
    this.manager = undefined;
    this.worker = undefined;
  }

  /** Bridge, rule, namespaces, both dockerds, swarm init and join; resolves the manager's Engine. */
  async start() {
    this.dir = mkdtempSync(path.join(tmpdir(), "berth-swarm2-"));
    this.pool = await freePool();
    const { stdout } = await run("ip", ["-4", "-o", "addr", "show"]);
    let subnet;
    for (let tries = 0; tries < 64 && !subnet; tries++) {
      const x = 1 + Math.floor(Math.random() * 254);
      if (!stdout.includes(` 10.215.${x}.`)) subnet = `10.215.${x}`;
    }
    if (!subnet) throw new Error("no free 10.215.x.0/24 subnet for the test bridge");
    this.gateway = `${subnet}.1`;
    await run("ip", ["link", "add", this.bridge, "type", "bridge"]);
    this.bridgeMade = true;
    await run("ip", ["addr", "add", `${this.gateway}/24`, "dev", this.bridge]);
    await run("ip", ["link", "set", this.bridge, "up"]);
    // Bridged traffic passes the root namespace's FORWARD chain, whose
    // policy the shared Engine set to DROP.
    await run("iptables", ["-I", "DOCKER-USER", "-i", this.bridge, "-o", this.bridge, "-j", "ACCEPT"]);
    this.ruleMade = true;
    this.manager = new Node(this, "manager", `${subnet}.11`);
    this.worker = new Node(this, "worker", `${subnet}.12`);
    await this.manager.plumb();
    await this.worker.plumb();
    await Promise.all([this.manager.start(), this.worker.start()]);

    await this.manager.docker(["swarm", "init", "--advertise-addr", this.manager.address, "--listen-addr", `${this.manager.address}:2377`]);
    this.manager.swarmed = true;
    const { stdout: token } = await this.manager.docker(["swarm", "join-token", "-q", "worker"]);
    await this.worker.docker(["swarm", "join", "--token", token.trim(), "--advertise-addr", this.worker.address, `${this.manager.address}:2377`]);
    this.worker.swarmed = true;
    for (const n of [this.manager, this.worker]) n.id = (await n.engine.call("GET", "/info")).body.Swarm.NodeID;
    await waitFor(
      async () => {
        const nodes = (await this.manager.engine.call("GET", "/nodes")).body;
        return nodes.length === 2 && nodes.every((n) => n.Status.State === "ready");
      },
      { timeoutMs: 30000, intervalMs: 200, what: "both nodes ready in the swarm" },
    );
    return this.manager.engine;
  }

  /** Build the test image in both Engines with image.sh. */
  async buildTestImage(imageSh) {
    await Promise.all(
      [this.manager, this.worker].map((n) => run("sh", [imageSh], { env: { ...process.env, DOCKER_HOST: n.host, BERTH_DOCKER_SOCKET: n.socket } })),
    );
  }

  async teardown() {
    const errors = [];
    const step = async (what, fn) => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err.message}`);
      }
    };
    // The worker leaves first, so the manager's own leaving finds no peer to wait for.
    for (const n of [this.worker, this.manager]) if (n) await n.stop(step);
    if (this.dir) {
      await step("unmount", async () => {
        const text = readFileSync("/proc/self/mountinfo", "utf8");
        const points = [...new Set(text.split("\n").map((l) => l.split(" ")[4]).filter((p) => p && (p === this.dir || p.startsWith(`${this.dir}/`))))];
        points.sort((a, b) => b.length - a.length);
        for (const p of points) await run("umount", [p]).catch(() => run("umount", ["-l", p]));
      });
    }
    for (const n of [this.worker, this.manager]) if (n) await n.unplumb(step);
    if (this.ruleMade) {
      await step("delete the DOCKER-USER rule", async () => {
        await run("iptables", ["-D", "DOCKER-USER", "-i", this.bridge, "-o", this.bridge, "-j", "ACCEPT"]);
        this.ruleMade = false;
      });
    }
    if (this.bridgeMade) {
      await step("delete the bridge", async () => {
        await run("ip", ["link", "del", this.bridge]);
        this.bridgeMade = false;
      });
    }
    if (this.dir) await step("remove the temp dir", () => rmSync(this.dir, { recursive: true, force: true }));
    if (errors.length) throw new Error(`teardown of the test's two-node swarm: ${errors.join("; ")}`);
  }
}
