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
 *   #/security[?next=/admin/...]                  second factors, passkeys, password
 *   #/forgot                                      ask for a password reset email
 *   #/reset/{uid}/{token}                         the link in that email: a new password
 *   #/tokens                                      personal access tokens
 *   #/clients/{client}/team                       members, invitations, tokens, audit (admins)
 *   #/clients/{client}/settings                   the client's sign-in policy
 *   #/invitations/{token}                         the link in an invitation email
 *   #/confirm?next=/admin/...                     confirm it is you, then back to the admin
 *
 * A `next` under /admin/ (the Django admin's sign-in sends users here) opens an admin session
 * (POST /api/auth/admin-session) and leaves the app for that same-origin page.
 */

import { ApiError, SESSION_EXPIRED_DETAIL, cookieValue, createApi } from "./api.js";
import { h, replaceChildren, say } from "./dom.js";
import * as clusterPage from "./pages/cluster.js";
import * as confirmPage from "./pages/confirm.js";
import * as clustersPage from "./pages/clusters.js";
import * as credentialsPage from "./pages/credentials.js";
import * as loginPage from "./pages/login.js";
import { forgotPage, resetPage } from "./pages/password-reset.js";
import * as securityPage from "./pages/security.js";
import * as sessionsPage from "./pages/sessions.js";
import * as clientSettingsPage from "./pages/client-settings.js";
import * as invitationPage from "./pages/invitation.js";
import * as teamPage from "./pages/team.js";
import * as tokensPage from "./pages/tokens.js";
import { adminPath, appPath } from "./next.js";

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
  { pattern: /^\/security$/, page: securityPage, nav: "security" },
  // Public, and open to a signed-in user too (a reset link may be opened in a signed-in tab).
  { pattern: /^\/forgot$/, page: forgotPage, isPublic: true, alsoSignedIn: true },
  {
    pattern: /^\/reset\/([^/]+)\/([^/]+)$/,
    page: resetPage,
    keys: ["uid", "token"],
    isPublic: true,
    alsoSignedIn: true,
  },
  { pattern: /^\/tokens$/, page: tokensPage, nav: "tokens" },
  { pattern: /^\/confirm$/, page: confirmPage },
  { pattern: /^\/clients\/([^/]+)\/team$/, page: teamPage, keys: ["client"], nav: "clusters" },
  { pattern: /^\/clients\/([^/]+)\/settings$/, page: clientSettingsPage, keys: ["client"], nav: "clusters" },
  // The invitee may be signed in (accept) or not (sign in, or sign up).
  { pattern: /^\/invitations\/([^/]+)$/, page: invitationPage, keys: ["token"], isPublic: true, alsoSignedIn: true },
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
  return {
    apiBaseUrl: typeof raw.apiBaseUrl === "string" ? raw.apiBaseUrl : "",
    googleClientId: typeof raw.googleClientId === "string" && raw.googleClientId ? raw.googleClientId : null,
    tokenMaxSeconds: Number.isInteger(raw.tokenMaxSeconds) && raw.tokenMaxSeconds > 0 ? raw.tokenMaxSeconds : null,
  };
}

const config = readConfig();
// loginNotice: said on the sign-in page; securityNotice: the user was sent to #/security to
// set up a second factor; adminNext: the admin page being opened; appNotice: said once after
// the next route change.
const state = { user: null, loginNotice: null, securityNotice: null, adminNext: null, appNotice: null };
const elements = {
  main: document.getElementById("main"),
  nav: document.getElementById("main-nav"),
  userMenu: document.getElementById("user-menu"),
  userEmail: document.getElementById("user-email"),
  signout: document.getElementById("signout"),
  appStatus: document.getElementById("app-status"),
  appError: document.getElementById("app-error"), // what failed outside any page (signing out)
  skipLink: document.getElementById("skip-link"),
};

