// Where to go after signing in (the `next` parameter of #/login): one of the app's own
// routes, or a page of the Django admin on this same origin. Nothing else, so a crafted link
// can never send a user who just signed in to another site. Pure functions (Node tests them).

const ADMIN_PREFIX = "/admin/";

/**
 * The admin page `next` names, as a same-origin path ("/admin/clusters/?q=x"), or null when
 * `next` is not a path under /admin/ of `origin`.
 */
export function adminPath(next, origin) {
  if (typeof next !== "string" || !next.startsWith(ADMIN_PREFIX)) return null;
  let url;
  try {
    url = new URL(next, origin);
  } catch {
    return null;
  }
  if (url.origin !== origin || !url.pathname.startsWith(ADMIN_PREFIX)) return null;
  return url.pathname + url.search + url.hash;
}

/** The app route `next` names ("/clusters"), or `fallback` for anything else. */
export function appPath(next, fallback) {
  if (typeof next !== "string" || !next.startsWith("/") || next.startsWith("//")) return fallback;
  if (next.startsWith("/login") || next.startsWith(ADMIN_PREFIX)) return fallback;
  return next;
}
