// Helpers for the tests of who may call: a throw-away PKI made with openssl,
// a daemon started on any listener (TLS, unix socket) without the plain
// HTTP health probe of startBerthd, and one-shot https / unix requests.

import { spawn, spawnSync, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { Berthd, berthdPath, daemonEnv, waitFor } from "./berthd.mjs";

/** A temp dir for one test file; remove it with rmSync(dir, { recursive: true }). */
export function tempDir(tag) {
  return mkdtempSync(path.join(tmpdir(), `berth-${tag}-`));
}

export function removeDir(dir) {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

function openssl(args, cwd) {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function key(cwd, name) {
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`], cwd);
}

function selfSigned(cwd, name, subject) {
  key(cwd, name);
  openssl(["req", "-x509", "-new", "-key", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", subject], cwd);
}

function signed(cwd, name, subject, ca, ext) {
  key(cwd, name);
  openssl(["req", "-new", "-key", `${name}.key`, "-out", `${name}.csr`, "-subj", subject], cwd);
  writeFileSync(path.join(cwd, `${name}.ext`), ext);
  openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial",
     "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`],
    cwd,
  );
}

/**
 * In dir: a CA (ca), a server certificate for localhost and 127.0.0.1 (srv),
 * a second one (srv2) for reload tests, a client with a SPIFFE id (cli), a
 * client without one (plain), and a client signed by another CA (rogue).
 * Returns { dir, file(name) -> path, read(name) -> Buffer }.
 */
export function makePki(dir) {
  selfSigned(dir, "ca", "/CN=berth test ca");
  selfSigned(dir, "otherca", "/CN=someone else's ca");
  const srvExt = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
  signed(dir, "srv", "/CN=berth server one", "ca", srvExt);
  signed(dir, "srv2", "/CN=berth server two", "ca", srvExt);
  signed(dir, "cli", "/O=berth/CN=ci runner", "ca", "subjectAltName=URI:spiffe://berth.test/ci\nextendedKeyUsage=clientAuth\n");
  signed(dir, "plain", "/O=berth/CN=operator", "ca", "extendedKeyUsage=clientAuth\n");
  signed(dir, "rogue", "/CN=rogue", "otherca", "subjectAltName=URI:spiffe://berth.test/ci\n");
  const file = (n) => path.join(dir, n);
  return { dir, file, read: (n) => readFileSync(file(n)) };
}

/**
 * Spawn berthd with exactly `args` (after --backend memory) and wait for its
 * msg=server.listening line. Resolves to the Berthd with .address set (as
 * logged); rejects with the stderr when it exits first.
 */
export async function spawnBerthd(args, { env = {}, timeoutMs = 20000 } = {}) {
  const argv = ["--backend", "memory", "--log-level", "info", ...args];
  const child = spawn(berthdPath(), argv, { env: daemonEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  const d = new Berthd(child, argv);
  try {
    const line = await waitFor(
      () => {
        if (d.exit) throw new Error(`berthd exited early (${JSON.stringify(d.exit)}); stderr:\n${d.stderr}`);
        return d.logLines().find((l) => /msg=server\.listening/.test(l));
      },
      { timeoutMs, intervalMs: 20, what: "berthd to log msg=server.listening", describe: () => d.stderr },
    );
    d.address = /address=("?)(\S+?)\1(\s|$)/.exec(line)[2];
  } catch (err) {
    await d.kill();
    throw err;
  }
  return d;
}

/** berthd run to its end (e.g. --check-config): { status, stdout, stderr }.
 * A variable set to undefined in env is removed from the environment. */
export function runBerthd(args, { env = {} } = {}) {
  const merged = daemonEnv(env);
  for (const k of Object.keys(merged)) if (merged[k] === undefined) delete merged[k];
  const r = spawnSync(berthdPath(), args, { env: merged, encoding: "utf8", timeout: 20000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function collect(res, resolve, reject) {
  const chunks = [];
  res.on("data", (c) => chunks.push(c));
  res.on("error", reject);
  res.on("end", () => {
    const text = Buffer.concat(chunks).toString("utf8");
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    resolve({ status: res.statusCode, headers: res.headers, text, json, socket: res.socket });
  });
}

/**
 * One request. target: { https: { host, port, ca, cert, key } } or
 * { socketPath } or { host, port }. Resolves { status, headers, text, json }.
 */
export function call(target, { method = "POST", path: p = "/", headers = {}, body } = {}) {
  const payload = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  const hdrs = { ...headers };
  if (payload !== undefined) {
    hdrs["Content-Length"] = String(payload.length);
    if (!Object.keys(hdrs).some((k) => k.toLowerCase() === "content-type")) hdrs["Content-Type"] = "application/json";
  }
  return new Promise((resolve, reject) => {
    let req;
    const opts = { method, path: p, headers: hdrs, agent: false };
    if (target.https) {
      const t = target.https;
      req = httpsRequest({ ...opts, host: t.host, port: t.port, ca: t.ca, cert: t.cert, key: t.key, servername: "localhost" }, (res) => {
        const peer = res.socket.getPeerCertificate();
        collect(res, (r) => resolve({ ...r, peer }), reject);
      });
    } else if (target.socketPath) {
      req = httpRequest({ ...opts, socketPath: target.socketPath }, (res) => collect(res, resolve, reject));
    } else {
      req = httpRequest({ ...opts, host: target.host, port: target.port }, (res) => collect(res, resolve, reject));
    }
    req.setTimeout(15000, () => req.destroy(new Error(`${method} ${p}: no answer within 15 s`)));
    req.on("error", reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** "127.0.0.1:4321" -> { host, port }. */
export function hostPort(address) {
  const i = address.lastIndexOf(":");
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(address.slice(i + 1)) };
}
