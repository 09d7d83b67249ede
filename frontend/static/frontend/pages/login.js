// #/login: email + password, "Sign in with a passkey" when the browser has passkeys, and
// "Sign in with Google" when a client ID is configured. A first factor may lead to the
// second step (./second-factor.js) instead of a session.

import { focusKeep, h, liveRegion, markInvalid, say } from "../dom.js";
import { showError } from "./common.js";
import { passkeySignInSection, signInContinue } from "./second-factor.js";

const GOOGLE_SCRIPT_URL = "https://accounts.google.com/gsi/client";
let googleScriptPromise = null;

export function googleScriptLoad() {
  if (window.google && window.google.accounts && window.google.accounts.id) {
    return Promise.resolve(window.google);
  }
  if (!googleScriptPromise) {
    googleScriptPromise = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = GOOGLE_SCRIPT_URL;
      script.async = true;
      script.addEventListener("load", () => resolve(window.google));
      script.addEventListener("error", () => {
        googleScriptPromise = null; // allow a later attempt
        script.remove();
        reject(new Error("Google sign-in could not be loaded."));
      });
      document.head.append(script);
    });
  }
  return googleScriptPromise;
}

export async function render(ctx) {
  ctx.setTitle("Sign in");
  const next = ctx.query.get("next");
  const sessionMessage = liveRegion("session-message", { className: "notice" });
  const fields = loginForm();
  const card = h(
    "section",
    { class: "card login-card" },
    h("h1", { id: "page-title", tabindex: "-1" }, "Sign in"),
    sessionMessage,
    fields.form,
  );
  ctx.main.append(card);
  // Set after insertion so the live region announces it.
  say(sessionMessage, ctx.state.loginNotice);
  ctx.state.loginNotice = null;

  fields.form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (loginInputValid(fields)) passwordSignIn(ctx, { card, fields, next });
  });
  const passkey = passkeySignInSection(ctx, { next });
  if (passkey) card.append(h("p", { class: "divider" }, h("span", {}, "or")), passkey);
  if (ctx.config.googleClientId) {
    card.append(googleSection(ctx, card, next));
  }
  fields.email.focus();
}

/** The email and password form: {form, email, password, submit, error}. */
function loginForm() {
  const error = liveRegion("login-error", { assertive: true, className: "error" });
  const email = h("input", {
    id: "email",
    name: "email",
    type: "email",
    autocomplete: "username",
    inputmode: "email",
    required: true,
    "aria-describedby": "login-error",
  });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
    "aria-describedby": "login-error",
  });
  // Typing again answers what was wrong with the field (the next attempt checks it anew).
  for (const input of [email, password]) input.addEventListener("input", () => markInvalid(input, false));
  const submit = h("button", { type: "submit", id: "login-submit", class: "button primary" }, "Sign in");
  const form = h(
    "form",
    { id: "login-form", class: "stack", novalidate: true, "aria-labelledby": "page-title" },
    h("div", { class: "field" }, h("label", { for: "email" }, "Email"), email),
    h("div", { class: "field" }, h("label", { for: "password" }, "Password"), password),
    error,
    submit,
    h("p", { class: "hint" }, h("a", { id: "forgot-link", href: "#/forgot" }, "Forgot your password?")),
  );
  return { form, email, password, submit, error };
}

/** Checks the fields before anything is sent; says what is wrong and focuses that field. */
function loginInputValid({ email, password, error }) {
  say(error, "");
  const missingEmail = !email.value.trim();
  const badEmail = !missingEmail && !email.validity.valid;
  const missingPassword = !password.value;
  markInvalid(email, missingEmail || badEmail);
  markInvalid(password, missingPassword);
  if (!missingEmail && !badEmail && !missingPassword) return true;
  say(
    error,
    missingEmail ? "Enter your email address." : badEmail ? "Enter a valid email address." : "Enter your password.",
  );
  (missingEmail || badEmail ? email : password).focus();
  return false;
}

async function passwordSignIn(ctx, { card, fields, next }) {
  const { form, email, password, submit, error } = fields;
  submit.disabled = true;
  submit.textContent = "Signing in…";
  form.setAttribute("aria-busy", "true");
  try {
    const result = await ctx.api.login(email.value.trim(), password.value);
    signInContinue(ctx, { card, result, next });
  } catch (failure) {
    if (!ctx.isCurrent()) return;
    showError(ctx, error, failure, { email, password });
    if (failure.code === "invalid_credentials") {
      password.value = "";
      markInvalid(password, true);
      password.focus();
    }
  } finally {
    if (ctx.isCurrent()) {
      submit.disabled = false;
      submit.textContent = "Sign in";
      form.removeAttribute("aria-busy");
      focusKeep(submit);
    }
  }
}

function googleSection(ctx, card, next) {
  const holder = h("div", { id: "google-signin", class: "google-signin", "data-testid": "google-signin" });
  const googleError = liveRegion("google-error", { assertive: true, className: "error" });
  const section = h(
    "div",
    { class: "stack google-section" },
    h("p", { class: "divider" }, h("span", {}, "or")),
    holder,
    googleError,
  );

  async function credentialReceived(response) {
    say(googleError, "");
    holder.setAttribute("aria-busy", "true");
    try {
      const result = await ctx.api.googleLogin(response.credential);
      signInContinue(ctx, { card, result, next });
    } catch (failure) {
      if (ctx.isCurrent()) say(googleError, ctx.errorMessage(failure));
      googleRenewAfter(failure, button);
    } finally {
      holder.removeAttribute("aria-busy");
    }
  }

  const button = googleButton(ctx, holder, credentialReceived);
  button()
    .catch((failure) => {
      if (!ctx.isCurrent()) return;
      holder.hidden = true;
      say(googleError, `${failure.message} You can still sign in with your password.`);
    });
  return section;
}

/**
 * Google's script and this browser's nonce (the server keeps it in an httpOnly cookie too): an ID
 * token Google makes with it is accepted only from this browser, so a copied one is useless.
 */
async function googleLoad(ctx) {
  const [google, answer] = await Promise.all([
    googleScriptLoad(),
    ctx.api.googleNonce({ signal: ctx.signal }).catch(() => {
      throw new Error("Google sign-in could not be loaded.");
    }),
  ]);
  return { google, nonce: answer.nonce };
}

/**
 * Google's button in `holder`, handing `callback` each credential: a function that (re)renders
 * it with this browser's nonce, and rejects when Google's script or the nonce cannot be had.
 */
export function googleButton(ctx, holder, callback) {
  return () =>
    googleLoad(ctx).then(({ google, nonce }) => {
      if (ctx.isCurrent()) googleButtonRender(google, holder, { clientId: ctx.config.googleClientId, nonce }, callback);
    });
}

/**
 * After a refused Google token, ask for the nonce again: another tab may have been given a new
 * one meanwhile (or the day-long cookie ran out), and the next try must carry the current one.
 */
export function googleRenewAfter(failure, button) {
  if (failure && failure.code === "invalid_google_token") button().catch(() => {});
}

function googleButtonRender(google, holder, { clientId, nonce }, callback) {
  google.accounts.id.initialize({ client_id: clientId, nonce, callback, ux_mode: "popup" });
  google.accounts.id.renderButton(holder, {
    type: "standard",
    theme: "outline",
    size: "large",
    text: "signin_with",
    shape: "rectangular",
    logo_alignment: "left",
  });
}
