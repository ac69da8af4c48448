// Pulls from a real private registry (Debian's docker-registry with htpasswd
// on 127.0.0.1) through the real Engine: credentials from the `auths` of a
// Docker client config and from a credential helper on PATH, refusals named
// after the registry, credentials read again on SIGHUP (the same file or
// another the --config file names), one pull for many concurrent creates of
// one missing image, the pull policies, and the not-found / malformed
// reference errors.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { serviceRpc } from "../lib/rpc.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { VM_SERVICE } from "../lib/proto.mjs";
import { startRegistry, registrySkipReason } from "../lib/registry.mjs";

const run = promisify(execFile);
const [engine, engineWhy] = await connectEngine();
const skip = berthdSkipReason() || engineWhy || (await registrySkipReason());

const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;
const USER = "tester";
const PASS = "s3cret-pass";

let reg; // the registry
let dir; // temporary files: configs, the helper
const daemons = [];
const vms = []; // [daemon, id] to delete afterwards
const pushed = new Set(); // local tags to remove afterwards

async function daemon(authFile, env = {}) {
  const d = await startBerthd({ backend: "docker", args: ["--registry-auth-file", authFile], env });
  daemons.push(d);
  return d;
}

function writeConfig(name, obj) {
  const p = path.join(dir, name);
  writeFileSync(p, JSON.stringify(obj));
  return p;
}

async function rmi(ref) {
  await run("docker", ["rmi", "-f", ref]).catch(() => {});
}

async function createVm(d, image, pullPolicy) {
  const id = `reg-${randomBytes(4).toString("hex")}-${RUN}`;
  const container = { image, command: ["sleep", "3600"] };
  if (pullPolicy) container.pullPolicy = pullPolicy;
  const r = await serviceRpc(() => d, VM_SERVICE, { timeoutMs: 120000 })("CreateVm", { vmId: id, config: { container } });
  if (r.status === 200) vms.push([d, id]);
  return { id, ...r };
}

async function deleteVm(d, id) {
  await serviceRpc(() => d, VM_SERVICE, { timeoutMs: 60000 })("DeleteVm", { vmId: id, force: true });
}

/** The value of one /metrics series (0 when absent). */
async function metric(d, name, labels = "") {
  const r = await d.request({ method: "GET", path: "/metrics" });
  const line = r.text.split("\n").find((l) => l.startsWith(`${name}${labels} `) || (labels === "" && l.startsWith(`${name} `)));
  return line ? Number(line.split(" ").pop()) : 0;
}

const PULLS_OK = ['berth_engine_requests_total', '{operation="POST /images/create",outcome="ok"}'];

function assertCode(r, code, re) {
  const where = `${r.status} ${r.text}`;
  assert.ok(r.json && r.json.code === code, `${code}: ${where}`);
  if (re) assert.match(r.json.message, re, where);
}

