// #/clients/{client}/settings: the client's sign-in policy. Every member reads it; its admins
// change it (the server refuses a policy their own session would not satisfy).

import { focusKeep, h, liveRegion, markInvalid, say } from "../dom.js";
import { clientPermissions, confirmDialog, pageFrame, pageLoad, showError } from "./common.js";
import { teamCrumbs } from "./team.js";

// Members named one by one in the confirmation; past that, a count.
const MEMBERS_NAMED_MAX = 8;

const METHODS = [
  ["password", "Password"],
  ["google", "Google"],
  ["passkey", "Passkey"],
];

export async function render(ctx) {
  const { client } = ctx.params;
  const { status, error } = pageFrame(ctx, { title: `Settings · ${client}`, crumbs: teamCrumbs(client, "Settings") });
  const loaded = await pageLoad(ctx, { status, error }, "Loading the sign-in policy…", async (options) => {
    const [policy, permissions] = await Promise.all([ctx.api.policy(client, options), ctx.api.permissions(options)]);
    return { policy, canChange: clientPermissions(permissions, client).includes("members") };
  });
  if (loaded === undefined) return;
  const google = Boolean(ctx.config.googleClientId);
  ctx.main.append(policySection(ctx, client, loaded.policy, { canChange: loaded.canChange, google }, error));
}

/**
 * The policy as the form shows it. Without Google sign-in on this portal, its options would
 * only invite a refusal. A policy that names Google among fewer methods keeps it (its box is
 * hidden, not cleared); "any" is no such choice, default or saved, so a change of its methods
 * here does not add the Google the page never showed.
 */
function policyShown(stored, google) {
  const any = METHODS.every(([method]) => stored.allowedMethods.includes(method));
  return google || !any ? stored : withoutGoogle(stored);
}

function withoutGoogle(policy) {
  return { ...policy, allowedMethods: policy.allowedMethods.filter((method) => method !== "google") };
}

function checkbox(id, label, checked, attributes = {}) {
  const input = h("input", { type: "checkbox", id, checked, ...attributes });
  return { input, field: h("label", { class: "checkbox-field", for: id }, input, label) };
}

/** A session length in seconds as hours for the field ("8", "0.33"); "" for no limit. */
function hoursText(seconds) {
  return seconds ? String(Math.round((seconds / 3600) * 100) / 100) : "";
}

const HOURS_PROBLEM = "Enter the maximum session length as a number of hours, such as 8 or 0.5, or leave it empty for no limit.";

/**
 * -> {seconds} (null: no limit) or {problem}. The field shows hours rounded to two decimals, so
 * while its text is the one shown for the saved policy, the saved seconds are sent unchanged
 * (20 minutes stays 20 minutes, not 0.33 hours).
 */
function sessionLength(input, saved) {
  // Text a number field cannot read ("12h", "1e") reaches the page as "": not "no limit".
  if (input.validity.badInput) return { problem: HOURS_PROBLEM };
  const text = input.value.trim();
  if (!text) return { seconds: null };
  if (text === hoursText(saved.maxSessionLength)) return { seconds: saved.maxSessionLength };
  const seconds = Math.round(Number(text) * 3600);
  // A number out of bounds goes to the server, which says what the bounds are (settings decide).
  return Number.isFinite(seconds) ? { seconds } : { problem: HOURS_PROBLEM };
}

/** The form's controls, filled from `policy`. */
function policyFields(policy) {
  const methods = METHODS.map(([value, label]) =>
    checkbox(`policy-method-${value}`, label, policy.allowedMethods.includes(value), { value, "aria-describedby": "policy-error" }),
  );
  const hours = hoursText(policy.maxSessionLength);
  return {
    methods,
    domain: h("input", { id: "policy-google-domain", value: policy.googleDomain, placeholder: "example.com", "aria-describedby": "policy-domain-hint policy-error" }),
    mfa: checkbox("policy-mfa", "Require a second factor (an authenticator app, a recovery code or a passkey)", policy.mfaRequired),
    hours: h("input", { id: "policy-max-hours", type: "number", min: "0.1", step: "0.1", value: hours, "aria-describedby": "policy-hours-hint policy-error" }),
    jit: checkbox("policy-jit", "Make Google sign-ins from this Workspace members", policy.jitProvisioning),
    jitRole: h(
      "select",
      { id: "policy-jit-role" },
      ["viewer", "operator"].map((role) => h("option", { value: role, selected: role === policy.jitRole }, role)),
    ),
  };
}

function methodsChosen(fields) {
  return fields.methods.filter((method) => method.input.checked).map((method) => method.input.value);
}

/** `shown`: the boxes ticked when last filled or saved; `stored`: the server's (see policyShown). */
function policyFrom(fields, maxSessionLength, { shown, stored }) {
  const chosen = methodsChosen(fields);
  // Boxes as they were: the methods as stored ("any" stays "any", not a stricter policy that
  // would take this client out of members' personal access tokens).
  const untouched = chosen.length === shown.length && chosen.every((method) => shown.includes(method));
  return {
    allowedMethods: untouched ? stored.allowedMethods : chosen,
    googleDomain: fields.domain.value.trim(),
    mfaRequired: fields.mfa.input.checked,
    maxSessionLength,
    jitProvisioning: fields.jit.input.checked,
    jitRole: fields.jitRole.value,
  };
}

