// Unit tests of the team and token pages' pure parts, and of their API calls: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { createApi } from "../../../frontend/static/frontend/api.js";
import { needsText, signInWith } from "../../../frontend/static/frontend/pages/step-up.js";

const restricted = (unmet, extra = {}) => ({
  client: "client2",
  name: "Client Two",
  unmet,
  allowedMethods: ["google"],
  googleDomain: "",
  secondFactor: false,
  maxSessionLength: null,
  ...extra,
});

test("the step-up says what a client asks, in words", () => {
  assert.equal(needsText(restricted(["method"])), "Client Two asks for signing in with Google.");
  assert.equal(
    needsText(restricted(["google_domain", "second_factor"], { googleDomain: "example.com" })),
    "Client Two asks for a Google account of example.com and a second factor.",
  );
  assert.equal(
    needsText(restricted(["session_age"], { allowedMethods: [], maxSessionLength: 3600 })),
    "Client Two asks for a sign-in within the last 60 minutes.",
  );
});

test("the step-up signs in again the one way the client accepts", () => {
  assert.equal(signInWith(restricted(["method"])), "google");
  assert.equal(signInWith(restricted(["google_domain"], { allowedMethods: ["google", "password"] })), "google");
  assert.equal(signInWith(restricted(["method"], { allowedMethods: ["password", "passkey"] })), "");
  assert.equal(signInWith(restricted(["session_age"])), "");
});

test("an invitation's token travels in request bodies, never in a URL", async () => {
  const sent = [];
  const api = createApi({
    fetch: async (url, init) => {
      sent.push({ url, init });
      return new Response(JSON.stringify({ client: "client1" }), { status: 200, headers: { "Content-Type": "application/json" } });
    },
    getCookie: () => "csrf",
  });
  await api.invitationPreview("secret-token");
  await api.invitationSignUp("secret-token", { name: "N", password: "pässword" });
  await api.invitationSignUp("secret-token", { credential: "google-id-token" });
  assert.deepEqual(sent.map((each) => each.url), ["/api/invitations/preview", "/api/invitations/sign-up", "/api/invitations/sign-up"]);
  assert.deepEqual(JSON.parse(sent[1].init.body), { token: "secret-token", name: "N", password: "cMOkc3N3b3Jk" });
  assert.deepEqual(JSON.parse(sent[2].init.body), { token: "secret-token", credential: "google-id-token" });
  assert.ok(sent.every((each) => !each.url.includes("secret-token")));
});

test("a refused sign-up is the answer, not a reason to refresh", async () => {
  const urls = [];
  const api = createApi({
    fetch: async (url) => {
      urls.push(url);
      return new Response(JSON.stringify({ code: "token_not_valid", detail: "no" }), { status: 403 });
    },
    getCookie: () => null,
  });
  await assert.rejects(api.invitationSignUp("t", { credential: "x" }), { code: "token_not_valid" });
  assert.deepEqual(urls, ["/api/invitations/sign-up"]);
});
