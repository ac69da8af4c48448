// ctest-labels: logs journal
// Structured journal entries read back with journalctl: berthd with
// --log-target journal (memory backend) serves a CreateVm, stops, and
// `journalctl VM_ID=...` / `REQUEST_ID=...` find its entries with one field
// per key (BERTH_EVENT, PRIORITY, PROCEDURE, CODE, CALLER, ...).
//
// Where the host runs a journal (/run/systemd/journal/socket) that one is
// used. Elsewhere, as root, a private systemd-journald runs in a mount
// namespace of its own (a tmpfs over /run and /var/log/journal), and berthd
// and journalctl join that namespace with nsenter: nothing reaches the host's
// journal. libsystemd has no variable to point sd_journal_send at another
// socket (the path is built in), so no other fake socket is possible; the
// unit test test_log.c checks the fields through the sink hook. Without
// either the test is skipped, saying why.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { berthdPath, berthdSkipReason, daemonEnv, waitFor } from "../lib/berthd.mjs";
import { call, tempDir, removeDir } from "../lib/secure.mjs";
import { VM_SERVICE } from "../lib/proto.mjs";

const has = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const JOURNALD = ["/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"].find((p) => existsSync(p));

/** "host", "private", or the reason neither works here. */
function journalMode() {
  if (!has("journalctl")) return { why: "journalctl is not installed" };
  if (existsSync("/run/systemd/journal/socket") && spawnSync("journalctl", ["-n", "0", "--quiet"]).status === 0) return { mode: "host" };
  const missing = [];
  if (typeof process.getuid !== "function" || process.getuid() !== 0) missing.push("root");
  if (!has("unshare") || !has("nsenter")) missing.push("unshare and nsenter");
  if (!JOURNALD) missing.push("systemd-journald");
  if (missing.length > 0) return { why: `no journal running here, and a private one needs ${missing.join(", ")}` };
  return { mode: "private" };
}

const { mode, why } = journalMode();
const skip = berthdSkipReason() || why;
const RUN = `${process.pid.toString(36)}-${randomBytes(3).toString("hex")}`;

/** A private journald in a mount namespace of its own; resolves with its pid. */
async function startPrivateJournal() {
  const script = [
    "set -e",
    "mount -t tmpfs -o mode=0755 tmpfs /run",
    "mkdir -p /run/systemd/journal /run/log/journal",
    "if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi",
    `exec ${JOURNALD}`,
  ].join("\n");
  // unshare execs sh in the new namespace, and sh execs journald: one pid.
  const child = spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", script], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (c) => (stderr += c));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  let gone;
  exited.then((e) => (gone = e));
  await waitFor(
    () => {
      if (gone) throw new Error(`the private journald exited (${JSON.stringify(gone)}): ${stderr}`);
      return spawnSync("nsenter", ["-t", String(child.pid), "-m", "--", "test", "-S", "/run/systemd/journal/socket"]).status === 0;
    },
    { timeoutMs: 10000, what: "the private journald's socket" },
  );
  return { child, exited };
}

