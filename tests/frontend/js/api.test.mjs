// Unit tests of frontend/static/frontend/api.js: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, base64Utf8, cookieValue, createApi } from "../../../frontend/static/frontend/api.js";

function json(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

const TOKEN_NOT_VALID = { code: "token_not_valid", detail: "Token is invalid or expired" };

function deferred() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * A fake fetch: `handler(call)` answers each call; every call is recorded as
 * {url, path, method, headers, credentials, body}.
 */
function fakeServer(handler) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const path = new URL(url, "http://portal.test").pathname;
    const call = {
      url,
      path,
      method: init.method || "GET",
      headers: { ...(init.headers || {}) },
      credentials: init.credentials,
      body: init.body === undefined ? undefined : JSON.parse(init.body),
    };
    calls.push(call);
    return handler(call, calls);
  };
  return { fetch, calls, count: (path) => calls.filter((c) => c.path === path).length };
}

function apiFor(server, options = {}) {
  const expired = [];
  const api = createApi({
    fetch: server.fetch,
    getCookie: (name) => (name === "csrftoken" ? "csrf-123" : null),
    onSessionExpired: (notice) => expired.push(notice),
    ...options,
  });
  return { api, expired };
}

test("concurrent 403 token_not_valid share one refresh and are each replayed once", async () => {
  let refreshed = false;
  const refreshGate = deferred();
  const server = fakeServer(async (call) => {
    if (call.path === "/api/auth/refresh") {
      await refreshGate.promise; // keep the refresh open until all three wait on it
      refreshed = true;
      return json(200, { user: { id: 1 }, expiresIn: 900000 });
    }
    return refreshed ? json(200, { path: call.path }) : json(403, TOKEN_NOT_VALID);
  });
  const { api, expired } = apiFor(server);

  const pending = [api.get("/api/a"), api.get("/api/b"), api.patch("/api/c", { body: { replicas: 3 } })];
  // Let the three first attempts fail and join the refresh before it answers.
  for (let i = 0; i < 50; i += 1) await new Promise((r) => setImmediate(r));
  refreshGate.resolve();
  const results = await Promise.all(pending);

  assert.deepEqual(results, [{ path: "/api/a" }, { path: "/api/b" }, { path: "/api/c" }]);
  assert.equal(server.count("/api/auth/refresh"), 1);
  assert.equal(server.count("/api/a"), 2);
  assert.equal(server.count("/api/b"), 2);
  assert.equal(server.count("/api/c"), 2);
  const replayedPatch = server.calls.filter((c) => c.path === "/api/c")[1];
  assert.deepEqual(replayedPatch.body, { replicas: 3 }, "the replay sends the same body");
  assert.equal(expired.length, 0);
});

test("a replay refused again is not refreshed again and reports the session expired", async () => {
  const server = fakeServer((call) =>
    call.path === "/api/auth/refresh" ? json(200, {}) : json(403, TOKEN_NOT_VALID),
  );
  const { api, expired } = apiFor(server);

  await assert.rejects(api.get("/api/clients"), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.code, "session_expired");
    assert.equal(error.detail, "Your session has ended");
    return true;
  });
  assert.equal(server.count("/api/auth/refresh"), 1);
  assert.equal(server.count("/api/clients"), 2);
  assert.equal(expired.length, 1);
});

test("not_authenticated also refreshes and replays", async () => {
  let refreshed = false;
  const server = fakeServer((call) => {
    if (call.path === "/api/auth/refresh") {
      refreshed = true;
      return json(200, {});
    }
    return refreshed
      ? json(200, { email: "a@example.com" })
      : json(403, { code: "not_authenticated", detail: "Authentication credentials were not provided." });
  });
  const { api } = apiFor(server);

  assert.deepEqual(await api.me(), { email: "a@example.com" });
  assert.equal(server.count("/api/auth/refresh"), 1);
  assert.equal(server.count("/api/auth/me"), 2);
});

