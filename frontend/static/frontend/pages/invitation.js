// #/invitations/{token}: the link in an invitation email. Signed in as its addressee: accept.
// Signed out: sign in to accept (an account exists), or create the account and join at once, in
// the ways the server offers (a password, Google: only those that can meet the client's sign-in
// policy). The token never leaves this page but in request bodies.

import { h, liveRegion, markInvalid, replaceChildren, say } from "../dom.js";
import { showError } from "./common.js";
import { googleButton, googleRenewAfter } from "./login.js";
import { signInContinue } from "./second-factor.js";

const PASSWORD_MIN = 8;

export async function render(ctx) {
  ctx.setTitle("Invitation");
  const { token } = ctx.params;
  const card = h("section", { class: "card login-card stack", id: "invitation" }, h("h1", { id: "page-title", tabindex: "-1" }, "Invitation"));
  const error = liveRegion("page-error", { assertive: true, className: "error" });
  card.append(error);
  ctx.main.append(card);

  let invitation;
  try {
    invitation = await ctx.api.invitationPreview(token, { signal: ctx.signal });
  } catch (failure) {
    if (ctx.isCurrent()) say(error, ctx.errorMessage(failure));
    return;
  }
  if (!ctx.isCurrent()) return;
  card.append(
    h(
      "p",
      { id: "invitation-summary" },
      `${invitation.invitedBy || "An operator"} invites ${invitation.email} to join `,
      h("strong", {}, invitation.clientName),
      ` as ${invitation.role}.`,
    ),
  );
  if (invitation.signInRequirement) card.append(h("p", { id: "invitation-requirement", class: "notice" }, invitation.signInRequirement));
  const next = `/invitations/${encodeURIComponent(token)}`;
  if (ctx.state.user) card.append(acceptPart(ctx, token, invitation, error));
  else if (invitation.accountExists) card.append(signInPart(ctx, invitation, next));
  else card.append(...signUpParts(ctx, card, token, invitation));
}

function acceptPart(ctx, token, invitation, error) {
  const me = ctx.state.user.email;
  if (me !== invitation.email) {
    // Signing out here comes back to this page: the link is not lost on the way.
    const switchAccount = h("button", { type: "button", id: "invitation-sign-out", class: "button primary" }, `Sign out and continue as ${invitation.email}`);
    switchAccount.addEventListener("click", () => ctx.signOut({ next: `/invitations/${encodeURIComponent(token)}` }));
    return h(
      "div",
      { class: "stack" },
      h("p", { id: "invitation-mismatch", class: "notice" }, `This invitation is for ${invitation.email}, and you are signed in as ${me}.`),
      switchAccount,
    );
  }
  const accept = h("button", { type: "button", id: "accept-invitation", class: "button primary" }, `Join ${invitation.clientName}`);
  accept.addEventListener("click", async () => {
    accept.disabled = true;
    say(error, "");
    try {
      const joined = await ctx.api.invitationAccept(token);
      ctx.state.appNotice = `You joined ${invitation.clientName} as ${joined.role}.`;
      ctx.navigate("/clusters", { replace: true });
    } catch (failure) {
      accept.disabled = false;
      if (ctx.isCurrent()) say(error, ctx.errorMessage(failure));
    }
  });
  return accept;
}

function signInPart(ctx, invitation, next) {
  return h(
    "p",
    { id: "invitation-sign-in" },
    `${invitation.email} has an account here: `,
    h("a", { id: "invitation-sign-in-link", href: `#/login?next=${encodeURIComponent(next)}` }, "sign in to accept"),
    ".",
  );
}

function signUpForm(invitation) {
  const input = (id, attributes) => h("input", { id, name: id, "aria-describedby": "signup-error", ...attributes });
  const parts = {
    name: input("signup-name", { autocomplete: "name", maxlength: "150" }),
    password: input("signup-password", { type: "password", autocomplete: "new-password", required: true }),
    confirm: input("signup-password-confirm", { type: "password", autocomplete: "new-password", required: true }),
    error: liveRegion("signup-error", { assertive: true, className: "error" }),
    submit: h("button", { type: "submit", id: "signup-submit", class: "button primary" }, "Create account and join"),
  };
  const field = (id, label, control) => h("div", { class: "field" }, h("label", { for: id }, label), control);
  parts.form = h(
    "form",
    { id: "invitation-signup", class: "stack", novalidate: true },
    h("p", {}, "Create your account for ", h("strong", {}, invitation.email), ":"),
    field("signup-name", "Your name", parts.name),
    field("signup-password", "Password", parts.password),
    field("signup-password-confirm", "Password again", parts.confirm),
    parts.error,
    parts.submit,
  );
  return parts;
}

function signUpProblem({ password, confirm }) {
  if (password.value.length < PASSWORD_MIN) return [password, `Choose a password of at least ${PASSWORD_MIN} characters.`];
  if (password.value !== confirm.value) return [confirm, "The two passwords differ."];
  return null;
}

function signUpParts(ctx, card, token, invitation) {
  const form = signUpForm(invitation);
  const next = "/clusters";
  async function answer(body, busy, googleButtonShown) {
    say(form.error, "");
    busy.disabled = true;
    try {
      const result = await ctx.api.invitationSignUp(token, body);
      ctx.state.appNotice = `Welcome: you joined ${invitation.clientName} as ${invitation.role}.`;
      signInContinue(ctx, { card, result, next });
    } catch (failure) {
      showError(ctx, form.error, failure, { name: form.name, password: form.password });
      if (googleButtonShown) googleRenewAfter(failure, googleButtonShown);
    } finally {
      busy.disabled = false;
    }
  }
  form.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const problem = signUpProblem(form);
    markInvalid(form.password, problem && problem[0] === form.password);
    markInvalid(form.confirm, problem && problem[0] === form.confirm);
    if (problem) {
      say(form.error, problem[1]);
      problem[0].focus();
      return;
    }
    answer({ name: form.name.value.trim(), password: form.password.value }, form.submit);
  });
  const withPassword = invitation.signUpMethods.includes("password");
  const withGoogle = invitation.signUpMethods.includes("google") && ctx.config.googleClientId;
  // Only Google meets the client's policy: the form's error region stays, for Google's answers.
  const parts = withPassword ? [form.form] : [form.error];
  if (withGoogle) parts.push(googlePart(ctx, form, answer, { alone: !withPassword, email: invitation.email }));
  return parts;
}

function googlePart(ctx, form, answer, { alone, email }) {
  const holder = h("div", { id: "invitation-google", class: "google-signin" });
  const button = googleButton(ctx, holder, (response) => answer({ credential: response.credential }, holder, button));
  button()
    .catch((failure) => {
      if (!ctx.isCurrent()) return;
      replaceChildren(holder);
      say(form.error, alone ? `${failure.message} Try again later.` : `${failure.message} You can still create an account with a password.`);
    });
  const heading = alone
    ? h("p", {}, "Join with the Google account of ", h("strong", {}, email), ":")
    : h("p", { class: "divider" }, h("span", {}, "or join with Google"));
  return h("div", { class: "stack google-section" }, heading, holder);
}
