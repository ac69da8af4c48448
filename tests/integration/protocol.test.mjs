// ctest-labels: protocol
// The Connect unary protocol rules of CONNECT.md, row by row, over raw HTTP/1.1
// against the real berthd with the in-memory backend (no Docker needed).
// Each row of the "Test matrix" is at least one test below.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { gzipSync, gunzipSync } from "node:zlib";
import net from "node:net";
import path from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync, chmodSync, existsSync } from "node:fs";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";
import { vmProto, VM_SERVICE, getMessage } from "../lib/proto.mjs";

const skip = berthdSkipReason();
const P = `/${VM_SERVICE}/`;
const MAX_BODY = 1024;
const ACCEPTED_CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "application/proto"];

let d; // the daemon under test
let vm; // descriptors from proto/
let seq = 0;
const uniqueId = (tag) => `proto-${tag}-${process.pid}-${++seq}`;

// --- helpers -----------------------------------------------------------------

function post(method, body, headers = {}) {
  return d.postJson(P + method, body, headers);
}

function postProto(method, bytes, headers = {}) {
  return d.request({
    method: "POST",
    path: P + method,
    headers: { "Content-Type": "application/proto", ...headers },
    body: Buffer.from(bytes),
  });
}

function get(method, query) {
  return d.request({ method: "GET", path: `${P}${method}?${query}` });
}

/** A Connect error: the status, JSON content type, and {code, message?, details?}. */
function assertError(r, status, code, ctx = "") {
  const where = `${ctx} -> ${r.status} ${r.text}`;
  assert.equal(r.status, status, `HTTP status ${where}`);
  assert.match(String(r.headers["content-type"]), /^application\/json\b/i, `error content-type ${where}`);
  assert.equal(r.headers["content-encoding"], undefined, `errors are never compressed ${where}`);
  assert.ok(r.json && typeof r.json === "object" && !Array.isArray(r.json), `error body is a JSON object ${where}`);
  assert.equal(r.json.code, code, `error code ${where}`);
  for (const k of Object.keys(r.json)) {
    assert.ok(["code", "message", "details"].includes(k), `unexpected key '${k}' in error ${where}`);
  }
  if ("message" in r.json) {
    assert.equal(typeof r.json.message, "string", `message is a string ${where}`);
    assert.notEqual(r.json.message, "", `an empty message is omitted ${where}`);
  }
}

function assertOkJson(r, ctx = "") {
  assert.equal(r.status, 200, `${ctx} -> ${r.status} ${r.text}`);
  assert.match(String(r.headers["content-type"]), /^application\/json\b/i, `${ctx} content-type`);
  assert.ok(r.json && typeof r.json === "object", `${ctx} body is a JSON object: ${r.text}`);
  return r.json;
}

function b64url(buf, { pad = false } = {}) {
  let s = Buffer.from(buf).toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
  if (!pad) s = s.replace(/=+$/, "");
  return s;
}

/** Create a VM in the memory backend and return its id. */
async function createVm(extra = {}) {
  const vmId = uniqueId("vm");
  const r = await post("CreateVm", {
    vmId,
    config: { container: { image: "berth-test/busybox:latest", command: ["sleep", "3600"] } },
    ...extra,
  });
  const body = assertOkJson(r, "CreateVm");
  assert.equal(body.vmId, vmId);
  assert.equal(body.state, "VM_STATE_CREATED");
  return vmId;
}

// --- the suite ----------------------------------------------------------------

