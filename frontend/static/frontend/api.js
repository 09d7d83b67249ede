// The one module that talks HTTP to the portal API (see shared/contract.md).
//
// It never touches `document` or `window`: fetch, cookie reading and the
// session-expired callback are injected, so Node's test runner can drive it.
//
// Refresh-and-retry: a 403 whose code is `not_authenticated` or
// `token_not_valid` triggers POST /api/auth/refresh. Every request waiting at
// that moment shares the one refresh promise and is then replayed once. If the
// refresh is refused, or a replay is refused again, the session is over:
// `onSessionExpired` is called and the request fails with code
// `session_expired`. A request is never refreshed twice, so there is no loop.

const UNSAFE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const REFRESHABLE_CODES = new Set(["not_authenticated", "token_not_valid"]);
// Endpoints that are themselves part of signing in or out: a refusal from
// them is the answer, not a reason to refresh.
const NO_REFRESH_PATHS = new Set([
  "/api/auth/login",
  "/api/auth/google",
  "/api/auth/refresh",
  "/api/auth/logout",
]);

export const SESSION_EXPIRED_DETAIL = "Your session has expired";

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

/** The CSRF token: the readable cookie, or, when the API is on another origin, the API's answer. */
function csrfTokenSource({ fetch, getCookie, base }) {
  let fromServer = null;
  return async function csrfToken() {
    const fromCookie = getCookie("csrftoken");
    if (fromCookie) return fromCookie;
    if (fromServer) return fromServer;
    if (!base) return null;
    // Served from another origin: the API's csrftoken cookie is not readable
    // here, so ask the API for it (GET /api/auth/csrf sets it).
    try {
      const response = await fetch(`${base}/api/auth/csrf`, {
        method: "GET",
        credentials: "include",
        headers: { Accept: "application/json" },
      });
      const body = await bodyOf(response);
      fromServer = (body && body.csrfToken) || getCookie("csrftoken");
    } catch {
      fromServer = null;
    }
    return fromServer;
  };
}

/** send(method, path, body, signal) -> {response, body}: one HTTP exchange, no refresh. */
function transport({ fetch, getCookie, base }) {
  const csrfToken = csrfTokenSource({ fetch, getCookie, base });
  return async function send(method, path, body, signal) {
    const headers = { Accept: "application/json" };
    const init = { method, credentials: "include", headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (UNSAFE_METHODS.has(method)) {
      const token = await csrfToken();
      if (token) headers["X-CSRFToken"] = token;
    }
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
  };
}

/**
 * refresh() is one refresh for everybody waiting now; it resolves true when it succeeded.
 * `generation` is bumped after every successful refresh: a request sent before a refresh
 * finished is replayed without refreshing again.
 */
function sharedRefresh(send) {
  let pending = null;
  const refresher = {
    generation: 0,
    refresh() {
      if (!pending) {
        pending = send("POST", "/api/auth/refresh", undefined, undefined)
          .then(({ response, body }) => {
            if (response.ok) {
              refresher.generation += 1;
              return true;
            }
            if (response.status === 401 || response.status === 403) return false;
            // 429/5xx: the session may well be fine; surface the error instead.
            throw errorFrom(response, body);
          })
          .finally(() => {
            pending = null;
          });
      }
      return pending;
    },
  };
  return refresher;
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
    logout: () => call("POST")("/api/auth/logout"),
    me: (options) => call("GET")("/api/auth/me", options),
    sessions: (options) => call("GET")("/api/auth/sessions", options),
    sessionRevoke: (id) => call("DELETE")(`/api/auth/sessions/${segment(id)}`),

    clients: (options) => call("GET")("/api/clients", options),
    clusters: (client, options) =>
      call("GET")(`/api/clients/${segment(client)}/clusters`, options),
    cluster: (client, cluster, options) => call("GET")(clusterPath(client, cluster), options),
    /** -> {status, data}: 202 means not done yet (not pushed, or storage waiting for an operator). */
    clusterUpdate: (client, cluster, changes) =>
      request("PATCH", clusterPath(client, cluster), { body: changes }),
    storageRequestCancel: (client, cluster) =>
      call("DELETE")(`${clusterPath(client, cluster)}/storage-request`),
    clusterHistory: (client, cluster, options) =>
      call("GET")(`${clusterPath(client, cluster)}/history`, options),
    credentials: (client, cluster, options) =>
      call("GET")(`${clusterPath(client, cluster)}/credentials`, options),
    credentialsRotate: (client, cluster) =>
      call("POST")(`${clusterPath(client, cluster)}/credentials/rotate`),
    credentialsRotationFinish: (client, cluster) =>
      call("POST")(`${clusterPath(client, cluster)}/credentials/rotate/finish`),
  };
}

/**
 * createApi({fetch, getCookie, baseUrl, onSessionExpired}) -> api
 *
 * fetch:            a fetch implementation (window.fetch bound, or a fake)
 * getCookie(name):  returns a readable cookie value or null (only `csrftoken`)
 * baseUrl:          "" when same origin, else e.g. "https://api.example.com"
 * onSessionExpired: called once when a signed-in session can no longer be refreshed
 */
export function createApi({ fetch, getCookie, baseUrl = "", onSessionExpired = () => {} }) {
  const send = transport({ fetch, getCookie, base: baseUrl.replace(/\/+$/, "") });
  const refresher = sharedRefresh(send);
  let expiryReported = false;

  /** Reports the end of the session once, however many requests find out; returns the error to throw. */
  function sessionExpired() {
    if (!expiryReported) {
      expiryReported = true;
      onSessionExpired();
    }
    return new ApiError({ status: 403, code: "session_expired", detail: SESSION_EXPIRED_DETAIL });
  }

  /** request(method, path, {body, signal}) -> {status, data}; throws ApiError. */
  async function request(method, path, { body, signal } = {}) {
    method = method.toUpperCase();
    const generationAtSend = refresher.generation;
    let { response, body: data } = await send(method, path, body, signal);

    if (isRefreshable(response, data) && !NO_REFRESH_PATHS.has(path.split("?")[0])) {
      const refreshedMeanwhile = refresher.generation !== generationAtSend;
      if (!refreshedMeanwhile && !(await refresher.refresh())) throw sessionExpired();
      ({ response, body: data } = await send(method, path, body, signal));
      if (isRefreshable(response, data)) throw sessionExpired();
    }

    if (!response.ok) throw errorFrom(response, data);
    expiryReported = false;
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