describe(`journal entries read back with journalctl (${mode || "skipped"})`, { skip }, () => {
  let journal; // the private journald, when there is one
  let dir;
  // Commands run where the journal is: on the host, or in the namespace.
  const inJournal = (argv) => (journal ? ["nsenter", "-t", String(journal.child.pid), "-m", "--", ...argv] : argv);
  const journalctl = (...matches) => {
    const [cmd, ...args] = inJournal(["journalctl", "--no-pager", "-o", "json", ...matches]);
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    assert.equal(r.status, 0, `journalctl ${matches.join(" ")}: ${r.stderr}`);
    return r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  };
  /** The entries matching, once there are at least `n` of them. */
  const entries = (matches, n = 1) =>
    waitFor(() => {
      const e = journalctl(...matches);
      return e.length >= n ? e : undefined;
    }, { timeoutMs: 10000, intervalMs: 200, what: `journal entries ${matches.join(" ")}` });

  const vmId = `jr-${RUN}`;
  const requestId = `jr-req-${RUN}`;
  let pid;
  let stderr = "";

  before(async () => {
    dir = tempDir("journal");
    if (mode === "private") journal = await startPrivateJournal();
    const sock = path.join(dir, "api.sock");
    // nsenter leaves the working directory: the binary by its absolute path.
    const bin = path.resolve(berthdPath());
    const [cmd, ...args] = inJournal([bin, "--listen", `unix:${sock}`, "--backend", "memory", "--log-target", "journal"]);
    const child = spawn(cmd, args, { env: daemonEnv(), stdio: ["ignore", "ignore", "pipe"] });
    child.stderr.on("data", (c) => (stderr += c));
    let gone;
    const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve((gone = { code, signal }))));
    pid = child.pid; // nsenter execs berthd: the same process
    await waitFor(
      () => {
        if (gone) throw new Error(`berthd exited (${JSON.stringify(gone)}): ${stderr}`);
        return existsSync(sock);
      },
      { timeoutMs: 10000, what: "berthd's unix socket", describe: () => stderr },
    );
    const target = { socketPath: sock };
    const r = await call(target, {
      path: `/${VM_SERVICE}/CreateVm`,
      headers: { "X-Request-Id": requestId },
      body: { vmId, customerId: "journal-test", config: { container: { image: "img" } } },
    });
    assert.equal(r.status, 200, r.text);
    const missing = await call(target, { path: `/${VM_SERVICE}/GetVmInfo`, body: { vmId: `${vmId}-missing` } });
    assert.equal(missing.status, 404, missing.text);
    child.kill("SIGTERM");
    assert.deepEqual(await exited, { code: 0, signal: null }, stderr);
  });

  after(async () => {
    if (journal) {
      journal.child.kill("SIGTERM");
      await journal.exited;
    }
    removeDir(dir);
  });

  test("nothing went to stderr: every line is a journal entry", () => {
    assert.equal(stderr, "");
  });

  test("journalctl VM_ID=... finds the VM's entries, with one field per key", async () => {
    const got = await entries([`VM_ID=${vmId}`]);
    const created = got.find((e) => e.BERTH_EVENT === "vm.created");
    assert.ok(created, `a vm.created entry among ${JSON.stringify(got.map((e) => e.BERTH_EVENT))}`);
    assert.equal(created.VM_ID, vmId);
    assert.equal(created.PRIORITY, "6");
    assert.equal(created.SYSLOG_IDENTIFIER, "berthd");
    assert.equal(created.IMAGE, "img");
    assert.equal(created._PID, String(pid));
    assert.match(created.MESSAGE, new RegExp(`^vm\\.created vm_id=${vmId} `));
  });

  test("journalctl REQUEST_ID=... finds the RPC with its procedure, code and caller", async () => {
    const [rpc] = await entries([`REQUEST_ID=${requestId}`]);
    assert.equal(rpc.BERTH_EVENT, "rpc");
    assert.equal(rpc.PROCEDURE, `/${VM_SERVICE}/CreateVm`);
    assert.equal(rpc.CODE, "ok");
    assert.equal(rpc.STATUS, "200");
    assert.match(rpc.CALLER, new RegExp(`^unix:uid=${process.getuid()},pid=\\d+$`), "the unix peer calls");
    assert.equal(rpc.PRIORITY, "6");
  });

  test("a client error stays at info; the start and the stop are there", async () => {
    const [nf] = await entries([`_PID=${pid}`, "BERTH_EVENT=rpc", "CODE=not_found"]);
    assert.equal(nf.PRIORITY, "6", "not_found is the caller's error, not a warning");
    assert.equal(nf.PROCEDURE, `/${VM_SERVICE}/GetVmInfo`);
    const [start] = await entries([`_PID=${pid}`, "BERTH_EVENT=daemon.starting"]);
    assert.match(start.VERSION, /^\d+\.\d+\.\d+$/);
    assert.ok(start.COMMIT.length > 0);
    assert.equal(start.LOG_TARGET, "journal");
    const [stopped] = await entries([`_PID=${pid}`, "BERTH_EVENT=daemon.stopped"]);
    assert.equal(stopped.CODE, "ok");
    const loud = journalctl(`_PID=${pid}`, "PRIORITY=0..4");
    assert.deepEqual(loud.map((e) => e.MESSAGE), [], "no warning or worse on a clean run");
  });
});
