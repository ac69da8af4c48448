// Every curl example of docs/api.md, run in file order with curl itself
// against a live berthd on the Docker Engine, its answer compared with the
// JSON block that follows it ("*" matches any value; keys the block leaves
// out are not checked). So the examples cannot rot. The file is read
// generically: whatever service sections it holds, their examples run, and
// each service section must show every method of its service.
//
// berthd sees every managed container of the Engine, also those other suites
// or people are running at the same time; list answers are therefore cut
// down to the objects the examples themselves named before they are compared.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execFile, execFileSync } from "node:child_process";
import path from "node:path";
import { startBerthd, berthdSkipReason, SOURCE_DIR } from "../lib/berthd.mjs";
import { connectEngine } from "../lib/engine.mjs";
import { ensureTestImage } from "../lib/image.mjs";
import { protoRegistry } from "../lib/proto.mjs";

const DOC = path.join(SOURCE_DIR, "docs", "api.md");
const DOC_ADDRESS = "localhost:8080";
// Labels that carry the ids of what berthd makes, per kind of object, and
// the answer fields that carry the same ids.
const ID_LABELS = ["berth.vm_id", "berth.gateway_id", "berth.deployment_id"];
const ID_FIELDS = ["vmId", "gatewayId", "deploymentId"];

const [engine, engineWhy] = await connectEngine();

function curlMissing() {
  try {
    execFileSync("curl", ["--version"], { stdio: "ignore" });
    return undefined;
  } catch {
    return "curl is not installed";
  }
}

const skip = berthdSkipReason() || engineWhy || curlMissing();

// --- reading the examples ------------------------------------------------------

/**
 * The examples of a markdown text, in order: { line, section, command,
 * answerText, answer }. `section` is the last "## " heading above. HTML
 * comments are skipped (the format description lives in one). Throws on a
 * sh block that is not directly followed by a json block.
 */
export function parseExamples(text) {
  // Blank out comments but keep their newlines, so line numbers stay right.
  const src = text.replace(/<!--[\s\S]*?-->/g, (c) => c.replace(/[^\n]/g, ""));
  const fence = /^```([\w-]*)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  const blocks = [];
  for (let m; (m = fence.exec(src)); ) {
    blocks.push({ lang: m[1], body: m[2], start: m.index, end: m.index + m[0].length });
  }
  const lineOf = (offset) => src.slice(0, offset).split("\n").length;
  const sectionAt = (offset) => {
    const heads = [...src.slice(0, offset).matchAll(/^## +(.+?)[ \t]*$/gm)];
    return heads.length ? heads[heads.length - 1][1] : "";
  };
  const examples = [];
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i];
    if (b.lang !== "sh") continue;
    const line = lineOf(b.start);
    const next = blocks[i + 1];
    if (!next || next.lang !== "json" || src.slice(b.end, next.start).trim() !== "") {
      throw new Error(`${path.basename(DOC)}:${line}: a sh example must be directly followed by a json block with its answer`);
    }
    let answer;
    try {
      answer = JSON.parse(next.body);
    } catch (err) {
      throw new Error(`${path.basename(DOC)}:${lineOf(next.start)}: the answer is not JSON: ${err.message}`);
    }
    examples.push({ line, section: sectionAt(b.start), command: b.body.trim(), answerText: next.body, answer });
    i++; // the json block is consumed
  }
  return examples;
}

/**
 * Where `actual` differs from `expected` under the "*" rule, as a list of
 * "path: reason" strings (empty when it matches).
 */
export function differences(expected, actual, where = "$") {
  if (expected === "*") return actual === undefined ? [`${where}: missing`] : [];
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [`${where}: expected an array, got ${JSON.stringify(actual)}`];
    if (actual.length !== expected.length) return [`${where}: expected ${expected.length} elements, got ${actual.length}`];
    return expected.flatMap((e, i) => differences(e, actual[i], `${where}[${i}]`));
  }
  if (expected !== null && typeof expected === "object") {
    if (actual === null || typeof actual !== "object" || Array.isArray(actual)) {
      return [`${where}: expected an object, got ${JSON.stringify(actual)}`];
    }
    return Object.keys(expected).flatMap((k) =>
      k in actual ? differences(expected[k], actual[k], `${where}.${k}`) : [`${where}.${k}: missing`],
    );
  }
  return expected === actual ? [] : [`${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
}

/** Every string value of a key ending in "Id"/"_id" found in JSON-ish text. */
function idsIn(text) {
  const ids = new Set();
  for (const m of String(text).matchAll(/"(\w*(?:Id|_id))"\s*:\s*"([^"*]+)"/g)) ids.add(m[2]);
  return ids;
}

/**
 * A copy of `answer` where list elements naming an id the examples never
 * used are left out; a `totalCount` beside such a list drops by as many.
 */
export function withoutForeign(answer, ids) {
  if (Array.isArray(answer)) return answer.map((x) => withoutForeign(x, ids));
  if (answer === null || typeof answer !== "object") return answer;
  const out = {};
  let removed = 0;
  for (const [k, v] of Object.entries(answer)) {
    if (Array.isArray(v)) {
      const kept = v.filter((x) => {
        const id = x && typeof x === "object" ? ID_FIELDS.map((f) => x[f]).find((y) => typeof y === "string") : undefined;
        return id === undefined || ids.has(id);
      });
      removed += v.length - kept.length;
      out[k] = withoutForeign(kept, ids);
    } else {
      out[k] = withoutForeign(v, ids);
    }
  }
  if (removed > 0 && typeof out.totalCount === "number") out.totalCount -= removed;
  return out;
}

/** The Connect procedures ("/pkg.Service/Method") a command calls. */
function proceduresIn(command) {
  return [...command.matchAll(/\/([\w.]+\.[A-Z]\w*)\/([A-Z]\w*)/g)].map((m) => ({ service: m[1], method: m[2] }));
}

/** Run one example's command with sh, the daemon's address put in. */
function runCurl(command, address) {
  const cmd = command.split(DOC_ADDRESS).join(address);
  return new Promise((resolve) => {
    execFile("sh", ["-c", cmd], { timeout: 120000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ err, stdout, stderr });
    });
  });
}

