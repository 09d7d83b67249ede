// Pieces shared by the pages: the page frame, error display, storage and revision labels,
// the confirmation dialog and copying to the clipboard.

import { ApiError } from "../api.js";
import { h, liveRegion, markInvalid, replaceChildren, say, shortCommit } from "../dom.js";

export function clusterHref(client, cluster, suffix = "") {
  return `#/clients/${encodeURIComponent(client)}/clusters/${encodeURIComponent(cluster)}${suffix}`;
}

/**
 * Appends breadcrumbs, the h1, the #page-status live region and the
 * #page-error alert region to the page; returns them.
 */
export function pageFrame(ctx, { title, crumbs = [] }) {
  ctx.setTitle(title);
  const heading = h("h1", { id: "page-title", tabindex: "-1" }, title);
  const status = liveRegion("page-status");
  const error = liveRegion("page-error", { assertive: true, className: "error" });
  if (crumbs.length) {
    const items = crumbs.map(([label, href], index) =>
      h(
        "li",
        {},
        href ? h("a", { href }, label) : h("span", { "aria-current": index === crumbs.length - 1 ? "page" : null }, label),
      ),
    );
    ctx.main.append(h("nav", { class: "breadcrumbs", "aria-label": "Breadcrumb" }, h("ol", {}, items)));
  }
  ctx.main.append(heading, status, error);
  return { heading, status, error };
}

/** The messages of a validation error's `fields` ({"expiresIn": ["..."]}, nested or not), in order. */
function fieldMessages(fields) {
  if (typeof fields === "string") return [fields];
  if (Array.isArray(fields)) return fields.flatMap(fieldMessages);
  if (fields && typeof fields === "object") return Object.values(fields).flatMap(fieldMessages);
  return [];
}

// The API's detail for a request refused for its fields (config/errors.py InvalidRequest).
const GENERIC_INVALID = "The request is not valid.";

/**
 * The error's message followed by its field messages, or null when the app handles the error
 * itself (aborted, session expired). A request refused for its fields alone says only what is
 * wrong with them ("A token lives at most 90 days."), not the generic "The request is not valid.".
 */
function errorText(ctx, error) {
  const message = ctx.errorMessage(error);
  if (!message) return null;
  const fields = fieldMessages(error && error.fields);
  if (fields.length && message === GENERIC_INVALID) return fields.join(" ");
  return [message, ...fields].join(" ");
}

/**
 * Shows the error (with its field messages) in `region` unless the app handles it. `inputs`
 * ({expiresIn: select}) names the controls of the fields: the first one the error names is
 * marked invalid and focused.
 */
export function showError(ctx, region, error, inputs = {}) {
  if (!ctx.isCurrent()) return;
  const text = errorText(ctx, error);
  if (!text) return;
  say(region, text);
  const field = Object.keys((error && error.fields) || {}).find((name) => inputs[name]);
  if (field) {
    markInvalid(inputs[field], true);
    inputs[field].focus();
  }
}

/**
 * Loads a page's data, saying so in the status region and showing a failure in the error
 * region. Returns undefined when loading failed or the user has moved on to another page.
 */
export async function pageLoad(ctx, { status, error }, loadingText, load) {
  say(status, loadingText);
  try {
    const data = await load({ signal: ctx.signal });
    if (!ctx.isCurrent()) return undefined;
    say(status, "");
    return data;
  } catch (failure) {
    say(status, "");
    loadFailed(ctx, error, failure);
    // A deep link into a client whose sign-in policy this session does not meet: the clusters
    // page's card offers the way there (add a second factor, sign in again).
    if (ctx.isCurrent() && failure && failure.code === "step_up_required") {
      error.append(" ", h("a", { id: "step-up-link", href: "#/clusters" }, "See how to reach it"));
    }
    return undefined;
  }
}

/**
 * A page that could not load says why; when the failure may pass (the network, a dependency's
 * 503), it offers to try again rather than a reload of the whole app.
 */
export function loadFailed(ctx, error, failure) {
  showError(ctx, error, failure);
  const passing = failure instanceof ApiError && (failure.status === 0 || failure.status >= 500);
  if (ctx.isCurrent() && passing) {
    error.append(" ", h("button", { type: "button", id: "page-retry", class: "button secondary", onclick: () => ctx.rerender() }, "Try again"));
  }
}

export function storageText(storageGi) {
  return storageGi === null || storageGi === undefined ? "—" : `${storageGi} Gi`;
}

