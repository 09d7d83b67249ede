// Parts of the Team page that watch the team: the audit trail, and the members' personal access
// tokens that reach the client (an admin takes the client out of one).

import { focusKeep, h, liveRegion, replaceChildren, rowRemove, say, timeElement } from "../dom.js";
import { confirmDialog, showError } from "./common.js";
import { olderPages } from "./older-pages.js";

const EVENT_TEXT = {
  member_invited: "invited",
  invitation_revoked: "revoked the invitation of",
  invitation_accepted: "accepted an invitation:",
  member_added: "added",
  member_provisioned: "Google sign-in provisioned",
  member_role_changed: "changed the role of",
  member_removed: "removed",
  member_deactivated: "deactivated the account of",
  member_reactivated: "reactivated the account of",
  policy_changed: "changed the sign-in policy",
  token_access_revoked: "took the client out of a token of",
  credentials_revealed: "read the API keys of",
  cluster_decommissioned: "decommissioned the cluster",
};

function auditHint(event) {
  const parts = [event.detail, event.ip ? `from ${event.ip}` : ""].filter(Boolean);
  return parts.length ? h("span", { class: "hint" }, ` (${parts.join(", ")})`) : null;
}

function auditRow(event) {
  return h(
    "li",
    { "data-testid": "audit-row", class: "list-row", dataset: { type: event.type, eventId: event.id } },
    timeElement(event.at),
    " ",
    h("strong", {}, event.actor || "The portal"),
    ` ${EVENT_TEXT[event.type] || event.type} `,
    event.target ? h("strong", {}, event.target) : null,
    event.cluster ? h("strong", {}, event.cluster) : null,
    auditHint(event),
  );
}

const AUDIT_PAGE_SIZE = 100; // the API's page

/** The audit trail, newest first: {element, load()}; "Show older" pages back (older-pages.js). */
export function auditSection(ctx, client) {
  const list = h("ol", { id: "audit-list", class: "plain-list" });
  const heading = h("h2", { id: "audit-heading", tabindex: "-1" }, "Audit trail");
  const status = liveRegion("audit-status");
  // Said here, at the foot of a long page, not in the page's error region at its top.
  const error = liveRegion("audit-error", { assertive: true, className: "error" });
  const pages = olderPages(ctx, {
    id: "audit-more",
    list,
    heading,
    status,
    pageSize: AUDIT_PAGE_SIZE,
    // Read with the page and again after each change, whose own status speaks then.
    words: { loading: "", one: "event", many: "events" },
    read: (before, options) => ctx.api.audit(client, before, options),
    show(events, older) {
      say(error, "");
      if (older) list.append(...events.map(auditRow));
      else replaceChildren(list, events.map(auditRow));
    },
    failed: (message) => say(error, message),
  });
  return {
    element: h("section", { class: "card stack", "aria-labelledby": "audit-heading" }, heading, list, status, error, pages.more),
    load: pages.load,
  };
}

/** Members' tokens that reach the client, each with a button that takes the client out of it;
 * load() reads them (again). */
export function clientTokensSection(ctx, client, pageError, audit) {
  const list = h("ul", { id: "client-tokens-list", class: "plain-list" });
  const empty = h("p", { id: "client-tokens-empty", class: "empty" }, "No member has a token for this client.");
  const status = liveRegion("client-tokens-status");
  const dialog = confirmDialog({
    id: "revoke-client-token-dialog",
    title: "Take the client out of this token?",
    confirmLabel: "Revoke access",
    confirmId: "confirm-revoke-client-token",
    cancelId: "cancel-revoke-client-token",
  });

  const heading = h("h2", { id: "client-tokens-heading", tabindex: "-1" }, "Access tokens reaching this client");

  function row(token) {
    const revoke = h("button", { type: "button", class: "button secondary revoke-client-token", "aria-label": `Revoke access of ${token.owner}'s token ${token.name}` }, "Revoke access");
    // A refusal is said in the row, where the keyboard and the eyes are, not at the page's top.
    const rowError = h("p", { class: "error row-error", role: "alert", "data-testid": "client-token-error" });
    const item = h(
      "li",
      { "data-testid": "client-token-row", class: "list-row", dataset: { tokenId: token.id } },
      h("span", {}, h("strong", {}, token.name), ` of ${token.owner} `, h("code", {}, `${token.prefix}…`)),
      ` ${token.permissions.length ? token.permissions.join(", ") : "can do nothing here now (its owner's role allows none of what it was given)"}; last used `,
      token.lastUsedAt ? timeElement(token.lastUsedAt) : "never",
      revoke,
      rowError,
    );
    revoke.addEventListener("click", async () => {
      const asked = [`${token.owner}'s token “${token.name}” stops reaching ${client} at once: scripts using it get 403 here.`];
      if (!(await dialog.ask(asked))) return;
      say(rowError, "");
      revoke.disabled = true;
      try {
        await ctx.api.clientTokenRevoke(client, token.id);
        const focusNext = rowRemove(item, ".revoke-client-token", heading);
        empty.hidden = list.children.length > 0;
        say(status, `${token.name} of ${token.owner} no longer reaches ${client}.`);
        focusNext();
        audit.load();
      } catch (failure) {
        revoke.disabled = false;
        showError(ctx, rowError, failure);
        focusKeep(revoke);
      }
    });
    return item;
  }

  const element = h(
    "section",
    { class: "card stack", "aria-labelledby": "client-tokens-heading" },
    heading,
    list,
    empty,
    status,
    dialog.element,
  );
  const load = () =>
    ctx.api
      .clientTokens(client, { signal: ctx.signal })
      .then((tokens) => {
        if (!ctx.isCurrent()) return;
        replaceChildren(list, tokens.map(row));
        empty.hidden = tokens.length > 0;
      })
      .catch((failure) => showError(ctx, pageError, failure));
  return { element, load };
}