// --- the suite ----------------------------------------------------------------

const text = readFileSync(DOC, "utf8");
const examples = parseExamples(text);

describe("docs/api.md examples against a live berthd", { skip }, () => {
  let d;
  const ids = new Set(); // ids the examples name, or were answered

  /** Remove every container whose id label is one the examples used. */
  async function cleanup() {
    if (ids.size === 0) return;
    const all = await engine.listContainers(["berth.managed=true"]);
    const doomed = all.filter((c) => ID_LABELS.some((l) => ids.has((c.Labels || {})[l])));
    await Promise.all(doomed.map((c) => engine.remove(c.Id)));
  }

  before(async () => {
    for (const ex of examples) for (const id of idsIn(ex.command + ex.answerText)) ids.add(id);
    await ensureTestImage(engine);
    // The docs use fixed ids: clear what an interrupted earlier run left,
    // before berthd rebuilds its registry from the Engine.
    await cleanup();
    // A short grace period: the example VM runs httpd, which as PID 1 ignores
    // SIGTERM, so RebootVm would otherwise wait the default 30 s.
    d = await startBerthd({ backend: "docker", args: ["--stop-timeout", "2"] });
  });

  after(async () => {
    try {
      await cleanup();
    } finally {
      if (d && !d.exit) await d.kill();
    }
  });

  test("the file has examples, each a single curl command against localhost:8080", () => {
    assert.ok(examples.length > 0, "docs/api.md holds examples");
    for (const ex of examples) {
      assert.match(ex.command, /^curl\s/, `line ${ex.line}: an example is one curl command`);
      assert.ok(ex.command.includes(`http://${DOC_ADDRESS}/`), `line ${ex.line}: an example calls http://${DOC_ADDRESS}/`);
      assert.equal(proceduresIn(ex.command).length, 1, `line ${ex.line}: an example calls one procedure`);
    }
  });

  test("every service section shows every method of its service", () => {
    const registry = protoRegistry();
    const sections = [...new Set([...text.matchAll(/^## +([\w.]+)[ \t]*$/gm)].map((m) => m[1]))];
    const services = sections.map((s) => registry.getService(s)).filter(Boolean);
    assert.ok(services.some((s) => s.typeName === "metal.vmprovisioner.v1.VmService"), "a VmService section");
    for (const svc of services) {
      const shown = new Set(
        examples
          .filter((ex) => ex.section === svc.typeName)
          .flatMap((ex) => proceduresIn(ex.command))
          .filter((p) => p.service === svc.typeName)
          .map((p) => p.method),
      );
      const missing = svc.methods.map((m) => m.name).filter((n) => !shown.has(n));
      assert.deepEqual(missing, [], `${svc.typeName}: methods without an example in its section`);
    }
  });

  for (const ex of examples) {
    const [proc] = proceduresIn(ex.command);
    const name = `line ${ex.line}: ${proc ? `${proc.service.split(".").pop()}/${proc.method}` : ex.command.slice(0, 40)}`;
    test(name, async () => {
      const r = await runCurl(ex.command, d.address);
      assert.equal(r.err, null, `curl failed: ${r.err && r.err.message}\n${r.stderr}`);
      let actual;
      try {
        actual = JSON.parse(r.stdout);
      } catch {
        assert.fail(`the answer is not JSON: ${JSON.stringify(r.stdout)}`);
      }
      const mine = withoutForeign(actual, ids);
      // Ids berthd generated for an example are the examples' too (cleanup).
      for (const id of idsIn(JSON.stringify(mine))) ids.add(id);
      const diff = differences(ex.answer, mine);
      assert.deepEqual(diff, [], `the answer differs from the docs:\n${JSON.stringify(actual, null, 2)}`);
    });
  }
});

// The "*" rule itself, so a bug in it cannot hide a rotten example.
describe("the answer matcher", () => {
  const rows = [
    { description: "equal scalars", e: { a: 1 }, a: { a: 1 }, same: true },
    { description: "different scalars", e: { a: 1 }, a: { a: 2 }, same: false },
    { description: "a number is not its string", e: { a: 1 }, a: { a: "1" }, same: false },
    { description: "* matches any value", e: { a: "*" }, a: { a: { deep: [1] } }, same: true },
    { description: "* needs the key", e: { a: "*" }, a: {}, same: false },
    { description: "extra keys are not checked", e: { a: 1 }, a: { a: 1, b: 2 }, same: true },
    { description: "a missing key fails", e: { a: 1, b: 2 }, a: { a: 1 }, same: false },
    { description: "arrays must have the same length", e: { v: [1] }, a: { v: [1, 2] }, same: false },
    { description: "arrays compare by element", e: { v: [{ x: "*" }, 2] }, a: { v: [{ x: 9, y: 1 }, 2] }, same: true },
    { description: "an object is not an array", e: { v: {} }, a: { v: [] }, same: false },
    { description: "null equals null only", e: { v: null }, a: { v: 0 }, same: false },
  ];
  for (const row of rows) {
    test(row.description, () => {
      assert.equal(differences(row.e, row.a).length === 0, row.same, JSON.stringify(differences(row.e, row.a)));
    });
  }

  test("list elements of objects the examples never named are left out", () => {
    const ids = new Set(["mine"]);
    const a = { vms: [{ vmId: "other" }, { vmId: "mine", state: 1 }, { name: "no id" }], totalCount: 3, vmId: "other" };
    assert.deepEqual(withoutForeign(a, ids), { vms: [{ vmId: "mine", state: 1 }, { name: "no id" }], totalCount: 2, vmId: "other" });
    assert.deepEqual(withoutForeign({ vms: [], totalCount: 0 }, ids), { vms: [], totalCount: 0 });
  });

  test("a sh block without its json answer is refused", () => {
    assert.throws(() => parseExamples("```sh\ncurl http://localhost:8080/a.B/C\n```\n\ntext\n```json\n{}\n```\n"), /directly followed/);
  });

  test("examples inside HTML comments are skipped", () => {
    const ex = parseExamples("<!--\n```sh\ncurl x\n```\n```json\n{}\n```\n-->\n## a.B\n```sh\ncurl y\n```\n```json\n{\"k\": 1}\n```\n");
    assert.equal(ex.length, 1);
    assert.equal(ex[0].command, "curl y");
    assert.equal(ex[0].section, "a.B");
    assert.deepEqual(ex[0].answer, { k: 1 });
    assert.equal(ex[0].line, 10);
  });
});
