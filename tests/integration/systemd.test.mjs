// ctest-labels: systemd
// systemd/berthd.service: `systemd-analyze verify` accepts it, and it keeps
// the settings docs/operations.md promises (Type=notify, restart on failure,
// the Docker socket through its group, the EnvironmentFile, the hardening).
// Verify needs the ExecStart binary to exist, so it runs on a temporary copy
// whose ExecStart points at the built daemon. No Docker needed; a missing
// systemd-analyze fails the verify test (the scripts install `systemd`).

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { SOURCE_DIR, berthdPath, berthdSkipReason } from "../lib/berthd.mjs";

const run = promisify(execFile);
const UNIT = path.join(SOURCE_DIR, "systemd", "berthd.service");

/** Why systemd-analyze cannot run, or undefined when it can. */
async function analyzeMissing() {
  try {
    await run("systemd-analyze", ["--version"]);
    return undefined;
  } catch (err) {
    return `systemd-analyze not runnable (${err.code || err.message}): install the systemd package`;
  }
}

const skip = berthdSkipReason();

/** [Service] etc. as { section: [[key, value], ...] } (repeated keys kept). */
function parseUnit(text) {
  const out = {};
  let section;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const m = /^\[(.+)\]$/.exec(line);
    if (m) {
      section = m[1];
      out[section] = out[section] || [];
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(section && eq > 0, `a key=value line inside a section: ${line}`);
    out[section].push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return out;
}

function values(unit, section, key) {
  return (unit[section] || []).filter(([k]) => k === key).map(([, v]) => v);
}

describe("systemd/berthd.service", { skip }, () => {
  const text = readFileSync(UNIT, "utf8");
  const unit = parseUnit(text);
  const one = (key) => {
    const v = values(unit, "Service", key);
    assert.equal(v.length, 1, `exactly one ${key}= in [Service]: ${JSON.stringify(v)}`);
    return v[0];
  };

  test("systemd-analyze verify passes with ExecStart at the built daemon", async () => {
    const missing = await analyzeMissing();
    assert.equal(missing, undefined, missing);
    const dir = mkdtempSync(path.join(tmpdir(), "berth-unit-"));
    try {
      const copy = path.join(dir, "berthd.service");
      const bin = path.resolve(berthdPath());
      const replaced = text.replace(/^ExecStart=\S+/m, `ExecStart=${bin}`);
      assert.notEqual(replaced, text, "the unit has an ExecStart= line to point at the binary");
      writeFileSync(copy, replaced);
      let stderr = "";
      try {
        ({ stderr } = await run("systemd-analyze", ["verify", copy], { timeout: 60000 }));
      } catch (err) {
        assert.fail(`systemd-analyze verify failed (${err.code}):\n${err.stderr || err.message}`);
      }
      // Other units on the host may draw warnings; ours must not.
      const ours = stderr.split("\n").filter((l) => l.includes("berthd.service"));
      assert.deepEqual(ours, [], `warnings about the unit:\n${stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("notify service that restarts on failure, with a watchdog", () => {
    assert.equal(one("Type"), "notify");
    assert.equal(one("Restart"), "on-failure");
    assert.match(one("WatchdogSec"), /^\d+s?$/);
    assert.match(one("ExecStart"), /\/berthd(\s|$)/);
  });

  test("settings come from an optional EnvironmentFile", () => {
    assert.ok(values(unit, "Service", "EnvironmentFile").includes("-/etc/default/berthd"));
  });

  test("systemctl reload sends SIGHUP", () => {
    assert.match(one("ExecReload"), /^\/bin\/kill -HUP \$MAINPID$/);
  });

  test("the Docker socket is reached through the docker group", () => {
    assert.ok(values(unit, "Service", "SupplementaryGroups").join(" ").split(/\s+/).includes("docker"));
  });

  test("hardening options are set", () => {
    const want = {
      NoNewPrivileges: "yes",
      ProtectSystem: "strict",
      ProtectHome: "yes",
      PrivateTmp: "yes",
      ProtectKernelTunables: "yes",
      ProtectKernelModules: "yes",
      ProtectControlGroups: "yes",
      LockPersonality: "yes",
      MemoryDenyWriteExecute: "yes",
      RestrictRealtime: "yes",
      RestrictSUIDSGID: "yes",
      SystemCallArchitectures: "native",
      CapabilityBoundingSet: "",
    };
    for (const [k, v] of Object.entries(want)) assert.equal(one(k), v, `${k}=${v}`);
    const families = one("RestrictAddressFamilies").split(/\s+/).sort();
    assert.deepEqual(families, ["AF_INET", "AF_INET6", "AF_UNIX"]);
  });

  test("installs into multi-user.target", () => {
    assert.deepEqual(values(unit, "Install", "WantedBy"), ["multi-user.target"]);
  });
});
