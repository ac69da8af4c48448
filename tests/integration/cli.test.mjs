// The command line (`berthd vm ...`, docs/cli.md): every example of
// docs/cli.md runs, in file order, against a live berthd on the Docker
// Engine, its stdout+stderr and exit status compared with the text block that
// follows it. Then the behaviours the examples do not show: usage errors,
// an unreachable daemon, -o json for each kind of answer, --help, dep scale
// against the memory backend, and the bash completion script.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execFile, spawnSync } from "node:child_process";
import path from "node:path";
import { startBerthd, berthdSkipReason, berthdPath, SOURCE_DIR, waitFor } from "../lib/berthd.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage } from "../lib/image.mjs";

const DOC = path.join(SOURCE_DIR, "docs", "cli.md");
const [engine, engineWhy] = await connectEngine();
const skip = berthdSkipReason() || engineWhy;

/** The examples of docs/cli.md: { line, command, expect: [lines], exit }. */
export function parseCliExamples(text) {
  const src = text.replace(/<!--[\s\S]*?-->/g, (c) => c.replace(/[^\n]/g, ""));
  const fence = /^```([\w-]*)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  const blocks = [];
  for (let m; (m = fence.exec(src)); ) blocks.push({ lang: m[1], body: m[2], start: m.index, end: m.index + m[0].length });
  const lineOf = (offset) => src.slice(0, offset).split("\n").length;
  const out = [];
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i];
    if (b.lang !== "sh") continue;
    const next = blocks[i + 1];
    if (!next || next.lang !== "text" || src.slice(b.end, next.start).trim() !== "") {
      throw new Error(`cli.md:${lineOf(b.start)}: a sh example must be directly followed by a text block`);
    }
    let expect = next.body.replace(/\n$/, "").split("\n");
    let exit = 0;
    const m = /^# exit (\d+)$/.exec(expect[0] || "");
    if (m) {
      exit = Number(m[1]);
      expect = expect.slice(1);
    }
    out.push({ line: lineOf(b.start), command: b.body.trim(), expect, exit });
    i++;
  }
  return out;
}

/** Words of a line, runs of spaces folded. */
const words = (l) => l.trim().split(/\s+/).filter(Boolean);

/** Does `actual` (lines) match `expect` (lines with "*" words, "*" lines)? */
export function linesMatch(expect, actual) {
  const go = (e, a) => {
    if (e === expect.length) return a === actual.length;
    if (expect[e].trim() === "*") {
      for (let k = a; k <= actual.length; k++) if (go(e + 1, k)) return true;
      return false;
    }
    if (a >= actual.length) return false;
    const we = words(expect[e]);
    const wa = words(actual[a]);
    if (we.length !== wa.length || we.some((w, i) => w !== "*" && w !== wa[i])) return false;
    return go(e + 1, a + 1);
  };
  return go(0, 0);
}

/** Run the binary with args; resolves { code, stdout, stderr }. */
function runCli(args, env = {}) {
  return new Promise((resolve) => {
    execFile(berthdPath(), args, { env: { ...process.env, ...env }, timeout: 60000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** The argv of an example's command line ("berthd ..."), split on spaces. */
function argvOf(command) {
  const parts = command.split(/\s+/);
  assert.equal(parts[0], "berthd", "an example calls berthd");
  return parts.slice(1);
}

describe("docs/cli.md examples against a live berthd", { skip }, () => {
  const text = readFileSync(DOC, "utf8");
  const examples = parseCliExamples(text);
  let d;

  async function cleanup() {
    const all = await engine.listContainers(["berth.managed=true"]);
    const mine = all.filter((c) => /^cli-/.test((c.Labels || {})["berth.vm_id"] || ""));
    await Promise.all(mine.map((c) => engine.remove(c.Id)));
  }

  before(async () => {
    await ensureTestImage(engine);
    await cleanup();
    d = await startBerthd({ backend: "docker", args: ["--stop-timeout", "2"] });
  });

  after(async () => {
    try {
      await cleanup();
    } finally {
      if (d && !d.exit) await d.kill();
    }
  });

  test("the file has examples", () => {
    assert.ok(examples.length >= 8, "docs/cli.md holds examples");
  });

  for (const ex of examples) {
    test(`line ${ex.line}: ${ex.command.slice(0, 50)}`, async () => {
      const r = await runCli(["--addr", d.url, ...argvOf(ex.command)]);
      const actual = (r.stdout + r.stderr).replace(/\n$/, "").split("\n").filter((l, i, all) => !(l === "" && all.length === 1));
      assert.equal(r.code, ex.exit, `exit status; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
      assert.ok(linesMatch(ex.expect, actual), `output differs from the docs:\n${actual.join("\n")}\nexpected:\n${ex.expect.join("\n")}`);
    });
  }
});

