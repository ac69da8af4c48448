// ctest-labels: protocol
// ListGateways and ListDeployments over HTTP/JSON (POST and GET) against the
// real berthd with the in-memory backend: pages in (namespace, id) order,
// tokens handed back, the namespace filter, refused sizes and tokens.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startBerthd, berthdSkipReason } from "../lib/berthd.mjs";

const skip = berthdSkipReason();
const DEP = "/krane.v1.DeploymentService/";
const GW = "/krane.v1.GatewayService/";

describe("List", { skip }, () => {
  let d;
  before(async () => {
    d = await startBerthd({ backend: "memory" });
    // Made out of order, in two namespaces.
    for (let k = 0; k < 30; k++) {
      const i = (k * 7) % 30;
      const r = await d.postJson(DEP + "CreateDeployment", {
        deployment: { namespace: i % 2 ? "b" : "a", deploymentId: `dep-${String(i).padStart(2, "0")}`, image: `img:${i}`, replicas: 1 + (i % 3) },
      });
      assert.equal(r.status, 200, r.text);
    }
    const r = await d.postJson(GW + "CreateGateway", { gateway: { gatewayId: "gw-1", image: "img:gw", replicas: 2 } });
    assert.equal(r.status, 200, r.text);
  });
  after(async () => {
    if (d) await d.stop();
  });

  test("pages of 4 see every deployment once, in (namespace, id) order", async () => {
    const seen = [];
    let token = "";
    let pages = 0;
    for (;;) {
      const r = await d.postJson(DEP + "ListDeployments", { pageSize: 4, pageToken: token });
      assert.equal(r.status, 200, r.text);
      pages++;
      assert.equal(r.json.totalCount, 30);
      for (const s of r.json.deployments) {
        const i = Number(s.deploymentId.slice(4));
        assert.equal(s.namespace, i % 2 ? "b" : "a");
        assert.equal(s.image, `img:${i}`);
        assert.equal(s.replicas, 1 + (i % 3));
        assert.equal(s.running, 1 + (i % 3));
        assert.equal(s.status, "DEPLOYMENT_STATUS_RUNNING");
        seen.push(`${s.namespace}/${s.deploymentId}`);
      }
      if (!r.json.nextPageToken) break;
      assert.equal(r.json.deployments.length, 4);
      token = r.json.nextPageToken;
    }
    assert.equal(pages, 8);
    assert.deepEqual(seen, [...seen].sort());
    assert.equal(new Set(seen).size, 30);
  });

  test("a page token stays good when an object before it goes", async () => {
    const first = await d.postJson(DEP + "ListDeployments", { namespace: "a", pageSize: 3 });
    assert.deepEqual(first.json.deployments.map((s) => s.deploymentId), ["dep-00", "dep-02", "dep-04"]);
    const del = await d.postJson(DEP + "DeleteDeployment", { namespace: "a", deploymentId: "dep-02" });
    assert.equal(del.status, 200, del.text);
    const next = await d.postJson(DEP + "ListDeployments", { namespace: "a", pageSize: 3, pageToken: first.json.nextPageToken });
    assert.deepEqual(next.json.deployments.map((s) => s.deploymentId), ["dep-06", "dep-08", "dep-10"]);
    assert.equal(next.json.totalCount, 14);
  });

  test("GET (NO_SIDE_EFFECTS) answers ListGateways", async () => {
    const r = await d.request({ method: "GET", path: `${GW}ListGateways?encoding=json&message=${encodeURIComponent("{}")}` });
    assert.equal(r.status, 200, r.text);
    const body = JSON.parse(r.text);
    assert.equal(body.totalCount, 1);
    assert.deepEqual(body.gateways, [{ gatewayId: "gw-1", image: "img:gw", replicas: 2, running: 2, status: "GATEWAY_STATUS_RUNNING" }]);
  });

  for (const [what, body, field] of [
    ["a page size over 1000", { pageSize: 1001 }, "pageSize"],
    ["a negative page size", { pageSize: -1 }, "pageSize"],
    ["a token berthd did not make", { pageToken: "p1.zz" }, "pageToken"],
  ]) {
    test(`${what} is invalid_argument naming ${field}`, async () => {
      const r = await d.postJson(DEP + "ListDeployments", body);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.code, "invalid_argument");
      assert.ok(r.json.message.includes(field), r.json.message);
    });
  }
});
