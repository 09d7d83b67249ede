// The one re-authentication prompt. Sensitive actions (a second factor added or removed, new
// recovery codes, a cluster's key rotation) answer 403 reauthentication_required when the
// last proof of identity is older than REAUTHENTICATION_WINDOW: withReauthentication() then
// asks for the password, a code or a passkey, POSTs /api/auth/reauthenticate and retries the
// action once.

import { ApiError } from "../api.js";
import { h, liveRegion, markInvalid, replaceChildren, say } from "../dom.js";
import { passkeyErrorMessage, passkeyGet, passkeysSupported } from "../webauthn.js";
import { enrolled } from "./common.js";

const REQUIRED = "reauthentication_required";
const CANCELLED_DETAIL = "Nothing was changed: confirm it is you to continue.";

let prompt = null; // built on first use, kept in <body> so that every page shares it
let pending = null; // the answer being asked for: two actions at once share one prompt

function field(id, label, attributes) {
  const input = h("input", { id, name: id, "aria-describedby": "reauth-error", ...attributes });
  return { input, row: h("div", { class: "field" }, h("label", { for: id }, label), input) };
}

function promptBuild() {
  const password = field("reauth-password", "Password", { type: "password", autocomplete: "current-password" });
  const code = field("reauth-code", "Code from your authenticator app, or a recovery code", {
    type: "text",
    autocomplete: "one-time-code",
    inputmode: "text",
    spellcheck: "false",
  });
  const parts = {
    // Whose password it is, for password managers (hidden, as browsers expect of such a form).
    username: h("input", { type: "text", id: "reauth-username", autocomplete: "username", readonly: true, hidden: true }),
    password,
    code,
    text: h("p", { id: "reauth-text" }),
    or: h("p", { class: "divider" }, h("span", {}, "or")),
    passkeyOr: h("p", { class: "divider" }, h("span", {}, "or")),
    passkey: h("button", { type: "button", id: "reauth-passkey", class: "button secondary" }, "Use a passkey"),
    error: liveRegion("reauth-error", { assertive: true, className: "error" }),
    submit: h("button", { type: "submit", id: "reauth-submit", class: "button primary" }, "Confirm"),
    cancel: h("button", { type: "button", id: "reauth-cancel", class: "button secondary" }, "Cancel"),
  };
  parts.form = h(
    "form",
    { id: "reauth-form", class: "stack", novalidate: true },
    h("h2", { id: "reauth-title" }, "Confirm it is you"),
    parts.username,
    parts.text,
    password.row,
    parts.or,
    code.row,
    parts.passkeyOr,
    parts.passkey,
    parts.error,
    h("div", { class: "actions" }, parts.cancel, parts.submit),
  );
  parts.dialog = h(
    "dialog",
    { id: "reauth-dialog", "aria-labelledby": "reauth-title", "aria-describedby": "reauth-text" },
    parts.form,
  );
  document.body.append(parts.dialog);
  return parts;
}

/**
 * Shows the fields this account can answer with (it may have no password, or no app). An
 * account with a second factor answers with it: the server takes its password no longer.
 */
function promptPrepare(parts, overview, email) {
  parts.username.value = email || "";
  const hasPassword = !overview || (overview.hasPassword && !enrolled(overview));
  const hasCode = !overview || overview.totp || overview.recoveryCodesLeft > 0;
  const hasPasskey = Boolean(overview && overview.passkeys && overview.passkeys.length) && passkeysSupported();
  parts.password.row.hidden = !hasPassword;
  parts.code.row.hidden = !hasCode;
  parts.or.hidden = !(hasPassword && hasCode);
  parts.submit.hidden = !(hasPassword || hasCode);
  parts.passkey.hidden = !hasPasskey;
  parts.passkeyOr.hidden = !(hasPasskey && (hasPassword || hasCode));
  const asked = [hasPassword && "your password", hasCode && "a code from your authenticator app"].filter(Boolean);
  const typed = asked.length ? ` Enter ${asked.join(", or ")}${hasPasskey ? ", or use a passkey" : ""}.` : "";
  replaceChildren(
    parts.text,
    asked.length || hasPasskey
      ? `This action needs a recent sign-in.${typed || " Use one of your passkeys."}`
      : "This action needs a recent sign-in: sign out, sign in again, then retry.",
  );
  for (const { input } of [parts.password, parts.code]) {
    input.value = "";
    markInvalid(input, false);
  }
  say(parts.error, "");
}

/** The proof typed in, or null after saying what is missing. */
function proofOf(parts) {
  const password = parts.password.row.hidden ? "" : parts.password.input.value;
  const code = parts.code.row.hidden ? "" : parts.code.input.value.trim();
  if (password) return { password };
  if (code) return { code };
  say(parts.error, parts.password.row.hidden ? "Enter a code." : "Enter your password or a code.");
  const first = parts.password.row.hidden ? parts.code.input : parts.password.input;
  markInvalid(first, true);
  first.focus();
  return null;
}