/** "10 Gi", or "10 Gi → 20 Gi requested, waiting for an operator" while more storage waits. */
export function storageSummary(cluster) {
  const storage = cluster.storage || {};
  if (storage.state !== "waiting_for_operator") return storageText(cluster.storageGi);
  return `${storageText(storage.currentGi)} → ${storageText(storage.requestedGi)} requested, waiting for an operator`;
}

/**
 * A modal dialog that asks before something risky: {element, ask(paragraphs) -> Promise<boolean>}.
 * Cancel has the focus, so Enter or Escape never confirms by accident.
 */
export function confirmDialog({ id, title, confirmLabel, cancelLabel = "Cancel", confirmId, cancelId }) {
  const text = h("div", { id: `${id}-text` });
  const cancel = h(
    "button",
    { type: "submit", value: "cancel", id: cancelId, class: "button secondary", autofocus: true },
    cancelLabel,
  );
  const confirm = h("button", { type: "submit", value: "confirm", id: confirmId, class: "button danger" }, confirmLabel);
  const element = h(
    "dialog",
    { id, class: "confirm-dialog", "aria-labelledby": `${id}-title`, "aria-describedby": `${id}-text` },
    h("form", { method: "dialog", class: "stack" }, h("h2", { id: `${id}-title` }, title), text, h("div", { class: "actions" }, cancel, confirm)),
  );
  function ask(paragraphs) {
    replaceChildren(text, paragraphs.map((paragraph) => h("p", {}, paragraph)));
    element.returnValue = "";
    element.showModal();
    // Focusing the button scrolled a dialog taller than a phone's screen down to it: it opens
    // at its title and what is at risk instead (the buttons stay in view, app.css).
    element.scrollTop = 0;
    return new Promise((resolve) => {
      element.addEventListener("close", () => resolve(element.returnValue === "confirm"), { once: true });
    });
  }
  return { element, ask };
}

/**
 * Copies `text` to the clipboard and says in `status` how it went: "Copied {what} to the
 * clipboard.", or that it could not, followed by `byHand` (how to copy it without the button).
 */
export async function copyText(status, text, what, byHand) {
  try {
    if (!navigator.clipboard) throw new Error("no clipboard");
    await navigator.clipboard.writeText(text);
    say(status, `Copied ${what} to the clipboard.`);
  } catch {
    say(status, `Could not copy ${what}. ${byHand}`);
  }
}

/** Whether the account has a second factor: an authenticator app or a passkey (its security overview). */
export function enrolled(overview) {
  return Boolean(overview && (overview.totp || (overview.passkeys || []).length > 0));
}

/** What the credential may do on `client`, from GET /api/auth/permissions: ["view", ...]. */
export function clientPermissions(permissions, client) {
  return (permissions.clients || {})[client] || [];
}

/** A <code> with the short commit id; the full id in title and data-commit. */
export function commitCode(commit, attributes = {}) {
  if (!commit) return h("span", attributes, "—");
  return h("code", { ...attributes, title: commit, dataset: { commit } }, shortCommit(commit));
}

export function deliveryText(revision) {
  if (!revision) return "No changes yet";
  return revision.pushed ? "Pushed" : "Pending push";
}

/** A badge saying whether the revision reached the git remote. */
export function deliveryBadge(revision, attributes = {}) {
  const className = !revision ? "badge" : revision.pushed ? "badge ok" : "badge warn";
  const dataset = revision ? { pushed: String(Boolean(revision.pushed)) } : {};
  return h("span", { ...attributes, class: `${className} ${attributes.class || ""}`.trim(), dataset }, deliveryText(revision));
}

/** Lists longer than this get a search box (rowFilter). */
export const FILTER_FROM = 10;

/**
 * A search box over a long list: only the rows whose `data-search` text contains what is typed
 * (any case) stay shown, and `status` says how many. `rows()` gives the rows as they are now;
 * `filtered(text)` is told each time, to hide what holds no shown row.
 */
export function rowFilter({ id, label, rows, status, filtered = () => {} }) {
  const input = h("input", { id, type: "search", autocomplete: "off", spellcheck: "false" });
  input.addEventListener("input", () => {
    const wanted = input.value.trim().toLowerCase();
    const all = rows();
    let shown = 0;
    for (const row of all) {
      row.hidden = Boolean(wanted) && !(row.dataset.search || "").includes(wanted);
      if (!row.hidden) shown += 1;
    }
    say(status, wanted ? `${shown} of ${all.length} shown.` : "");
    filtered(wanted);
  });
  return h("div", { class: "field list-filter" }, h("label", { for: id }, label), input);
}
