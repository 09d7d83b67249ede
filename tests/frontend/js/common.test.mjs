// Unit tests of frontend/static/frontend/pages/common.js: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError } from "../../../frontend/static/frontend/api.js";
import { showError } from "../../../frontend/static/frontend/pages/common.js";

const ctx = { isCurrent: () => true, errorMessage: (error) => (error.code === "session_expired" ? null : error.detail) };

/** A stand-in for a form control: records focus and attributes. */
function control() {
  return {
    attributes: {},
    focused: false,
    setAttribute(name, value) {
      this.attributes[name] = value;
    },
    removeAttribute(name) {
      delete this.attributes[name];
    },
    focus() {
      this.focused = true;
    },
  };
}

test("showError says what is wrong with the fields and focuses the first field it has a control for", () => {
  const region = { textContent: "" };
  const name = control();
  const expires = control();
  const failure = new ApiError({
    status: 400,
    code: "invalid_request",
    detail: "The request is not valid.",
    fields: { expiresIn: ["A token lives at most 90 days (PAT_MAX_TTL)."], clients: { client9: ["Unknown client."] } },
  });

  showError(ctx, region, failure, { name, expiresIn: expires });

  assert.equal(region.textContent, "A token lives at most 90 days (PAT_MAX_TTL). Unknown client.");
  assert.equal(expires.focused, true);
  assert.equal(expires.attributes["aria-invalid"], "true");
  assert.equal(name.focused, false);
});

test("showError says a passkey's credential problem, and nothing when the app handles the error", () => {
  const region = { textContent: "" };
  showError(ctx, region, new ApiError({ status: 400, code: "invalid_request", detail: "Not valid.", fields: { credential: ["The passkey could not be verified."] } }));
  assert.equal(region.textContent, "Not valid. The passkey could not be verified.");

  const untouched = { textContent: "" };
  showError(ctx, untouched, new ApiError({ status: 403, code: "session_expired", detail: "Your session has ended", fields: { x: ["y"] } }));
  assert.equal(untouched.textContent, "");
});
