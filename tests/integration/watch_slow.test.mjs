// A watcher that never reads is cut off with resource_exhausted once its
// queue is full, and a watcher that reads meanwhile gets every event: the
// silent one slows nobody down. The memory backend makes thousands of
// changes quickly; the raw client's unread socket fills the kernel's
// buffers first, then berthd's queue (--stream-queue-bytes).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import http from "node:http";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";
import { waitFor } from "../lib/wait.mjs";
import { getService } from "../lib/proto.mjs";

const skip = berthdSkipReason();
const N = 3000;
const BATCH = 16;

describe("a watcher too slow for its queue", { skip }, () => {
  let d;

  before(async () => {
    d = await startBerthd({ backend: "memory", args: ["--stream-queue-bytes", "16384", "--max-vms", String(N + 10)] });
  });

  after(async () => {
    if (d && !d.exit) await d.kill();
  });

  test("is cut off with resource_exhausted; the reading watcher sees every change", async () => {
    const port = Number(d.address.split(":").pop());
    const sock = net.connect({ host: "127.0.0.1", port });
    await new Promise((resolve) => sock.once("connect", resolve));
    sock.pause(); // never read
    const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from("{}")]);
    sock.write(`POST /berth.v1.EventService/Watch HTTP/1.1\r\nHost: x\r\nContent-Type: application/connect+json\r\nContent-Length: ${body.length}\r\n\r\n`);
    sock.write(body);

    const events = createClient(getService("berth.v1.EventService"), createConnectTransport({ baseUrl: d.url, httpVersion: "1.1" }));
    const abort = new AbortController();
    let created = 0;
    const done = (async () => {
      try {
        for await (const ev of events.watch({ kinds: [1] }, { signal: abort.signal })) if (ev.type === 2) created++;
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.Canceled)) throw err;
      }
    })();
    // Both watchers are under way once /metrics counts two Watch calls in flight.
    await waitFor(
      async () => {
        const r = await d.request({ method: "GET", path: "/metrics" });
        return /berth_rpc_in_flight\{procedure="\/berth\.v1\.EventService\/Watch"\} 2\b/.test(r.text);
      },
      { timeoutMs: 5000, what: "two watchers in flight" },
    );

    // Thousands of creates over one keep-alive connection, each a change
    // both watchers are told of.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const pad = "v".repeat(40);
    // Batches of BATCH, each once the reading watcher has seen the last: it
    // never falls more than a batch behind (this process also sends the
    // creates), while the silent one falls ever further. A create is told
    // in about 200 bytes, and a batch must stay well under the 16 KiB
    // queue: on a busy machine all of a batch may be made before berthd's
    // event thread sends any of it.
    for (let i = 0; i < N; i += BATCH) {
      await Promise.all(
        Array.from({ length: Math.min(BATCH, N - i) }, (_, k) =>
          fetchJson(agent, port, "/metal.vmprovisioner.v1.VmService/CreateVm", { vmId: `${pad}-${i + k}`, config: { container: { image: "x" } } }),
        ),
      );
      const seen = Math.min(i + BATCH, N);
      await waitFor(() => created >= seen, { timeoutMs: 10000, what: `the reading watcher to see ${seen} creates (${created})` });
    }
    await waitFor(() => /EventService\/Watch code=resource_exhausted/.test(d.stderr), { timeoutMs: 10000, what: "the silent watcher to be cut off", describe: () => d.stderr.slice(-2000) });
    assert.match(d.stderr, /reads too slowly/);
    await waitFor(() => created === N, { timeoutMs: 10000, what: `the reading watcher to see all ${N} creates (${created})` });
    abort.abort();
    await done;
    sock.destroy();
    agent.destroy();
  });
});

describe("Watch of gateways and deployments", { skip }, () => {
  let d;

  before(async () => {
    d = await startBerthd({ backend: "memory" });
  });

  after(async () => {
    if (d && !d.exit) await d.kill();
  });

  test("one namespace's deployments: the snapshot, then created and deleted; another namespace and the VMs are not told", async () => {
    const port = Number(d.address.split(":").pop());
    const agent = new http.Agent({ keepAlive: true });
    const dep = (ns, id) => ({ deployment: { namespace: ns, deploymentId: id, image: "x", replicas: 1 } });
    await fetchJson(agent, port, "/krane.v1.DeploymentService/CreateDeployment", dep("ns-a", "before"));
    const events = createClient(getService("berth.v1.EventService"), createConnectTransport({ baseUrl: d.url, httpVersion: "1.1", useBinaryFormat: true }));
    const abort = new AbortController();
    const got = [];
    const done = (async () => {
      try {
        for await (const ev of events.watch({ kinds: [3], namespace: "ns-a" }, { signal: abort.signal })) got.push([ev.type, ev.namespace, ev.id, ev.state]);
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.Canceled)) throw err;
      }
    })();
    await waitFor(() => got.length >= 1, { timeoutMs: 5000, what: "the snapshot" });
    await fetchJson(agent, port, "/krane.v1.DeploymentService/CreateDeployment", dep("ns-b", "other"));
    await fetchJson(agent, port, "/metal.vmprovisioner.v1.VmService/CreateVm", { vmId: "a-vm", config: { container: { image: "x" } } });
    await fetchJson(agent, port, "/krane.v1.DeploymentService/CreateDeployment", dep("ns-a", "later"));
    await fetchJson(agent, port, "/krane.v1.DeploymentService/DeleteDeployment", { namespace: "ns-a", deploymentId: "later" });
    await waitFor(() => got.length >= 3, { timeoutMs: 5000, what: "created and deleted" });
    abort.abort();
    await done;
    agent.destroy();
    assert.deepEqual(got.map((e) => e.slice(0, 3)), [
      [1, "ns-a", "before"],
      [2, "ns-a", "later"],
      [4, "ns-a", "later"],
    ]);
    assert.match(got[0][3], /^DEPLOYMENT_STATUS_/);
  });

  test("a bad request ends the stream with invalid_argument naming the field", async () => {
    const events = createClient(getService("berth.v1.EventService"), createConnectTransport({ baseUrl: d.url, httpVersion: "1.1" }));
    await assert.rejects(
      (async () => {
        for await (const ev of events.watch({ kinds: [7] })) void ev;
      })(),
      (err) => err instanceof ConnectError && err.code === Code.InvalidArgument && /kinds\[0\]/.test(err.rawMessage),
    );
    await assert.rejects(
      (async () => {
        for await (const ev of events.watch({ id: "x" })) void ev;
      })(),
      (err) => err instanceof ConnectError && err.code === Code.InvalidArgument && /'id'/.test(err.rawMessage),
    );
  });
});

function fetchJson(agent, port, path, body) {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: "POST", agent, headers: { "Content-Type": "application/json", "Content-Length": data.length } }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`${path}: ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.end(data);
  });
}