describe("private registries and pulls", { skip }, () => {
  let authFile;
  let goodRef;
  before(async () => {
    await ensureTestImage(engine);
    dir = mkdtempSync(path.join(tmpdir(), "berth-registry-test-"));
    reg = await startRegistry({ users: { [USER]: PASS } });
    const auth = Buffer.from(`${USER}:${PASS}`).toString("base64");
    authFile = writeConfig("auths.json", { auths: { [reg.host]: { auth } } });
    goodRef = await reg.push(TEST_IMAGE, "team/app:v1", USER);
  });

  after(async () => {
    for (const [d, id] of vms) await deleteVm(d, id).catch(() => {});
    for (const d of daemons) await d.stop().catch(() => {});
    for (const ref of pushed) await rmi(ref);
    if (reg) {
      for (const t of ["team/app:v1", "team/many:v1", "team/moving:v1", "team/helper:v1"]) await rmi(`${reg.host}/${t}`);
      await reg.stop();
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("pull with the credential from auths; the credential is in no log line", async () => {
    const d = await daemon(authFile);
    await rmi(goodRef);
    const r = await createVm(d, goodRef);
    assert.equal(r.status, 200, r.text);
    // The layers are the test image's, which the Engine has: it fetches the
    // manifest from the registry (a HEAD, for berthd), with the credential, and no blob.
    await waitFor(() => /"(HEAD|GET) \/v2\/team\/app\/manifests\/\S+ HTTP\/1\.1" 200 .*UpstreamClient\(berthd\)/.test(reg.log), {
      timeoutMs: 10000,
      what: "the registry's log of the manifest it served",
      describe: () => reg.log.slice(-4000),
    });
    assert.ok(!d.logLines().some((l) => l.includes(PASS) || l.includes(Buffer.from(`${USER}:${PASS}`).toString("base64"))));
    assert.ok((await metric(d, "berth_image_pulls_total", '{outcome="ok"}')) >= 1);
    const r2 = await d.request({ method: "GET", path: "/metrics" });
    assert.match(r2.text, /\nberth_image_pull_bytes_total \d+\n/);
    assert.match(r2.text, /\nberth_image_pull_duration_seconds_count 1\n/);
  });

  test("pull with the credential from a credential helper on PATH", async () => {
    const bin = path.join(dir, "bin");
    await run("mkdir", ["-p", bin]);
    const helper = path.join(bin, "docker-credential-berthtest");
    writeFileSync(
      helper,
      `#!/bin/sh\n[ "$1" = get ] || exit 1\nread host\n[ "$host" = "${reg.host}" ] || exit 1\n` +
        `printf '{"ServerURL":"%s","Username":"${USER}","Secret":"${PASS}"}' "$host"\n`,
    );
    chmodSync(helper, 0o755);
    const cfg = writeConfig("helpers.json", { credHelpers: { [reg.host]: "berthtest" } });
    const ref = await reg.push(TEST_IMAGE, "team/helper:v1", USER);
    const d = await daemon(cfg, { PATH: `${bin}:${process.env.PATH}` });
    const r = await createVm(d, ref);
    assert.equal(r.status, 200, r.text);
  });

  test("no credential, or a wrong one: permission_denied naming the registry", async () => {
    const none = await daemon("");
    const wrong = await daemon(writeConfig("wrong.json", { auths: { [reg.host]: { auth: Buffer.from(`${USER}:nope`).toString("base64") } } }));
    for (const d of [none, wrong]) {
      await rmi(goodRef);
      const r = await createVm(d, goodRef);
      assertCode(r, "permission_denied", new RegExp(reg.host.replace(/[.]/g, "\\.")));
      assert.equal(r.status, 403, r.text);
      assert.ok((await metric(d, "berth_image_pulls_total", '{outcome="denied"}')) >= 1);
    }
  });

  test("SIGHUP re-reads the credentials, and takes another file (or none) from the --config file", async () => {
    const live = writeConfig("live.json", { auths: { [reg.host]: { auth: Buffer.from(`${USER}:nope`).toString("base64") } } });
    const conf = path.join(dir, "berthd.conf");
    writeFileSync(conf, `registry-auth-file = ${live}\n`);
    const d = await startBerthd({ backend: "docker", args: ["--config", conf] });
    daemons.push(d);
    const hup = async (re) => {
      const mark = d.logLines().length;
      d.child.kill("SIGHUP");
      return waitFor(() => d.logLines().slice(mark).find((l) => re.test(l)), { what: `${re} after SIGHUP`, describe: () => d.stderr });
    };
    await rmi(goodRef);
    assertCode(await createVm(d, goodRef), "permission_denied");

    // The same file, now with the right credential.
    writeConfig("live.json", { auths: { [reg.host]: { auth: Buffer.from(`${USER}:${PASS}`).toString("base64") } } });
    await hup(/msg=config\.reload code=ok changed=""/);
    const ok = await createVm(d, goodRef);
    assert.equal(ok.status, 200, ok.text);

    // No file any more: no credential.
    writeFileSync(conf, 'registry-auth-file = ""\n');
    await hup(/msg=config\.reload code=ok changed="registry-auth-file"/);
    await rmi(goodRef);
    assertCode(await createVm(d, goodRef), "permission_denied");
    assert.ok(!d.logLines().some((l) => l.includes(PASS)), "the credential is in no log line");
  });

  test("10 parallel creates of one missing image share one pull", async () => {
    const ref = await reg.push(TEST_IMAGE, "team/many:v1", USER);
    const d = await daemon(authFile);
    const before = await metric(d, ...PULLS_OK);
    const rs = await Promise.all(Array.from({ length: 10 }, () => createVm(d, ref)));
    for (const r of rs) assert.equal(r.status, 200, r.text);
    assert.equal((await metric(d, ...PULLS_OK)) - before, 1, "one POST /images/create");
    assert.equal(await metric(d, "berth_image_pulls_total", '{outcome="ok"}'), 1);
  });

  test("pull policy ALWAYS picks up a moved tag; NEVER fails on a missing image", async () => {
    const d = await daemon(authFile);
    const ref = await reg.push(TEST_IMAGE, "team/moving:v1", USER);
    const first = await createVm(d, ref, "PULL_POLICY_ALWAYS");
    assert.equal(first.status, 200, first.text);
    const firstImage = (await engine.inspect(`berth-vm-${first.id}`)).Image;
    // A different image under the same tag.
    const moved = `berth-test/moved:${RUN}`;
    pushed.add(moved);
    const ctx = path.join(dir, "moved");
    await run("mkdir", ["-p", ctx]);
    writeFileSync(path.join(ctx, "Dockerfile"), `FROM ${TEST_IMAGE}\nLABEL berth.test.moved="${RUN}"\n`);
    await run("docker", ["build", "-q", "-t", moved, ctx], { env: { ...process.env, DOCKER_BUILDKIT: "0" } });
    await reg.push(moved, "team/moving:v1", USER);
    const second = await createVm(d, ref, "PULL_POLICY_ALWAYS");
    assert.equal(second.status, 200, second.text);
    const secondImage = (await engine.inspect(`berth-vm-${second.id}`)).Image;
    assert.notEqual(secondImage, firstImage, "the moved tag was pulled");
    const { stdout } = await run("docker", ["image", "inspect", "-f", "{{.Id}}", moved]);
    assert.equal(secondImage, stdout.trim());

    const missing = `${reg.host}/team/absent-${RUN}:v1`;
    const never = await createVm(d, missing, "PULL_POLICY_NEVER");
    assertCode(never, "failed_precondition", /NEVER/);
  });

  test("an image the registry lacks is not_found naming it; a malformed reference is invalid_argument before any pull", async () => {
    const d = await daemon(authFile);
    const missing = `${reg.host}/team/absent-${RUN}:v1`;
    const r = await createVm(d, missing);
    assertCode(r, "not_found", new RegExp(missing.replace(/[.]/g, "\\.")));
    assert.equal(r.status, 404);
    const before = await metric(d, "berth_image_pulls_total", '{outcome="not_found"}');
    assert.equal(before, 1);
    const pullsBefore = await metric(d, 'berth_engine_requests_total', '{operation="POST /images/create",outcome="ok"}');
    for (const bad of ["Team/App:v1", "app::v1", "app@sha256:12", "-app"]) {
      const b = await createVm(d, bad);
      assertCode(b, "invalid_argument", /config\.container\.image/);
    }
    assert.equal(await metric(d, 'berth_engine_requests_total', '{operation="POST /images/create",outcome="ok"}'), pullsBefore);
  });
});