describe("Connect protocol (memory backend)", { skip }, () => {
  let created; // a CREATED VM
  let running; // a RUNNING VM

  before(async () => {
    vm = vmProto();
    d = await startBerthd({ backend: "memory", args: ["--max-body-bytes", String(MAX_BODY)] });
    created = await createVm();
    running = await createVm();
    assertOkJson(await post("BootVm", { vmId: running }), "BootVm");
  });

  after(async () => {
    // The SIGTERM test stops it; this only matters when an earlier step failed.
    if (d && !d.exit) await d.kill();
  });

  describe("health", () => {
    test("GET /healthz answers 200", async () => {
      const r = await d.request({ method: "GET", path: "/healthz" });
      assert.equal(r.status, 200);
    });

    test("GET /readyz answers 200 with the memory backend", async () => {
      const r = await d.request({ method: "GET", path: "/readyz" });
      assert.equal(r.status, 200);
    });
  });

  describe("routing", () => {
    const unknownPaths = [
      { description: "unknown method", path: `${P}NoSuchMethod` },
      { description: "unknown service", path: "/metal.vmprovisioner.v1.NoService/ListVms" },
      { description: "paths are case-sensitive", path: "/metal.vmprovisioner.v1.vmservice/listvms" },
      { description: "no method segment", path: `/${VM_SERVICE}` },
      { description: "root", path: "/nope" },
    ];
    for (const row of unknownPaths) {
      test(`404 for an unknown path: ${row.description}`, async () => {
        const r = await d.request({
          method: "POST",
          path: row.path,
          headers: { "Content-Type": "application/json" },
          body: "{}",
        });
        assert.equal(r.status, 404, `${row.path} -> ${r.status} ${r.text}`);
        if (r.body.length > 0) {
          assert.ok(r.json, `a 404 body is empty or JSON: ${r.text}`);
          assert.equal(r.json.code, "unimplemented", `a 404 body names unimplemented: ${r.text}`);
        }
        assert.doesNotMatch(r.text, /not_found/, "an unknown procedure is never not_found");
      });
    }

    for (const method of ["CreateVm", "BootVm", "DeleteVm"]) {
      test(`405 with Allow: POST for GET of side-effecting ${method}`, async () => {
        const msg = encodeURIComponent(JSON.stringify({ vmId: created }));
        const r = await get(method, `message=${msg}&encoding=json`);
        assert.equal(r.status, 405, `${r.status} ${r.text}`);
        const allow = String(r.headers.allow || "");
        assert.match(allow, /\bPOST\b/, `Allow header: '${allow}'`);
        assert.equal(r.body.length, 0, `405 body is empty: ${r.text}`);
      });
    }

    test("405 with Allow for PUT of a procedure", async () => {
      const r = await d.request({
        method: "PUT",
        path: `${P}ListVms`,
        headers: { "Content-Type": "application/json" },
        body: "{}",
      });
      assert.equal(r.status, 405, `${r.status} ${r.text}`);
      assert.match(String(r.headers.allow || ""), /\bPOST\b/);
    });
  });

  describe("content type", () => {
    const bad = [
      { description: "text/plain", headers: { "Content-Type": "text/plain" } },
      { description: "missing content type", headers: {} },
      { description: "application/grpc", headers: { "Content-Type": "application/grpc" } },
      { description: "application/json with another charset", headers: { "Content-Type": "application/json; charset=latin1" } },
    ];
    for (const row of bad) {
      test(`415 with Accept-Post for ${row.description}`, async () => {
        const r = await d.request({ method: "POST", path: `${P}ListVms`, headers: row.headers, body: "{}" });
        assert.equal(r.status, 415, `${r.status} ${r.text}`);
        const acceptPost = String(r.headers["accept-post"] || "");
        const listed = acceptPost.split(",").map((s) => s.trim().toLowerCase());
        for (const ct of ACCEPTED_CONTENT_TYPES) {
          assert.ok(listed.includes(ct), `Accept-Post '${acceptPost}' lists ${ct}`);
        }
      });
    }

    const good = [
      { description: "charset variant", ct: "application/json; charset=utf-8" },
      { description: "charset variant, upper case", ct: "application/json; charset=UTF-8" },
      { description: "content type compared case-insensitively", ct: "Application/JSON" },
    ];
    for (const row of good) {
      test(`200 for ${row.description} (${row.ct})`, async () => {
        const r = await d.request({ method: "POST", path: `${P}ListVms`, headers: { "Content-Type": row.ct }, body: "{}" });
        assertOkJson(r, row.ct);
      });
    }
  });

  describe("server streaming", () => {
    const WATCH = "/berth.v1.EventService/Watch";
    const STREAM_LOGS = "/berth.v1.LogService/StreamLogs";
    const STREAM_ACCEPT_POST = "application/connect+json, application/connect+proto";

    /** One Connect envelope: flag byte, 4-byte big-endian length, payload. */
    const envelope = (flags, payload) => {
      const head = Buffer.alloc(5);
      head[0] = flags;
      head.writeUInt32BE(payload.length, 1);
      return Buffer.concat([head, Buffer.from(payload)]);
    };

    const unaryAtStream = [
      { description: "application/json at Watch", path: WATCH, ct: "application/json" },
      { description: "application/json; charset=utf-8 at Watch", path: WATCH, ct: "application/json; charset=utf-8" },
      { description: "application/proto at Watch", path: WATCH, ct: "application/proto" },
      { description: "application/json at StreamLogs", path: STREAM_LOGS, ct: "application/json" },
      { description: "no content type at StreamLogs", path: STREAM_LOGS, ct: undefined },
      { description: "text/plain at Watch", path: WATCH, ct: "text/plain" },
      { description: "application/connect+json with another charset at Watch", path: WATCH, ct: "application/connect+json; charset=latin1" },
    ];
    for (const row of unaryAtStream) {
      test(`415 with the streaming Accept-Post for ${row.description}`, async () => {
        const headers = row.ct === undefined ? {} : { "Content-Type": row.ct };
        const r = await d.request({ method: "POST", path: row.path, headers, body: "{}" });
        assert.equal(r.status, 415, `${r.status} ${r.text}`);
        assert.equal(r.headers["accept-post"], STREAM_ACCEPT_POST);
      });
    }

    const streamAtUnary = [
      { description: "application/connect+json at ListVms", path: `${P}ListVms`, ct: "application/connect+json" },
      { description: "application/connect+proto at GetVmInfo", path: `${P}GetVmInfo`, ct: "application/connect+proto" },
      { description: "application/connect+json at GetLogs", path: "/berth.v1.LogService/GetLogs", ct: "application/connect+json" },
    ];
    for (const row of streamAtUnary) {
      test(`415 with the unary Accept-Post for ${row.description}`, async () => {
        const r = await d.request({ method: "POST", path: row.path, headers: { "Content-Type": row.ct }, body: envelope(0, "{}") });
        assert.equal(r.status, 415, `${r.status} ${r.text}`);
        const listed = String(r.headers["accept-post"] || "").split(",").map((s) => s.trim().toLowerCase());
        for (const ct of ACCEPTED_CONTENT_TYPES) assert.ok(listed.includes(ct), `Accept-Post '${r.headers["accept-post"]}' lists ${ct}`);
        assert.ok(!listed.some((ct) => ct.startsWith("application/connect+")), `no streaming type in '${r.headers["accept-post"]}'`);
      });
    }

    // Watch never ends by itself: a short deadline ends it, with
    // deadline_exceeded in its end envelope. StreamLogs on the memory
    // backend (which cannot follow) ends at once with unimplemented.
    const watchEnd = { code: "deadline_exceeded" };
    const logsEnd = { code: "unimplemented", says: "cannot follow" };
    const calls = [
      { description: "Watch over JSON", path: WATCH, ct: "application/connect+json", echo: "application/connect+json", message: () => '{"kinds":["OBJECT_KIND_VM"]}', end: watchEnd },
      { description: "Watch over JSON, charset=utf-8", path: WATCH, ct: "application/connect+json; charset=utf-8", echo: "application/connect+json", message: () => "{}", end: watchEnd },
      { description: "Watch over binary", path: WATCH, ct: "application/connect+proto", echo: "application/connect+proto", message: () => new Uint8Array(0), end: watchEnd },
      { description: "StreamLogs over JSON", path: STREAM_LOGS, ct: "application/connect+json", echo: "application/connect+json", message: () => '{"vmId":"web-1","tailLines":10}', end: logsEnd },
      {
        description: "StreamLogs over binary",
        path: STREAM_LOGS,
        ct: "application/connect+proto",
        echo: "application/connect+proto",
        message: () => {
          const GetLogsRequest = getMessage("berth.v1.GetLogsRequest");
          return toBinary(GetLogsRequest, create(GetLogsRequest, { vmId: "web-1", tailLines: 10 }));
        },
        end: logsEnd,
      },
    ];
    for (const row of calls) {
      test(`${row.description}: 200, the content type echoed, message envelopes, then one end envelope with ${row.end.code} and the request id in its trailers`, async () => {
        const headers = { "Content-Type": row.ct, "Connect-Timeout-Ms": "300", "X-Request-Id": "stream-1" };
        const r = await d.request({ method: "POST", path: row.path, headers, body: envelope(0, row.message()) });
        assert.equal(r.status, 200, `${r.status} ${r.text}`);
        assert.equal(r.headers["content-type"], row.echo);
        assert.equal(r.headers["x-request-id"], "stream-1");
        const body = r.decoded;
        let at = 0;
        let end;
        while (at < body.length) {
          assert.ok(body.length - at >= 5, `an envelope header at ${at}: ${body.length - at} bytes left`);
          const flag = body[at];
          const len = body.readUInt32BE(at + 1);
          assert.ok(at + 5 + len <= body.length, `envelope at ${at} of ${len} bytes fits the body`);
          if (flag === 0x02) {
            assert.equal(at + 5 + len, body.length, "the end envelope is the last");
            end = JSON.parse(body.subarray(at + 5, at + 5 + len).toString("utf8"));
          } else {
            assert.equal(flag, 0, "a message envelope, uncompressed");
          }
          at += 5 + len;
        }
        assert.ok(end, "an end-of-stream envelope");
        assert.deepEqual(Object.keys(end), ["error", "metadata"], `end-of-stream JSON: ${JSON.stringify(end)}`);
        assert.deepEqual(end.metadata, { "x-request-id": ["stream-1"] }, "the trailers name the request");
        assert.equal(end.error.code, row.end.code);
        assert.equal(typeof end.error.message, "string");
        if (row.end.says) assert.ok(end.error.message.includes(row.end.says), `message: ${end.error.message}`);
      });
    }

    test("a stream request that is not one whole envelope: invalid_argument in the end envelope", async () => {
      const r = await d.request({ method: "POST", path: WATCH, headers: { "Content-Type": "application/connect+json" }, body: Buffer.from([0, 0, 0, 0, 9, 0x7b]) });
      assert.equal(r.status, 200);
      const body = r.decoded;
      assert.equal(body[0], 0x02);
      const end = JSON.parse(body.subarray(5).toString("utf8"));
      assert.equal(end.error.code, "invalid_argument");
      assert.match(end.error.message, /envelope/);
    });
  });

  describe("methods with side effects: POST only", () => {
    const rows = [
      { description: "UpdateGateway", path: "/krane.v1.GatewayService/UpdateGateway", get: false, field: "gateway" },
      { description: "UpdateDeployment", path: "/krane.v1.DeploymentService/UpdateDeployment", get: false, field: "deployment" },
    ];
    for (const row of rows) {
      test(`${row.description} by POST without its object answers 400 invalid_argument`, async () => {
        const r = await d.postJson(row.path, {});
        assertError(r, 400, "invalid_argument", `POST ${row.path}`);
        assert.ok(r.json.message.includes(`'${row.field}'`), r.json.message);
      });
      if (row.get) {
        test(`${row.description} by GET (NO_SIDE_EFFECTS) answers 501 unimplemented`, async () => {
          const r = await d.request({ method: "GET", path: `${row.path}?encoding=json&message=${encodeURIComponent("{}")}` });
          assertError(r, 501, "unimplemented", `GET ${row.path}`);
        });
      } else {
        test(`${row.description} by GET answers 405 with Allow: POST`, async () => {
          const r = await d.request({ method: "GET", path: `${row.path}?encoding=json&message=${encodeURIComponent("{}")}` });
          assert.equal(r.status, 405, `${r.status} ${r.text}`);
          assert.equal(r.headers["allow"], "POST");
        });
      }
    }
  });

  describe("Connect-Protocol-Version", () => {
    test("absent or 1 is fine", async () => {
      assertOkJson(await post("ListVms", {}), "absent");
      assertOkJson(await post("ListVms", {}, { "Connect-Protocol-Version": "1" }), "1");
    });

    test("2 answers 400 invalid_argument", async () => {
      const r = await post("ListVms", {}, { "Connect-Protocol-Version": "2" });
      assertError(r, 400, "invalid_argument", "Connect-Protocol-Version: 2");
    });
  });

  describe("JSON body", () => {
    const malformed = [
      { description: "malformed JSON", body: "{" },
      { description: "empty body", body: "" },
      { description: "null", body: "null" },
      { description: "top level array", body: "[]" },
      { description: "top level string", body: '"x"' },
      { description: "trailing garbage", body: "{} x" },
      { description: "wrong JSON type for a string field", body: '{"vmId": 5}' },
      { description: "null inside a repeated field", body: '{"stateFilter": [null]}' },
    ];
    for (const row of malformed) {
      test(`400 invalid_argument for ${row.description}`, async () => {
        const method = row.body.includes("vmId") ? "GetVmInfo" : "ListVms";
        assertError(await post(method, row.body), 400, "invalid_argument", JSON.stringify(row.body));
      });
    }

    test("an unknown field is ignored", async () => {
      const r = await post("GetVmInfo", { vmId: created, noSuchField: { deep: [1, "two", null] }, other: null });
      assert.equal(assertOkJson(r, "unknown field").vmId, created);
    });

    test("null for a field means unset", async () => {
      assertOkJson(await post("ListVms", { pageSize: null, pageToken: null }), "null fields");
    });

    for (const key of ["vmId", "vm_id"]) {
      test(`field accepted by its ${key === "vmId" ? "lowerCamelCase" : "proto"} name (${key})`, async () => {
        const r = await post("GetVmInfo", { [key]: created });
        const body = assertOkJson(r, key);
        assert.equal(body.vmId, created);
        assert.equal(body.state, "VM_STATE_CREATED");
        assert.ok(!("vm_id" in body), "output uses lowerCamelCase names only");
      });
    }

    test("CreateVm accepts nested proto names (vcpu_count, size_bytes)", async () => {
      const vmId = uniqueId("snake");
      const r = await post("CreateVm", {
        vm_id: vmId,
        customer_id: "c-1",
        config: {
          cpu: { vcpu_count: 2 },
          memory: { size_bytes: "268435456" },
          container: { image: "berth-test/busybox:latest", working_dir: "/" },
        },
      });
      assert.equal(assertOkJson(r, "snake_case CreateVm").vmId, vmId);
      const info = assertOkJson(await post("GetVmInfo", { vmId }), "GetVmInfo");
      assert.equal(info.config.cpu.vcpuCount, 2, "int32 out as a number");
      assert.equal(info.config.memory.sizeBytes, "268435456", "int64 out as a string");
    });

    const twice = [
      { description: "both spellings", body: `{"vmId":"a","vm_id":"a"}` },
      { description: "the same spelling", body: `{"vmId":"a","vmId":"a"}` },
      { description: "proto name twice", body: `{"vm_id":"a","vm_id":"a"}` },
    ];
    for (const row of twice) {
      test(`the same field twice (${row.description}) answers 400 invalid_argument`, async () => {
        assertError(await post("GetVmInfo", row.body), 400, "invalid_argument", row.body);
      });
    }
  });

  describe("JSON integers and enums", () => {
    const ints = [
      { description: "int32 as a string", body: { pageSize: "5" } },
      { description: "int32 as a number", body: { pageSize: 5 } },
      { description: "int32 in exponent form", body: '{"pageSize": 1e2}' },
      { description: "int32 with a zero fraction", body: '{"pageSize": 1.0}' },
    ];
    for (const row of ints) {
      test(`${row.description} is accepted`, async () => {
        assertOkJson(await post("ListVms", row.body), row.description);
      });
    }

    const badInts = [
      { description: "a fraction", body: '{"pageSize": 1.5}' },
      { description: "an empty string", body: '{"pageSize": ""}' },
      { description: "a non-numeric string", body: '{"pageSize": "five"}' },
      { description: "out of int32 range", body: '{"pageSize": 2147483648}' },
      { description: "a bool", body: '{"pageSize": true}' },
    ];
    for (const row of badInts) {
      test(`int32 from ${row.description} answers 400 naming the field`, async () => {
        const r = await post("ListVms", row.body);
        assertError(r, 400, "invalid_argument", row.body);
        assert.match(r.json.message || "", /pageSize|page_size/, `message names the field: ${r.text}`);
      });
    }

    async function listIds(body) {
      const r = assertOkJson(await post("ListVms", body), JSON.stringify(body));
      return (r.vms || []).map((v) => v.vmId).sort();
    }

    test("enum by number filters (stateFilter [2] = RUNNING)", async () => {
      const ids = await listIds({ stateFilter: [2] });
      assert.ok(ids.includes(running), `running VM listed: ${ids}`);
      assert.ok(!ids.includes(created), `created VM not listed: ${ids}`);
    });

    test("enum by name filters (stateFilter [VM_STATE_RUNNING])", async () => {
      const byName = await listIds({ stateFilter: ["VM_STATE_RUNNING"] });
      assert.deepEqual(byName, await listIds({ stateFilter: [2] }));
      assert.ok(byName.includes(running));
    });

    test("enum by name, proto field name (state_filter)", async () => {
      const ids = await listIds({ state_filter: ["VM_STATE_CREATED"] });
      assert.ok(ids.includes(created) && !ids.includes(running), `${ids}`);
    });

    test("an unknown enum name is dropped from the list, not an error", async () => {
      const ids = await listIds({ stateFilter: ["VM_STATE_NO_SUCH_STATE"] });
      assert.deepEqual(ids, await listIds({}), "the filter is empty once the unknown name is dropped");
    });

    test("listed VMs carry states by name", async () => {
      const r = assertOkJson(await post("ListVms", {}), "ListVms");
      const mine = (r.vms || []).filter((v) => v.vmId === created || v.vmId === running);
      assert.equal(mine.length, 2, r.text);
      for (const v of mine) assert.match(v.state, /^VM_STATE_/);
    });
  });

  describe("Connect-Timeout-Ms", () => {
    const bad = [
      { description: "abc", value: "abc" },
      { description: "11 digits", value: "12345678901" },
      { description: "negative", value: "-5" },
      { description: "empty", value: "" },
    ];
    for (const row of bad) {
      test(`${row.description} answers 400 invalid_argument`, async () => {
        assertError(await post("ListVms", {}, { "Connect-Timeout-Ms": row.value }), 400, "invalid_argument", `timeout '${row.value}'`);
      });
    }

    for (const value of ["5000", "9999999999"]) {
      test(`a valid timeout (${value}) passes`, async () => {
        assertOkJson(await post("ListVms", {}, { "Connect-Timeout-Ms": value }), `timeout ${value}`);
      });
    }
  });

  describe("compression", () => {
    test("gzip request body answers 200", async () => {
      const r = await post("GetVmInfo", gzipSync(JSON.stringify({ vmId: created })), { "Content-Encoding": "gzip" });
      assert.equal(assertOkJson(r, "gzip request").vmId, created);
    });

    test("identity Content-Encoding is raw", async () => {
      assertOkJson(await post("ListVms", "{}", { "Content-Encoding": "identity" }), "identity");
    });

    test("Content-Encoding foo answers 501 unimplemented", async () => {
      const r = await post("ListVms", "{}", { "Content-Encoding": "foo" });
      assertError(r, 501, "unimplemented", "Content-Encoding: foo");
      assert.match(r.json.message || "", /gzip/, "the message names the supported encoding");
    });

    test("a bad gzip stream answers 400 invalid_argument", async () => {
      const r = await post("ListVms", Buffer.from("this is not gzip"), { "Content-Encoding": "gzip" });
      assertError(r, 400, "invalid_argument", "bad gzip");
    });

    test("an empty gzip proto body is an empty message (never inflated)", async () => {
      const r = await postProto("ListVms", new Uint8Array(0), { "Content-Encoding": "gzip" });
      assert.equal(r.status, 200, `${r.status} ${r.text}`);
    });

    test("no Content-Encoding on responses unless the client accepts gzip", async () => {
      const r = await post("ListVms", {});
      assertOkJson(r, "ListVms");
      assert.equal(r.headers["content-encoding"], undefined);
    });

    test("gzip response when Accept-Encoding: gzip, Content-Encoding set only then", async () => {
      // Make the answer big enough that compressing it is clearly worth it.
      const metadata = {};
      for (let i = 0; i < 8; i++) metadata[`label_${i}`] = "x".repeat(40);
      for (let i = 0; i < 4; i++) {
        const vmId = uniqueId("big");
        const r = await post("CreateVm", { vmId, config: { container: { image: "berth-test/busybox:latest" }, metadata } });
        assertOkJson(r, "CreateVm with metadata");
      }
      const plain = await post("ListVms", {});
      assertOkJson(plain, "ListVms plain");
      assert.ok(plain.body.length > 1024, `answer is large (${plain.body.length} bytes)`);

      const r = await post("ListVms", {}, { "Accept-Encoding": "gzip" });
      assert.equal(r.status, 200, `${r.status}`);
      assert.equal(r.headers["content-encoding"], "gzip", "a large answer is gzipped when gzip is accepted");
      const body = JSON.parse(gunzipSync(r.body).toString("utf8"));
      assert.deepEqual(
        body.vms.map((v) => v.vmId).sort(),
        plain.json.vms.map((v) => v.vmId).sort(),
      );
    });

    test("responses advertise Accept-Encoding: gzip", async () => {
      const r = await post("ListVms", {});
      assert.match(String(r.headers["accept-encoding"] || ""), /\bgzip\b/);
    });
  });

  describe("body size limit", () => {
    const padded = (n) => {
      const core = '{"pageSize":1}';
      return core + " ".repeat(n - core.length);
    };

    test(`a body of exactly --max-body-bytes (${MAX_BODY}) answers 200`, async () => {
      const body = padded(MAX_BODY);
      assert.equal(Buffer.byteLength(body), MAX_BODY);
      assertOkJson(await post("ListVms", body), "limit");
    });

    test("one byte more answers 429 resource_exhausted", async () => {
      const body = padded(MAX_BODY + 1);
      assertError(await post("ListVms", body), 429, "resource_exhausted", "limit + 1");
    });

    test("the limit applies after inflating a gzip body", async () => {
      const small = gzipSync(padded(MAX_BODY + 1));
      assert.ok(small.length < MAX_BODY);
      assertError(await post("ListVms", small, { "Content-Encoding": "gzip" }), 429, "resource_exhausted", "gzip limit + 1");
      assertOkJson(await post("ListVms", gzipSync(padded(MAX_BODY)), { "Content-Encoding": "gzip" }), "gzip at the limit");
    });

    test("the daemon still serves after an oversized body", async () => {
      assertOkJson(await post("ListVms", {}), "after 429");
    });
  });

  describe("errors", () => {
    test("unknown VM: 404 not_found as application/json {code, message}", async () => {
      const r = await post("GetVmInfo", { vmId: "no-such-vm" });
      assertError(r, 404, "not_found", "GetVmInfo unknown");
      assert.ok(typeof r.json.message === "string" && r.json.message.length > 0, "a message is given");
    });

    test("missing image answers 400 invalid_argument", async () => {
      const r = await post("CreateVm", { vmId: uniqueId("noimg"), config: { cpu: { vcpuCount: 1 } } });
      assertError(r, 400, "invalid_argument", "CreateVm without an image");
    });

    test("metadata.docker_image is accepted as the image", async () => {
      const vmId = uniqueId("meta");
      const r = await post("CreateVm", { vmId, config: { metadata: { docker_image: "berth-test/busybox:latest" } } });
      assert.equal(assertOkJson(r, "docker_image").state, "VM_STATE_CREATED");
    });

    test("a wrong transition answers 400 failed_precondition", async () => {
      assertError(await post("PauseVm", { vmId: created }), 400, "failed_precondition", "PauseVm on CREATED");
      assertError(await post("DeleteVm", { vmId: running }), 400, "failed_precondition", "DeleteVm RUNNING without force");
    });

    test("a duplicate vmId answers 409 already_exists", async () => {
      const r = await post("CreateVm", { vmId: created, config: { container: { image: "berth-test/busybox:latest" } } });
      assertError(r, 409, "already_exists", "CreateVm with a taken id");
    });

    test("a message with quotes, newlines and unicode stays valid JSON", async () => {
      const r = await post("GetVmInfo", { vmId: 'we"ird\n\\id\u00e9\u2603' });
      // No VM can have that id: the message echoes it, as valid JSON.
      assertError(r, 400, "invalid_argument", "odd id");
      assert.ok(r.json.message.includes('we"ird?\\id\u00e9\u2603'), r.text);
    });

    test("errors answer JSON for a proto request too", async () => {
      const M = vm.msg("GetVmInfoRequest");
      const r = await postProto("GetVmInfo", toBinary(M, create(M, { vmId: "no-such-vm" })));
      assertError(r, 404, "not_found", "proto GetVmInfo unknown");
    });

    test("a malformed proto body answers 400 invalid_argument", async () => {
      const r = await postProto("GetVmInfo", Buffer.from([0x0a, 0x10, 0x41]));
      assertError(r, 400, "invalid_argument", "truncated proto");
    });
  });

  describe("GET form", () => {
    test("encoding=json with a percent-encoded message", async () => {
      const msg = encodeURIComponent(JSON.stringify({ vmId: created }));
      const r = await get("GetVmInfo", `message=${msg}&encoding=json`);
      assert.equal(assertOkJson(r, "GET json").vmId, created);
    });

    test("encoding=json with base64=1 (URL-safe, unpadded)", async () => {
      // Pick a message whose base64 has padding and URL-unsafe characters to strip or map.
      const json = JSON.stringify({ vmId: created, pad: "??>>" });
      const r = await get("GetVmInfo", `encoding=json&base64=1&message=${b64url(json)}`);
      assert.equal(assertOkJson(r, "GET base64").vmId, created);
    });

    test("encoding=json with base64=1, padded", async () => {
      const json = JSON.stringify({ vmId: created, p: "?" });
      const r = await get("GetVmInfo", `message=${encodeURIComponent(b64url(json, { pad: true }))}&encoding=json&base64=1`);
      assert.equal(assertOkJson(r, "GET base64 padded").vmId, created);
    });

    test("ListVms by GET with connect=v1 and unknown parameters", async () => {
      const r = await get("ListVms", `connect=v1&message=${encodeURIComponent("{}")}&foo=bar&encoding=json`);
      const body = assertOkJson(r, "GET ListVms");
      assert.ok(Array.isArray(body.vms));
    });

    test("encoding=proto with base64=1", async () => {
      const Req = vm.msg("GetVmInfoRequest");
      const Res = vm.msg("GetVmInfoResponse");
      const bytes = toBinary(Req, create(Req, { vmId: created }));
      const r = await get("GetVmInfo", `message=${b64url(bytes)}&encoding=proto&base64=1`);
      assert.equal(r.status, 200, `${r.status} ${r.text}`);
      assert.match(String(r.headers["content-type"]), /^application\/proto\b/);
      const m = fromBinary(Res, r.decoded);
      assert.equal(m.vmId, created);
      assert.equal(m.state, 1 /* VM_STATE_CREATED */);
    });

    test("encoding=proto with a percent-encoded binary message", async () => {
      const Req = vm.msg("ListVmsRequest");
      const bytes = toBinary(Req, create(Req, { pageSize: 100, stateFilter: [2] }));
      const msg = Array.from(bytes, (b) => `%${b.toString(16).padStart(2, "0")}`).join("");
      const r = await get("ListVms", `encoding=proto&message=${msg}`);
      assert.equal(r.status, 200, `${r.status} ${r.text}`);
      const m = fromBinary(vm.msg("ListVmsResponse"), r.decoded);
      assert.ok(m.vms.some((v) => v.vmId === running));
    });

    test("compression=gzip with base64=1", async () => {
      const zipped = gzipSync(JSON.stringify({ vmId: created }));
      const r = await get("GetVmInfo", `message=${b64url(zipped)}&encoding=json&base64=1&compression=gzip`);
      assert.equal(assertOkJson(r, "GET gzip").vmId, created);
    });

    test("GET errors are JSON too", async () => {
      const msg = encodeURIComponent(JSON.stringify({ vmId: "no-such-vm" }));
      assertError(await get("GetVmInfo", `message=${msg}&encoding=json`), 404, "not_found", "GET unknown vm");
    });

    test("missing message answers 400 invalid_argument", async () => {
      assertError(await get("GetVmInfo", "encoding=json"), 400, "invalid_argument", "GET without message");
    });

    test("unknown encoding answers 415", async () => {
      const r = await get("GetVmInfo", `message=${encodeURIComponent("{}")}&encoding=xml`);
      assert.equal(r.status, 415, `${r.status} ${r.text}`);
    });

    test("missing encoding answers 415", async () => {
      const r = await get("GetVmInfo", `message=${encodeURIComponent("{}")}`);
      assert.equal(r.status, 415, `${r.status} ${r.text}`);
    });
  });

  describe("binary protobuf", () => {
    test("application/proto round trip: CreateVm, BootVm, GetVmInfo, ListVms", async () => {
      const m = (n) => vm.msg(n);
      const vmId = uniqueId("bin");
      const createReq = create(m("CreateVmRequest"), {
        vmId,
        customerId: "cust-bin",
        config: {
          cpu: { vcpuCount: 2 },
          memory: { sizeBytes: 64n * 1024n * 1024n },
          container: { image: "berth-test/busybox:latest", command: ["sleep", "3600"], env: { A: "1" } },
        },
      });
      let r = await postProto("CreateVm", toBinary(m("CreateVmRequest"), createReq));
      assert.equal(r.status, 200, `${r.status} ${r.text}`);
      assert.match(String(r.headers["content-type"]), /^application\/proto\b/);
      const created2 = fromBinary(m("CreateVmResponse"), r.decoded);
      assert.equal(created2.vmId, vmId);
      assert.equal(created2.state, 1);

      r = await postProto("BootVm", toBinary(m("BootVmRequest"), create(m("BootVmRequest"), { vmId })));
      assert.equal(r.status, 200, `${r.status} ${r.text}`);
      assert.equal(fromBinary(m("BootVmResponse"), r.decoded).state, 2);

      r = await postProto("GetVmInfo", toBinary(m("GetVmInfoRequest"), create(m("GetVmInfoRequest"), { vmId })));
      assert.equal(r.status, 200, `${r.status} ${r.text}`);
      const info = fromBinary(m("GetVmInfoResponse"), r.decoded);
      assert.equal(info.vmId, vmId);
      assert.equal(info.state, 2);
      assert.equal(info.config?.cpu?.vcpuCount, 2);
      assert.equal(info.config?.memory?.sizeBytes, 64n * 1024n * 1024n);

      // An empty proto body is a valid empty message.
      r = await postProto("ListVms", new Uint8Array(0));
      assert.equal(r.status, 200, `${r.status} ${r.text}`);
      const list = fromBinary(m("ListVmsResponse"), r.decoded);
      const mine = list.vms.find((v) => v.vmId === vmId);
      assert.ok(mine, "the new VM is listed");
      assert.equal(mine.customerId, "cust-bin");
    });
  });

  describe("error bodies are valid UTF-8 JSON", () => {
    const utf8 = new TextDecoder("utf-8", { fatal: true });
    const assertUtf8 = (r, ctx) => {
      assert.doesNotThrow(() => utf8.decode(r.body), `${ctx}: body is valid UTF-8: ${r.body.toString("hex")}`);
    };

    test("an echoed header with bytes that are not UTF-8 becomes U+FFFD", async () => {
      const r = await post("ListVms", "{}", { "Content-Encoding": "\xff\xfex" });
      assertError(r, 501, "unimplemented", "Content-Encoding with latin1 bytes");
      assertUtf8(r, "Content-Encoding \\xff\\xfe");
      assert.match(r.json.message, /\ufffd\ufffdx/, r.text);
    });

    test("a message cut at its cap ends on a character boundary", async () => {
      const r = await post("GetVmInfo", { vmId: "\u00e9".repeat(400) });
      assert.ok(r.status >= 400, `${r.status} ${r.text}`);
      assertUtf8(r, "400 x U+00E9");
      assert.ok(r.json && typeof r.json.code === "string", r.text);
    });

    test("a binary string field that is not UTF-8 answers 400 naming the field, valid JSON", async () => {
      const r = await postProto("GetVmInfo", Buffer.from([0x0a, 0x04, 0xff, 0xfe, 0x22, 0x5c]));
      assertUtf8(r, "proto vmId \\xff\\xfe\"\\");
      assertError(r, 400, "invalid_argument", "proto vmId not UTF-8");
      assert.match(r.json.message, /'vmId'/, r.text);
    });
  });

  describe("binary protobuf strings", () => {
    test("a NUL inside a string answers 400 (never a lookup of the cut string)", async () => {
      const r = await get("GetVmInfo", "encoding=proto&message=%0A%03a%00b");
      assertError(r, 400, "invalid_argument", "GET proto vmId a\\0b");
      assert.match(r.json.message, /'vmId'/, r.text);
    });

    test("a NUL inside a nested repeated string names its path", async () => {
      // CreateVmRequest{vm_id: "x", config(2){container(6)?}} is built by hand below.
      const Req = vm.msg("CreateVmRequest");
      const good = toBinary(Req, create(Req, { vmId: "nul-test", config: { container: { image: "i", command: ["a", "QQ"] } } }));
      const at = Buffer.from(good).indexOf(Buffer.from("QQ"));
      assert.ok(at > 0);
      const bad = Buffer.from(good);
      bad[at + 1] = 0;
      const r = await postProto("CreateVm", bad);
      assertError(r, 400, "invalid_argument", "nested NUL");
      assert.match(r.json.message, /'config\.container\.command\[1\]'/, r.text);
    });

    test("valid UTF-8 beyond ASCII passes", async () => {
      const M = vm.msg("GetVmInfoRequest");
      const r = await postProto("GetVmInfo", toBinary(M, create(M, { vmId: "caf\u00e9-\u2603" })));
      // Past the wire check, the service itself says what is wrong with the id.
      assertError(r, 400, "invalid_argument", "proto unicode id");
      assert.match(r.json.message, /'caf\u00e9-\u2603' may only hold/, r.text);
    });
  });

  describe("body over the limit goes through the Connect layer", () => {
    /** Write `head` (and then each of `chunks`) on a raw socket; resolve with the raw answer. */
    function rawExchange(head, chunks = []) {
      const url = new URL(d.url);
      return new Promise((resolve, reject) => {
        const sock = net.connect({ host: url.hostname, port: Number(url.port) });
        const got = [];
        sock.on("data", (b) => got.push(b));
        sock.on("error", (e) => (e.code === "ECONNRESET" || e.code === "EPIPE" ? resolve(Buffer.concat(got).toString("latin1")) : reject(e)));
        sock.on("close", () => resolve(Buffer.concat(got).toString("latin1")));
        sock.on("connect", () => {
          sock.write(head);
          for (const c of chunks) sock.write(c);
        });
      });
    }
    const statusOf = (raw) => Number((/^HTTP\/1\.1 (\d{3})/.exec(raw) || [])[1]);
    const bodyOf = (raw) => {
      const i = raw.indexOf("\r\n\r\n");
      let body = raw.slice(i + 4);
      if (/\r\ntransfer-encoding: *chunked/i.test(raw.slice(0, i))) {
        let out = "";
        for (;;) {
          const nl = body.indexOf("\r\n");
          const n = parseInt(body.slice(0, nl), 16);
          if (!(n > 0)) break;
          out += body.slice(nl + 2, nl + 2 + n);
          body = body.slice(nl + 2 + n + 2);
        }
        body = out;
      }
      return body;
    };

    test("declared Content-Length over the limit on an unknown path answers 404, body unread", async () => {
      const raw = await rawExchange(
        `POST /nope/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${MAX_BODY + 1}\r\n\r\n`,
      );
      assert.equal(statusOf(raw), 404, raw);
    });

    test("declared Content-Length over the limit on a procedure: 429, logged and counted, body unread", async () => {
      const raw = await rawExchange(
        `POST ${P}GetVmInfo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${MAX_BODY + 1}\r\n\r\n`,
      );
      assert.equal(statusOf(raw), 429, raw);
      const body = JSON.parse(bodyOf(raw));
      assert.equal(body.code, "resource_exhausted", raw);
      await d.waitForLog(/msg=rpc\b.*procedure=\/metal\.vmprovisioner\.v1\.VmService\/GetVmInfo\b.*code=resource_exhausted\b.*duration_ms=/);
      const m = await d.request({ method: "GET", path: "/metrics" });
      assert.match(m.text, /berth_rpc_requests_total\{procedure="\/metal\.vmprovisioner\.v1\.VmService\/GetVmInfo",code="resource_exhausted"\} [1-9]/);
    });

    test("a chunked body (no Content-Length) over the limit answers 429 resource_exhausted", async () => {
      const chunk = "x".repeat(300);
      const chunks = [];
      for (let sent = 0; sent <= MAX_BODY; sent += chunk.length) chunks.push(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      chunks.push("0\r\n\r\n");
      const raw = await rawExchange(
        `POST ${P}ListVms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
        chunks,
      );
      assert.equal(statusOf(raw), 429, raw);
      assert.equal(JSON.parse(bodyOf(raw)).code, "resource_exhausted", raw);
      await d.waitForLog(/msg=rpc\b.*procedure=\/metal\.vmprovisioner\.v1\.VmService\/ListVms\b.*code=resource_exhausted\b/);
    });
  });

  describe("log lines", () => {
    test("an error value with quotes and backslashes is escaped in the log", async () => {
      const id = `log"q\\${process.pid}`;
      assertError(await post("GetVmInfo", { vmId: id }), 400, "invalid_argument", "odd id");
      const line = await d.waitForLog(new RegExp(`code=invalid_argument\\b.*log\\\\"q\\\\\\\\${process.pid}`));
      assert.match(line, / error="(?:[^"\\\x00-\x1f]|\\.)*"$/, line);
    });

    const refusals = [
      { description: "404 unknown path", req: { method: "POST", path: "/nope/logged", headers: { "Content-Type": "application/json" }, body: "{}" }, status: 404, re: /msg=rpc\b.*path="\/nope\/logged"/ },
      { description: "405", req: { method: "PUT", path: `${P}DeleteVm`, headers: { "Content-Type": "application/json" }, body: "{}" }, status: 405, re: /msg=rpc\b.*procedure=\/metal\.vmprovisioner\.v1\.VmService\/DeleteVm\b.*status=405/ },
      { description: "415", req: { method: "POST", path: `${P}BootVm`, headers: { "Content-Type": "text/plain" }, body: "{}" }, status: 415, re: /msg=rpc\b.*procedure=\/metal\.vmprovisioner\.v1\.VmService\/BootVm\b.*status=415/ },
    ];
    for (const row of refusals) {
      test(`the ${row.description} line has a Connect code, duration_ms and request_id`, async () => {
        const r = await d.request(row.req);
        assert.equal(r.status, row.status, r.text);
        const line = await d.waitForLog(row.re);
        assert.match(line, /\bcode=unimplemented\b/, line);
        assert.match(line, /\bduration_ms=\d/, line);
        assert.match(line, /\brequest_id=[0-9a-f-]{36}\b/, line);
      });
    }
  });

  describe("Accept-Encoding q-values", () => {
    const rows = [
      { value: "gzip;q=0.5", gzip: true },
      { value: "identity, gzip ; q=1.0", gzip: true },
      { value: "gzip;q=0", gzip: false },
      { value: "gzip;q=0.000", gzip: false },
      { value: "br, gzip;q=0.001", gzip: true },
      { value: "xgzip", gzip: false },
    ];
    for (const row of rows) {
      test(`Accept-Encoding: ${row.value} -> ${row.gzip ? "gzip" : "no gzip"}`, async () => {
        const r = await post("ListVms", {}, { "Accept-Encoding": row.value });
        assert.equal(r.status, 200, r.text);
        assert.ok(r.body.length > 0);
        assert.equal(r.headers["content-encoding"], row.gzip ? "gzip" : undefined, `${row.value}`);
      });
    }
  });

  describe("logging and shutdown", () => {
    test("each request leaves one msg=rpc log line", async () => {
      assertOkJson(await post("ListVms", {}), "ListVms");
      const line = await d.waitForLog(/msg=rpc\b.*procedure=\/metal\.vmprovisioner\.v1\.VmService\/ListVms\b.*code=ok\b/);
      assert.match(line, /duration_ms=\d/);
      assert.match(line, /request_id=\S+/);
      await post("GetVmInfo", { vmId: "no-such-vm" });
      await d.waitForLog(/msg=rpc\b.*procedure=\/metal\.vmprovisioner\.v1\.VmService\/GetVmInfo\b.*code=not_found\b/);
    });

    test("X-Request-Id: a sane one is echoed and logged, anything else is replaced", async () => {
      const rows = [
        { description: "a sane id", sent: "trace-1.a:b_C-9", echoed: true },
        { description: "128 characters", sent: "a".repeat(128), echoed: true },
        { description: "129 characters", sent: "a".repeat(129), echoed: false },
        { description: "a space", sent: "a b", echoed: false },
        { description: "a slash", sent: "a/b", echoed: false },
      ];
      for (const row of rows) {
        const r = await post("ListVms", {}, { "X-Request-Id": row.sent });
        assert.equal(r.status, 200, row.description);
        const got = r.headers["x-request-id"];
        if (row.echoed) assert.equal(got, row.sent, row.description);
        else assert.match(got, /^[0-9a-f-]{36}$/, `${row.description}: a new id`);
        await d.waitForLog(new RegExp(`msg=rpc\\b.*request_id=${got.replace(/[.]/g, "\\.")}\\b`));
      }
      const e = await post("GetVmInfo", { vmId: "no-such-vm" }, { "X-Request-Id": "err-1" });
      assert.equal(e.headers["x-request-id"], "err-1", "errors carry it too");
      const u = await d.request({ method: "POST", path: "/no.such.Service/M", headers: { "Content-Type": "application/json" }, body: "{}" });
      assert.match(u.headers["x-request-id"], /^[0-9a-f-]{36}$/, "and unknown paths");
      for (const p of ["/healthz", "/readyz", "/metrics"]) {
        const h = await d.request({ method: "GET", path: p, headers: { "X-Request-Id": "probe-1" } });
        assert.equal(h.headers["x-request-id"], "probe-1", `${p} carries it`);
        const g = await d.request({ method: "GET", path: p });
        assert.match(g.headers["x-request-id"], /^[0-9a-f-]{36}$/, `${p} makes one`);
      }
    });

    test("an unknown procedure's error names the path and the services berthd serves", async () => {
      const r = await d.request({ method: "POST", path: "/no.such.Service/M", headers: { "Content-Type": "application/json" }, body: "{}" });
      assert.equal(r.status, 404);
      assert.match(r.json.message, /'\/no\.such\.Service\/M' not found/);
      for (const s of ["metal.vmprovisioner.v1.VmService", "krane.v1.GatewayService", "krane.v1.DeploymentService", "berth.v1.LogService", "berth.v1.EventService"]) {
        assert.ok(r.json.message.includes(s), s);
      }
    });

    test("the start-up line carries the version, the commit and the effective configuration", async () => {
      const line = await d.waitForLog(/msg=daemon\.starting\b/);
      assert.match(line, /^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info msg=daemon\.starting version=\S+ commit=\S+ /);
      assert.match(line, / backend="memory"/);
      assert.match(line, / listen="127\.0\.0\.1:0"/);
    });

    test("SIGTERM: graceful exit 0", async () => {
      const r = await d.stop();
      assert.deepEqual(r, { code: 0, signal: null }, `exit ${JSON.stringify(r)}; stderr:\n${d.stderr}`);
    });
  });
});

// The scripts behind the protocol: the NO_SIDE_EFFECTS table (which methods
// answer GET) and the Engine check of scripts/setup.sh, run with stub tools.
describe("build and setup scripts", () => {
  const root = process.env.BERTH_SOURCE_DIR || path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  let dir;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "berth-scripts-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("gen_idempotency.sh skips a commented-out NO_SIDE_EFFECTS option", () => {
    const proto = path.join(dir, "a.proto");
    writeFileSync(
      proto,
      [
        "syntax = \"proto3\";",
        "package p.v1;",
        "service S {",
        "  rpc Get(A) returns (A) {",
        "    option idempotency_level = NO_SIDE_EFFECTS;",
        "  }",
        "  rpc Put(A) returns (A) {",
        "    // option idempotency_level = NO_SIDE_EFFECTS;",
        "  }",
        "  rpc Del(A) returns (A) { //option idempotency_level = NO_SIDE_EFFECTS;",
        "  }",
        "}",
      ].join("\n"),
    );
    const out = path.join(dir, "idem.c");
    execFileSync("sh", [path.join(root, "cmake", "gen_idempotency.sh"), out, proto]);
    const text = readFileSync(out, "utf8");
    assert.match(text, /"\/p\.v1\.S\/Get"/, text);
    assert.doesNotMatch(text, /Put|Del/, text);
  });

  /** Run ensure_engine of scripts/setup.sh with stub curl/pidof/dockerd first on PATH. */
  function ensureEngine({ dockerdRuns }) {
    const bin = mkdtempSync(path.join(dir, "bin-"));
    const log = path.join(bin, "calls");
    const stub = (name, body) => {
      writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(path.join(bin, name), 0o755);
    };
    // The Engine answers from the second ping on (a slow one), or once the stub dockerd ran.
    stub("curl", `n=$(cat "${bin}/pings" 2>/dev/null || echo 0); echo $((n + 1)) > "${bin}/pings"\n` +
      `[ -e "${bin}/started" ] || [ "$n" -ge 1 -a ${dockerdRuns ? 1 : 0} = 1 ]`);
    stub("pidof", dockerdRuns ? `echo 4242` : `exit 1`);
    stub("dockerd", `echo "dockerd $*" >> "${log}"; touch "${bin}/started"`);
    const r = spawnSync("sh", ["-c", `. "${root}/scripts/setup.sh"; ensure_engine`], {
      env: {
        ...process.env,
        PATH: `${bin}:${process.env.PATH}`,
        BERTH_DOCKER_SOCKET: path.join(dir, "custom.sock"),
        BERTH_DOCKERD_LOG: path.join(bin, "dockerd.log"),
      },
      encoding: "utf8",
      timeout: 30000,
    });
    const calls = existsSync(log) ? readFileSync(log, "utf8") : "";
    return { status: r.status, stderr: r.stderr, calls };
  }

  test("setup.sh waits for a running but slow dockerd instead of starting a second", () => {
    const r = ensureEngine({ dockerdRuns: true });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.calls, "", `no dockerd started: ${r.calls}`);
  });

  test("setup.sh starts dockerd on a custom BERTH_DOCKER_SOCKET", () => {
    const r = ensureEngine({ dockerdRuns: false });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.calls, new RegExp(`-H unix://${path.join(dir, "custom.sock").replace(/[.]/g, "\\.")}`), r.calls);
  });
});