describe("the command line's other behaviours", { skip: berthdSkipReason() }, () => {
  let d;

  before(async () => {
    d = await startBerthd({ backend: "memory" });
  });

  after(async () => {
    if (d && !d.exit) await d.kill();
  });

  const usage = [
    { description: "unknown command", args: ["frob"], re: /unknown command 'frob'/ },
    { description: "unknown verb", args: ["vm", "frob"], re: /unknown command 'vm frob'/ },
    { description: "create without an image", args: ["vm", "create", "x"], re: /an ID and --image are required/ },
    { description: "bad port", args: ["vm", "create", "x", "--image", "i", "--port", "99999"], re: /--port '99999'/ },
    { description: "bad memory", args: ["vm", "create", "x", "--image", "i", "--memory", "lots"], re: /--memory 'lots'/ },
    { description: "env without =", args: ["vm", "create", "x", "--image", "i", "--env", "A"], re: /--env needs NAME=VALUE/ },
    { description: "bad state", args: ["vm", "ls", "--state", "sleeping"], re: /--state 'sleeping'/ },
    { description: "bad output", args: ["-o", "yaml", "vm", "ls"], re: /-o 'yaml'/ },
    { description: "two ids", args: ["vm", "info", "a", "b"], re: /expected one VM id/ },
    { description: "bad tail", args: ["logs", "x", "--tail", "0"], re: /--tail '0'/ },
    { description: "bad kind", args: ["watch", "--kind", "pod"], re: /--kind 'pod'/ },
    { description: "bad address", args: ["--addr", "ftp://x", "vm", "ls"], re: /--addr 'ftp:\/\/x'/ },
    { description: "scale without a count", args: ["dep", "scale", "web"], re: /expected an id and a replica count/ },
    { description: "scale by a count that is no number", args: ["dep", "scale", "web", "three"], re: /replica count 'three': expected a whole number/ },
    { description: "scale by a negative count", args: ["dep", "scale", "web", "-1"], re: /unexpected argument '-1'/ },
  ];
  for (const row of usage) {
    test(`usage error: ${row.description} exits 3 with one clear line`, async () => {
      const r = await runCli(["--addr", d.url, ...row.args]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, row.re);
      assert.equal(r.stdout, "");
    });
  }

  test("a daemon that cannot be reached is unavailable (14)", async () => {
    const r = await runCli(["--addr", "http://127.0.0.1:1", "vm", "ls"]);
    assert.equal(r.code, 14);
    assert.match(r.stderr, /^berthd: unavailable: cannot reach berthd at http:\/\/127\.0\.0\.1:1/);
  });

  test("BERTH_ADDR is the default address", async () => {
    const r = await runCli(["vm", "ls"], { BERTH_ADDR: d.url });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ID\s+STATE\s+CUSTOMER\s+CPUS\s+MEMORY\s+AGE\n/);
  });

  test("a whole lifecycle, in tables and in JSON", async () => {
    const A = ["--addr", d.url];
    let r = await runCli([...A, "vm", "create", "cli-mem-1", "--image", "img", "--customer", "acme", "--port", "53:30053/udp", "--", "sleep", "1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "cli-mem-1 created\n");
    r = await runCli([...A, "-o", "json", "vm", "info", "cli-mem-1"]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.equal(info.vmId, "cli-mem-1");
    assert.equal(info.state, "VM_STATE_CREATED");
    assert.deepEqual(info.config.container.command, ["sleep", "1"]);
    assert.deepEqual(info.config.container.ports, [{ containerPort: 53, hostPort: 30053, protocol: "udp" }]);
    for (const verb of ["boot", "pause", "resume", "reboot", "shutdown"]) {
      r = await runCli([...A, "vm", verb, "cli-mem-1"]);
      assert.equal(r.code, 0, `${verb}: ${r.stderr}`);
      assert.match(r.stdout, /^cli-mem-1 (running|paused|shutdown)\n$/, verb);
    }
    r = await runCli([...A, "vm", "ls"]);
    assert.match(r.stdout, /\ncli-mem-1\s+shutdown\s+acme\s+-\s+-\s+\d+s\n/);
    r = await runCli([...A, "-o", "json", "vm", "ls", "--state", "shutdown"]);
    assert.equal(JSON.parse(r.stdout).vms[0].vmId, "cli-mem-1");
    r = await runCli([...A, "vm", "pause", "cli-mem-1"]);
    assert.equal(r.code, 9, "pausing a shut down VM is failed_precondition");
    assert.match(r.stderr, /^berthd: failed_precondition: /);
    r = await runCli([...A, "vm", "rm", "cli-mem-1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "cli-mem-1 deleted\n");
  });

  test("dep scale calls UpdateDeployment with the deployment's image and N; the server's answer decides the exit status", async () => {
    const A = ["--addr", d.url];
    const DEP = "/krane.v1.DeploymentService/";
    let r = await d.postJson(DEP + "CreateDeployment", { deployment: { namespace: "cli", deploymentId: "cli-dep-1", image: "img", replicas: 1 } });
    assert.equal(r.status, 200, r.text);
    // What the server itself answers to the same update, so the test holds
    // both before and after UpdateDeployment is served.
    const direct = await d.postJson(DEP + "UpdateDeployment", { deployment: { namespace: "cli", deploymentId: "cli-dep-1", image: "img", replicas: 1 } });
    const mark = d.logLines().length;
    r = await runCli([...A, "dep", "scale", "cli-dep-1", "3"]);
    const line = await waitFor(() => d.logLines().slice(mark).find((l) => /msg=rpc procedure=\/krane\.v1\.DeploymentService\/UpdateDeployment /.test(l)), {
      what: "the command's UpdateDeployment call in the log",
      describe: () => d.stderr,
    });
    if (direct.json && direct.json.code === "unimplemented") {
      assert.equal(r.code, 12, `unimplemented is exit 12: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.equal(r.stderr, "berthd: unimplemented: procedure '/krane.v1.DeploymentService/UpdateDeployment' is not implemented\n");
      assert.match(line, /code=unimplemented/);
    } else {
      assert.equal(direct.status, 200, direct.text);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "cli-dep-1 scaled to 3\n");
      const list = await d.postJson(DEP + "ListDeployments", { namespace: "cli" });
      assert.equal(list.json.deployments.find((x) => x.deploymentId === "cli-dep-1").replicas, 3);
    }
    r = await runCli([...A, "dep", "scale", "cli-dep-missing", "2"]);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(r.stderr, "berthd: not_found: deployment 'cli-dep-missing' not found\n");
    r = await runCli([...A, "dep", "scale", "cli-dep-1", "2", "--namespace", "other"]);
    assert.equal(r.code, 5, "looked up in the namespace asked for");
    r = await d.postJson(DEP + "DeleteDeployment", { namespace: "cli", deploymentId: "cli-dep-1" });
    assert.equal(r.status, 200, r.text);
  });

  test("--help shows a command's usage; help lists every command", async () => {
    let r = await runCli(["vm", "create", "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^usage: berthd vm create ID --image IMAGE/);
    r = await runCli(["help"]);
    assert.equal(r.code, 0);
    for (const c of ["vm ls", "vm create", "vm rm", "gw info", "dep rm", "dep scale", "logs", "watch"]) assert.ok(r.stdout.includes(`berthd ${c}`), c);
  });

  test("the daemon's own flags still start the daemon", async () => {
    const r = await runCli(["--check-config"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /listen=/);
  });
});

describe("bash completion (contrib/berthd.bash)", { skip: spawnSync("bash", ["--version"]).status === 0 ? undefined : "bash is not installed" }, () => {
  const complete = (...words) => {
    const script = `source ${JSON.stringify(path.join(SOURCE_DIR, "contrib", "berthd.bash"))}
COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(" ")}); COMP_CWORD=${words.length - 1}; _berthd; echo "\${COMPREPLY[*]}"`;
    const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim().split(/\s+/).filter(Boolean);
  };
  const rows = [
    { description: "the commands", words: ["berthd", ""], has: ["vm", "gw", "dep", "logs", "watch"] },
    { description: "the dep verbs, scale among them", words: ["berthd", "dep", ""], has: ["ls", "info", "rm", "scale"] },
    { description: "dep scale takes --namespace", words: ["berthd", "dep", "scale", "web", "3", "--n"], has: ["--namespace"] },
    { description: "the vm verbs", words: ["berthd", "vm", ""], has: ["ls", "create", "boot", "rm"] },
  ];
  for (const row of rows) {
    test(row.description, () => {
      const got = complete(...row.words);
      for (const w of row.has) assert.ok(got.includes(w), `${w} in ${got.join(" ")}`);
    });
  }
  test("gw has no scale", () => assert.ok(!complete("berthd", "gw", "").includes("scale")));
});

describe("the example matcher", () => {
  const rows = [
    { description: "equal lines", e: ["a b"], a: ["a b"], same: true },
    { description: "spaces folded", e: ["a b"], a: ["a     b"], same: true },
    { description: "a * word", e: ["a *"], a: ["a 3m"], same: true },
    { description: "a * word is one word", e: ["a *"], a: ["a 3m x"], same: false },
    { description: "a * line takes many", e: ["x", "*"], a: ["x", "y", "z"], same: true },
    { description: "a * line takes none", e: ["x", "*"], a: ["x"], same: true },
    { description: "a missing line", e: ["x", "y"], a: ["x"], same: false },
    { description: "a different word", e: ["x y"], a: ["x z"], same: false },
  ];
  for (const r of rows) test(r.description, () => assert.equal(linesMatch(r.e, r.a), r.same));
});
