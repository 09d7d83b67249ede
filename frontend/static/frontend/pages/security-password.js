// The password on #/security: change it (the current one, then the new one twice). Every
// other session of the account ends; this one stays.

import { focusKeep, h, liveRegion, say } from "../dom.js";
import { showError } from "./common.js";
import {
  fieldErrorSay,
  newPasswordFields,
  newPasswordsValid,
  passwordField,
  passwordFieldErrors,
  passwordFieldsClear,
} from "./password-fields.js";

export function passwordSection(page) {
  const current = passwordField({
    id: "current-password",
    label: "Current password",
    autocomplete: "current-password",
  });
  const fields = newPasswordFields({ id: "new-password", label: "New password" });
  fields.errors.set(current.input, current.error);
  const parts = {
    current: current.input,
    fields,
    submit: h("button", { type: "submit", id: "password-submit", class: "button primary" }, "Change password"),
    error: liveRegion("password-error", { assertive: true, className: "error" }),
    status: liveRegion("password-status"),
    noPassword: h(
      "p",
      { id: "no-password" },
      "Your account has no password: you sign in with Google or a passkey. To set one, use “Forgot your password?” on the sign-in page.",
    ),
  };
  // Whose password this is, for password managers (they update the saved entry of that
  // address); hidden, as browsers expect of a change form (a page of its own has no other).
  const username = h("input", {
    type: "text",
    id: "password-username",
    autocomplete: "username",
    value: page.ctx.state.user?.email || "",
    readonly: true,
    hidden: true,
  });
  parts.form = h(
    "form",
    { id: "password-form", class: "stack narrow-form", novalidate: true, "aria-labelledby": "password-heading" },
    username,
    current.row,
    fields.rows,
    parts.error,
    h("div", { class: "actions" }, parts.submit),
  );
  parts.form.addEventListener("submit", (event) => {
    event.preventDefault();
    passwordChange(page, parts);
  });
  return {
    element: h(
      "section",
      { id: "password-section", class: "card stack", "aria-labelledby": "password-heading" },
      h("h2", { id: "password-heading" }, "Password"),
      parts.noPassword,
      parts.form,
      parts.status,
    ),
    show(overview) {
      parts.form.hidden = !overview.hasPassword;
      parts.noPassword.hidden = overview.hasPassword;
    },
  };
}

async function passwordChange(page, parts) {
  const { current, fields, submit } = parts;
  say(parts.error, "");
  say(parts.status, "");
  passwordFieldsClear(fields);
  if (!current.value) {
    fieldErrorSay(fields, current, "Enter your current password.");
    return current.focus();
  }
  if (!newPasswordsValid(fields)) return;
  submit.disabled = true;
  submit.textContent = "Changing…";
  try {
    await page.api.passwordChange(current.value, fields.password.value);
    if (!page.ctx.isCurrent()) return;
    for (const input of [current, fields.password, fields.repeat]) input.value = "";
    say(
      parts.status,
      "Password changed. Every other device signed in to your account has been signed out and your personal access tokens are revoked; this one stays signed in.",
    );
  } catch (failure) {
    const shown = passwordFieldErrors(fields, failure, { currentPassword: current, newPassword: fields.password });
    if (!shown) showError(page.ctx, parts.error, failure);
  } finally {
    if (page.ctx.isCurrent()) {
      submit.disabled = false;
      submit.textContent = "Change password";
      focusKeep(submit);
    }
  }
}
