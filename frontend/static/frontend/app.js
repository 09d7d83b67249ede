/*
 * Qdrant Portal browser app: hash routing, header, session handling.
 * All HTTP goes through ./api.js; pages live in ./pages/.
 *
 * Routes
 *   #/login[?next=/path]                          sign in (email + password, Google when configured)
 *   #/clusters                                    every cluster the user may see, grouped by client
 *   #/clients/{client}/clusters/{cluster}         detail: scale, version, history
 *   #/clients/{client}/clusters/{cluster}/credentials
 *   #/sessions                                    the user's sessions
 *
 * Stable hooks for browser tests (ids are unique on the page shown):
 *   shell     #app-header  #main (the page container; aria-busy="true" while loading)
 *             #main-nav  #nav-clusters  #nav-sessions (aria-current="page" on the active one)
 *             #user-menu  #user-email  #signout  #app-status (global aria-live status)
 *   every page  h1#page-title  #page-status (loading / progress, aria-live)
 *               #page-error (role=alert; the server's detail, e.g. "Insufficient permissions")
 *   login     #login-form  #email  #password  #login-submit  #login-error
 *             #session-message ("Your session has expired", "You have signed out.")
 *             #google-signin (only when googleClientId is set)  #google-error
 *   clusters  [data-testid="client-group"][data-client]
 *             [data-testid="cluster-row"][data-client][data-cluster]
 *               with cells .cluster-replicas .cluster-version .cluster-storage
 *               .cluster-commit (its <code data-commit> holds the full id)
 *               .cluster-pushed ("Pushed" | "Pending push" | "No changes yet"; its .badge has data-pushed)
 *             [data-testid="cluster-link"]  #clusters-empty
 *   detail    #cluster-summary  #summary-replicas  #summary-version  #summary-storage
 *             #endpoint-rest  #endpoint-grpc  #credentials-link
 *             #scale-form  #replicas (min/max set)  #replicas-error  #save-replicas ("Saving…" while busy)
 *             #version-form  #version (select, only with allowedVersions)  #version-error  #save-version
 *             #version-readonly (when the payload has no allowedVersions)
 *             #save-status (progress / result, incl. "not pushed yet" on 202)  #save-error
 *             #revision  #revision-commit (short id as text, data-commit = full id)
 *             #revision-message  #revision-pushed (data-pushed = true|false)
 *             #history  [data-testid="history-row"][data-commit]  #history-status  #history-empty
 *   credentials  #endpoint-rest  #endpoint-grpc  #copy-rest  #copy-grpc
 *             #api-key  #read-only-api-key (data-masked = true|false)
 *             #reveal-keys (aria-pressed)  #copy-api-key  #copy-read-only-api-key  #copy-status
 *             #rotate-keys  #rotate-dialog  #confirm-rotate  #cancel-rotate  #rotate-status
 *   sessions  #sessions-list  [data-testid="session-row"][data-session-id][data-current]
 *             .current-badge ("This device")  .revoke-session  #signout-others  #sessions-status
 */

import { ApiError, SESSION_EXPIRED_DETAIL, cookieValue, createApi } from "./api.js";
import { h, replaceChildren, say } from "./dom.js";
import * as clusterPage from "./pages/cluster.js";
import * as clustersPage from "./pages/clusters.js";
import * as credentialsPage from "./pages/credentials.js";
import * as loginPage from "./pages/login.js";
import * as sessionsPage from "./pages/sessions.js";

const ROUTES = [
  { pattern: /^\/login$/, page: loginPage, isPublic: true },
  { pattern: /^\/clusters$/, page: clustersPage, nav: "clusters" },
  {
    pattern: /^\/clients\/([^/]+)\/clusters\/([^/]+)$/,
    page: clusterPage,
    keys: ["client", "cluster"],
    nav: "clusters",
  },
  {
    pattern: /^\/clients\/([^/]+)\/clusters\/([^/]+)\/credentials$/,
    page: credentialsPage,
    keys: ["client", "cluster"],
    nav: "clusters",
  },
  { pattern: /^\/sessions$/, page: sessionsPage, nav: "sessions" },
];
const DEFAULT_PATH = "/clusters";

