// #/tokens: personal access tokens for scripts and CI. Make one (its secret is shown once, with a
// copy button), see each one's clients and last use, revoke it.

import { actionsHeader, focusKeep, h, liveRegion, markInvalid, replaceChildren, rowRemove, say, timeElement } from "../dom.js";
import { confirmDialog, copyText, pageFrame, pageLoad, showError } from "./common.js";
import { withReauthentication } from "./reauth.js";

// What a token may be given (never "members": managing a team needs a signed-in session;
// "audit" reads the team's audit trail, for an export).
export const TOKEN_PERMISSIONS = ["view", "configure", "credentials", "audit"];
const DAY = 86400;
const LIFETIMES = [
  [7, "7 days"],
  [30, "30 days"],
  [90, "90 days"],
  [365, "1 year"],
];
const LIFETIME_DEFAULT = "30d";

function lifetimeText(seconds) {
  for (const [unit, size] of [["day", DAY], ["hour", 3600], ["minute", 60], ["second", 1]]) {
    if (seconds % size === 0) return `${seconds / size} ${unit}${seconds === size ? "" : "s"}`;
  }
  return "";
}

/**
 * The lifetimes to offer ([value, label]) under the server's longest (PAT_MAX_TTL, in seconds):
 * the usual ones up to it, and the longest itself when it is none of them.
 */
export function tokenLifetimes(maxSeconds) {
  const offered = LIFETIMES.filter(([days]) => !maxSeconds || days * DAY <= maxSeconds).map(([days, label]) => [
    `${days}d`,
    label,
  ]);
  if (maxSeconds && !LIFETIMES.some(([days]) => days * DAY === maxSeconds)) {
    offered.push([String(maxSeconds), `${lifetimeText(maxSeconds)} (the longest)`]);
  }
  return offered;
}

export async function render(ctx) {
  const { status, error } = pageFrame(ctx, { title: "Access tokens" });
  ctx.main.append(
    h(
      "p",
      { class: "hint" },
      "A personal access token lets a script or CI job call the API as you, sent as ",
      h("code", {}, "Authorization: Bearer qpt_…"),
      ". It can do at most what you can do, on the clients you choose, and never manage tokens, teams or your sign-in.",
    ),
  );
  const loaded = await pageLoad(ctx, { status, error }, "Loading tokens…", async (options) => {
    const [tokens, permissions] = await Promise.all([ctx.api.tokens(options), ctx.api.permissions(options)]);
    return { tokens, permissions };
  });
  if (loaded === undefined) return;

  const list = tokenList(ctx, error);
  ctx.main.append(createSection(ctx, loaded.permissions.clients || {}, list, error), list.element);
  list.show(loaded.tokens);
}

// --- making one ------------------------------------------------------------------------------

/** The checkboxes of one client: {row, chosen()} with the permissions the user holds there. */
function clientChoice(client, held) {
  const boxes = TOKEN_PERMISSIONS.filter((permission) => held.includes(permission)).map((permission) => {
    const id = `token-perm-${client}-${permission}`;
    const input = h("input", { type: "checkbox", id, value: permission, dataset: { client } });
    return { input, label: h("label", { class: "checkbox-field", for: id }, input, permission) };
  });
  // A script that scales a cluster reads it first: "configure" ticks "view" too (which can
  // still be unticked, for a token that only writes).
  const box = (permission) => boxes.find((each) => each.input.value === permission);
  if (box("configure") && box("view")) {
    box("configure").input.addEventListener("change", (event) => {
      if (event.target.checked) box("view").input.checked = true;
    });
  }
  const row = h(
    "fieldset",
    { class: "token-client", dataset: { client }, "aria-describedby": "token-error" },
    h("legend", {}, client),
    h("div", { class: "input-row" }, boxes.map((each) => each.label)),
  );
  return { row, chosen: () => boxes.filter((each) => each.input.checked).map((each) => each.input.value) };
}