test("a request sent before a refresh finished is replayed without a second refresh", async () => {
  let refreshed = false;
  const slowGate = deferred();
  const server = fakeServer(async (call) => {
    if (call.path === "/api/auth/refresh") {
      refreshed = true;
      return json(200, {});
    }
    const sentWithOldToken = !refreshed;
    if (call.path === "/api/slow") await slowGate.promise;
    return sentWithOldToken ? json(403, TOKEN_NOT_VALID) : json(200, { path: call.path });
  });
  const { api, expired } = apiFor(server);

  const slow = api.get("/api/slow"); // sent now, answered (403) only after the refresh
  assert.deepEqual(await api.get("/api/fast"), { path: "/api/fast" });
  slowGate.resolve();

  assert.deepEqual(await slow, { path: "/api/slow" });
  assert.equal(server.count("/api/auth/refresh"), 1);
  assert.equal(server.count("/api/slow"), 2);
  assert.equal(expired.length, 0);
});

test("permission_denied is surfaced with its detail and never refreshes", async () => {
  const server = fakeServer(() =>
    json(403, { code: "permission_denied", detail: "Insufficient permissions" }),
  );
  const { api, expired } = apiFor(server);

  await assert.rejects(api.cluster("client1", "prod"), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 403);
    assert.equal(error.code, "permission_denied");
    assert.equal(error.detail, "Insufficient permissions");
    return true;
  });
  assert.equal(server.count("/api/auth/refresh"), 0);
  assert.equal(server.calls.length, 1);
  assert.equal(expired.length, 0);
});

test("a refused refresh reports the session expired once for every waiting request", async () => {
  const server = fakeServer((call) =>
    call.path === "/api/auth/refresh"
      ? json(403, { code: "token_not_valid", detail: "Token is invalid or expired" })
      : json(403, TOKEN_NOT_VALID),
  );
  const { api, expired } = apiFor(server);

  const results = await Promise.allSettled([api.get("/api/x"), api.get("/api/y")]);

  for (const result of results) {
    assert.equal(result.status, "rejected");
    assert.equal(result.reason.code, "session_expired");
  }
  assert.equal(server.count("/api/x"), 1, "no replay after a failed refresh");
  assert.equal(server.count("/api/y"), 1);
  assert.equal(server.count("/api/auth/refresh"), 1);
  assert.equal(expired.length, 1);
});

test("a refresh refused as expired says the session has ended", async () => {
  const server = fakeServer(() => json(403, TOKEN_NOT_VALID));
  const { api, expired } = apiFor(server);

  await assert.rejects(api.sessions(), { code: "session_expired", detail: "Your session has ended" });
  assert.deepEqual(expired, ["Your session has ended"]);
});

for (const [code, detail] of [
  ["refresh_token_reused", "This refresh token was already used; the session has been revoked for safety."],
  ["account_disabled", "This account is disabled."],
  ["csrf_failed", "This origin may not use the API with the browser's cookies."],
]) {
  test(`a refresh refused with ${code} ends the session with the server's reason`, async () => {
    const server = fakeServer((call) =>
      call.path === "/api/auth/refresh" ? json(403, { code, detail }) : json(403, TOKEN_NOT_VALID),
    );
    const { api, expired } = apiFor(server);

    await assert.rejects(api.sessions(), { code: "session_expired", detail });
    assert.deepEqual(expired, [detail], "the sign-in page is told why, not 'Your session has ended'");
  });
}

test("after a refused refresh, later 403s do not each ask for a refresh until a request succeeds", async () => {
  let signedIn = false;
  const server = fakeServer((call) => {
    if (call.path === "/api/auth/login") {
      signedIn = true;
      return json(200, { user: { id: 1 } });
    }
    if (call.path === "/api/auth/refresh") return json(403, TOKEN_NOT_VALID);
    return signedIn && call.path !== "/api/expired-again" ? json(200, []) : json(403, TOKEN_NOT_VALID);
  });
  const { api, expired } = apiFor(server);

  for (const path of ["/api/a", "/api/b", "/api/c"]) {
    await assert.rejects(api.get(path), { code: "session_expired" }); // one after another
  }
  assert.equal(server.count("/api/auth/refresh"), 1);
  assert.equal(expired.length, 1);

  await api.login("a@example.com", "pw");
  await api.clients();
  await assert.rejects(api.get("/api/expired-again"), { code: "session_expired" });
  assert.equal(server.count("/api/auth/refresh"), 2, "a new session refreshes again");
});

