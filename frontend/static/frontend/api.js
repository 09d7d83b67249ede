// The one module that talks HTTP to the portal API (see shared/contract.md).
//
// It never touches `document` or `window`: fetch, cookie reading and the
// session-expired callback are injected, so Node's test runner can drive it.
//
// Refresh-and-retry: a 403 whose code is `not_authenticated` or
// `token_not_valid` triggers POST /api/auth/refresh. Every request waiting at
// that moment shares the one refresh promise and is then replayed once. If the
// refresh is refused, or a replay is refused again, the session is over:
// `onSessionExpired(notice)` is called and the request fails with code
// `session_expired`. A request is never refreshed twice, so there is no loop,
// and once a refresh was refused no other request tries again until one succeeds.

const UNSAFE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const REFRESHABLE_CODES = new Set(["not_authenticated", "token_not_valid"]);
// Endpoints that are themselves part of signing in or out: a refusal from
// them is the answer, not a reason to refresh.
const NO_REFRESH_PATHS = new Set([
  "/api/auth/login",
  "/api/auth/google",
  "/api/auth/refresh",
  "/api/auth/logout",
  "/api/auth/mfa/verify",
  "/api/auth/mfa/options",
  "/api/auth/passkey/options",
  "/api/auth/passkey",
  "/api/auth/password/reset",
  "/api/auth/password/reset/check",
  "/api/auth/password/reset/confirm",
  "/api/invitations/preview",
  "/api/invitations/sign-up",
]);
// A staff account without a second factor may only set one up: any other call answers this.
const ENROLMENT_REQUIRED = "mfa_enrolment_required";

// "Ended", not "expired": the refusal looks the same when the session was revoked from another
// device or by a password change, and its user must not take that for a timeout.
export const SESSION_EXPIRED_DETAIL = "Your session has ended";

export class ApiError extends Error {
  constructor({ status, code, detail, fields = null, retryAfter = null }) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.fields = fields;
    this.retryAfter = retryAfter;
  }

  /** True when the error means "sign in again" rather than "show this message". */
  get isAuthError() {
    return (
      this.code === "session_expired" ||
      this.code === "account_disabled" ||
      this.code === "refresh_token_reused" ||
      REFRESHABLE_CODES.has(this.code)
    );
  }
}

/** Base64 of the UTF-8 bytes of `text` (btoa alone breaks outside Latin-1). */
export function base64Utf8(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary);
}

/** Reads one cookie from a `document.cookie`-style string. */
export function cookieValue(cookieString, name) {
  for (const part of (cookieString || "").split(";")) {
    const index = part.indexOf("=");
    if (index === -1) continue;
    if (part.slice(0, index).trim() === name) {
      return decodeURIComponent(part.slice(index + 1).trim());
    }
  }
  return null;
}

async function bodyOf(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // not JSON: a proxy error page, for instance
  }
}

function errorFrom(response, body) {
  const retryAfter = response.headers.get("Retry-After");
  if (body && typeof body === "object" && typeof body.code === "string") {
    return new ApiError({
      status: response.status,
      code: body.code,
      detail: body.detail || `Request failed (${response.status})`,
      fields: body.fields || null,
      retryAfter,
    });
  }
  return new ApiError({
    status: response.status,
    code: "http_error",
    detail: `The server answered ${response.status}. Please try again.`,
    retryAfter,
  });
}

function isRefreshable(response, body) {
  return (
    response.status === 403 &&
    body !== null &&
    typeof body === "object" &&
    REFRESHABLE_CODES.has(body.code)
  );
}

/**
 * The CSRF token to send: {token({renew}) -> string|null, renewable}.
 *
 * Same origin (no base URL): the csrftoken cookie the app shell set, which is the API's own.
 * Another origin: that cookie belongs to the app's host, not the API's, so it is never sent;
 * GET {base}/api/auth/csrf gives the API's token (and sets its cookie). It is asked once and
 * shared; `renew` asks again (after a csrf_failed answer: the API's cookie changed).
 */
function csrfTokenSource({ fetch, getCookie, base }) {
  let fromApi = null; // a promise of the API's token
  async function ask() {
    try {
      const response = await fetch(`${base}/api/auth/csrf`, {
        method: "GET",
        credentials: "include",
        headers: { Accept: "application/json" },
      });
      const body = await bodyOf(response);
      return (response.ok && body && body.csrfToken) || null;
    } catch {
      return null;
    }
  }
  return {
    renewable: Boolean(base),
    async token({ renew = false } = {}) {
      if (!base) return getCookie("csrftoken");
      if (renew || !fromApi) fromApi = ask();
      const token = await fromApi;
      if (!token) fromApi = null; // not answered: ask again next time
      return token;
    },
  };
}

