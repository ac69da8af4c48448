// A real image registry for tests: the distribution registry on 127.0.0.1
// with htpasswd (bcrypt) authentication, in a temporary directory, and the
// docker CLI to push a local image into it. The Engine pulls from loopback
// registries over plain HTTP without any configuration.

import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { waitFor } from "./wait.mjs";

const run = promisify(execFile);

/** Why no registry can run here, or undefined when one can. */
export async function registrySkipReason() {
  for (const [bin, args] of [
    ["docker-registry", ["--version"]],
    ["htpasswd", ["-h"]],
    ["docker", ["--version"]],
  ]) {
    try {
      await run(bin, args);
    } catch (err) {
      // htpasswd -h exits 1 after printing its usage: it is there.
      if (err.code === "ENOENT") return `${bin} is not installed (scripts/setup.sh installs it)`;
    }
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (closed again before it is returned). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export class Registry {
  constructor(dir, child, host, users) {
    this.dir = dir;
    this.child = child;
    this.host = host; // "127.0.0.1:PORT"
    this.users = users; // { name: password }
    this.log = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (s) => (this.log += s));
    child.stderr.on("data", (s) => (this.log += s));
    this.exited = new Promise((resolve) => child.on("exit", resolve));
  }

  /** How many blob downloads the registry served for repository `name`. */
  blobGets(name) {
    const re = new RegExp(`"GET /v2/${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/blobs/sha256:[0-9a-f]+ HTTP/1.1" 200`, "g");
    return (this.log.match(re) || []).length;
  }

  /** Tag local image `image` as HOST/repo:tag, push it with user's login,
   * then remove the tag and the login so a later pull is a real one.
   * dockerHost: the Engine that has the image (default: the CLI's). */
  async push(image, repoTag, user, { dockerHost } = {}) {
    const ref = `${this.host}/${repoTag}`;
    const config = mkdtempSync(path.join(tmpdir(), "berth-docker-config-"));
    const env = { ...process.env, DOCKER_CONFIG: config };
    if (dockerHost) env.DOCKER_HOST = dockerHost;
    try {
      await new Promise((resolve, reject) => {
        const login = spawn("docker", ["login", "-u", user, "--password-stdin", this.host], { env, stdio: ["pipe", "ignore", "pipe"] });
        let err = "";
        login.stderr.on("data", (s) => (err += s));
        login.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`docker login: ${err}`))));
        login.stdin.end(this.users[user]);
      });
      await run("docker", ["tag", image, ref], { env });
      await run("docker", ["push", ref], { env, timeout: 120000 });
      await run("docker", ["logout", this.host], { env });
      await run("docker", ["rmi", ref], { env });
    } finally {
      rmSync(config, { recursive: true, force: true });
    }
    return ref;
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      await this.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Start a registry that wants one of `users` ({ name: password }).
 * Resolves once /v2/ answers (401 without credentials).
 */
export async function startRegistry({ users = { tester: "s3cret-pass" } } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "berth-registry-"));
  const lines = [];
  for (const [name, pass] of Object.entries(users)) {
    const { stdout } = await run("htpasswd", ["-Bbn", name, pass]);
    lines.push(stdout.trim());
  }
  writeFileSync(path.join(dir, "htpasswd"), lines.join("\n") + "\n");
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = [
    "version: 0.1",
    "log:",
    "  level: info",
    "  accesslog:",
    "    disabled: false",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${path.join(dir, "data")}`,
    "http:",
    `  addr: ${host}`,
    "auth:",
    "  htpasswd:",
    "    realm: test",
    `    path: ${path.join(dir, "htpasswd")}`,
    "",
  ].join("\n");
  writeFileSync(path.join(dir, "config.yml"), config);
  const child = spawn("docker-registry", ["serve", path.join(dir, "config.yml")], { stdio: ["ignore", "pipe", "pipe"] });
  const reg = new Registry(dir, child, host, users);
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`registry exited: ${reg.log}`);
        try {
          const r = await fetch(`http://${host}/v2/`);
          return r.status === 401;
        } catch {
          return false;
        }
      },
      { timeoutMs: 15000, intervalMs: 100, what: "the registry to answer", describe: () => reg.log },
    );
  } catch (err) {
    await reg.stop();
    throw err;
  }
  return reg;
}
