// Unit tests of frontend/static/frontend/pages/cluster.js: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { changesText, sourceText } from "../../../frontend/static/frontend/pages/cluster.js";

test("a history entry says what changed, from what to what", () => {
  assert.equal(changesText({ replicas: [2, 3], storageGi: [10, 20] }), "replicas: 2 → 3, storageGi: 10 → 20");
});

test("a new cluster's values read as they are, not as a change from null", () => {
  assert.equal(changesText({ replicas: [null, 1], version: [null, "v1.15.5"] }), "replicas: 1, version: v1.15.5");
  assert.equal(changesText({ version: ["v1.15.5", null] }), "version: v1.15.5 → none");
});

test("what is not a pair of values is said as it is", () => {
  assert.equal(changesText({ keys: "rotated" }), "keys: rotated");
  assert.equal(changesText(null), "");
});

test("a history entry says which credential asked, and from where, when it was recorded", () => {
  assert.equal(
    sourceText({ via: "personal access token #3 “ci”", ip: "203.0.113.5" }),
    "personal access token #3 “ci” from 203.0.113.5",
  );
  assert.equal(sourceText({ via: "session 5f0c", ip: null }), "session 5f0c");
  assert.equal(sourceText({ via: null, ip: null }), ""); // the admin, the system, an operator
});
