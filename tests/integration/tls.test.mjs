// ctest-labels: auth tls
// The TLS listener and mTLS against the real berthd (memory backend), with a
// CA and certificates that openssl makes here: a good, a missing and a wrong
// client certificate from curl and from @connectrpc/connect-node over https,
// the caller's SPIFFE id or subject in the log, --tls-allowed-ids, plain HTTP
// to the TLS port refused, and the server certificate replaced on SIGHUP
// (the same files re-read, or others the --config file names).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import net from "node:net";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { berthdSkipReason } from "../lib/berthd.mjs";
import { vmProto } from "../lib/proto.mjs";
import { tempDir, removeDir, makePki, spawnBerthd, call, hostPort } from "../lib/secure.mjs";

const noOpenssl = spawnSync("openssl", ["version"]).status === 0 ? undefined : "openssl is not installed";
const noCurl = spawnSync("curl", ["--version"]).status === 0 ? undefined : "curl is not installed";
const skip = berthdSkipReason() || noOpenssl;
const LIST = "/metal.vmprovisioner.v1.VmService/ListVms";

function curl(pki, url, extra) {
  const r = spawnSync(
    "curl",
    ["-sS", "--max-time", "10", "--cacert", pki.file("ca.pem"), "-H", "Content-Type: application/json", "-d", "{}",
     "-o", "-", "-w", "\n%{http_code}", ...extra, url],
    { encoding: "utf8" },
  );
  const lines = r.stdout.split("\n");
  return { rc: r.status, status: Number(lines.pop()), body: lines.join("\n"), stderr: r.stderr };
}

