// The Clusters page's pure parts: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { clustersSummary } from "../../../frontend/static/frontend/pages/clusters.js";

test("the clusters page says how many clusters in how many clients, in the singular for one", () => {
  assert.equal(clustersSummary(3, 2), "3 clusters in 2 clients.");
  assert.equal(clustersSummary(1, 1), "1 cluster in 1 client.");
  assert.equal(clustersSummary(0, 1), "0 clusters in 1 client.");
});