function policySection(ctx, client, stored, { canChange, google }, pageError) {
  const policy = policyShown(stored, google);
  const fields = policyFields(policy);
  const error = liveRegion("policy-error", { assertive: true, className: "error" });
  const status = liveRegion("policy-status");
  const save = h("button", { type: "submit", id: "save-policy", class: "button primary", hidden: !canChange }, "Save policy");
  const form = policyForm(fields, { error, save, status, google });
  if (!canChange) {
    for (const control of form.querySelectorAll("input, select")) control.disabled = true;
  }
  const dialog = confirmDialog({
    id: "policy-dialog",
    title: "Save this sign-in policy?",
    confirmLabel: "Save policy",
    confirmId: "confirm-policy",
    cancelId: "cancel-policy",
  });
  let saved = stored;
  let shown = methodsChosen(fields);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(error, "");
    say(status, "");
    for (const control of [fields.methods[0].input, fields.domain, fields.jit.input, fields.jitRole]) markInvalid(control, false);
    const length = sessionLength(fields.hours, saved);
    markInvalid(fields.hours, Boolean(length.problem));
    if (length.problem) {
      say(error, length.problem);
      fields.hours.focus();
      return;
    }
    save.disabled = true;
    try {
      const wanted = policyFrom(fields, length.seconds, { shown, stored: saved });
      const impact = await ctx.api.policyPreview(client, wanted);
      if (!impact.changes.length) {
        say(status, "Nothing to save: the policy is already this.");
        return;
      }
      const cost = impactParagraphs(client, impact);
      if (cost.length && !(await dialog.ask(cost))) {
        say(status, "Nothing was saved.");
        return;
      }
      saved = await ctx.api.policyUpdate(client, wanted);
      shown = methodsChosen(fields);
      fields.hours.value = hoursText(saved.maxSessionLength);
      say(status, "Saved: it applies to every member's next request.");
    } catch (failure) {
      showError(ctx, error, failure, {
        allowedMethods: fields.methods[0].input,
        googleDomain: fields.domain,
        maxSessionLength: fields.hours,
        jitProvisioning: fields.jit.input,
        jitRole: fields.jitRole,
      });
      // Refused for want of the admin's own second factor: the way forward, not a dead end.
      if (failure.fields && failure.fields.policy && fields.mfa.input.checked) {
        error.append(" ", h("a", { id: "policy-add-second-factor", href: "#/security" }, "Add a second factor to your account"), ", sign in with it, then save again.");
      }
    } finally {
      save.disabled = false;
      focusKeep(save);
    }
  });
  return h(
    "section",
    { class: "card stack", "aria-labelledby": "policy-heading" },
    h("h2", { id: "policy-heading" }, "Sign-in policy"),
    h(
      "p",
      { class: "hint" },
      canChange
        ? "A session reaches this client only when the way it signed in satisfies this policy; members who need another sign-in are told what to do. Making it stricter (fewer ways to sign in, a Workspace, a second factor) also takes this client out of members' personal access tokens: they make new ones."
        : "Set by the client's admins.",
    ),
    form,
    dialog.element,
  );
}

/** What saving would cost, as the confirmation says it (none: nothing to confirm). */
export function impactParagraphs(client, impact) {
  const members = impact.membersToSignInAgain;
  const paragraphs = [];
  if (members.length) {
    const who = members.length === 1 ? "1 member" : `${members.length} members`;
    paragraphs.push(`${who} will reach ${client} again only once they sign in as it asks:`);
    for (const member of members.slice(0, MEMBERS_NAMED_MAX)) {
      paragraphs.push(`${member.name ? `${member.name} (${member.email})` : member.email}: ${member.detail}.`);
    }
    if (members.length > MEMBERS_NAMED_MAX) paragraphs.push(`And ${members.length - MEMBERS_NAMED_MAX} more.`);
  }
  const tokens = impact.tokensLosingClient;
  if (tokens) {
    const which = tokens === 1 ? "1 personal access token loses" : `${tokens} personal access tokens lose`;
    paragraphs.push(`${which} ${client}: their owners make new ones from a session that meets the policy.`);
  }
  if (paragraphs.length) paragraphs.unshift(`Changes: ${impact.changes.join("; ")}.`);
  return paragraphs;
}

/** The policy's form: its fields, then the error, the save button and the status. */
function policyForm(fields, { error, save, status, google }) {
  fields.methods.find((method) => method.input.value === "google").field.hidden = !google;
  return h(
    "form",
    { id: "policy-form", class: "stack narrow-form", novalidate: true },
    h("fieldset", {}, h("legend", {}, "Members may sign in with"), fields.methods.map((method) => method.field)),
    h(
      "div",
      { class: "field", hidden: !google },
      h("label", { for: "policy-google-domain" }, "Required Google Workspace"),
      h("p", { id: "policy-domain-hint", class: "hint" }, "Members sign in with Google from this Workspace only (allow Google alone); empty for any Google account."),
      fields.domain,
    ),
    fields.mfa.field,
    h(
      "div",
      { class: "field" },
      h("label", { for: "policy-max-hours" }, "Maximum session length (hours)"),
      h("p", { id: "policy-hours-hint", class: "hint" }, "After this long, members sign in again to reach the client; empty for no limit."),
      fields.hours,
    ),
    h(
      "fieldset",
      { hidden: !google },
      h("legend", {}, "Just-in-time members"),
      fields.jit.field,
      h("div", { class: "field" }, h("label", { for: "policy-jit-role" }, "Their role"), fields.jitRole),
    ),
    error,
    save,
    status,
  );
}
