// The Sessions page's pure parts: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { deviceName, revokeLabel } from "../../../frontend/static/frontend/pages/sessions.js";

const LAPTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36";

test("two sessions of one make of browser get Revoke buttons a screen reader tells apart", () => {
  const first = revokeLabel({ userAgent: LAPTOP, createdAt: "2026-11-20T08:00:00Z", ip: "192.0.2.10" });
  const second = revokeLabel({ userAgent: LAPTOP, createdAt: "2026-11-28T17:30:00Z", ip: "198.51.100.7" });
  assert.notEqual(first, second);
  assert.match(first, /^Revoke the .* session signed in .+ from 192\.0\.2\.10$/);
});

test("a session without an address still names when it signed in", () => {
  const label = revokeLabel({ userAgent: LAPTOP, createdAt: "2026-11-20T08:00:00Z", ip: null });
  assert.match(label, /session signed in .*2026/);
  assert.doesNotMatch(label, / from /);
});

test("a script's session is named after the program that signed in, not an unknown device", () => {
  assert.equal(deviceName("Python-urllib/3.11"), "Python client");
  assert.equal(deviceName("Go-http-client/2.0"), "Go-http-client");
  assert.equal(deviceName("Wget/1.21.3"), "Wget");
  assert.equal(deviceName(LAPTOP), "Chrome on Linux");
  // A browser-like string with nothing recognisable stays unknown: "Mozilla" names no browser.
  assert.equal(deviceName("Mozilla/5.0 (compatible; something)"), "Unknown device");
  assert.equal(deviceName(""), "Unknown device");
});
