// Unit tests of the account-security part of frontend/static/frontend/api.js: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, createApi } from "../../../frontend/static/frontend/api.js";

function json(status, body) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

function server(handler) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const call = {
      path: new URL(url, "http://portal.test").pathname,
      method: init.method || "GET",
      headers: init.headers || {},
      body: init.body === undefined ? undefined : JSON.parse(init.body),
    };
    calls.push(call);
    return handler(call);
  };
  return { fetch, calls };
}

function apiFor(fake, options = {}) {
  return createApi({ fetch: fake.fetch, getCookie: () => "csrf-1", ...options });
}

test("passwords travel as base64 of their UTF-8 bytes, like at login", async () => {
  const fake = server(() => json(204));
  const api = apiFor(fake);
  await api.reauthenticate({ password: "pässword" });
  await api.passwordChange("old one", "nouveau été");
  await api.passwordResetConfirm("MQ", "tok-en", "ünïcode");
  assert.deepEqual(fake.calls[0].body, { password: Buffer.from("pässword").toString("base64") });
  assert.deepEqual(fake.calls[1].body, {
    currentPassword: Buffer.from("old one").toString("base64"),
    newPassword: Buffer.from("nouveau été").toString("base64"),
  });
  assert.deepEqual(fake.calls[2].body, { uid: "MQ", token: "tok-en", newPassword: Buffer.from("ünïcode").toString("base64") });
  assert.ok(fake.calls.every((call) => call.headers["X-CSRFToken"] === "csrf-1"));
});

test("a code re-authenticates as a code, not as a password", async () => {
  const fake = server(() => json(204));
  await apiFor(fake).reauthenticate({ code: "123456" });
  assert.deepEqual(fake.calls[0].body, { code: "123456" });
});

test("the second step is never refreshed: its refusals are the answer", async () => {
  const fake = server(() => json(403, { code: "token_not_valid", detail: "x" }));
  const expired = [];
  const api = apiFor(fake, { onSessionExpired: () => expired.push(true) });
  for (const call of [
    () => api.mfaVerify("t", { code: "1" }),
    () => api.mfaOptions("t"),
    () => api.passkeySignInOptions(),
    () => api.passkeySignIn("t", {}),
    () => api.passwordReset("a@example.com"),
    () => api.passwordResetConfirm("u", "t", "p"),
  ]) {
    await assert.rejects(call(), (error) => error instanceof ApiError && error.code === "token_not_valid");
  }
  assert.equal(fake.calls.filter((call) => call.path === "/api/auth/refresh").length, 0);
  assert.deepEqual(expired, []);
});

test("the verify body carries the token and either the code or the assertion", async () => {
  const fake = server(() => json(200, { user: { email: "a@example.com" } }));
  const api = apiFor(fake);
  await api.mfaVerify("tok", { code: "k7m2x-9qw4t" });
  await api.mfaVerify("tok", { webauthn: { id: "AQI" } });
  assert.deepEqual(fake.calls[0].body, { mfaToken: "tok", code: "k7m2x-9qw4t" });
  assert.deepEqual(fake.calls[1].body, { mfaToken: "tok", webauthn: { id: "AQI" } });
});

test("mfa_enrolment_required calls onEnrolmentRequired and still fails the request", async () => {
  const fake = server(() => json(403, { code: "mfa_enrolment_required", detail: "Set up a second factor" }));
  const seen = [];
  const api = apiFor(fake, { onEnrolmentRequired: (error) => seen.push(error.code) });
  await assert.rejects(api.clients(), (error) => error.code === "mfa_enrolment_required");
  assert.deepEqual(seen, ["mfa_enrolment_required"]);
  assert.equal(fake.calls.length, 1); // no refresh, no retry
});

test("passkey endpoints escape the id and send the name", async () => {
  const fake = server(() => json(200, { id: 7, name: "Work" }));
  const api = apiFor(fake);
  await api.passkeyRename(7, "Work");
  await api.passkeyRemove("7/../x");
  assert.deepEqual([fake.calls[0].method, fake.calls[0].path, fake.calls[0].body], ["PATCH", "/api/auth/mfa/passkeys/7", { name: "Work" }]);
  assert.equal(fake.calls[1].path, "/api/auth/mfa/passkeys/7%2F..%2Fx");
});

test("removing the app sends the code it takes, in a DELETE body", async () => {
  const fake = server(() => json(204));
  await apiFor(fake).totpRemove("123456");
  assert.deepEqual([fake.calls[0].method, fake.calls[0].path, fake.calls[0].body], ["DELETE", "/api/auth/mfa/totp", { code: "123456" }]);
  assert.equal(fake.calls[0].headers["X-CSRFToken"], "csrf-1");
});

test("a passkey re-authenticates with the token of its options and the assertion", async () => {
  const fake = server((call) => (call.path.endsWith("/options") ? json(200, { token: "t1", publicKey: {} }) : json(204)));
  const api = apiFor(fake);
  const { token } = await api.reauthenticationOptions();
  await api.reauthenticate({ token, webauthn: { id: "AQI" } });
  assert.deepEqual([fake.calls[0].method, fake.calls[0].path], ["POST", "/api/auth/reauthenticate/options"]);
  assert.deepEqual(fake.calls[1].body, { token: "t1", webauthn: { id: "AQI" } });
});
