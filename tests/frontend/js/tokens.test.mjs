// Unit tests of the Tokens page's pure parts: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { tokenLifetimes } from "../../../frontend/static/frontend/pages/tokens.js";

const DAY = 86400;
const values = (offered) => offered.map(([value]) => value);

test("the usual lifetimes are offered up to the server's longest", () => {
  assert.deepEqual(values(tokenLifetimes(365 * DAY)), ["7d", "30d", "90d", "365d"]);
  assert.deepEqual(values(tokenLifetimes(90 * DAY)), ["7d", "30d", "90d"]);
});

test("a longest that is none of the usual ones is offered too, in words", () => {
  assert.deepEqual(tokenLifetimes(45 * DAY), [
    ["7d", "7 days"],
    ["30d", "30 days"],
    [String(45 * DAY), "45 days (the longest)"],
  ]);
  assert.deepEqual(tokenLifetimes(730 * DAY).at(-1), [String(730 * DAY), "730 days (the longest)"]);
  assert.deepEqual(tokenLifetimes(12 * 3600), [[String(12 * 3600), "12 hours (the longest)"]]);
  assert.deepEqual(tokenLifetimes(DAY), [[String(DAY), "1 day (the longest)"]]);
  assert.deepEqual(tokenLifetimes(90), [["90", "90 seconds (the longest)"]]);
});
