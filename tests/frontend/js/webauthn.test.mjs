// Unit tests of frontend/static/frontend/webauthn.js and next.js: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  base64urlToBuffer,
  bufferToBase64url,
  credentialToJSON,
  creationOptionsFromJSON,
  passkeyErrorMessage,
  requestOptionsFromJSON,
} from "../../../frontend/static/frontend/webauthn.js";
import { adminPath, appPath } from "../../../frontend/static/frontend/next.js";

const bytes = (...values) => new Uint8Array(values).buffer;
const asArray = (buffer) => [...new Uint8Array(buffer)];

test("base64url round-trips every byte value without padding or +/ characters", () => {
  const all = new Uint8Array(256).map((_, index) => index);
  const text = bufferToBase64url(all.buffer);
  assert.match(text, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(asArray(base64urlToBuffer(text)), [...all]);
  assert.equal(bufferToBase64url(bytes(0xfb, 0xff)), "-_8");
  assert.deepEqual(asArray(base64urlToBuffer("-_8")), [0xfb, 0xff]);
  assert.deepEqual(asArray(base64urlToBuffer("-_8=")), [0xfb, 0xff]); // padded input is fine too
  assert.equal(bufferToBase64url(new Uint8Array([1, 2, 3, 4]).subarray(1, 3)), "AgM"); // a view's own bytes
  assert.equal(bufferToBase64url(bytes()), "");
});

test("base64url refuses what is not base64url", () => {
  assert.throws(() => base64urlToBuffer("ab+/"), TypeError);
  assert.throws(() => base64urlToBuffer(42), TypeError);
});

const creationJSON = {
  rp: { id: "localhost", name: "Qdrant Portal" },
  user: { id: "MQ", name: "ops@example.com", displayName: "Ops" },
  challenge: "AAEC",
  pubKeyCredParams: [{ type: "public-key", alg: -7 }],
  excludeCredentials: [{ type: "public-key", id: "_w" }],
  authenticatorSelection: { residentKey: "preferred", userVerification: "preferred" },
};

test("creation options become ArrayBuffers where WebAuthn wants them, the rest unchanged", () => {
  const options = creationOptionsFromJSON(creationJSON, undefined);
  assert.deepEqual(asArray(options.challenge), [0, 1, 2]);
  assert.deepEqual(asArray(options.user.id), [0x31]);
  assert.equal(options.user.name, "ops@example.com");
  assert.deepEqual(asArray(options.excludeCredentials[0].id), [0xff]);
  assert.equal(options.excludeCredentials[0].type, "public-key");
  assert.deepEqual(options.authenticatorSelection, creationJSON.authenticatorSelection);
  assert.equal(creationJSON.challenge, "AAEC"); // the input is not modified
});

test("request options convert the challenge and allowCredentials; none listed is an empty list", () => {
  const options = requestOptionsFromJSON({ challenge: "AAEC", rpId: "localhost", userVerification: "preferred" }, undefined);
  assert.deepEqual(asArray(options.challenge), [0, 1, 2]);
  assert.deepEqual(options.allowCredentials, []);
  assert.equal(options.rpId, "localhost");
  const listed = requestOptionsFromJSON({ challenge: "AA", allowCredentials: [{ type: "public-key", id: "AQI" }] }, undefined);
  assert.deepEqual(asArray(listed.allowCredentials[0].id), [1, 2]);
});

test("the browser's own parsers are used when it has them", () => {
  const calls = [];
  const native = {
    parseCreationOptionsFromJSON(json) {
      calls.push(["create", this === native]);
      return { native: json };
    },
    parseRequestOptionsFromJSON(json) {
      calls.push(["get", this === native]);
      return { native: json };
    },
  };
  assert.deepEqual(creationOptionsFromJSON(creationJSON, native), { native: creationJSON });
  assert.deepEqual(requestOptionsFromJSON({ challenge: "AA" }, native), { native: { challenge: "AA" } });
  assert.deepEqual(calls, [
    ["create", true],
    ["get", true],
  ]);
});

test("a registration credential without toJSON() becomes the JSON the API takes", () => {
  const credential = {
    id: "AQI",
    rawId: bytes(1, 2),
    type: "public-key",
    authenticatorAttachment: "platform",
    getClientExtensionResults: () => ({ credProps: { rk: true } }),
    response: {
      clientDataJSON: bytes(123, 125),
      attestationObject: bytes(0xa0),
      getTransports: () => ["internal"],
    },
  };
  assert.deepEqual(credentialToJSON(credential), {
    id: "AQI",
    rawId: "AQI",
    type: "public-key",
    authenticatorAttachment: "platform",
    clientExtensionResults: { credProps: { rk: true } },
    response: { clientDataJSON: "e30", attestationObject: "oA", transports: ["internal"] },
  });
});

test("an assertion without toJSON() keeps its signature and user handle (null when absent)", () => {
  const assertion = (userHandle) => ({
    id: "AQI",
    rawId: bytes(1, 2),
    type: "public-key",
    response: { clientDataJSON: bytes(1), authenticatorData: bytes(2), signature: bytes(3), userHandle },
  });
  const json = credentialToJSON(assertion(bytes(0x31)));
  assert.deepEqual(json.response, { clientDataJSON: "AQ", authenticatorData: "Ag", signature: "Aw", userHandle: "MQ" });
  assert.equal(json.authenticatorAttachment, null);
  assert.deepEqual(json.clientExtensionResults, {});
  assert.equal(credentialToJSON(assertion(null)).response.userHandle, null);
});

test("toJSON() wins when the credential has it", () => {
  assert.deepEqual(credentialToJSON({ toJSON: () => ({ id: "native" }) }), { id: "native" });
});

test("a cancelled or refused ceremony has a sentence; other errors are not the browser's", () => {
  assert.match(passkeyErrorMessage({ name: "NotAllowedError" }), /cancelled or timed out/);
  assert.match(passkeyErrorMessage({ name: "InvalidStateError" }), /already holds a passkey/);
  assert.equal(passkeyErrorMessage({ name: "ApiError" }), null);
  assert.equal(passkeyErrorMessage(undefined), null);
});

const ORIGIN = "https://portal.example.com";

test("adminPath keeps only same-origin pages under /admin/", () => {
  assert.equal(adminPath("/admin/", ORIGIN), "/admin/");
  assert.equal(adminPath("/admin/clusters/cluster/?q=a#x", ORIGIN), "/admin/clusters/cluster/?q=a#x");
  for (const next of [
    null,
    "",
    "/clusters",
    "/administrator",
    "//evil.example/admin/",
    "https://evil.example/admin/",
    "/admin/../login",
    "/admin/%2e%2e/api/auth/me",
    "javascript:alert(1)",
  ]) {
    assert.equal(adminPath(next, ORIGIN), null, String(next));
  }
});

test("appPath keeps the app's own routes and falls back for anything else", () => {
  assert.equal(appPath("/sessions", "/clusters"), "/sessions");
  assert.equal(appPath("/clients/a/clusters/b", "/clusters"), "/clients/a/clusters/b");
  for (const next of [null, "", "sessions", "//evil.example", "/login?next=/x", "/admin/", "https://evil.example"]) {
    assert.equal(appPath(next, "/clusters"), "/clusters", String(next));
  }
});
