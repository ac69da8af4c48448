// ctest-labels: protocol
// What one request may decode into: a body of 4 MB made of millions of tiny
// elements (a list, a map, unknown fields; JSON and binary) is refused
// naming the field before it is built, so eight of them at once leave the
// daemon's resident memory under 64 MiB. Lists at the bound still decode.
// The memory backend is enough: nothing here reaches the Engine.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startBerthd, berthdSkipReason, isSanitized } from "../lib/berthd.mjs";

const skip = berthdSkipReason();
const VM = "/metal.vmprovisioner.v1.VmService/";
const BODY_BYTES = 4 * 1024 * 1024 - 64; // under --max-body-bytes (4 MiB)
const AT_ONCE = 8;
const RSS_LIMIT_KIB = 64 * 1024;
const MAX_ELEMENTS = 10000; // CODEC_MAX_ELEMENTS

/** A field of /proc/PID/status in KiB (VmRSS, VmHWM). */
function statusKiB(pid, key) {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, `${key} in /proc/${pid}/status`);
  return Number(m[1]);
}

function varint(n) {
  const out = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited field: tag, length, bytes. */
const field = (number, bytes) => Buffer.concat([varint(number * 8 + 2), varint(bytes.length), bytes]);

/** `unit` repeated until the text is about `bytes` long, inside head ... tail. */
function jsonList(head, unit, tail, bytes = BODY_BYTES) {
  const n = Math.floor((bytes - head.length - tail.length) / (unit.length + 1));
  return head + Array(n).fill(unit).join(",") + tail;
}

/** Eight at once of each: the shape, its procedure, content type, body and what the answer must name. */
function hostileBodies() {
  const command = Buffer.alloc(BODY_BYTES - 16, Buffer.from([0x12, 0x00])); // ContainerSpec.command: ""
  const packed = Buffer.alloc(BODY_BYTES - 8, 0x01); // ListVmsRequest.state_filter, packed
  // Distinct keys, as a map of one key given again would be one entry.
  const parts = [];
  for (let i = 0, size = 30; size < BODY_BYTES - 16; i++) {
    parts.push(`"${i.toString(36)}":""`);
    size += parts[i].length + 1;
  }
  const metadata = `{"config":{"metadata":{${parts.join(",")}}}}`;
  return [
    { what: "a JSON list of enums", path: "ListVms", ct: "application/json", body: jsonList('{"stateFilter":[', "0", "]}"), names: /'stateFilter': more than 10000 elements/ },
    { what: "a JSON list of messages", path: "CreateVm", ct: "application/json", body: jsonList('{"vmId":"x","config":{"storage":[', "{}", "]}}"), names: /'config\.storage': more than 10000 elements/ },
    { what: "a JSON list of strings", path: "CreateVm", ct: "application/json", body: jsonList('{"config":{"container":{"command":[', '""', "]}}}"), names: /'config\.container\.command': more than 10000 elements/ },
    { what: "a JSON map", path: "CreateVm", ct: "application/json", body: metadata, names: /'config\.metadata': more than 10000 members/ },
    { what: "a binary list of strings", path: "CreateVm", ct: "application/proto", body: field(2, field(100, command)), names: /'config\.container\.command': more than 10000 elements/ },
    { what: "a binary packed list", path: "ListVms", ct: "application/proto", body: field(1, packed), names: /'stateFilter': more than 10000 elements/ },
    { what: "binary unknown fields", path: "CreateVm", ct: "application/proto", body: Buffer.alloc(BODY_BYTES, Buffer.from([0x48, 0x00])), names: /more than 10000 unknown fields/ },
  ];
}

describe("decode limits", { skip }, () => {
  let d;
  let pid;

  before(async () => {
    // Under ASan, freed memory waits in a quarantine (256 MB by default)
    // before it is reused; without it the figure is the daemon's own.
    const asan = [process.env.ASAN_OPTIONS, "quarantine_size_mb=0"].filter(Boolean).join(":");
    d = await startBerthd({ env: { ASAN_OPTIONS: asan } });
    pid = d.child.pid;
  });

  after(async () => {
    if (d) assert.equal((await d.stop()).code, 0, d.stderr);
  });

  test(`${AT_ONCE} bodies of 4 MB of tiny elements at once: refused naming the field, RSS under 64 MiB`, async (t) => {
    const baseline = statusKiB(pid, "VmRSS");
    const seen = [];
    for (const c of hostileBodies()) {
      assert.ok(c.body.length <= BODY_BYTES && c.body.length > BODY_BYTES - 1024, `${c.what}: ${c.body.length} bytes`);
      let peak = 0;
      const sampler = setInterval(() => {
        peak = Math.max(peak, statusKiB(pid, "VmRSS"));
      }, 5);
      const t0 = Date.now();
      let answers;
      try {
        answers = await Promise.all(
          Array.from({ length: AT_ONCE }, () => d.request({ path: VM + c.path, headers: { "Content-Type": c.ct }, body: c.body, timeoutMs: 30000 })),
        );
      } finally {
        clearInterval(sampler);
      }
      for (const r of answers) {
        assert.equal(r.status, 400, `${c.what}: ${r.text.slice(0, 300)}`);
        assert.equal(r.json?.code, "invalid_argument", `${c.what}: ${r.text.slice(0, 300)}`);
        assert.match(r.json.message, c.names, c.what);
      }
      seen.push(`${c.what}: peak ${peak} KiB in ${Date.now() - t0} ms`);
    }
    // VmHWM is the highest resident size since the daemon started.
    const hwm = statusKiB(pid, "VmHWM");
    // A sanitized build carries its shadow memory and allocator on top (its
    // idle daemon is twice the size): there the growth is what is bounded,
    // by what the plain build may grow from its own baseline.
    const limit = isSanitized(pid) ? baseline + RSS_LIMIT_KIB - 16 * 1024 : RSS_LIMIT_KIB;
    t.diagnostic(`baseline ${baseline} KiB, highest ${hwm} KiB (limit ${limit}); ${seen.join("; ")}`);
    assert.ok(hwm < limit, `peak RSS ${hwm} KiB (baseline ${baseline} KiB, limit ${limit} KiB):\n${seen.join("\n")}`);
    assert.equal((await d.request({ method: "GET", path: "/healthz" })).status, 200);
  });

  test("lists at the bound decode, one element more is refused", async () => {
    const list = (n) => `{"stateFilter":[${Array(n).fill("1").join(",")}]}`;
    const ok = await d.postJson(VM + "ListVms", list(MAX_ELEMENTS));
    assert.equal(ok.status, 200, ok.text.slice(0, 300));
    const over = await d.postJson(VM + "ListVms", list(MAX_ELEMENTS + 1));
    assert.equal(over.status, 400, over.text);
    assert.equal(over.json.code, "invalid_argument");
    assert.match(over.json.message, /'stateFilter': more than 10000 elements/);
    const bin = await d.request({ path: VM + "ListVms", headers: { "Content-Type": "application/proto" }, body: field(1, Buffer.alloc(MAX_ELEMENTS, 1)) });
    assert.equal(bin.status, 200, bin.text);
  });

  test("values in all past the bound: resource_exhausted naming where they ran out", async () => {
    // Five lists of 9999 are each within their bound; together they pass 50000 values.
    const l = (u) => `[${Array(9999).fill(u).join(",")}]`;
    const body = `{"vmId":"x","config":{"storage":${l("{}")},"network":${l("{}")},"volumes":${l("{}")},"command":${l('""')},"container":{"command":${l('""')}}}}`;
    const r = await d.postJson(VM + "CreateVm", body);
    assert.equal(r.status, 429, r.text);
    assert.equal(r.json.code, "resource_exhausted");
    assert.match(r.json.message, /more than 50000 values, at field 'config\.container\.command'/);
  });
});
