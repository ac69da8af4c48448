// Start, watch and stop the real berthd binary for black-box tests.
// The binary comes from $BERTHD (ctest passes the built target); the daemon
// listens on port 0 and tells us its address on stderr, which we also keep
// for assertions on the log lines.

import { spawn } from "node:child_process";
import { existsSync, accessSync, constants as fsConstants } from "node:fs";
import { request as httpRequest } from "node:http";
import { gunzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { rpc } from "./rpc.mjs";
import { waitFor } from "./wait.mjs";

export { rpc, waitFor };

/** The repository root: $BERTH_SOURCE_DIR, else two levels above this file. */
export const SOURCE_DIR =
  process.env.BERTH_SOURCE_DIR ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Variables of the test harness, not of berthd: a daemon would warn that
 * they name no option, so they are kept out of its environment. */
const HARNESS_ENV = ["BERTH_SOURCE_DIR", "BERTH_PROMTOOL", "BERTH_PROMTOOL_DIR", "BERTH_TEST_IMAGE"];

/** The environment for a daemon: this process's, less the harness's own
 * variables, plus `extra` (which may set any of them after all). */
export function daemonEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of HARNESS_ENV) delete env[k];
  return { ...env, ...extra };
}

/** Path of the daemon binary, or undefined when none is configured. */
export function berthdPath() {
  if (process.env.BERTHD) return process.env.BERTHD;
  const guess = path.join(SOURCE_DIR, "build", "berthd");
  return existsSync(guess) ? guess : undefined;
}

/**
 * Why the daemon tests cannot run here, or undefined when they can.
 * Pass the result as `{ skip }` to describe()/test() so a missing binary is a
 * clean skip with its reason rather than a failure.
 */
export function berthdSkipReason() {
  const bin = berthdPath();
  if (!bin) return "berthd binary not configured (set BERTHD)";
  try {
    accessSync(bin, fsConstants.X_OK);
  } catch {
    return `berthd binary not found or not executable: ${bin}`;
  }
  return undefined;
}

/**
 * Send one HTTP/1.1 request with node:http, which (unlike fetch) adds no
 * Content-Type or Accept-Encoding of its own and never inflates the answer.
 * Resolves to { status, headers, body: Buffer (as on the wire), decoded:
 * Buffer (gzip undone), text, json } where json is the parsed body when it
 * parses, else undefined.
 */
export function rawRequest(baseUrl, { method = "POST", path: p = "/", headers = {}, body, timeoutMs = 15000 } = {}) {
  const url = new URL(p, baseUrl);
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) || body instanceof Uint8Array ? Buffer.from(body) : Buffer.from(String(body));
  const hdrs = { ...headers };
  if (payload !== undefined && !Object.keys(hdrs).some((k) => k.toLowerCase() === "content-length")) {
    hdrs["Content-Length"] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method, path: url.pathname + url.search, headers: hdrs, agent: false },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const buf = Buffer.concat(chunks);
          // `body` stays as sent on the wire; `decoded`, `text` and `json`
          // are what it says once a gzip Content-Encoding is undone.
          let decoded = buf;
          if (String(res.headers["content-encoding"] || "").toLowerCase() === "gzip") {
            try {
              decoded = gunzipSync(buf);
            } catch {
              decoded = buf;
            }
          }
          const text = decoded.toString("utf8");
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, body: buf, decoded, text, json });
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${p}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** A running daemon. Create with startBerthd(). */
export class Berthd {
  constructor(child, args) {
    this.child = child;
    this.args = args;
    this.address = undefined; // "127.0.0.1:PORT"
    this.url = undefined; // "http://127.0.0.1:PORT"
    this._stderr = "";
    this._stdout = "";
    this.exit = undefined; // { code, signal } once it has exited
    this._exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    child.stderr.setEncoding("utf8");
    child.stdout.setEncoding("utf8");
    child.stderr.on("data", (s) => {
      this._stderr += s;
    });
    child.stdout.on("data", (s) => {
      this._stdout += s;
    });
  }

  /** Everything the daemon wrote on stderr so far. */
  get stderr() {
    return this._stderr;
  }

  /** stderr split into lines (the last, possibly partial, line included). */
  logLines() {
    return this._stderr.split("\n").filter((l) => l.length > 0);
  }