function isCsrfFailure({ response, body }) {
  return response.status === 403 && body !== null && typeof body === "object" && body.code === "csrf_failed";
}

/** send(method, path, body, signal) -> {response, body}: one HTTP exchange, no refresh. */
function transport({ fetch, getCookie, base }) {
  const csrf = csrfTokenSource({ fetch, getCookie, base });
  async function exchange(method, path, body, signal, csrfToken) {
    const headers = { Accept: "application/json" };
    const init = { method, credentials: "include", headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (csrfToken) headers["X-CSRFToken"] = csrfToken;
    if (signal) init.signal = signal;
    let response;
    try {
      response = await fetch(base + path, init);
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      throw new ApiError({
        status: 0,
        code: "network_error",
        detail: "Could not reach the server. Check your connection and try again.",
      });
    }
    return { response, body: await bodyOf(response) };
  }
  return async function send(method, path, body, signal) {
    if (!UNSAFE_METHODS.has(method)) return exchange(method, path, body, signal, null);
    const answer = await exchange(method, path, body, signal, await csrf.token());
    if (!csrf.renewable || !isCsrfFailure(answer)) return answer;
    // Refused before anything was done: the API's token changed since it was fetched. Once more.
    return exchange(method, path, body, signal, await csrf.token({ renew: true }));
  };
}

/** The sentence for the sign-in page when a refresh is refused: the server's, unless the session merely expired. */
function refusalNotice(body) {
  const known = body !== null && typeof body === "object";
  if (!known || REFRESHABLE_CODES.has(body.code) || !body.detail) return SESSION_EXPIRED_DETAIL;
  return body.detail; // account_disabled, refresh_token_reused, csrf_failed: say why
}

// How long a refused refresh answers for the requests that find out just after it (those sent
// before it); later ones ask again: the user may have signed in again in another tab.
const REFUSAL_REMEMBERED_MS = 5000;

/**
 * refresh() is one refresh for everybody waiting now; it resolves to null when it succeeded,
 * else to the notice for the sign-in page. A refused refresh is remembered for
 * REFUSAL_REMEMBERED_MS, or until a request succeeds (signing in, for instance): the requests
 * already out do not each ask again. `generation` is bumped after every successful refresh: a
 * request sent before a refresh finished is replayed without refreshing again.
 */
function sharedRefresh(send) {
  let pending = null;
  let refusal = null;
  let refusedAt = 0;
  const refresher = {
    generation: 0,
    refresh() {
      if (refusal !== null && Date.now() - refusedAt < REFUSAL_REMEMBERED_MS) return Promise.resolve(refusal);
      if (!pending) {
        pending = send("POST", "/api/auth/refresh", undefined, undefined)
          .then(({ response, body }) => {
            if (response.ok) {
              refresher.generation += 1;
              return null;
            }
            if (response.status === 401 || response.status === 403) {
              refusal = refusalNotice(body);
              refusedAt = Date.now();
              return refusal;
            }
            // 429/5xx: the session may well be fine; surface the error instead.
            throw errorFrom(response, body);
          })
          .finally(() => {
            pending = null;
          });
      }
      return pending;
    },
    succeeded() {
      refusal = null;
    },
  };
  return refresher;
}

/** Second factors, passkeys, re-authentication and passwords (README "Account security"). */
function securityEndpoints(call) {
  const passkeyPath = (id) => `/api/auth/mfa/passkeys/${encodeURIComponent(id)}`;
  return {
    /** -> the second step's answer to a password or Google sign-in: {mfaToken, ...} */
    mfaOptions: (mfaToken) => call("POST")("/api/auth/mfa/options", { body: { mfaToken } }),
    /** answer: {code} or {webauthn: assertion JSON} */
    mfaVerify: (mfaToken, answer) => call("POST")("/api/auth/mfa/verify", { body: { mfaToken, ...answer } }),
    passkeySignInOptions: () => call("POST")("/api/auth/passkey/options"),
    passkeySignIn: (token, webauthn) => call("POST")("/api/auth/passkey", { body: { token, webauthn } }),
    security: (options) => call("GET")("/api/auth/mfa", options),
    totpStart: () => call("POST")("/api/auth/mfa/totp"),
    totpConfirm: (code) => call("POST")("/api/auth/mfa/totp/confirm", { body: { code } }),
    /** code: a current code from the app, or a recovery code (the removal needs one) */
    totpRemove: (code) => call("DELETE")("/api/auth/mfa/totp", { body: { code } }),
    recoveryCodesRegenerate: () => call("POST")("/api/auth/mfa/recovery-codes"),
    passkeyRegistrationOptions: () => call("POST")("/api/auth/mfa/passkeys/options"),
    passkeyRegister: (token, credential, name) =>
      call("POST")("/api/auth/mfa/passkeys", { body: { token, credential, name } }),
    passkeyRename: (id, name) => call("PATCH")(passkeyPath(id), { body: { name } }),
    passkeyRemove: (id) => call("DELETE")(passkeyPath(id)),
    /** -> {token, publicKey}: passkey options to re-authenticate with (bound to this session) */
    reauthenticationOptions: () => call("POST")("/api/auth/reauthenticate/options"),
    /** proof: {password} (sent as base64 like login), {code}, or {token, webauthn} (a passkey) */
    reauthenticate: ({ password, code, token, webauthn }) => {
      let body = { code };
      if (password !== undefined) body = { password: base64Utf8(password) };
      else if (webauthn !== undefined) body = { token, webauthn };
      return call("POST")("/api/auth/reauthenticate", { body });
    },
    passwordChange: (currentPassword, newPassword) =>
      call("POST")("/api/auth/password", {
        body: { currentPassword: base64Utf8(currentPassword), newPassword: base64Utf8(newPassword) },
      }),
    passwordReset: (email) => call("POST")("/api/auth/password/reset", { body: { email } }),
    passwordResetCheck: (uid, token, options) =>
      call("POST")("/api/auth/password/reset/check", { ...options, body: { uid, token } }),
    passwordResetConfirm: (uid, token, newPassword) =>
      call("POST")("/api/auth/password/reset/confirm", {
        body: { uid, token, newPassword: base64Utf8(newPassword) },
      }),
    adminSession: () => call("POST")("/api/auth/admin-session"),
  };
}

/** Teams, sign-in policies, invitations and personal access tokens (README "Teams", "Access tokens"). */
function teamEndpoints(call) {
  const client = (slug, rest = "") => `/api/clients/${encodeURIComponent(slug)}${rest}`;
  return {
    permissions: (options) => call("GET")("/api/auth/permissions", options),
    tokens: (options) => call("GET")("/api/auth/tokens", options),
    /** body: {name, expiresIn, clients: {client1: ["view"]}} -> the token, with its secret once */
    tokenCreate: (body) => call("POST")("/api/auth/tokens", { body }),
    tokenRevoke: (id) => call("DELETE")(`/api/auth/tokens/${encodeURIComponent(id)}`),
    members: (slug, options) => call("GET")(client(slug, "/members"), options),
    memberUpdate: (slug, userId, role) =>
      call("PATCH")(client(slug, `/members/${encodeURIComponent(userId)}`), { body: { role } }),
    memberRemove: (slug, userId) => call("DELETE")(client(slug, `/members/${encodeURIComponent(userId)}`)),
    invitations: (slug, options) => call("GET")(client(slug, "/invitations"), options),
    invitationCreate: (slug, email, role) => call("POST")(client(slug, "/invitations"), { body: { email, role } }),
    invitationRevoke: (slug, id) => call("DELETE")(client(slug, `/invitations/${encodeURIComponent(id)}`)),
    audit: (slug, before, options) =>
      call("GET")(client(slug, before ? `/audit?before=${encodeURIComponent(before)}` : "/audit"), options),
    policy: (slug, options) => call("GET")(client(slug, "/policy"), options),
    policyUpdate: (slug, policy) => call("PUT")(client(slug, "/policy"), { body: policy }),
    // What the PUT would do, saved nothing: who would sign in again, which tokens lose the client.
    policyPreview: (slug, policy) => call("POST")(client(slug, "/policy/preview"), { body: policy }),
    clientTokens: (slug, options) => call("GET")(client(slug, "/tokens"), options),
    clientTokenRevoke: (slug, id) => call("DELETE")(client(slug, `/tokens/${encodeURIComponent(id)}`)),
    // The invitation's token travels in the body, never in a URL the server would log.
    invitationPreview: (token, options) =>
      call("POST")("/api/invitations/preview", { ...options, body: { token } }),
    invitationAccept: (token) => call("POST")("/api/invitations/accept", { body: { token } }),
    /** answer: {name, password} (sent as base64 like login) or {credential} (Google) */
    invitationSignUp: (token, { name, password, credential }) =>
      call("POST")("/api/invitations/sign-up", {
        body: credential ? { token, credential } : { token, name, password: base64Utf8(password) },
      }),
  };
}

/** The portal's endpoints by name (see shared/contract.md). */
function portalEndpoints(call, request) {
  const segment = encodeURIComponent;
  const clusterPath = (client, cluster) =>
    `/api/clients/${segment(client)}/clusters/${segment(cluster)}`;
  return {
    login: (email, password) =>
      call("POST")("/api/auth/login", { body: { email, password: base64Utf8(password) } }),
    googleLogin: (credential) => call("POST")("/api/auth/google", { body: { credential } }),
    googleNonce: (options) => call("GET")("/api/auth/google/nonce", options),
    logout: () => call("POST")("/api/auth/logout"),
    me: (options) => call("GET")("/api/auth/me", options),
    sessions: (options) => call("GET")("/api/auth/sessions", options),
    sessionRevoke: (id) => call("DELETE")(`/api/auth/sessions/${segment(id)}`),
    ...securityEndpoints(call),
    ...teamEndpoints(call),

    clients: (options) => call("GET")("/api/clients", options),
    clusters: (client, options) =>
      call("GET")(`/api/clients/${segment(client)}/clusters`, options),
    cluster: (client, cluster, options) => call("GET")(clusterPath(client, cluster), options),
    /** -> {status, data}: 202 means not done yet (not pushed, or storage waiting for an operator). */
    clusterUpdate: (client, cluster, changes) =>
      request("PATCH", clusterPath(client, cluster), { body: changes }),
    storageRequestCancel: (client, cluster) =>
      call("DELETE")(`${clusterPath(client, cluster)}/storage-request`),
    allClusters: (options) => call("GET")("/api/clusters", options),
    clusterHistory: (client, cluster, before, options) =>
      call("GET")(`${clusterPath(client, cluster)}/history${before ? `?before=${encodeURIComponent(before)}` : ""}`, options),
    credentials: (client, cluster, options) =>
      call("GET")(`${clusterPath(client, cluster)}/credentials`, options),
    /** -> {status, data}: 202 means committed, not pushed yet (the keys reach the cluster later). */
    credentialsRotate: (client, cluster) =>
      request("POST", `${clusterPath(client, cluster)}/credentials/rotate`),
    /** -> {status, data}, as credentialsRotate. */
    credentialsRotationFinish: (client, cluster) =>
      request("POST", `${clusterPath(client, cluster)}/credentials/rotate/finish`),
  };
}

/**
 * createApi({fetch, getCookie, baseUrl, onSessionExpired}) -> api
 *
 * fetch:            a fetch implementation (window.fetch bound, or a fake)
 * getCookie(name):  returns a readable cookie value or null (only `csrftoken`)
 * baseUrl:          "" when same origin, else e.g. "https://api.example.com"
 * onSessionExpired(notice): called once when a session can no longer be refreshed; `notice`
 *                   says why ("Your session has ended", or the server's reason: a disabled account)
 * onEnrolmentRequired: called when the API answers mfa_enrolment_required (a staff account
 *                   must set up a second factor first); the request still fails with it
 */
export function createApi({
  fetch,
  getCookie,
  baseUrl = "",
  onSessionExpired = () => {},
  onEnrolmentRequired = () => {},
}) {
  const send = transport({ fetch, getCookie, base: baseUrl.replace(/\/+$/, "") });
  const refresher = sharedRefresh(send);
  let expiryReported = false;

  /** Reports the end of the session once, however many requests find out; returns the error to throw. */
  function sessionExpired(notice = SESSION_EXPIRED_DETAIL) {
    if (!expiryReported) {
      expiryReported = true;
      onSessionExpired(notice);
    }
    return new ApiError({ status: 403, code: "session_expired", detail: notice });
  }

  /** request(method, path, {body, signal}) -> {status, data}; throws ApiError. */
  async function request(method, path, { body, signal } = {}) {
    method = method.toUpperCase();
    const generationAtSend = refresher.generation;
    let { response, body: data } = await send(method, path, body, signal);

    if (isRefreshable(response, data) && !NO_REFRESH_PATHS.has(path.split("?")[0])) {
      const refreshedMeanwhile = refresher.generation !== generationAtSend;
      const refusal = refreshedMeanwhile ? null : await refresher.refresh();
      if (refusal !== null) throw sessionExpired(refusal);
      ({ response, body: data } = await send(method, path, body, signal));
      if (isRefreshable(response, data)) throw sessionExpired();
    }

    if (!response.ok) {
      const error = errorFrom(response, data);
      if (error.code === ENROLMENT_REQUIRED) onEnrolmentRequired(error);
      throw error;
    }
    expiryReported = false;
    refresher.succeeded();
    return { status: response.status, data: data === undefined ? null : data };
  }

  const call = (method) => async (path, options) => (await request(method, path, options)).data;
  return {
    request,
    get: call("GET"),
    post: call("POST"),
    put: call("PUT"),
    patch: call("PATCH"),
    delete: call("DELETE"),
    ...portalEndpoints(call, request),
  };
}
