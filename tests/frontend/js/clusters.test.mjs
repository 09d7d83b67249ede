// The Clusters page's pure parts: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { clustersSummary } from "../../../frontend/static/frontend/pages/clusters.js";

test("the clusters page counts only the clients that answered and names the others", () => {
  const two = { slug: "client2", name: "Client Two" };
  assert.equal(clustersSummary(3, 2, []), "3 clusters in 2 clients.");
  assert.equal(clustersSummary(1, 1, [two]), "1 cluster in 1 client. The clusters of Client Two could not be loaded.");
  assert.equal(clustersSummary(0, 0, [two, { slug: "client3", name: "" }]), "The clusters of Client Two, client3 could not be loaded.");
});