  /** Resolve with the first log line matching `re`, waiting up to timeoutMs. */
  async waitForLog(re, { timeoutMs = 5000 } = {}) {
    return waitFor(() => this.logLines().find((l) => re.test(l)), {
      timeoutMs,
      what: `a berthd log line matching ${re}`,
      describe: () => `stderr so far:\n${this._stderr}`,
    });
  }

  /** Raw HTTP request against this daemon; see rawRequest(). */
  request(opts) {
    return rawRequest(this.url, opts);
  }

  /** rpc() to this daemon (see rpc.mjs), with rawRequest's 15 s wait. */
  postJson(procedure, body, headers = {}) {
    return rpc(this, procedure, body, { headers, timeoutMs: 15000 });
  }

  /** Resolve when the process has exited, with { code, signal }. */
  exited() {
    return this._exited;
  }

  /**
   * Stop with SIGTERM and wait for the exit. Resolves with { code, signal };
   * callers assert `code === 0` (graceful exit). Falls back to SIGKILL only
   * after the deadline, and then reports the hang as an error.
   */
  async stop({ timeoutMs = 15000 } = {}) {
    if (this.exit) return this.exit;
    this.child.kill("SIGTERM");
    let timer;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const r = await Promise.race([this._exited, deadline]);
    clearTimeout(timer);
    if (r === "timeout") {
      this.child.kill("SIGKILL");
      await this._exited;
      throw new Error(`berthd did not exit within ${timeoutMs} ms of SIGTERM; stderr:\n${this._stderr}`);
    }
    return r;
  }

  /** Kill without asserting anything (cleanup after a failed test). */
  async kill() {
    if (this.exit) return this.exit;
    this.child.kill("SIGKILL");
    return this._exited;
  }
}

/**
 * Start berthd on 127.0.0.1:0 and wait until /healthz answers 200.
 *
 * opts.backend  "memory" (default, no Docker) or "docker"
 * opts.args     extra command-line flags
 * opts.env      extra environment variables
 * opts.timeoutMs deadline for "listening" + healthy
 * opts.listen, opts.logLevel  the --listen and --log-level flags; null
 *                leaves the flag out (a --config file then sets it)
 */
export async function startBerthd({ backend = "memory", args = [], env = {}, timeoutMs = 20000, logLevel = "info", listen = "127.0.0.1:0" } = {}) {
  const bin = berthdPath();
  if (!bin) throw new Error("berthd binary not configured (set BERTHD)");
  const argv = [
    ...(listen !== null ? ["--listen", listen] : []),
    "--backend",
    backend,
    ...(logLevel !== null ? ["--log-level", logLevel] : []),
    ...args,
  ];
  const child = spawn(bin, argv, {
    env: daemonEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const d = new Berthd(child, argv);
  const spawnError = new Promise((_, reject) => child.on("error", reject));
  spawnError.catch(() => {});

  const started = Date.now();
  try {
    // The daemon logs msg=server.listening ... address=HOST:PORT once bound.
    const line = await Promise.race([
      waitFor(
        () => {
          if (d.exit) throw new Error(`berthd exited early (${JSON.stringify(d.exit)}); stderr:\n${d.stderr}`);
          return d.logLines().find((l) => /msg=server\.listening/.test(l) && /address=\S+/.test(l));
        },
        { timeoutMs, intervalMs: 20, what: "berthd to log msg=server.listening", describe: () => `stderr:\n${d.stderr}` },
      ),
      spawnError,
    ]);
    let address = /address=("?)(\S+?)\1(\s|$)/.exec(line)[2];
    // An unspecified bind address is not a place to connect to.
    address = address.replace(/^0\.0\.0\.0:/, "127.0.0.1:");
    d.address = address;
    d.url = `http://${address}`;

    const left = Math.max(1000, timeoutMs - (Date.now() - started));
    await waitFor(
      async () => {
        if (d.exit) throw new Error(`berthd exited (${JSON.stringify(d.exit)}); stderr:\n${d.stderr}`);
        try {
          const r = await d.request({ method: "GET", path: "/healthz", timeoutMs: 2000 });
          return r.status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs: left, intervalMs: 25, what: `GET ${d.url}/healthz to answer 200`, describe: () => `stderr:\n${d.stderr}` },
    );
  } catch (err) {
    await d.kill();
    throw err;
  }
  return d;
}