/**
 * Opens the prompt; resolves true once the server accepted a proof, false when cancelled or
 * when the page that asked is left (`ctx.signal` aborts): nothing runs for a page that is gone.
 */
function ask(ctx) {
  if (!pending) {
    pending = promptAnswer(ctx.api, ctx.signal, ctx.state?.user?.email).finally(() => {
      pending = null;
    });
  }
  return pending;
}

async function promptAnswer(api, signal, email) {
  if (!prompt) prompt = promptBuild();
  const parts = prompt;
  let overview = null;
  try {
    overview = await api.security();
  } catch {
    overview = null; // ask for both: the server says which one it takes
  }
  promptPrepare(parts, overview, email);
  const answered = new Promise((resolve) => {
    const finish = (accepted) => {
      parts.form.removeEventListener("submit", submitted);
      parts.cancel.removeEventListener("click", cancelled);
      parts.passkey.removeEventListener("click", passkeyUsed);
      parts.dialog.removeEventListener("cancel", cancelled);
      signal?.removeEventListener("abort", left);
      if (parts.dialog.open) parts.dialog.close();
      resolve(accepted);
    };
    function left() {
      finish(false);
    }
    async function passkeyUsed() {
      const outcome = await passkeyAttempt(api, parts);
      if (outcome !== RETRY) finish(outcome === ACCEPTED);
    }
    async function submitted(event) {
      event.preventDefault();
      const outcome = await proofAttempt(api, parts);
      if (outcome !== RETRY) finish(outcome === ACCEPTED);
    }
    function cancelled(event) {
      event.preventDefault();
      finish(false);
    }
    parts.form.addEventListener("submit", submitted);
    parts.cancel.addEventListener("click", cancelled);
    parts.passkey.addEventListener("click", passkeyUsed);
    parts.dialog.addEventListener("cancel", cancelled);
    signal?.addEventListener("abort", left);
    if (signal?.aborted) left();
  });
  if (signal?.aborted) return answered;
  parts.dialog.showModal();
  const first = [parts.password.input, parts.code.input, parts.passkey].find(
    (element) => !(element.closest(".field") || element).hidden,
  );
  if (first) first.focus();
  return answered;
}

const ACCEPTED = "accepted";
const SIGNED_OUT = "signed-out";
const RETRY = "retry"; // the prompt stays, saying what went wrong

/** One try with a passkey: the outcome, the error shown in the prompt when it is RETRY. */
async function passkeyAttempt(api, parts) {
  say(parts.error, "");
  parts.passkey.disabled = true;
  parts.form.setAttribute("aria-busy", "true");
  try {
    const { token, publicKey } = await api.reauthenticationOptions();
    const webauthn = await passkeyGet(publicKey);
    await api.reauthenticate({ token, webauthn });
    return ACCEPTED;
  } catch (failure) {
    if (failure instanceof ApiError && failure.isAuthError) return SIGNED_OUT;
    say(parts.error, passkeyErrorMessage(failure) || failure.detail || "That did not work; try again.");
    parts.passkey.focus();
    return RETRY;
  } finally {
    parts.passkey.disabled = false;
    parts.form.removeAttribute("aria-busy");
  }
}

/** One try with the password or a code typed in the prompt. */
async function proofAttempt(api, parts) {
  say(parts.error, "");
  const proof = proofOf(parts);
  if (!proof) return RETRY;
  parts.submit.disabled = true;
  parts.form.setAttribute("aria-busy", "true");
  try {
    await api.reauthenticate(proof);
    return ACCEPTED;
  } catch (failure) {
    if (failure instanceof ApiError && failure.isAuthError) return SIGNED_OUT;
    const input = proof.password !== undefined ? parts.password.input : parts.code.input;
    say(parts.error, failure.detail || "That did not work; try again.");
    input.value = "";
    markInvalid(input, true);
    input.focus();
    return RETRY;
  } finally {
    parts.submit.disabled = false;
    parts.form.removeAttribute("aria-busy");
  }
}


/** Asks the user to confirm it is them (the admin's sensitive actions send them here): true once done. */
export function confirmItIsYou(ctx) {
  return ask(ctx);
}

/**
 * Runs `action()`; when it answers reauthentication_required, asks the user to confirm it is
 * them and runs it once more. A cancelled prompt fails with code `reauthentication_cancelled`,
 * as does leaving the page (`ctx.signal`) while it is open: the action is not run then.
 */
export async function withReauthentication(ctx, action) {
  try {
    return await action();
  } catch (failure) {
    if (!(failure instanceof ApiError) || failure.code !== REQUIRED) throw failure;
    if (!(await ask(ctx)) || ctx.signal?.aborted) {
      throw new ApiError({ status: 403, code: "reauthentication_cancelled", detail: CANCELLED_DETAIL });
    }
    return action();
  }
}