const api = createApi({
  fetch: (...args) => window.fetch(...args),
  getCookie: (name) => cookieValue(document.cookie, name),
  baseUrl: config.apiBaseUrl,
  onSessionExpired: sessionExpired,
  onEnrolmentRequired: enrolmentRequired,
});

function parseHash() {
  const raw = window.location.hash.replace(/^#/, "");
  const [path, queryString = ""] = raw.split("?");
  // "#/" too, as typed or bookmarked: the start page, not "page not found"; a trailing slash
  // ("#/clusters/") is the page without it.
  const trimmed = path.replace(/\/+$/, "");
  return { path: trimmed || DEFAULT_PATH, query: new URLSearchParams(queryString) };
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

/** `notice`: why ("Your session has ended", or the server's reason, e.g. a disabled account). */
function sessionExpired(notice = SESSION_EXPIRED_DETAIL) {
  const wasSignedIn = state.user !== null;
  state.user = null;
  updateHeader();
  // Never signed in in this tab: the start-up flow shows the login page, with the reason
  // unless it is only that there was no session.
  if (!wasSignedIn) {
    if (notice !== SESSION_EXPIRED_DETAIL) state.loginNotice = notice;
    return;
  }
  state.loginNotice = notice;
  navigate(loginPathFor(parseHash().path), { replace: true });
}

/** A staff account without a second factor: to #/security first (then on to the admin, if going there). */
function enrolmentRequired() {
  state.securityNotice = "enrolment_required";
  if (parseHash().path === "/security") return;
  const next = state.adminNext;
  navigate(next ? `/security?next=${encodeURIComponent(next)}` : "/security", { replace: true });
}

/** Opens an admin session for this signed-in user, then leaves the app for the admin page `path`. */
async function adminOpen(path) {
  state.adminNext = path;
  say(elements.appStatus, "Opening the admin…");
  try {
    await api.adminSession();
    window.location.assign(path);
  } catch (error) {
    if (error instanceof ApiError && error.code === "mfa_enrolment_required") return; // see enrolmentRequired
    state.adminNext = null;
    state.appNotice = `The admin could not be opened: ${errorMessage(error) || "please try again."}`;
    navigate(DEFAULT_PATH, { replace: true });
  }
}

function signedIn(user, next) {
  state.user = user;
  state.loginNotice = null;
  updateHeader();
  const admin = adminPath(next, window.location.origin);
  if (admin) adminOpen(admin);
  else navigate(appPath(next, DEFAULT_PATH));
}

/** Signed out by something other than "Sign out" (a password reset ends every session). */
function signedOut(notice) {
  state.user = null;
  state.loginNotice = notice;
  updateHeader();
  navigate("/login", { replace: true });
}

function updateHeader() {
  const signedInNow = state.user !== null;
  elements.nav.hidden = !signedInNow;
  elements.userMenu.hidden = !signedInNow;
  elements.userEmail.textContent = signedInNow ? state.user.email || "" : "";
  elements.userEmail.title = elements.userEmail.textContent; // cut short on a narrow screen
}

function markNav(active) {
  for (const link of elements.nav.querySelectorAll("a[data-nav]")) {
    if (link.dataset.nav === active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** The text to show for an error, or null when the app handles it by itself. */
const PERMISSION_DENIED =
  "You cannot do this here: your role in this client does not allow it, or the client is not yours. Ask one of its admins if you need it.";

export function errorMessage(error) {
  if (error && error.name === "AbortError") return null;
  if (error instanceof ApiError) {
    if (error.code === "session_expired") return null; // the login page says it
    if (error.code === "mfa_enrolment_required") return null; // #/security says it
    // The API's detail ("Insufficient permissions") says neither why nor who can help.
    if (error.code === "permission_denied") return PERMISSION_DENIED;
    return error.detail; // a throttled one says how long to wait (Retry-After, in words)
  }
  console.error(error); // a bug in this app, not a server answer
  return "Something went wrong. Please reload the page.";
}

let currentRender = null;
let firstRender = true;

/** {route, params} for `path`, or null: no such page (a malformed escape like %E0 included). */
function routeMatch(path) {
  for (const route of ROUTES) {
    const match = route.pattern.exec(path);
    if (!match) continue;
    const params = routeParams(route, match);
    return params ? { route, params } : null;
  }
  return null;
}

function routeParams(route, match) {
  const params = {};
  try {
    (route.keys || []).forEach((key, index) => {
      params[key] = decodeURIComponent(match[index + 1]);
    });
  } catch (error) {
    if (error instanceof URIError) return null;
    throw error;
  }
  return params;
}

/**
 * Sends a signed-out user to sign in, and a signed-in one away from it (to the admin when
 * #/login?next=/admin/... says so); true when it did.
 */
function redirected(found, path, query) {
  if (found && !found.route.isPublic && state.user === null) {
    navigate(loginPathFor(path), { replace: true });
    return true;
  }
  if (found && found.route.isPublic && !found.route.alsoSignedIn && state.user !== null) {
    const admin = adminPath(query.get("next"), window.location.origin);
    if (admin) adminOpen(admin);
    else navigate(DEFAULT_PATH, { replace: true });
    return true;
  }
  return false;
}

/** What a page's render(ctx) gets: the API, the route's params and query, and app actions. */
function pageContext(found, query, controller) {
  return {
    api,
    config,
    state,
    main: elements.main,
    params: found ? found.params : {},
    query,
    signal: controller.signal,
    isCurrent: () => currentRender === controller && !controller.signal.aborted,
    navigate,
    rerender: route, // the current page again (its "Try again")
    signedIn,
    signedOut,
    signOut,
    adminOpen,
    errorMessage,
    setTitle: (title) => {
      document.title = `${title} · Qdrant Portal`;
    },
  };
}

function showPageError(main, error) {
  const message = errorMessage(error);
  if (!message) return;
  const region = main.querySelector("#page-error");
  if (region) say(region, message);
  else main.append(h("p", { id: "page-error", class: "error", role: "alert" }, message));
}

async function route() {
  const { path, query } = parseHash();
  if (!path.startsWith("/")) return; // an in-page anchor, not a route
  const found = routeMatch(path);
  if (redirected(found, path, query)) return;

  if (currentRender) currentRender.abort();
  const controller = new AbortController();
  currentRender = controller;
  const main = elements.main;
  replaceChildren(main);
  main.setAttribute("aria-busy", "true");
  markNav(found ? found.route.nav : null);
  say(elements.appStatus, state.appNotice || "");
  say(elements.appError, "");
  state.appNotice = null;
  const ctx = pageContext(found, query, controller);

  try {
    if (found) await found.route.page.render(ctx);
    else renderNotFound(ctx);
  } catch (error) {
    if (ctx.isCurrent()) showPageError(main, error);
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

/** Signs out, then shows the sign-in page, or `next` (a route the signed-out can open: an invitation). */
async function signOut({ next = "/login" } = {}) {
  elements.signout.disabled = true;
  say(elements.appStatus, "Signing out…");
  say(elements.appError, "");
  try {
    await api.logout();
  } catch (error) {
    // An error, not a status: someone leaving a shared computer must not believe they are out.
    say(elements.appStatus, "");
    say(elements.appError, `Sign-out failed, you are still signed in: ${errorMessage(error) || "please try again."}`);
    elements.signout.disabled = false;
    return;
  }
  elements.signout.disabled = false;
  say(elements.appStatus, "");
  state.user = null;
  state.loginNotice = "You have signed out.";
  updateHeader();
  navigate(next);
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
  elements.signout.addEventListener("click", () => signOut());
  elements.skipLink.addEventListener("click", (event) => {
    event.preventDefault(); // a real "#main" would leave the current route
    elements.main.focus();
  });
  loadUser();
}

start();