function lifetimeOptions(maxSeconds) {
  const offered = tokenLifetimes(maxSeconds);
  const chosen = offered.some(([value]) => value === LIFETIME_DEFAULT) ? LIFETIME_DEFAULT : offered.at(-1)[0];
  return offered.map(([value, label]) => h("option", { value, selected: value === chosen }, label));
}

function createSection(ctx, clients, list, pageError) {
  const choices = Object.entries(clients)
    .filter(([, held]) => TOKEN_PERMISSIONS.some((permission) => held.includes(permission)))
    .map(([client, held]) => clientChoice(client, held));
  const heading = h("h2", { id: "token-form-heading" }, "New token");
  if (!choices.length) {
    // Nothing a token could reach: no form that could only be refused (the list stays).
    const none = "You are a member of no client, so a new token could reach nothing. Tokens reach clients you belong to: ask a client's admin for an invitation.";
    return h("section", { class: "card stack", "aria-labelledby": "token-form-heading" }, heading, h("p", { id: "token-no-clients", class: "empty" }, none));
  }
  const name = h("input", { id: "token-name", name: "name", maxlength: "100", required: true, "aria-describedby": "token-error" });
  const expires = h(
    "select",
    { id: "token-expires", name: "expiresIn", "aria-describedby": "token-error" },
    lifetimeOptions(ctx.config.tokenMaxSeconds),
  );
  const error = liveRegion("token-error", { assertive: true, className: "error" });
  const submit = h("button", { type: "submit", id: "create-token", class: "button primary" }, "Create token");
  const created = createdPanel();
  list.whenRevoked((token) => created.forget(token.id));
  const form = h(
    "form",
    { id: "token-form", class: "stack narrow-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "token-name" }, "Name"), name),
    h("div", { class: "field" }, h("label", { for: "token-expires" }, "Expires after"), expires),
    choices.map((choice) => choice.row),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(error, "");
    for (const input of form.querySelectorAll("[aria-invalid]")) markInvalid(input, false);
    const chosen = Object.fromEntries(
      choices.map((choice) => [choice.row.dataset.client, choice.chosen()]).filter(([, permissions]) => permissions.length),
    );
    if (!name.value.trim()) return fieldProblem(error, name, "Name the token (what it is for).");
    if (!Object.keys(chosen).length) {
      return fieldProblem(error, form.querySelector("input[type=checkbox]"), "Choose at least one permission on one client.");
    }
    submit.disabled = true;
    try {
      const token = await withReauthentication(ctx, () =>
        ctx.api.tokenCreate({ name: name.value.trim(), expiresIn: expires.value, clients: chosen }),
      );
      if (!ctx.isCurrent()) return;
      form.reset();
      created.show(token);
      list.add(token);
      say(pageError, "");
    } catch (failure) {
      // A lifetime beyond the server's PAT_MAX_TTL is refused with its reason under `expiresIn`.
      showError(ctx, error, failure, { name, expiresIn: expires });
    } finally {
      submit.disabled = false;
      focusKeep(submit);
    }
  });
  return h(
    "section",
    { class: "card stack", "aria-labelledby": "token-form-heading" },
    heading,
    form,
    created.element,
  );
}

function fieldProblem(region, input, text) {
  say(region, text);
  if (!input) return;
  markInvalid(input, true);
  input.focus();
}

/** The secret of the token just made, shown once, with a copy button: {element, show(token), forget(id)}. */
function createdPanel() {
  const secret = h("code", { id: "token-secret", class: "secret-key" });
  const copyStatus = liveRegion("token-copy-status");
  const copy = h("button", { type: "button", id: "copy-token", class: "button secondary" }, "Copy");
  copy.addEventListener("click", () =>
    copyText(copyStatus, secret.textContent, "the token", "Select it and copy it by hand."),
  );
  const element = h(
    "div",
    { id: "token-created", class: "notice stack", hidden: true, role: "region", "aria-label": "The new token's secret" },
    h("p", {}, h("strong", {}, "Copy this token now: it is shown only this once. "), "Store it as a secret of your CI."),
    h("div", { class: "input-row" }, secret, copy),
    copyStatus,
  );
  let shownId = null;
  function show(token) {
    shownId = token.id;
    secret.textContent = token.token;
    element.hidden = false;
    copy.focus();
  }
  // Revoked: its dead secret must not stay offered for copying into a CI.
  function forget(tokenId) {
    if (tokenId !== shownId) return;
    shownId = null;
    secret.textContent = "";
    say(copyStatus, "");
    element.hidden = true;
  }
  return { element, show, forget };
}

