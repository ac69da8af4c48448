// ctest-labels: auth
// Bearer tokens of --auth-token-file against the real berthd (memory
// backend): missing, wrong and right tokens, `name:token` lines, the open
// health routes, /metrics behind --metrics-auth, the caller in the rpc log
// line (never the token), and rotation by SIGHUP, where a broken file keeps
// the tokens in use.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { tempDir, removeDir } from "../lib/secure.mjs";

const skip = berthdSkipReason();
const LIST = "/metal.vmprovisioner.v1.VmService/ListVms";
const SECRET_A = "tok-a-3f9c1d0e8b7a65";
const SECRET_CI = "tok-ci-71aa09f2c4d3e1";

describe("bearer tokens", { skip }, () => {
  let dir;
  let file;
  let d;

  before(async () => {
    dir = tempDir("auth");
    file = path.join(dir, "tokens");
    writeFileSync(file, `# berth callers\n\n${SECRET_A}\nci-runner:${SECRET_CI}\n   \n`);
    d = await startBerthd({ args: ["--auth-token-file", file] });
  });

  after(async () => {
    if (d) {
      const r = await d.stop();
      assert.equal(r.code, 0, d.stderr);
    }
    removeDir(dir);
  });

  const list = (headers = {}) => d.postJson(LIST, {}, headers);

  test("no token: 401 unauthenticated with WWW-Authenticate: Bearer", async () => {
    const r = await list();
    assert.equal(r.status, 401);
    assert.equal(r.json.code, "unauthenticated");
    assert.match(r.headers["content-type"], /^application\/json/);
    assert.equal(r.headers["www-authenticate"], "Bearer");
    const named = await list({ "X-Request-Id": "refused-1" });
    assert.equal(named.headers["x-request-id"], "refused-1", "a refusal names its request");
    await d.waitForLog(/msg=auth\.refused .*request_id=refused-1\b/);
  });

  test("a wrong token, a prefix of a right one, another scheme: 401", async () => {
    for (const h of [`Bearer nope`, `Bearer ${SECRET_A.slice(0, -1)}`, `Bearer ${SECRET_A}x`, `Basic ${SECRET_A}`, "Bearer "]) {
      const r = await list({ Authorization: h });
      assert.equal(r.status, 401, h);
      assert.equal(r.json.code, "unauthenticated", h);
    }
  });

  test("a right token answers; a named one is logged by its name, the token never", async () => {
    const a = await list({ Authorization: `Bearer ${SECRET_A}` });
    assert.equal(a.status, 200, a.text);
    const ci = await list({ Authorization: `Bearer ${SECRET_CI}` });
    assert.equal(ci.status, 200, ci.text);
    await d.waitForLog(/msg=rpc .*caller="token:ci-runner"/);
    await d.waitForLog(/msg=rpc .*caller="token:line-3"/);
    assert.ok(!d.stderr.includes(SECRET_A) && !d.stderr.includes(SECRET_CI), "a token was logged");
  });

  test("the binary codec and GET need the token too", async () => {
    const r = await d.request({ method: "GET", path: `${LIST}?encoding=json&message=%7B%7D` });
    assert.equal(r.status, 401);
    const ok = await d.request({ method: "GET", path: `${LIST}?encoding=json&message=%7B%7D`, headers: { Authorization: `Bearer ${SECRET_A}` } });
    assert.equal(ok.status, 200, ok.text);
  });

  test("/healthz, /readyz and /metrics stay open", async () => {
    for (const p of ["/healthz", "/readyz", "/metrics"]) {
      const r = await d.request({ method: "GET", path: p });
      assert.equal(r.status, 200, p);
    }
  });

  test("SIGHUP rotates the tokens; a broken file keeps the ones in use", async () => {
    const NEW = "tok-new-5e2b88c1aa";
    writeFileSync(file, `rotated:${NEW}\n`);
    const reloads = d.logLines().filter((l) => /msg=auth\.reload code=ok/.test(l)).length;
    d.child.kill("SIGHUP");
    await waitFor(() => d.logLines().filter((l) => /msg=auth\.reload code=ok/.test(l)).length > reloads, {
      what: "the token reload",
    });
    assert.equal((await list({ Authorization: `Bearer ${NEW}` })).status, 200);
    assert.equal((await list({ Authorization: `Bearer ${SECRET_A}` })).status, 401, "an old token still works");
    await d.waitForLog(/msg=rpc .*caller="token:rotated"/);

    writeFileSync(file, `bad name:${NEW}x\n`);
    d.child.kill("SIGHUP");
    const warn = await d.waitForLog(/msg=auth\.reload code=invalid_argument/);
    assert.match(warn, /auth\.reload/);
    assert.ok(!warn.includes(NEW), "the reload warning shows a token");
    assert.equal((await list({ Authorization: `Bearer ${NEW}` })).status, 200, "the tokens in use were dropped");
  });
});

describe("metrics behind --metrics-auth", { skip }, () => {
  let dir;
  let d;

  before(async () => {
    dir = tempDir("auth-metrics");
    const file = path.join(dir, "tokens");
    writeFileSync(file, `scraper:${SECRET_A}\n`);
    d = await startBerthd({ args: ["--auth-token-file", file, "--metrics-auth"] });
  });

  after(async () => {
    if (d) assert.equal((await d.stop()).code, 0, d.stderr);
    removeDir(dir);
  });

  test("/metrics needs a token; /healthz does not", async () => {
    const r = await d.request({ method: "GET", path: "/metrics" });
    assert.equal(r.status, 401);
    assert.equal(r.json.code, "unauthenticated");
    const ok = await d.request({ method: "GET", path: "/metrics", headers: { Authorization: `Bearer ${SECRET_A}` } });
    assert.equal(ok.status, 200);
    assert.match(ok.text, /# TYPE/);
    assert.equal((await d.request({ method: "GET", path: "/healthz" })).status, 200);
  });
});

describe("a bad token file", { skip }, () => {
  test("refuses to start, naming the line but not its text", async () => {
    const dir = tempDir("auth-bad");
    try {
      const file = path.join(dir, "tokens");
      writeFileSync(file, "ok-token\nspaced token here\n");
      await assert.rejects(startBerthd({ args: ["--auth-token-file", file], timeoutMs: 5000 }), (err) => {
        assert.match(err.message, /auth-token-file .* line 2/);
        assert.ok(!err.message.includes("spaced token here"));
        return true;
      });
    } finally {
      removeDir(dir);
    }
  });
});
