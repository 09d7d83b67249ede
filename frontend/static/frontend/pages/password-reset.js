// #/forgot: ask for a reset link by email. #/reset/{uid}/{token}: the link in that email
// (accounts/passwords.py builds it): choose a new password. The answer to a request is the
// same whether or not the address has an account, and so is what this page says.

import { h, liveRegion, markInvalid, say } from "../dom.js";
import { showError } from "./common.js";
import { newPasswordFields, newPasswordsValid, passwordFieldErrors, passwordFieldsClear } from "./password-fields.js";

function card(ctx, title, ...children) {
  ctx.setTitle(title);
  const section = h(
    "section",
    { class: "card login-card stack" },
    h("h1", { id: "page-title", tabindex: "-1" }, title),
    ...children,
  );
  ctx.main.append(section);
  return section;
}

function backToSignIn() {
  return h("p", {}, h("a", { id: "back-to-signin", href: "#/login" }, "Back to sign in"));
}

export const forgotPage = {
  async render(ctx) {
    const email = h("input", {
      id: "forgot-email",
      name: "email",
      type: "email",
      autocomplete: "username",
      inputmode: "email",
      required: true,
      "aria-describedby": "forgot-error",
    });
    const error = liveRegion("forgot-error", { assertive: true, className: "error" });
    const sent = liveRegion("forgot-status", { className: "notice" });
    const submit = h("button", { type: "submit", id: "forgot-submit", class: "button primary" }, "Email me a link");
    const form = h(
      "form",
      { id: "forgot-form", class: "stack", novalidate: true, "aria-labelledby": "page-title" },
      h("p", {}, "Enter the email address of your account. We will send you a link to choose a new password."),
      h("div", { class: "field" }, h("label", { for: "forgot-email" }, "Email"), email),
      error,
      submit,
    );
    card(ctx, "Forgot your password", form, sent, backToSignIn());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      say(error, "");
      const address = email.value.trim();
      const invalid = !address || !email.validity.valid;
      markInvalid(email, invalid);
      if (invalid) {
        say(error, address ? "Enter a valid email address." : "Enter your email address.");
        email.focus();
        return;
      }
      submit.disabled = true;
      try {
        await ctx.api.passwordReset(address);
        if (!ctx.isCurrent()) return;
        form.hidden = true;
        say(
          sent,
          `If an account exists for ${address}, we sent it a link to choose a new password. ` +
            "Check your inbox (and the spam folder); the link works once and expires after a while.",
        );
        document.getElementById("back-to-signin").focus();
      } catch (failure) {
        showError(ctx, error, failure, { email }); // an address the browser took and the server did not
      } finally {
        submit.disabled = false;
      }
    });
    email.focus();
  },
};

function linkRefused(ctx, section, form, detail) {
  form.remove();
  section.querySelector("#back-to-signin").parentElement.before(
    h(
      "p",
      { id: "reset-invalid", class: "error", role: "alert" },
      detail || "This link is not valid any more: it was used, it expired, or it was altered.",
    ),
    h("p", {}, h("a", { id: "reset-request-new", href: "#/forgot" }, "Ask for a new link")),
  );
  section.querySelector("#reset-request-new").focus();
}

/**
 * Whether the link still works, asked before anyone types a password: its account's email, or
 * null when it is dead (said on the page). Any other failure lets the form show: its submit
 * tells the truth anyway.
 */
async function linkChecked(ctx, section, placeholder) {
  const { uid, token } = ctx.params;
  try {
    const { email } = await ctx.api.passwordResetCheck(uid, token, { signal: ctx.signal });
    return email;
  } catch (failure) {
    if (!ctx.isCurrent()) return null;
    if (failure.code !== "invalid_reset_token") return "";
    linkRefused(ctx, section, placeholder, failure.detail);
    return null;
  }
}

export const resetPage = {
  async render(ctx) {
    const { uid, token } = ctx.params;
    const checking = h("p", { id: "reset-checking", class: "status" }, "Checking the link…");
    const section = card(ctx, "Choose a new password", checking, backToSignIn());
    const email = await linkChecked(ctx, section, checking);
    if (email === null || !ctx.isCurrent()) return;
    const fields = newPasswordFields({ id: "reset-password", label: "New password" });
    const error = liveRegion("reset-error", { assertive: true, className: "error" });
    const submit = h("button", { type: "submit", id: "reset-submit", class: "button primary" }, "Set the new password");
    const form = h(
      "form",
      { id: "reset-form", class: "stack", novalidate: true, "aria-labelledby": "page-title" },
      h(
        "p",
        {},
        "Choose a new password. Every device signed in to your account will be signed out, " +
          "and your personal access tokens revoked.",
      ),
      // Which account the new password is for, for password managers (they save it under it).
      email ? h("input", { type: "email", id: "reset-username", autocomplete: "username", value: email, readonly: true, hidden: true }) : null,
      fields.rows,
      error,
      submit,
    );
    checking.replaceWith(form);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      say(error, "");
      passwordFieldsClear(fields);
      if (!newPasswordsValid(fields)) return;
      submit.disabled = true;
      try {
        await ctx.api.passwordResetConfirm(uid, token, fields.password.value);
        // The reset ended its account's sessions; this browser may hold another account's
        // (a link opened in a signed-in tab): end that one too, or "signed out" would be untrue.
        await ctx.api.logout().catch(() => undefined);
        if (!ctx.isCurrent()) return;
        ctx.signedOut("Your password has been changed. Sign in with the new one.");
      } catch (failure) {
        if (!ctx.isCurrent()) return;
        if (failure.code === "invalid_reset_token") {
          linkRefused(ctx, section, form, failure.detail);
        } else if (!passwordFieldErrors(fields, failure, { newPassword: fields.password })) {
          say(error, ctx.errorMessage(failure));
        }
      } finally {
        submit.disabled = false;
      }
    });
    fields.password.focus();
  },
};
