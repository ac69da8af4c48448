// A tiny Docker Engine API client for tests: node:http over the unix socket,
// API version negotiated from GET /version. Tests use it to look behind
// berthd's back (which containers exist, in which state) and to clean up.

import { request as httpRequest } from "node:http";
import { existsSync } from "node:fs";
import { waitFor } from "./wait.mjs";

export { waitFor };

/** The Engine socket: $BERTH_DOCKER_SOCKET, else unix:// $DOCKER_HOST, else the default. */
export function engineSocketPath() {
  if (process.env.BERTH_DOCKER_SOCKET) return process.env.BERTH_DOCKER_SOCKET;
  const dh = process.env.DOCKER_HOST;
  if (dh && dh.startsWith("unix://")) return dh.slice("unix://".length);
  return "/var/run/docker.sock";
}

export class EngineError extends Error {
  constructor(method, path, status, body) {
    super(`engine ${method} ${path}: HTTP ${status}: ${typeof body === "string" ? body : JSON.stringify(body)}`);
    this.status = status;
    this.body = body;
  }
}

export class Engine {
  constructor(socketPath = engineSocketPath()) {
    this.socketPath = socketPath;
    this.prefix = ""; // "/v1.41" once negotiated
    this.version = undefined;
  }

  /** One request; resolves { status, body } (body parsed as JSON when it is JSON). */
  raw(method, path, { body, query, headers = {}, timeoutMs = 30000, versioned = true } = {}) {
    let p = (versioned ? this.prefix : "") + path;
    if (query) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v === undefined) continue;
        qs.set(k, typeof v === "string" ? v : JSON.stringify(v));
      }
      const s = qs.toString();
      if (s) p += `?${s}`;
    }
    let payload;
    const hdrs = { ...headers };
    if (body !== undefined) {
      payload = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
      if (!hdrs["Content-Type"]) hdrs["Content-Type"] = "application/json";
      hdrs["Content-Length"] = String(payload.length);
    }
    return new Promise((resolve, reject) => {
      const req = httpRequest({ socketPath: this.socketPath, method, path: p, headers: hdrs }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed = text;
          if ((res.headers["content-type"] || "").includes("json") && text.length > 0) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = text;
            }
          }
          resolve({ status: res.statusCode, body: parsed });
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`engine ${method} ${p}: no answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  /** Like raw() but throws EngineError unless the status is 2xx (or in `ok`). */
  async call(method, path, opts = {}) {
    const r = await this.raw(method, path, opts);
    const ok = opts.ok || [];
    if ((r.status < 200 || r.status > 299) && !ok.includes(r.status)) {
      throw new EngineError(method, path, r.status, r.body);
    }
    return r;
  }

  /** GET /version (unversioned) and use the Engine's own API version from then on. */
  async negotiate() {
    const r = await this.call("GET", "/version", { versioned: false, timeoutMs: 5000 });
    this.version = r.body;
    this.prefix = `/v${r.body.ApiVersion}`;
    return r.body;
  }

  /** Containers (stopped ones too) carrying every given label (`k` or `k=v`). */
  async listContainers(labels = []) {
    const filters = { label: Array.isArray(labels) ? labels : Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
    const r = await this.call("GET", "/containers/json", { query: { all: "1", filters } });
    return r.body;
  }

  /** Inspect a container; undefined when it does not exist. */
  async inspect(id) {
    const r = await this.call("GET", `/containers/${encodeURIComponent(id)}/json`, { ok: [404] });
    return r.status === 404 ? undefined : r.body;
  }

  /** Create a container: { image, cmd, labels, name, env }. Resolves its id. */
  async createContainer({ image, cmd, labels = {}, name, env } = {}) {
    const body = { Image: image, Labels: labels };
    if (cmd) body.Cmd = cmd;
    if (env) body.Env = env;
    const r = await this.call("POST", "/containers/create", { body, query: { name } });
    return r.body.Id;
  }

  async start(id) {
    await this.call("POST", `/containers/${encodeURIComponent(id)}/start`, { ok: [304] });
  }

  async pause(id) {
    await this.call("POST", `/containers/${encodeURIComponent(id)}/pause`);
  }

  async unpause(id) {
    await this.call("POST", `/containers/${encodeURIComponent(id)}/unpause`);
  }

  async kill(id, signal = "SIGKILL") {
    await this.call("POST", `/containers/${encodeURIComponent(id)}/kill`, { query: { signal } });
  }

  /** Remove (force by default); a container that is already gone is fine. */
  async remove(id, { force = true } = {}) {
    await this.call("DELETE", `/containers/${encodeURIComponent(id)}`, { query: { force: force ? "1" : "0", v: "1" }, ok: [404] });
  }

  /** Remove berthd's networks (berth.managed) whose name contains `part`: for a test that removed its containers itself. */
  async removeManagedNetworks(part) {
    const r = await this.call("GET", "/networks", { query: { filters: { label: ["berth.managed=true"] } } });
    for (const n of r.body) {
      if (n.Name.includes(part)) await this.call("DELETE", `/networks/${n.Id}`, { ok: [404, 403, 409] });
    }
  }

  /** Whether an image reference exists locally. */
  async imageExists(ref) {
    const r = await this.call("GET", `/images/${encodeURIComponent(ref)}/json`, { ok: [404] });
    return r.status !== 404;
  }

  /** Wait until inspect(id) satisfies pred (given undefined once it is gone). */
  async waitForContainer(id, pred, { timeoutMs = 20000, what } = {}) {
    let last;
    return waitFor(
      async () => {
        last = await this.inspect(id);
        return pred(last) ? last || true : false;
      },
      { timeoutMs, intervalMs: 100, what: what || `container ${id} to reach the expected state`, describe: () => `last state: ${JSON.stringify(last && last.State)}` },
    );
  }
}

/**
 * An Engine whose socket answers, or undefined (with the reason in `.reason`
 * of the second element) when none does: `const [engine, why] = await connectEngine()`.
 */
export async function connectEngine(socketPath = engineSocketPath()) {
  if (!existsSync(socketPath)) return [undefined, `no Docker Engine socket at ${socketPath}`];
  const e = new Engine(socketPath);
  try {
    await e.negotiate();
  } catch (err) {
    return [undefined, `Docker Engine at ${socketPath} does not answer: ${err.message}`];
  }
  return [e, undefined];
}
