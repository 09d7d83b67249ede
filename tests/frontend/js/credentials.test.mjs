// The Credentials page's pure parts: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { rotatedText } from "../../../frontend/static/frontend/pages/credentials.js";

const TWO_PHASE = { rotation: { finishesAt: "2026-12-01T00:00:00Z" } };

test("a rotation points at the cluster page's Deployment card where the portal follows deployments", () => {
  assert.match(rotatedText(TWO_PHASE, { deploymentsFollowed: true }), /\(Deployment on the cluster page says Deployed\)/);
  assert.match(rotatedText({ rotation: null }, { deploymentsFollowed: true }), /^Keys rotated\./);
});

test("without Argo CD it points at no card the page does not have", () => {
  for (const credentials of [TWO_PHASE, { rotation: null }]) {
    const text = rotatedText(credentials, { deploymentsFollowed: false });
    assert.doesNotMatch(text, /Deployment on the cluster page/);
    assert.match(text, /this portal does not follow deployments/);
  }
});