// --- the list --------------------------------------------------------------------------------

export function scopesText(clients) {
  return Object.entries(clients || {})
    .map(([client, permissions]) => `${client}: ${permissions.join(", ")}`)
    .join("; ");
}

function expired(token) {
  return new Date(token.expiresAt).getTime() <= Date.now();
}

function tokenList(ctx, pageError) {
  const body = h("tbody", { id: "tokens-list" });
  const empty = h("p", { id: "tokens-empty", class: "empty", hidden: true }, "No tokens yet.");
  const status = liveRegion("tokens-status");
  const dialog = confirmDialog({
    id: "revoke-token-dialog",
    title: "Revoke this token?",
    confirmLabel: "Revoke",
    confirmId: "confirm-revoke-token",
    cancelId: "cancel-revoke-token",
  });
  const labels = ["Name", "Token", "Clients", "Created", "Expires", "Last used", actionsHeader()];
  const element = h(
    "section",
    { class: "card stack", "aria-labelledby": "tokens-heading" },
    h("h2", { id: "tokens-heading", tabindex: "-1" }, "Your tokens"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "responsive-table" },
        h("thead", {}, h("tr", {}, labels.map((label) => h("th", { scope: "col" }, label)))),
        body,
      ),
    ),
    empty,
    status,
    dialog.element,
  );
  const refreshEmpty = () => {
    empty.hidden = body.children.length > 0;
  };

  let revokedHook = () => {};
  const onRevoked = (token) => {
    refreshEmpty();
    revokedHook(token);
  };
  const parts = { ctx, pageError, status, dialog, onRevoked };
  const row = (token) => tokenRow(token, parts);

  return {
    element,
    show(tokens) {
      replaceChildren(body, tokens.map(row));
      refreshEmpty();
    },
    add(token) {
      body.prepend(row(token));
      refreshEmpty();
    },
    whenRevoked(hook) {
      revokedHook = hook;
    },
  };
}

// One token's row; revoking asks first, then removes the row.
function tokenRow(token, { ctx, pageError, status, dialog, onRevoked }) {
  const revoke = h("button", { type: "button", class: "button secondary revoke-token", "aria-label": `Revoke ${token.name} (${token.prefix}…)` }, "Revoke");
  const tr = h(
    "tr",
    { "data-testid": "token-row", dataset: { tokenId: token.id, prefix: token.prefix } },
    h("th", { scope: "row", "data-label": "Name" }, token.name),
    h("td", { "data-label": "Token" }, h("code", {}, `${token.prefix}…`)),
    h("td", { class: "token-clients", "data-label": "Clients" }, scopesText(token.clients)),
    h("td", { "data-label": "Created" }, timeElement(token.createdAt)),
    h("td", { "data-label": "Expires" }, timeElement(token.expiresAt), expired(token) ? h("span", { class: "badge warn" }, " expired") : null),
    h("td", { "data-label": "Last used" }, token.lastUsedAt ? [timeElement(token.lastUsedAt), ` from ${token.lastUsedFrom || "?"}`] : "never"),
    h("td", {}, revoke),
  );
  revoke.addEventListener("click", async () => {
    if (!(await dialog.ask([`Scripts using “${token.name}” (${token.prefix}…) are refused from their next request.`]))) return;
    revoke.disabled = true;
    try {
      await ctx.api.tokenRevoke(token.id);
      const focusNext = rowRemove(tr, ".revoke-token", document.getElementById("tokens-heading"));
      onRevoked(token);
      say(status, `Revoked ${token.name}.`);
      focusNext();
    } catch (failure) {
      revoke.disabled = false;
      showError(ctx, pageError, failure);
    }
  });
  return tr;
}
