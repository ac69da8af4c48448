// ctest-labels: auth config
// Configuration checked once, the same way for start and --check-config:
// exit codes, the errors naming the option (or the config file's line), the
// config file's place between the defaults and the environment, and the
// warning for a BERTH_* variable that names no option. No daemon keeps
// running here.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { berthdSkipReason } from "../lib/berthd.mjs";
import { runBerthd, spawnBerthd, tempDir, removeDir } from "../lib/secure.mjs";

const skip = berthdSkipReason();
// The caller's BERTH_* variables must not change what is checked here.
const cleanEnv = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith("BERTH_")).map((k) => [k, undefined]));
const check = (args, env = {}) => runBerthd(["--check-config", ...args], { env: { ...cleanEnv, ...env } });

describe("--check-config", { skip }, () => {
  test("a good configuration prints the effective values and exits 0", () => {
    const r = check(["--listen", "127.0.0.1:0", "--backend", "memory"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^listen=127\.0\.0\.1:0$/m);
    assert.match(r.stdout, /^read-timeout=10$/m);
    assert.match(r.stdout, /^max-connections-per-ip=64$/m);
    assert.match(r.stdout, /^socket-mode=0660$/m);
    assert.match(r.stdout, /^insecure-listen=false$/m);
  });

  const bad = [
    ["--publish-address not an IP", ["--publish-address", "not-an-ip"], /publish-address 'not-an-ip': expected an IP address/],
    ["--listen port 99999", ["--listen", "127.0.0.1:99999"], /0 to 65535/],
    ["--listen port -1", ["--listen", "127.0.0.1:-1"], /0 to 65535/],
    ["a non-loopback listener without auth", ["--listen", "0.0.0.0:8080"], /--insecure-listen/],
    ["an unknown option", ["--no-such-option"], /unknown option/],
    ["a missing token file", ["--auth-token-file", "/nonexistent/berth-tokens"], /auth-token-file/],
    ["a TLS cert without its key", ["--tls-cert", "/etc/hostname"], /tls-key/],
  ];
  for (const [what, args, re] of bad) {
    test(`${what}: exits non-zero, naming the problem, printing no values`, () => {
      const r = check(args);
      assert.notEqual(r.status, 0, `${what}: ${r.stdout}`);
      assert.match(r.stderr, re);
      assert.equal(r.stdout, "");
    });
  }

  test("the environment is validated the same way", () => {
    const r = check([], { BERTH_PUBLISH_ADDRESS: "not-an-ip" });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /publish-address .*BERTH_PUBLISH_ADDRESS|publish-address/);
    const p = check([], { BERTH_LISTEN: "127.0.0.1:99999" });
    assert.notEqual(p.status, 0);
  });

  test("a bad line of the token file fails the check as it fails a start", () => {
    const dir = tempDir("cfg-tokens");
    try {
      const file = path.join(dir, "tokens");
      writeFileSync(file, "good-token\nname with space:x\n");
      const r = check(["--auth-token-file", file]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /line 2/);
      writeFileSync(file, "good-token\n");
      assert.equal(check(["--auth-token-file", file]).status, 0);
    } finally {
      removeDir(dir);
    }
  });

  test("a BERTH_* variable that names no option is a warning, not an error", () => {
    const r = check([], { BERTH_LISTN: "127.0.0.1:1" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^ts=\S+ level=warn msg=config\.unknown_env name="BERTH_LISTN"/m);
    assert.ok(!r.stderr.includes("127.0.0.1:1"), "the value was logged");
  });
});

describe("--config FILE", { skip }, () => {
  let dir;
  const file = (name, text) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  before(() => {
    dir = tempDir("cfg-file");
  });
  after(() => removeDir(dir));

  test("the file sets options; the environment wins over it, a flag over both", () => {
    const f = file("berthd.conf", "# settings\nlisten = 127.0.0.1:0\nbackend = memory\nstop-timeout = 11\npids-limit = 2000\nlog-level = debug # loud\n");
    let r = check(["--config", f]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^stop-timeout=11$/m);
    assert.match(r.stdout, /^log-level=debug$/m);
    assert.match(r.stdout, new RegExp(`^config=${f.replace(/[.]/g, "\\.")}$`, "m"));
    r = check(["--config", f, "--stop-timeout", "13"], { BERTH_STOP_TIMEOUT: "12", BERTH_PIDS_LIMIT: "3000" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^stop-timeout=13$/m);
    assert.match(r.stdout, /^pids-limit=3000$/m);
    r = check([], { BERTH_CONFIG: f });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^stop-timeout=11$/m, "BERTH_CONFIG names the file");
  });

  const bad = [
    ["an unknown key", "listen = 127.0.0.1:0\nlisten-adress = 1\n", /line 2: unknown key 'listen-adress'/],
    ["a bad value", "\nstop-timeout = soon\n", /stop-timeout 'soon': expected an integer .*line 2/],
    ["a line without =", "log-level debug\n", /line 1: expected key = value/],
    ["a key set twice", "max-vms = 1\nmax-vms = 2\n", /line 2: max-vms was already set on line 1/],
  ];
  for (const [what, text, re] of bad) {
    test(`${what}: --check-config and a start both fail, naming the file and the line`, async () => {
      const f = file("bad.conf", text);
      const r = check(["--config", f]);
      assert.notEqual(r.status, 0, r.stdout);
      assert.match(r.stderr, re);
      assert.ok(r.stderr.includes(f), `names the file: ${r.stderr}`);
      assert.equal(r.stdout, "");
      await assert.rejects(spawnBerthd(["--listen", "127.0.0.1:0", "--config", f], { timeoutMs: 5000 }), re);
    });
  }

  test("a file that cannot be read is an error", () => {
    const r = check(["--config", path.join(dir, "missing.conf")]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /missing\.conf/);
  });

  test("a daemon started with a file runs with its values", async (t) => {
    const f = file("run.conf", "stop-timeout = 7\nmax-vms = 3\n");
    const d = await spawnBerthd(["--listen", "127.0.0.1:0", "--config", f]);
    t.after(() => d.kill());
    const line = await d.waitForLog(/msg=daemon\.starting/);
    assert.match(line, /stop-timeout="7"/);
    assert.match(line, /max-vms="3"/);
    assert.match(line, /config="[^"]*run\.conf"/);
    assert.deepEqual(await d.stop(), { code: 0, signal: null });
  });
});

describe("--version", { skip }, () => {
  test("prints the version, the commit and the build date on one line", () => {
    const r = runBerthd(["--version"], { env: cleanEnv });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^berthd \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}|unknown), built \d{4}-\d{2}-\d{2}\)\n$/);
    assert.equal(r.stderr, "");
  });
});

describe("start runs the same validation", { skip }, () => {
  test("--publish-address not-an-ip refuses to start", async () => {
    await assert.rejects(spawnBerthd(["--listen", "127.0.0.1:0", "--publish-address", "not-an-ip"], { timeoutMs: 5000 }), /publish-address/);
  });

  test("--listen 127.0.0.1:99999 refuses to start", async () => {
    await assert.rejects(spawnBerthd(["--listen", "127.0.0.1:99999"], { timeoutMs: 5000 }), /65535/);
  });
});
