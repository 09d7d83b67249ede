// #/clients/{client}/team, for the client's admins: members and their roles, invitations, the
// personal access tokens that reach the client, and the audit trail (team-activity.js).

import { actionsHeader, focusKeep, h, liveRegion, markInvalid, replaceChildren, rowRemove, say, timeElement } from "../dom.js";
import { confirmDialog, FILTER_FROM, pageFrame, pageLoad, rowFilter, showError } from "./common.js";
import { auditSection, clientTokensSection } from "./team-activity.js";

export const ROLES = [
  ["viewer", "Viewer: sees clusters"],
  ["operator", "Operator: also scales and reads credentials"],
  ["admin", "Admin: also manages the team"],
];

export function teamCrumbs(client, last) {
  return [
    ["Clusters", "#/clusters"],
    [client, null],
    [last, null],
  ];
}

export async function render(ctx) {
  const { client } = ctx.params;
  const { status, error } = pageFrame(ctx, { title: `Team · ${client}`, crumbs: teamCrumbs(client, "Team") });
  const loaded = await pageLoad(ctx, { status, error }, "Loading the team…", async (options) => {
    const [members, invitations] = await Promise.all([
      ctx.api.members(client, options),
      ctx.api.invitations(client, options),
    ]);
    return { members, invitations };
  });
  if (loaded === undefined) return;

  const trail = auditSection(ctx, client);
  const tokens = clientTokensSection(ctx, client, error, trail);
  // What a change to the team shows afterwards: the trail, and the tokens (a removal or a
  // demotion takes the client out of the member's tokens).
  const activity = { load: () => Promise.all([trail.load(), tokens.load()]) };
  const invitations = invitationsSection(ctx, client, activity);
  ctx.main.append(
    h("p", {}, h("a", { id: "policy-link", href: `#/clients/${encodeURIComponent(client)}/settings` }, "Sign-in policy of this client")),
    membersSection(ctx, client, loaded.members, error, activity),
    inviteSection(ctx, client, invitations, activity),
    invitations.element,
    tokens.element,
    trail.element,
  );
  invitations.show(loaded.invitations);
  await activity.load();
}

// --- members ---------------------------------------------------------------------------------

function roleSelect(member, attributes) {
  return h(
    "select",
    attributes,
    ROLES.map(([value]) => h("option", { value, selected: value === member.role }, value)),
  );
}

function membersSection(ctx, client, members, pageError, activity) {
  const status = liveRegion("members-status");
  const dialog = confirmDialog({
    id: "remove-member-dialog",
    title: "Remove this member?",
    confirmLabel: "Remove",
    confirmId: "confirm-remove-member",
    cancelId: "cancel-remove-member",
  });
  const selfDialog = confirmDialog({
    id: "own-role-dialog",
    title: "Change your own role?",
    confirmLabel: "Change my role",
    confirmId: "confirm-own-role",
    cancelId: "cancel-own-role",
  });
  const body = h("tbody", { id: "members-list" });

  const parts = { ctx, client, pageError, activity, status, dialog, selfDialog };
  replaceChildren(body, members.map((member) => memberRow(member, parts)));
  const filter =
    members.length > FILTER_FROM
      ? rowFilter({ id: "members-filter", label: "Find a member", rows: () => [...body.rows], status })
      : null;
  return h(
    "section",
    { class: "card stack", "aria-labelledby": "members-heading" },
    h("h2", { id: "members-heading", tabindex: "-1" }, "Members"),
    filter,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "responsive-table" },
        h("thead", {}, h("tr", {}, ["Member", "Role", "Joined", actionsHeader()].map((label) => h("th", { scope: "col" }, label)))),
        body,
      ),
    ),
    status,
    dialog.element,
    selfDialog.element,
  );
}

/** Whether `member` is the signed-in user: changing them ends this page's use to them. */
function isMe(ctx, member) {
  return ctx.state.user !== null && String(ctx.state.user.id) === String(member.userId);
}

/**
 * The role select and its "Change role" button: choosing a role (arrow keys included) changes
 * nothing until the button is pressed. Focus stays where it is; #members-status says the result.
 */
