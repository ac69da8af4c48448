// What the benchmarks read of processes from /proc: CPU time, resident
// memory, and which processes make up the Docker Engine (dockerd, its
// containerd, the shims of given containers).

import { readFileSync, readdirSync } from "node:fs";
import { execFileSync } from "node:child_process";

/** Clock ticks per second of /proc/<pid>/stat's times. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process (all its threads) in seconds; 0 when it is gone. */
export function cpuSeconds(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Sum of cpuSeconds over pids. */
export function cpuSum(pids) {
  return pids.reduce((a, p) => a + cpuSeconds(p), 0);
}

/** VmRSS and RssAnon of a process in KiB. */
export function rssKiB(pid) {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const get = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s) || [])[1] || 0);
  return { rss: get("VmRSS"), anon: get("RssAnon"), threads: get("Threads") };
}

function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

function comm(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

function ppid(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}

/**
 * The Engine serving `socketPath`: { dockerd, containerd, shims } pids, the
 * shims being those of `containerIds` (full ids). dockerd is the one whose
 * -H names the socket (or the only one without -H); containerd its child,
 * else the system's.
 */
export function engineProcesses(socketPath, containerIds = []) {
  const pids = readdirSync("/proc").filter((n) => /^\d+$/.test(n)).map(Number);
  const want = new Set(containerIds);
  let dockerd = 0;
  const containerds = [];
  const shims = [];
  for (const pid of pids) {
    const c = comm(pid);
    if (c === "dockerd") {
      const args = cmdline(pid);
      const h = args.filter((a, i) => args[i - 1] === "-H" || a.startsWith("--host=") || a.startsWith("-H="));
      if (h.some((a) => a.includes(socketPath)) || (h.length === 0 && !dockerd)) dockerd = pid;
    } else if (c === "containerd") {
      containerds.push(pid);
    } else if (c.startsWith("containerd-shim")) {
      const args = cmdline(pid);
      const i = args.indexOf("-id");
      if (i >= 0 && want.has(args[i + 1])) shims.push(pid);
    }
  }
  const containerd = containerds.find((p) => ppid(p) === dockerd) || containerds[0] || 0;
  return { dockerd, containerd, shims };
}
