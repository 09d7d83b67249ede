// The second step of a sign-in, shown in the sign-in card when the password (or Google) was
// right and the account has a second factor: a code (authenticator app or recovery code) or
// a passkey. The mfaToken lives only in this closure: reloading the page starts over.
// Also the passkey as the only factor ("Sign in with a passkey" on the sign-in page).

import { h, liveRegion, markInvalid, replaceChildren, say } from "../dom.js";
import { passkeyErrorMessage, passkeyGet, passkeysSupported } from "../webauthn.js";

/** After a first factor: signed in, or the second step when the answer asks for one. */
export function signInContinue(ctx, { card, result, next }) {
  if (result && result.mfaRequired) secondFactorStep(ctx, { card, challenge: result, next });
  else ctx.signedIn(result.user, next);
}

function loginPath(next) {
  return next ? `/login?next=${encodeURIComponent(next)}` : "/login";
}

function codeHint(methods) {
  const totp = methods.includes("totp");
  const recovery = methods.includes("recovery");
  if (totp && recovery) {
    return "The 6-digit code your authenticator app shows now. Without your app, enter one of your recovery codes (like k7m2x-9qw4t) instead: each works once.";
  }
  if (totp) return "The 6-digit code your authenticator app shows now.";
  return "One of your recovery codes (like k7m2x-9qw4t): each works once.";
}

function codeForm(methods) {
  const label = methods.includes("totp") ? "Authentication code" : "Recovery code";
  const parts = {
    code: h("input", {
      id: "mfa-code",
      name: "code",
      type: "text",
      autocomplete: "one-time-code",
      spellcheck: "false",
      autocapitalize: "off",
      required: true,
      "aria-describedby": "mfa-code-hint mfa-error",
    }),
    submit: h("button", { type: "submit", id: "mfa-submit", class: "button primary" }, "Verify"),
  };
  parts.form = h(
    "form",
    { id: "mfa-form", class: "stack", novalidate: true, "aria-labelledby": "page-title" },
    h(
      "div",
      { class: "field" },
      h("label", { for: "mfa-code" }, label),
      h("p", { id: "mfa-code-hint", class: "hint" }, codeHint(methods)),
      parts.code,
    ),
    parts.submit,
  );
  return parts;
}

/** Replaces the sign-in card's content with the second step. */
export function secondFactorStep(ctx, { card, challenge, next }) {
  ctx.setTitle("Two-step verification");
  const methods = challenge.methods || [];
  const step = {
    token: challenge.mfaToken,
    next,
    error: liveRegion("mfa-error", { assertive: true, className: "error" }),
    codes: methods.includes("totp") || methods.includes("recovery") ? codeForm(methods) : null,
    passkey:
      methods.includes("webauthn") && passkeysSupported()
        ? h("button", { type: "button", id: "mfa-passkey", class: "button primary" }, "Use a passkey")
        : null,
    busy: false,
  };
  const back = h("a", { id: "mfa-cancel", href: `#${loginPath(next)}` }, "Cancel and sign in again");
  back.addEventListener("click", (event) => {
    event.preventDefault();
    ctx.navigate(loginPath(next), { replace: true });
  });
  replaceChildren(
    card,
    h("h1", { id: "page-title", tabindex: "-1" }, "Two-step verification"),
    h("p", { id: "mfa-intro" }, "One more step: confirm it is you with your second factor."),
    step.passkey,
    step.passkey && step.codes ? h("p", { class: "divider" }, h("span", {}, "or")) : null,
    step.codes ? step.codes.form : null,
    step.error,
    h("p", {}, back),
  );
  if (!step.codes && !step.passkey) {
    say(
      step.error,
      "Your second factor is a passkey, and this browser cannot use passkeys. Sign in with a browser that can, or ask an operator to reset your second factors.",
    );
  }
  if (step.codes) {
    step.codes.form.addEventListener("submit", (event) => {
      event.preventDefault();
      codeSubmit(ctx, step);
    });
  }
  if (step.passkey) step.passkey.addEventListener("click", () => passkeySubmit(ctx, step));
  (step.codes ? step.codes.code : step.passkey || card.querySelector("h1")).focus();
}

function busySet(step, busy) {
  step.busy = busy;
  if (step.codes) step.codes.submit.disabled = busy;
  if (step.passkey) step.passkey.disabled = busy;
}

/** Sends one answer; on success the user is signed in, else the step says why. */
async function answerSend(ctx, step, answer) {
  try {
    const result = await ctx.api.mfaVerify(step.token, answer);
    ctx.signedIn(result.user, step.next);
  } catch (failure) {
    if (!ctx.isCurrent()) return;
    if (failure.code === "mfa_token_invalid") {
      // Expired (5 minutes), already used, or too many wrong codes: start again.
      ctx.state.loginNotice = failure.detail;
      ctx.navigate(loginPath(step.next), { replace: true });
      return;
    }
    say(step.error, ctx.errorMessage(failure));
    if (step.codes) {
      step.codes.code.value = "";
      markInvalid(step.codes.code, failure.code === "invalid_second_factor");
      step.codes.code.focus();
    }
  }
}

async function codeSubmit(ctx, step) {
  if (step.busy) return;
  const input = step.codes.code;
  const code = input.value.trim();
  say(step.error, "");
  if (!code) {
    markInvalid(input, true);
    say(step.error, "Enter the code.");
    input.focus();
    return;
  }
  busySet(step, true);
  step.codes.submit.textContent = "Verifying…";
  await answerSend(ctx, step, { code });
  if (ctx.isCurrent()) {
    busySet(step, false);
    step.codes.submit.textContent = "Verify";
  }
}

async function passkeySubmit(ctx, step) {
  if (step.busy) return;
  say(step.error, "");
  busySet(step, true);
  try {
    const { publicKey } = await ctx.api.mfaOptions(step.token);
    const webauthn = await passkeyGet(publicKey);
    await answerSend(ctx, step, { webauthn });
  } catch (failure) {
    if (!ctx.isCurrent()) return;
    if (failure.code === "mfa_token_invalid") {
      ctx.state.loginNotice = failure.detail;
      ctx.navigate(loginPath(step.next), { replace: true });
      return;
    }
    say(step.error, passkeyErrorMessage(failure) || ctx.errorMessage(failure));
  } finally {
    if (ctx.isCurrent()) busySet(step, false);
  }
}

/** "Sign in with a passkey" (a discoverable credential: no email needed), or null without support. */
export function passkeySignInSection(ctx, { next }) {
  if (!passkeysSupported()) return null;
  const error = liveRegion("passkey-error", { assertive: true, className: "error" });
  const button = h(
    "button",
    { type: "button", id: "passkey-signin", class: "button secondary wide" },
    "Sign in with a passkey",
  );
  button.addEventListener("click", async () => {
    say(error, "");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const { token, publicKey } = await ctx.api.passkeySignInOptions();
      const webauthn = await passkeyGet(publicKey);
      const result = await ctx.api.passkeySignIn(token, webauthn);
      ctx.signedIn(result.user, next);
    } catch (failure) {
      if (ctx.isCurrent()) say(error, passkeyErrorMessage(failure) || ctx.errorMessage(failure));
    } finally {
      if (ctx.isCurrent()) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    }
  });
  return h("div", { class: "stack passkey-section" }, button, error);
}