function roleControl(member, tr, { ctx, client, rowError, activity, status, selfDialog }) {
  const select = roleSelect(member, { class: "member-role", "aria-label": `Role of ${member.email}` });
  const save = h(
    "button",
    { type: "button", class: "button secondary small save-role", "aria-label": `Change role of ${member.email}` },
    "Change role",
  );
  let saving = false;
  save.addEventListener("click", async () => {
    if (saving) return;
    say(rowError, "");
    say(status, "");
    if (select.value === member.role) {
      say(status, `${member.email} is already ${member.role}: choose another role first.`);
      return;
    }
    if (select.value !== "admin" && onlyAdmin(tr)) {
      select.value = member.role;
      return say(rowError, LAST_ADMIN);
    }
    const stepDown = isMe(ctx, member) && select.value !== "admin";
    if (stepDown) {
      const asked = [`As ${select.value} you no longer run ${client}'s team: members, invitations and its sign-in policy. Only another admin can make you admin again.`];
      if (!(await selfDialog.ask(asked))) {
        select.value = member.role;
        return save.focus();
      }
    }
    saving = true;
    save.textContent = "Changing…";
    try {
      const saved = await ctx.api.memberUpdate(client, member.userId, select.value);
      if (stepDown) return ctx.navigate("/clusters", { replace: true }); // this page is no longer yours
      member.role = tr.dataset.role = saved.role;
      say(status, `${member.email} is now ${saved.role}.`);
      rowErrorsClear(tr); // a change may make another row's refusal untrue (another admin now)
      activity.load();
    } catch (failure) {
      select.value = member.role;
      showError(ctx, rowError, failure);
    } finally {
      saving = false;
      save.textContent = "Change role";
    }
  });
  return h("div", { class: "input-row" }, select, save);
}

// The server's rule (409 last_admin), said before a dialog asks about what cannot happen.
const LAST_ADMIN = "A client keeps at least one admin: make someone else an admin first.";

/**
 * Whether the row's member is an admin and the table lists no other active one: the server's
 * rule (members.py, _last_admin_check), where a deactivated admin runs nothing.
 */
function onlyAdmin(row) {
  const others = row.closest("tbody")?.querySelectorAll('tr[data-role="admin"][data-active="true"]') || [];
  return row.dataset.role === "admin" && [...others].every((other) => other === row);
}

function rowErrorsClear(row) {
  for (const said of row.closest("tbody")?.querySelectorAll(".row-error") || []) say(said, "");
}

// One member's row: its role (changed with the row's button) and the remove button (asks first).
function memberRow(member, { ctx, client, pageError, activity, status, dialog, selfDialog }) {
  const who = member.name ? `${member.name} (${member.email})` : member.email;
  // A refused change or removal is said in its row, where the keyboard and the eyes are, not
  // at the top of a long page; role=alert reads it out as the page's error did.
  const rowError = h("p", { class: "error row-error", role: "alert", "data-testid": "member-error" });
  const remove = h("button", { type: "button", class: "button secondary remove-member", "aria-label": `Remove ${member.email}` }, "Remove");
  const search = `${member.name || ""} ${member.email}`.toLowerCase();
  const tr = h("tr", { "data-testid": "member-row", dataset: { userId: member.userId, email: member.email, role: member.role, active: member.active, search } });
  tr.append(
    h("th", { scope: "row", "data-label": "Member" }, who, member.active ? null : h("span", { class: "badge warn" }, " disabled")),
    h("td", { "data-label": "Role" }, roleControl(member, tr, { ctx, client, rowError, activity, status, selfDialog }), rowError),
    h("td", { "data-label": "Joined" }, timeElement(member.joinedAt)),
    h("td", {}, remove),
  );
  remove.addEventListener("click", async () => {
    say(rowError, "");
    if (onlyAdmin(tr)) return say(rowError, LAST_ADMIN);
    const asked = isMe(ctx, member)
      ? [`You lose access to ${client} at once: your signed-in sessions and personal access tokens stop reaching it.`]
      : [`${member.email} loses access to ${client} at once: their signed-in sessions and personal access tokens stop reaching it.`];
    if (!(await dialog.ask(asked))) return;
    say(pageError, "");
    say(rowError, "");
    remove.disabled = true;
    try {
      await ctx.api.memberRemove(client, member.userId);
      if (isMe(ctx, member)) return ctx.navigate("/clusters", { replace: true });
      rowErrorsClear(tr);
      // The keyboard goes on to the next member's Remove (of those the filter shows), else the heading.
      const focusNext = rowRemove(tr, ".remove-member", document.getElementById("members-heading"));
      say(status, `Removed ${member.email}.`);
      focusNext();
      activity.load();
    } catch (failure) {
      remove.disabled = false;
      showError(ctx, rowError, failure);
      focusKeep(remove);
    }
  });
  return tr;
}

// --- inviting --------------------------------------------------------------------------------