test("a refused refresh is not remembered for long: a sign-in in another tab is found", async () => {
  let signedInElsewhere = false;
  const server = fakeServer((call) => {
    if (call.path === "/api/auth/refresh") return signedInElsewhere ? json(200, {}) : json(403, TOKEN_NOT_VALID);
    return json(403, TOKEN_NOT_VALID); // every access token this fake sees has lapsed
  });
  const { api } = apiFor(server);
  await assert.rejects(api.get("/api/a"), { code: "session_expired" });

  signedInElsewhere = true; // the shared refresh cookie is valid again
  const realNow = Date.now;
  Date.now = () => realNow() + 60_000; // a minute later, this tab's access cookie has lapsed
  try {
    await assert.rejects(api.get("/api/b"));
  } finally {
    Date.now = realNow;
  }
  assert.equal(server.count("/api/auth/refresh"), 2, "it asked again instead of answering from memory");
});

test("sign-in endpoints never trigger a refresh", async () => {
  const server = fakeServer(() => json(403, TOKEN_NOT_VALID));
  const { api, expired } = apiFor(server);

  await assert.rejects(api.login("a@example.com", "pw"), { code: "token_not_valid" });
  await assert.rejects(api.googleLogin("id-token"), { code: "token_not_valid" });
  await assert.rejects(api.post("/api/auth/refresh"), { code: "token_not_valid" });
  assert.equal(server.count("/api/auth/refresh"), 1, "only the explicit call above");
  assert.equal(server.calls.length, 3);
  assert.equal(expired.length, 0);
});

test("401 invalid_credentials is surfaced as is", async () => {
  const server = fakeServer(() =>
    json(401, { code: "invalid_credentials", detail: "Invalid email or password." }),
  );
  const { api } = apiFor(server);

  await assert.rejects(api.login("a@example.com", "nope"), {
    status: 401,
    code: "invalid_credentials",
    detail: "Invalid email or password.",
  });
  assert.equal(server.count("/api/auth/refresh"), 0);
});

test("validation errors carry fields and throttling carries Retry-After", async () => {
  const server = fakeServer((call) =>
    call.path === "/api/throttled"
      ? json(429, { code: "throttled", detail: "Too many attempts." }, { "Retry-After": "30" })
      : json(400, { code: "invalid_request", detail: "Invalid input.", fields: { replicas: ["Too many."] } }),
  );
  const { api } = apiFor(server);

  await assert.rejects(api.clusterUpdate("client1", "prod", { replicas: 99 }), (error) => {
    assert.equal(error.status, 400);
    assert.deepEqual(error.fields, { replicas: ["Too many."] });
    return true;
  });
  await assert.rejects(api.get("/api/throttled"), { code: "throttled", retryAfter: "30" });
});

test("X-CSRFToken is sent on POST, PUT, PATCH and DELETE but not on GET", async () => {
  const server = fakeServer((call) => (call.method === "DELETE" ? new Response(null, { status: 204 }) : json(200, {})));
  const { api } = apiFor(server);

  await api.get("/api/clients");
  await api.post("/api/x", { body: {} });
  await api.put("/api/x", { body: {} });
  await api.patch("/api/x", { body: {} });
  await api.delete("/api/x");

  const byMethod = Object.fromEntries(server.calls.map((c) => [c.method, c.headers["X-CSRFToken"]]));
  assert.equal(byMethod.GET, undefined);
  assert.equal(byMethod.POST, "csrf-123");
  assert.equal(byMethod.PUT, "csrf-123");
  assert.equal(byMethod.PATCH, "csrf-123");
  assert.equal(byMethod.DELETE, "csrf-123");
});

