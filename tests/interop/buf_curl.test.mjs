// ctest-labels: docker
// `buf curl` (the npm package's binary) against berthd: Connect protocol,
// binary protobuf (buf curl always sends application/proto), HTTP/1.1 over
// plain http:// (no --http2-prior-knowledge), schema read from proto/.
// The VM lifecycle on the Docker backend and the error cases.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage, TEST_IMAGE } from "../lib/image.mjs";
import { BUF, PROTO_DIR, VM_SERVICE, bufEnv } from "../lib/proto.mjs";
import { waitFor } from "../lib/wait.mjs";

const berthdSkip = berthdSkipReason();
const [engine, engineSkip] = berthdSkip ? [undefined, undefined] : await connectEngine();

const runTag = `${process.pid}-${Date.now().toString(36)}`;
const allIds = [];

/**
 * One `buf curl` call. Resolves { code, stdout, stderr, json } where json is
 * the parsed response (stdout) on success, or the parsed error (stderr) on
 * failure.
 */
function bufCurl(d, method, data, { verbose = false } = {}) {
  const args = [
    "curl",
    "--schema",
    PROTO_DIR,
    "--protocol",
    "connect",
    "--timeout",
    "60s",
    "--data",
    JSON.stringify(data),
  ];
  if (verbose) args.push("-v");
  args.push(`${d.url}/${VM_SERVICE}/${method}`);
  return new Promise((resolve, reject) => {
    execFile(BUF, args, { env: bufEnv(), timeout: 90000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return reject(err);
      const code = err ? err.code : 0;
      let json;
      const text = code === 0 ? stdout : stderr;
      // On failure buf curl prints the Connect error as JSON on stderr
      // (after any verbose lines); take the last JSON object in it.
      const start = code === 0 ? text.indexOf("{") : text.search(/^\{/m);
      if (start >= 0) {
        try {
          json = JSON.parse(text.slice(start));
        } catch {
          json = undefined;
        }
      }
      resolve({ code, stdout, stderr, json });
    });
  });
}

async function ok(d, method, data) {
  const r = await bufCurl(d, method, data);
  assert.equal(r.code, 0, `buf curl ${method} ${JSON.stringify(data)} failed (${r.code}):\n${r.stderr}`);
  assert.ok(r.json, `buf curl ${method}: JSON on stdout: ${r.stdout}`);
  return r.json;
}

async function fails(d, method, data, code) {
  const r = await bufCurl(d, method, data);
  assert.notEqual(r.code, 0, `buf curl ${method} ${JSON.stringify(data)} should fail: ${r.stdout}`);
  assert.ok(r.json, `the error is JSON on stderr:\n${r.stderr}`);
  assert.equal(r.json.code, code, `error code for ${method}: ${r.stderr}`);
  return r.json;
}

async function containerOf(vmId) {
  const list = await engine.listContainers([`berth.vm_id=${vmId}`]);
  assert.ok(list.length <= 1, `at most one container for ${vmId}`);
  return list[0];
}

describe("buf curl against berthd (docker backend)", { skip: berthdSkip || engineSkip }, () => {
  let d;

  before(async () => {
    await ensureTestImage(engine);
    d = await startBerthd({
      backend: "docker",
      args: ["--docker-socket", engine.socketPath, "--stop-timeout", "1", "--publish-address", "127.0.0.1"],
    });
    await waitFor(async () => (await d.request({ method: "GET", path: "/readyz" })).status === 200, {
      timeoutMs: 15000,
      what: "GET /readyz to answer 200 with the docker backend",
      describe: () => `stderr:\n${d.stderr}`,
    });
  });

  after(async () => {
    if (d && !d.exit) await d.kill();
  });

  test("requests go out as binary protobuf over HTTP/1.1", async () => {
    const r = await bufCurl(d, "ListVms", {}, { verbose: true });
    assert.equal(r.code, 0, r.stderr);
    // Verbose lines: "> (#1) Header: v" went out, "< (#1) ..." came back.
    assert.match(r.stderr, />\s*(\(#\d+\)\s*)?Content-Type: application\/proto\s*$/im, "request content type");
    assert.match(r.stderr, /<\s*(\(#\d+\)\s*)?HTTP\/1\.1 200\b/m, "answered over HTTP/1.1");
    assert.doesNotMatch(r.stderr, /HTTP\/2/, "no HTTP/2");
    // The answer came back in the same codec.
    assert.match(r.stderr, /<\s*(\(#\d+\)\s*)?Content-Type: application\/proto\s*$/im, "response content type");
  });

  test("full VM lifecycle", async () => {
    const vmId = `bufcurl-${runTag}`;
    allIds.push(vmId);
    const created = await ok(d, "CreateVm", {
      vmId,
      customerId: "interop",
      config: {
        cpu: { vcpuCount: 1 },
        memory: { sizeBytes: "67108864" },
        container: { image: TEST_IMAGE, command: ["sleep", "3600"] },
      },
    });
    assert.equal(created.vmId, vmId);
    assert.equal(created.state, "VM_STATE_CREATED");
    const ctr = await containerOf(vmId);
    assert.ok(ctr, "a labelled container exists after CreateVm");

    assert.equal((await ok(d, "BootVm", { vmId })).state, "VM_STATE_RUNNING");
    const info = await ok(d, "GetVmInfo", { vmId });
    assert.equal(info.vmId, vmId);
    assert.equal(info.state, "VM_STATE_RUNNING");
    await engine.waitForContainer(ctr.Id, (s) => s && s.State.Running, { what: "container running" });

    assert.equal((await ok(d, "PauseVm", { vmId })).state, "VM_STATE_PAUSED");
    await engine.waitForContainer(ctr.Id, (s) => s && s.State.Paused, { what: "container paused" });
    assert.equal((await ok(d, "ResumeVm", { vmId })).state, "VM_STATE_RUNNING");
    assert.equal((await ok(d, "RebootVm", { vmId })).state, "VM_STATE_RUNNING");
    assert.equal((await ok(d, "ShutdownVm", { vmId })).state, "VM_STATE_SHUTDOWN");
    await engine.waitForContainer(ctr.Id, (s) => s && !s.State.Running, { what: "container stopped" });

    const list = await ok(d, "ListVms", { stateFilter: ["VM_STATE_SHUTDOWN"] });
    assert.ok((list.vms || []).some((v) => v.vmId === vmId), "ListVms finds it");

    assert.equal((await ok(d, "DeleteVm", { vmId })).success, true);
    await engine.waitForContainer(ctr.Id, (s) => s === undefined, { what: "container removed" });
  });

  test("errors: not_found, failed_precondition, invalid_argument", async () => {
    const err = await fails(d, "GetVmInfo", { vmId: `bufcurl-missing-${runTag}` }, "not_found");
    assert.ok(err.message, "a message is given");

    const vmId = `bufcurl-err-${runTag}`;
    allIds.push(vmId);
    await ok(d, "CreateVm", { vmId, config: { container: { image: TEST_IMAGE, command: ["sleep", "3600"] } } });
    try {
      await fails(d, "PauseVm", { vmId }, "failed_precondition");
      await fails(d, "ResumeVm", { vmId }, "failed_precondition");
    } finally {
      await ok(d, "DeleteVm", { vmId, force: true });
    }
    await fails(d, "CreateVm", { vmId: `bufcurl-noimg-${runTag}`, config: {} }, "invalid_argument");
  });

  test("Watch: buf curl prints the stream's messages as they come, then its end", async () => {
    const vmId = `bufwatch-${runTag}`;
    allIds.push(vmId);
    await ok(d, "CreateVm", { vmId, config: { container: { image: TEST_IMAGE, command: ["sleep", "3600"] } } });
    // Watch never ends by itself: buf curl's deadline ends it, after it
    // printed what came.
    const r = await new Promise((resolve) => {
      execFile(
        BUF,
        ["curl", "--schema", PROTO_DIR, "--protocol", "connect", "--timeout", "1.5s", "--data", JSON.stringify({ kinds: ["OBJECT_KIND_VM"], id: vmId }), `${d.url}/berth.v1.EventService/Watch`],
        { env: bufEnv(), timeout: 60000 },
        (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }),
      );
    });
    const first = JSON.parse(r.stdout.slice(0, r.stdout.indexOf("\n}") + 2));
    assert.equal(first.type, "EVENT_TYPE_SNAPSHOT");
    assert.equal(first.id, vmId);
    assert.equal(first.state, "VM_STATE_CREATED");
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /deadline_exceeded/);
    await ok(d, "DeleteVm", { vmId, force: true });
  });

  test("SIGTERM: graceful exit 0", async () => {
    const r = await d.stop();
    assert.deepEqual(r, { code: 0, signal: null }, `stderr:\n${d.stderr}`);
  });

  test("no container of this run is left behind", async () => {
    const left = [];
    for (const id of allIds) {
      const list = await engine.listContainers([`berth.vm_id=${id}`]);
      left.push(...list.map((c) => `${id}:${c.Id.slice(0, 12)}`));
    }
    assert.deepEqual(left, []);
  });
});

after(async () => {
  if (!engine) return;
  for (const id of allIds) {
    for (const c of await engine.listContainers([`berth.vm_id=${id}`])) await engine.remove(c.Id);
  }
});