function readConfig() {
  let raw = {};
  const element = document.getElementById("portal-config");
  try {
    raw = element ? JSON.parse(element.textContent) || {} : {};
  } catch {
    raw = {};
  }
  const integerOrNull = (value) => (Number.isInteger(value) ? value : null);
  return {
    apiBaseUrl: typeof raw.apiBaseUrl === "string" ? raw.apiBaseUrl : "",
    googleClientId: typeof raw.googleClientId === "string" && raw.googleClientId ? raw.googleClientId : null,
    replicasMin: integerOrNull(raw.replicasMin),
    replicasMax: integerOrNull(raw.replicasMax),
  };
}

const config = readConfig();
const state = { user: null, loginNotice: null };
const elements = {
  main: document.getElementById("main"),
  nav: document.getElementById("main-nav"),
  userMenu: document.getElementById("user-menu"),
  userEmail: document.getElementById("user-email"),
  signout: document.getElementById("signout"),
  appStatus: document.getElementById("app-status"),
  skipLink: document.getElementById("skip-link"),
};

const api = createApi({
  fetch: (...args) => window.fetch(...args),
  getCookie: (name) => cookieValue(document.cookie, name),
  baseUrl: config.apiBaseUrl,
  onSessionExpired: sessionExpired,
});

function parseHash() {
  const raw = window.location.hash.replace(/^#/, "");
  const [path, queryString = ""] = raw.split("?");
  return { path: path || DEFAULT_PATH, query: new URLSearchParams(queryString) };
}

function navigate(path, { replace = false } = {}) {
  const target = `#${path}`;
  if (replace) {
    window.history.replaceState(null, "", target);
    route();
  } else if (window.location.hash === target) {
    route();
  } else {
    window.location.hash = path; // the hashchange listener routes
  }
}

function loginPathFor(path) {
  return path && path !== "/login" ? `/login?next=${encodeURIComponent(path)}` : "/login";
}

function sessionExpired() {
  const wasSignedIn = state.user !== null;
  state.user = null;
  updateHeader();
  if (!wasSignedIn) return; // never signed in in this tab: the start-up flow shows the login page
  state.loginNotice = SESSION_EXPIRED_DETAIL;
  navigate(loginPathFor(parseHash().path), { replace: true });
}

function signedIn(user, next) {
  state.user = user;
  state.loginNotice = null;
  updateHeader();
  const safeNext = next && next.startsWith("/") && !next.startsWith("/login") ? next : DEFAULT_PATH;
  navigate(safeNext);
}

function updateHeader() {
  const signedInNow = state.user !== null;
  elements.nav.hidden = !signedInNow;
  elements.userMenu.hidden = !signedInNow;
  elements.userEmail.textContent = signedInNow ? state.user.email || "" : "";
}

function markNav(active) {
  for (const link of elements.nav.querySelectorAll("a[data-nav]")) {
    if (link.dataset.nav === active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** The text to show for an error, or null when the app handles it by itself. */
export function errorMessage(error) {
  if (error && error.name === "AbortError") return null;
  if (error instanceof ApiError) {
    if (error.code === "session_expired") return null; // the login page says it
    if (error.code === "throttled" && error.retryAfter) {
      return `${error.detail} Try again in ${error.retryAfter} seconds.`;
    }
    return error.detail;
  }
  console.error(error); // a bug in this app, not a server answer
  return "Something went wrong. Please reload the page.";
}

let currentRender = null;
let firstRender = true;

async function route() {
  const { path, query } = parseHash();
  if (!path.startsWith("/")) return; // an in-page anchor, not a route
  const match = ROUTES.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);

  if (match && !match.r.isPublic && state.user === null) {
    navigate(loginPathFor(path), { replace: true });
    return;
  }
  if (match && match.r.isPublic && state.user !== null) {
    navigate(DEFAULT_PATH, { replace: true });
    return;
  }

  if (currentRender) currentRender.abort();
  const controller = new AbortController();
  currentRender = controller;
  const main = elements.main;
  replaceChildren(main);
  main.setAttribute("aria-busy", "true");
  markNav(match ? match.r.nav : null);
  say(elements.appStatus, "");

  const params = {};
  if (match && match.r.keys) {
    match.r.keys.forEach((key, index) => {
      params[key] = decodeURIComponent(match.m[index + 1]);
    });
  }
  const ctx = {
    api,
    config,
    state,
    main,
    params,
    query,
    signal: controller.signal,
    isCurrent: () => currentRender === controller && !controller.signal.aborted,
    navigate,
    signedIn,
    signOut,
    errorMessage,
    setTitle: (title) => {
      document.title = `${title} · Qdrant Portal`;
    },
  };

  try {
    if (match) await match.r.page.render(ctx);
    else renderNotFound(ctx);
  } catch (error) {
    if (ctx.isCurrent()) {
      const message = errorMessage(error);
      if (message) {
        const region = main.querySelector("#page-error");
        if (region) say(region, message);
        else main.append(h("p", { id: "page-error", class: "error", role: "alert" }, message));
      }
    }
  } finally {
    if (currentRender === controller) main.removeAttribute("aria-busy");
  }

  if (ctx.isCurrent() && !firstRender && !main.contains(document.activeElement)) {
    // Move focus to the new page's heading so screen readers announce it
    // (unless the page already focused something, like the login email field).
    const title = main.querySelector("h1");
    if (title) title.focus({ preventScroll: false });
  }
  firstRender = false;
}

function renderNotFound(ctx) {
  ctx.setTitle("Page not found");
  ctx.main.append(
    h("h1", { id: "page-title", tabindex: "-1" }, "Page not found"),
    h("p", { id: "page-error", class: "error", role: "alert" }, "There is no page at this address."),
    h("p", {}, h("a", { href: `#${DEFAULT_PATH}` }, "Go to your clusters")),
  );
}

async function signOut() {
  elements.signout.disabled = true;
  say(elements.appStatus, "Signing out…");
  try {
    await api.logout();
  } catch (error) {
    say(elements.appStatus, `Sign-out failed: ${errorMessage(error) || "please try again."}`);
    elements.signout.disabled = false;
    return;
  }
  elements.signout.disabled = false;
  say(elements.appStatus, "");
  state.user = null;
  state.loginNotice = "You have signed out.";
  updateHeader();
  navigate("/login");
}

async function loadUser() {
  const main = elements.main;
  main.setAttribute("aria-busy", "true");
  replaceChildren(main, h("p", { id: "page-status", class: "status", role: "status" }, "Loading…"));
  try {
    state.user = await api.me();
  } catch (error) {
    state.user = null;
    if (!(error instanceof ApiError && error.isAuthError)) {
      // The server is unreachable or failing: say so instead of a login form.
      main.removeAttribute("aria-busy");
      replaceChildren(
        main,
        h("h1", { id: "page-title", tabindex: "-1" }, "Qdrant Portal"),
        h("p", { id: "page-error", class: "error", role: "alert" }, errorMessage(error)),
        h("button", { type: "button", id: "retry", onclick: loadUser }, "Try again"),
      );
      return;
    }
  }
  updateHeader();
  route();
}

function start() {
  window.addEventListener("hashchange", route);
  elements.signout.addEventListener("click", signOut);
  elements.skipLink.addEventListener("click", (event) => {
    event.preventDefault(); // a real "#main" would leave the current route
    elements.main.focus();
  });
  loadUser();
}

start();