test("the CSRF token is read from the cookie at each request", async () => {
  let cookie = "first";
  const server = fakeServer(() => json(200, {}));
  const { api } = apiFor(server, { getCookie: () => cookie });

  await api.post("/api/x");
  cookie = "second";
  await api.post("/api/x");

  assert.deepEqual(server.calls.map((c) => c.headers["X-CSRFToken"]), ["first", "second"]);
});

/** An API on another origin: its csrf endpoint answers `tokens` in turn; writes need the last one. */
function otherOriginServer(tokens) {
  let issued = null;
  return fakeServer((call) => {
    if (call.path === "/api/auth/csrf") {
      issued = tokens.shift();
      return json(200, { csrfToken: issued });
    }
    if (call.method === "GET") return json(200, {});
    return call.headers["X-CSRFToken"] === issued
      ? json(200, { saved: true })
      : json(403, { code: "csrf_failed", detail: "CSRF check failed: CSRF cookie not set." });
  });
}

test("from another origin, writes carry the API's CSRF token, not the page's own cookie", async () => {
  const server = otherOriginServer(["api-token"]);
  const { api } = apiFor(server, { baseUrl: "https://api.example.test", getCookie: () => "app-host-token" });

  await Promise.all([api.patch("/api/x", { body: {} }), api.post("/api/auth/logout")]);
  await api.delete("/api/y");

  assert.equal(server.count("/api/auth/csrf"), 1, "asked once, then kept");
  const sent = server.calls.filter((call) => call.method !== "GET").map((call) => call.headers["X-CSRFToken"]);
  assert.deepEqual(sent, ["api-token", "api-token", "api-token"]);
  assert.equal(server.calls[0].url, "https://api.example.test/api/auth/csrf");
  assert.equal(server.calls[0].credentials, "include");
});

test("from another origin, a csrf_failed answer fetches the API's token again and retries once", async () => {
  const server = otherOriginServer(["first", "second", "third"]);
  const { api } = apiFor(server, { baseUrl: "https://api.example.test", getCookie: () => null });
  await api.post("/api/x"); // "first" is now kept
  await api.get("/api/auth/csrf"); // the API's token changes behind the app's back

  server.calls.length = 0;
  assert.deepEqual(await api.post("/api/x"), { saved: true });
  assert.deepEqual(
    server.calls.map((call) => [call.method, call.path, call.headers["X-CSRFToken"]]),
    [
      ["POST", "/api/x", "first"],
      ["GET", "/api/auth/csrf", undefined],
      ["POST", "/api/x", "third"],
    ],
  );

  const refusing = fakeServer((call) =>
    call.path === "/api/auth/csrf" ? json(200, { csrfToken: "t" }) : json(403, { code: "csrf_failed", detail: "No." }),
  );
  const other = apiFor(refusing, { baseUrl: "https://api.example.test" }).api;
  await assert.rejects(other.post("/api/x"), { code: "csrf_failed", detail: "No." });
  assert.equal(refusing.count("/api/x"), 2, "retried once, not in a loop");
});

test('every call, the refresh and the replay included, uses credentials "include"', async () => {
  let refreshed = false;
  const server = fakeServer((call) => {
    if (call.path === "/api/auth/refresh") {
      refreshed = true;
      return json(200, {});
    }
    return refreshed ? json(200, []) : json(403, TOKEN_NOT_VALID);
  });
  const { api } = apiFor(server);

  await api.clients();
  await api.post("/api/auth/logout");

  assert.equal(server.calls.length, 4);
  for (const call of server.calls) assert.equal(call.credentials, "include", `${call.method} ${call.path}`);
});