function inviteSection(ctx, client, invitations, activity) {
  const email = h("input", { id: "invite-email", type: "email", autocomplete: "off", required: true, "aria-describedby": "invite-error" });
  const role = h("select", { id: "invite-role" }, ROLES.map(([value, label]) => h("option", { value }, label)));
  const error = liveRegion("invite-error", { assertive: true, className: "error" });
  const status = liveRegion("invite-status");
  const submit = h("button", { type: "submit", id: "send-invite", class: "button primary" }, "Send invitation");
  const form = h(
    "form",
    { id: "invite-form", class: "inline-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "invite-email" }, "Email"), email),
    h("div", { class: "field" }, h("label", { for: "invite-role" }, "Role"), role),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(error, "");
    say(status, "");
    markInvalid(email, false);
    if (!email.value.trim() || !email.validity.valid) {
      say(error, email.value.trim() ? "Enter a valid email address." : "Enter the email address to invite.");
      markInvalid(email, true);
      email.focus();
      return;
    }
    submit.disabled = true;
    try {
      const invitation = await ctx.api.invitationCreate(client, email.value.trim(), role.value);
      const replaced = invitations.add(invitation);
      const until = timeElement(invitation.expiresAt).textContent;
      // The server revokes the address's pending invitation: its link, maybe already forwarded, is dead.
      const earlier = replaced ? " The earlier invitation's link no longer works." : "";
      say(status, `Invitation sent to ${invitation.email}. The link works once, until ${until}.${earlier}`);
      form.reset();
      activity.load();
    } catch (failure) {
      showError(ctx, error, failure, { email, role });
      if (failure && failure.code === "already_member") markInvalid(email, true);
    } finally {
      submit.disabled = false;
      focusKeep(submit);
    }
  });
  return h(
    "section",
    { class: "card stack", "aria-labelledby": "invite-heading" },
    h("h2", { id: "invite-heading" }, "Invite someone"),
    h("p", { class: "hint" }, "They get an email with a link that works once, for a limited time."),
    form,
    error,
    status,
  );
}

function invitationsSection(ctx, client, activity) {
  const list = h("ul", { id: "invitations-list", class: "plain-list" });
  const empty = h("p", { id: "invitations-empty", class: "empty" }, "No open invitations.");
  const status = liveRegion("invitations-status");
  const heading = h("h2", { id: "invitations-heading", tabindex: "-1" }, "Invitations");
  const refreshEmpty = () => {
    empty.hidden = list.children.length > 0;
  };
  function row(invitation) {
    const revoke = h("button", { type: "button", class: "button secondary revoke-invitation", "aria-label": `Revoke the invitation of ${invitation.email}` }, "Revoke");
    const rowError = h("p", { class: "error row-error", role: "alert", "data-testid": "invitation-error" });
    const item = h(
      "li",
      { "data-testid": "invitation-row", class: "list-row", dataset: { invitationId: invitation.id, email: invitation.email } },
      h("span", {}, h("strong", {}, invitation.email), ` as ${invitation.role}, `),
      invitation.state === "expired" ? h("span", { class: "badge warn" }, "expired") : ["until ", timeElement(invitation.expiresAt)],
      revoke,
      rowError,
    );
    revoke.addEventListener("click", async () => {
      say(rowError, "");
      revoke.disabled = true;
      try {
        await ctx.api.invitationRevoke(client, invitation.id);
        const focusNext = rowRemove(item, ".revoke-invitation", heading);
        refreshEmpty();
        say(status, `Revoked the invitation of ${invitation.email}.`);
        focusNext();
        activity.load();
      } catch (failure) {
        if (failure.code === "invitation_not_pending") {
          // Accepted or revoked meanwhile (another tab, another admin): the row is stale.
          item.remove();
          refreshEmpty();
          showError(ctx, status, failure);
          heading.focus();
          activity.load();
          return;
        }
        revoke.disabled = false;
        showError(ctx, rowError, failure);
        focusKeep(revoke);
      }
    });
    return item;
  }
  return {
    element: h(
      "section",
      { class: "card stack", "aria-labelledby": "invitations-heading" },
      heading,
      list,
      empty,
      status,
    ),
    show(invitations) {
      replaceChildren(list, invitations.map(row));
      refreshEmpty();
    },
    /** Lists a new invitation in place of the address's pending one; true if it replaced one. */
    add(invitation) {
      const replaced = list.querySelector(`[data-email="${CSS.escape(invitation.email)}"]`);
      if (replaced) replaced.remove();
      list.prepend(row(invitation));
      refreshEmpty();
      return Boolean(replaced);
    },
  };
}