describe("TLS with client certificates", { skip }, () => {
  let dir;
  let pki;
  let d;
  let hp;
  let base;

  before(async () => {
    dir = tempDir("tls");
    pki = makePki(dir);
    // The daemon reads live.*, which the reload test replaces.
    copyFileSync(pki.file("srv.pem"), pki.file("live.pem"));
    copyFileSync(pki.file("srv.key"), pki.file("live.key"));
    d = await spawnBerthd([
      "--listen", "127.0.0.1:0",
      "--tls-cert", pki.file("live.pem"),
      "--tls-key", pki.file("live.key"),
      "--tls-client-ca", pki.file("ca.pem"),
    ]);
    hp = hostPort(d.address);
    base = `https://127.0.0.1:${hp.port}`;
  });

  after(async () => {
    if (d) assert.equal((await d.stop()).code, 0, d.stderr);
    removeDir(dir);
  });

  const tlsTarget = (client) => ({
    https: { ...hp, ca: pki.read("ca.pem"), ...(client ? { cert: pki.read(`${client}.pem`), key: pki.read(`${client}.key`) } : {}) },
  });

  test("curl: good client certificate answers; its SPIFFE id is the caller", { skip: noCurl }, async () => {
    const r = curl(pki, base + LIST, ["--cert", pki.file("cli.pem"), "--key", pki.file("cli.key")]);
    assert.equal(r.status, 200, r.stderr + r.body);
    await d.waitForLog(/msg=rpc .*caller="spiffe:\/\/berth\.test\/ci"/);
  });

  test("curl: no client certificate and one of another CA: 401 unauthenticated", { skip: noCurl }, async () => {
    const none = curl(pki, base + LIST, []);
    assert.equal(none.status, 401, none.stderr);
    assert.equal(JSON.parse(none.body).code, "unauthenticated");
    const rogue = curl(pki, base + LIST, ["--cert", pki.file("rogue.pem"), "--key", pki.file("rogue.key")]);
    assert.equal(rogue.status, 401, rogue.stderr);
    assert.equal(JSON.parse(rogue.body).code, "unauthenticated");
  });

  test("a certificate without a SPIFFE id is named by its subject", async () => {
    const r = await call(tlsTarget("plain"), { path: LIST, body: {} });
    assert.equal(r.status, 200, r.text);
    await d.waitForLog(/msg=rpc .*caller="CN=operator,O=berth"/);
  });

  test("/healthz answers over TLS without a client certificate", async () => {
    const r = await call(tlsTarget(null), { method: "GET", path: "/healthz" });
    assert.equal(r.status, 200);
  });

  test("connect-node over https: good, missing and wrong certificates", async () => {
    const svc = vmProto().service;
    const mk = (client) =>
      createClient(
        svc,
        createConnectTransport({
          baseUrl: base,
          httpVersion: "1.1",
          nodeOptions: {
            ca: pki.read("ca.pem"),
            servername: "localhost",
            ...(client ? { cert: pki.read(`${client}.pem`), key: pki.read(`${client}.key`) } : {}),
          },
        }),
      );
    const ok = await mk("cli").listVms({});
    assert.ok(ok);
    for (const who of [null, "rogue"]) {
      await assert.rejects(mk(who).listVms({}), (err) => {
        assert.ok(err instanceof ConnectError, String(err));
        assert.equal(err.code, Code.Unauthenticated, `${who}: ${err.rawMessage}`);
        return true;
      });
    }
  });

  test("plain HTTP to the TLS port is refused", async () => {
    const reply = await new Promise((resolve) => {
      const s = net.connect(hp.port, "127.0.0.1", () => s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
      let got = "";
      s.on("data", (c) => (got += c.toString("latin1")));
      s.on("close", () => resolve(got));
      s.on("error", () => resolve(got));
      s.setTimeout(10000, () => s.destroy());
    });
    assert.ok(!reply.startsWith("HTTP/1.1 200"), `plain HTTP was served: ${JSON.stringify(reply.slice(0, 80))}`);
    assert.ok(!reply.includes("ok\n"));
  });

  test("SIGHUP replaces the server certificate for new connections", async () => {
    const before = await call(tlsTarget("cli"), { method: "GET", path: "/healthz" });
    assert.equal(before.peer.subject.CN, "berth server one");
    copyFileSync(pki.file("srv2.pem"), pki.file("live.pem"));
    copyFileSync(pki.file("srv2.key"), pki.file("live.key"));
    d.child.kill("SIGHUP");
    await d.waitForLog(/msg=tls\.reload code=ok/);
    const now = await call(tlsTarget("cli"), { method: "GET", path: "/healthz" });
    assert.equal(now.status, 200);
    assert.equal(now.peer.subject.CN, "berth server two");
  });
});

describe("TLS files named by the --config file", { skip }, () => {
  let dir;
  let pki;
  let d;
  let conf;

  before(async () => {
    dir = tempDir("tls-conf");
    pki = makePki(dir);
    conf = path.join(dir, "berthd.conf");
    writeFileSync(conf, `tls-cert = ${pki.file("srv.pem")}\ntls-key = ${pki.file("srv.key")}\n`);
    d = await spawnBerthd(["--listen", "127.0.0.1:0", "--config", conf]);
  });

  after(async () => {
    if (d) assert.equal((await d.stop()).code, 0, d.stderr);
    removeDir(dir);
  });

  const peerCN = async () => {
    const r = await call({ https: { ...hostPort(d.address), ca: pki.read("ca.pem") } }, { method: "GET", path: "/healthz" });
    assert.equal(r.status, 200);
    return r.peer.subject.CN;
  };

  test("SIGHUP after naming another certificate and key serves them; turning TLS off needs a restart", async () => {
    assert.equal(await peerCN(), "berth server one");
    writeFileSync(conf, `tls-cert = ${pki.file("srv2.pem")}\ntls-key = ${pki.file("srv2.key")}\n`);
    d.child.kill("SIGHUP");
    const line = await d.waitForLog(/msg=config\.reload code=ok/);
    assert.match(line, /changed="tls-cert,tls-key"/);
    assert.ok(!line.includes(dir), "no file names in the reload line");
    assert.equal(await peerCN(), "berth server two");

    // A key that does not match: the pair in use stays, a warning says so.
    writeFileSync(conf, `tls-cert = ${pki.file("srv.pem")}\ntls-key = ${pki.file("srv2.key")}\n`);
    d.child.kill("SIGHUP");
    await d.waitForLog(/level=warn msg=config\.reload_failed options="tls-cert"/);
    assert.equal(await peerCN(), "berth server two");

    writeFileSync(conf, "");
    d.child.kill("SIGHUP");
    await d.waitForLog(/level=warn msg=config\.restart_needed options="tls-cert,tls-key"/);
    assert.equal(await peerCN(), "berth server two", "still TLS until a restart");
  });
});

describe("--tls-allowed-ids", { skip }, () => {
  let dir;
  let pki;
  let d;
  let hp;

  before(async () => {
    dir = tempDir("tls-ids");
    pki = makePki(dir);
    d = await spawnBerthd([
      "--listen", "127.0.0.1:0",
      "--tls-cert", pki.file("srv.pem"),
      "--tls-key", pki.file("srv.key"),
      "--tls-client-ca", pki.file("ca.pem"),
      "--tls-allowed-ids", "spiffe://berth.test/ci; CN=nobody,O=berth; CN=operator",
    ]);
    hp = hostPort(d.address);
  });

  after(async () => {
    if (d) assert.equal((await d.stop()).code, 0, d.stderr);
    removeDir(dir);
  });

  test("an allowed id calls; another verified certificate is permission_denied", async () => {
    const target = (c) => ({ https: { ...hp, ca: pki.read("ca.pem"), cert: pki.read(`${c}.pem`), key: pki.read(`${c}.key`) } });
    const ok = await call(target("cli"), { path: LIST, body: {} });
    assert.equal(ok.status, 200, ok.text);
    const other = await call(target("plain"), { path: LIST, body: {} });
    assert.equal(other.status, 403, other.text);
    assert.equal(other.json.code, "permission_denied");
  });
});

describe("a TLS listener with a broken key", { skip }, () => {
  test("refuses to start and says which file", async () => {
    const dir = tempDir("tls-bad");
    try {
      const pki = makePki(dir);
      await assert.rejects(
        spawnBerthd(["--listen", "127.0.0.1:0", "--tls-cert", pki.file("srv.pem"), "--tls-key", pki.file("cli.key")], { timeoutMs: 5000 }),
        /tls-cert .* and tls-key/,
      );
    } finally {
      removeDir(dir);
    }
  });
});