test("requests go to the configured base URL with JSON bodies", async () => {
  const server = fakeServer(() => json(200, { ok: true }));
  const { api } = apiFor(server, { baseUrl: "https://api.example.test/" });

  await api.clusterUpdate("client1", "prod", { replicas: 3 });

  const call = server.calls.find((each) => each.method === "PATCH");
  assert.equal(call.url, "https://api.example.test/api/clients/client1/clusters/prod");
  assert.equal(call.method, "PATCH");
  assert.equal(call.headers["Content-Type"], "application/json");
  assert.deepEqual(call.body, { replicas: 3 });
});

test("clusterUpdate reports 202 so the page can say the commit is not pushed yet", async () => {
  const server = fakeServer(() => json(202, { replicas: 3, revision: { commit: "abc", pushed: false } }));
  const { api } = apiFor(server);

  const { status, data } = await api.clusterUpdate("client1", "prod", { replicas: 3 });

  assert.equal(status, 202);
  assert.equal(data.revision.pushed, false);
});

test("cancelling a storage request and finishing a rotation send CSRF-protected requests", async () => {
  const server = fakeServer((call) => json(200, { path: call.path }));
  const { api } = apiFor(server);

  const cluster = await api.storageRequestCancel("client1", "prod");
  const finished = await api.credentialsRotationFinish("client 1", "prod");
  assert.equal(finished.status, 200); // 202 would say: not pushed yet
  assert.equal(finished.data.path, "/api/clients/client%201/clusters/prod/credentials/rotate/finish");

  assert.equal(cluster.path, "/api/clients/client1/clusters/prod/storage-request");
  assert.deepEqual(
    server.calls.map((call) => [call.method, call.path, call.headers["X-CSRFToken"]]),
    [
      ["DELETE", "/api/clients/client1/clusters/prod/storage-request", "csrf-123"],
      ["POST", "/api/clients/client%201/clusters/prod/credentials/rotate/finish", "csrf-123"],
    ],
  );
});

test("a scale-down refused for want of confirmation keeps its code and detail", async () => {
  const detail = "Scaling client1/prod down from 3 replicas to 2 removes 1 Qdrant peer, the highest-numbered pod...";
  const server = fakeServer(() => json(409, { code: "confirmation_required", detail }));
  const { api, expired } = apiFor(server);

  await assert.rejects(api.clusterUpdate("client1", "prod", { replicas: 2 }), (error) => {
    assert.equal(error.status, 409);
    assert.equal(error.code, "confirmation_required");
    assert.equal(error.detail, detail);
    assert.equal(error.isAuthError, false);
    return true;
  });
  assert.equal(server.calls.length, 1);
  assert.equal(expired.length, 0);
});

test("a network failure becomes an ApiError without ending the session", async () => {
  const server = fakeServer(() => {
    throw new TypeError("fetch failed");
  });
  const { api, expired } = apiFor(server);

  await assert.rejects(api.get("/api/clients"), { status: 0, code: "network_error" });
  assert.equal(expired.length, 0);
});

test("the login password is base64 of its UTF-8 bytes", async () => {
  const password = "pässwörd€ 密码 😀";
  const server = fakeServer(() => json(200, { user: { email: "a@example.com" } }));
  const { api } = apiFor(server);

  await api.login("a@example.com", password);

  const expected = Buffer.from(password, "utf8").toString("base64");
  assert.equal(server.calls[0].body.password, expected);
  assert.equal(Buffer.from(server.calls[0].body.password, "base64").toString("utf8"), password);
  assert.equal(base64Utf8("abc"), "YWJj");
  assert.equal(base64Utf8("é"), "w6k=", "é is two UTF-8 bytes, not Latin-1 0xE9 (6Q==)");
});

test("cookieValue finds one cookie among several", () => {
  assert.equal(cookieValue("a=1; csrftoken=xyz%3D; b=2", "csrftoken"), "xyz=");
  assert.equal(cookieValue("xcsrftoken=no", "csrftoken"), null);
  assert.equal(cookieValue("", "csrftoken"), null);
});
