// ctest-labels: config signals
// Signals on the memory backend (no Engine): SIGHUP reads the --config file
// again and applies what can change at run time (the log level and format,
// the quotas), reports the rest as needing a restart and names options,
// never values; a file that does not load keeps the configuration in use
// and logs an error; berthd never exits on SIGHUP. A clean SIGTERM logs no
// warning and exits 0 (the same with the Engine is in daemon.test.mjs).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { startBerthd, berthdSkipReason, waitFor } from "../lib/berthd.mjs";
import { tempDir, removeDir } from "../lib/secure.mjs";
import { VM_SERVICE } from "../lib/proto.mjs";

const skip = berthdSkipReason();
const VM = `/${VM_SERVICE}/`;
const loud = (lines) => lines.filter((l) => /\blevel=(warn|error)\b|"level":"(warn|error)"/.test(l));

/** Lines the daemon logged since `mark` (an index into logLines()). */
const since = (d, mark) => d.logLines().slice(mark);

/** SIGHUP, then the reload's closing line (config.reload of either level). */
async function hup(d) {
  const mark = d.logLines().length;
  d.child.kill("SIGHUP");
  await waitFor(() => since(d, mark).find((l) => /msg=config\.reload\b|"msg":"config\.reload"/.test(l)), {
    what: "the reload's config.reload line",
    describe: () => d.stderr,
  });
  return since(d, mark);
}

const createVm = (d, id) => d.postJson(VM + "CreateVm", { vmId: id, config: { container: { image: "img" } } });

describe("SIGHUP reloads the configuration file", { skip }, () => {
  let dir, conf, d;
  const write = (text) => writeFileSync(conf, text);

  before(async () => {
    dir = tempDir("hup");
    conf = path.join(dir, "berthd.conf");
    // No --listen and no --log-level flag: the file sets both (a flag
    // would win over it).
    write("listen = 127.0.0.1:0\nlog-level = info\nmax-vms = 1\nstop-timeout = 30\n");
    d = await startBerthd({ listen: null, logLevel: null, args: ["--config", conf] });
  });
  after(async () => {
    if (d && !d.exit) await d.kill();
    removeDir(dir);
  });

  test("a new log level and quota take effect; a changed listen address needs a restart", async () => {
    assert.equal((await createVm(d, "hup-1")).status, 200);
    const full = await createVm(d, "hup-2");
    assert.equal(full.json.code, "resource_exhausted", full.text);
    assert.ok(!d.logLines().some((l) => /level=debug/.test(l)), "no debug lines at info");

    write("# edited\nlisten = 127.0.0.1:1\nlog-level = debug\nmax-vms = 2\nstop-timeout = 30\n");
    const lines = await hup(d);
    const done = lines.find((l) => /msg=config\.reload\b/.test(l));
    assert.match(done, /^ts=\S+ level=info msg=config\.reload code=ok changed="max-vms,log-level"$/);
    const restart = lines.find((l) => /msg=config\.restart_needed/.test(l));
    assert.match(restart || "", /level=warn msg=config\.restart_needed options="listen" /, lines.join("\n"));
    for (const l of lines) assert.ok(!l.includes("127.0.0.1:1"), `a value in the log: ${l}`);

    // Debug lines now: the watcher's sync logs one each second.
    const mark = d.logLines().length;
    await waitFor(() => since(d, mark).find((l) => /level=debug msg=vm\.sync\b/.test(l)), { what: "a debug line after the reload", describe: () => d.stderr });
    assert.equal((await createVm(d, "hup-2")).status, 200, "max-vms 2 in effect");
    const r = await d.request({ method: "GET", path: "/healthz" });
    assert.equal(r.status, 200, "still on the address it started with");
  });

  test("a broken file keeps the configuration in use and logs an error", async () => {
    write("log-level = info\nmax-vms = 1\nmax-vms = 3\n");
    const lines = await hup(d);
    const err = lines.find((l) => /msg=config\.reload\b/.test(l));
    assert.match(err, /level=error msg=config\.reload code=invalid_argument error=".*berthd\.conf line 3: max-vms was already set on line 2" reason="keeping the configuration in use"/);
    assert.ok(!lines.some((l) => /config\.restart_needed/.test(l)), lines.join("\n"));
    assert.equal(d.exit, undefined, "still running");
    // Still at debug (the file's info did not apply), max-vms still 2.
    const mark = d.logLines().length;
    await waitFor(() => since(d, mark).find((l) => /level=debug msg=vm\.sync\b/.test(l)), { what: "a debug line after the failed reload", describe: () => d.stderr });
    const third = await createVm(d, "hup-3");
    assert.equal(third.json && third.json.code, "resource_exhausted", third.text);
    assert.match(third.json.message, /--max-vms 2 reached/);
  });

  test("the log format changes to JSON; SIGHUPs in a row never stop the daemon", async () => {
    write("listen = 127.0.0.1:0\nlog-level = info\nlog-format = json\nmax-vms = 2\n");
    const lines = await hup(d);
    const done = lines.find((l) => /"msg":"config\.reload"/.test(l));
    const j = JSON.parse(done);
    assert.equal(j.level, "info");
    assert.equal(j.code, "ok");
    assert.equal(j.changed, "log-format,log-level");
    // Signals sent together may merge into one (they do not queue).
    for (let i = 0; i < 5; i++) d.child.kill("SIGHUP");
    await waitFor(() => d.logLines().filter((l) => /"msg":"config\.reload"/.test(l)).length >= 2, { what: "another reload", describe: () => d.stderr });
    assert.equal(d.exit, undefined);
    assert.equal((await d.request({ method: "GET", path: "/healthz" })).status, 200);
    assert.deepEqual(await d.stop(), { code: 0, signal: null }, d.stderr);
  });
});

describe("SIGTERM", { skip }, () => {
  test("a clean SIGTERM logs no warning or error and exits 0", async (t) => {
    const d = await startBerthd();
    t.after(() => d.kill());
    assert.equal((await createVm(d, "term-1")).status, 200);
    assert.deepEqual(await d.stop(), { code: 0, signal: null }, d.stderr);
    assert.deepEqual(loud(d.logLines()), [], d.stderr);
    assert.match(d.logLines().at(-1), /level=info msg=daemon\.stopped code=ok$/);
  });
});
