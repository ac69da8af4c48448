// Address pools of a test's private dockerd. The Engine's default pools
// (172.17-31/16 and 192.168/20: about thirty networks for the whole host)
// are shared by every Engine on the host, and a bridge a dockerd made
// outlives it. A private Engine therefore gets a pool of its own, a free
// 10.x.0.0/16 cut into /24s, and its teardown deletes every network it made
// and every interface left on that pool: running the suite twice leaves the
// host's routes as they were.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A free 10.x.0.0/16 (x in 220..250) for a private Engine's networks: { base, prefix }. */
export async function freePool() {
  const { stdout } = await run("ip", ["-4", "-o", "addr", "show"]);
  for (let tries = 0; tries < 64; tries++) {
    const x = 220 + Math.floor(Math.random() * 31);
    if (!stdout.includes(` 10.${x}.`)) return { base: `10.${x}.0.0/16`, prefix: `10.${x}.` };
  }
  throw new Error("no free 10.x.0.0/16 for a private Engine's address pool");
}

/** daemon.json text giving the Engine that pool (and nothing else). */
export function poolConfig(pool) {
  return `${JSON.stringify({ "default-address-pools": [{ base: pool.base, size: 24 }] })}\n`;
}

/** Remove every network of `engine` but the predefined ones (all are the test's). */
export async function removeNetworks(engine) {
  const r = await engine.call("GET", "/networks");
  const keep = new Set(["bridge", "host", "none"]);
  const failed = [];
  for (const n of r.body) {
    if (keep.has(n.Name)) continue;
    const d = await engine.raw("DELETE", `/networks/${n.Id}`);
    if (d.status !== 204 && d.status !== 404) failed.push(`${n.Name}: ${d.status}`);
  }
  if (failed.length) throw new Error(`networks not removed: ${failed.join(", ")}`);
}

/** Delete interfaces of the root namespace that hold an address of the pool (a stopped Engine's bridges). */
export async function deletePoolLinks(pool) {
  const { stdout } = await run("ip", ["-4", "-o", "addr", "show"]);
  const links = new Set();
  for (const line of stdout.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length > 3 && f[3].startsWith(pool.prefix)) links.add(f[1]);
  }
  for (const l of links) await run("ip", ["link", "del", l]);
}
