// The clients the user belongs to that this sign-in does not reach (GET /api/auth/permissions'
// `restricted`), each with what its sign-in policy asks and the way there: sign in again (with
// Google, with a passkey, or just anew), or add a second factor on #/security.

import { h } from "../dom.js";

const METHOD_NAMES = { password: "a password", google: "Google", passkey: "a passkey" };

/** What the client asks, in words. */
export function needsText(item) {
  const needs = [];
  const unmet = new Set(item.unmet);
  if (unmet.has("google_domain")) needs.push(`a Google account of ${item.googleDomain}`);
  else if (unmet.has("method")) needs.push(`signing in with ${item.allowedMethods.map((m) => METHOD_NAMES[m] || m).join(" or ")}`);
  if (unmet.has("second_factor")) needs.push("a second factor");
  if (unmet.has("session_age")) needs.push(`a sign-in within the last ${Math.round(item.maxSessionLength / 60)} minutes`);
  return `${item.name || item.client} asks for ${needs.join(" and ")}.`;
}

/** How to sign in again for `item`: "google", "passkey", or "" (any way it allows). */
export function signInWith(item) {
  const unmet = new Set(item.unmet);
  if (unmet.has("google_domain")) return "google";
  if (unmet.has("method") && item.allowedMethods.length === 1) return item.allowedMethods[0];
  return "";
}

async function signInAgain(ctx, item, button) {
  button.disabled = true;
  try {
    await ctx.api.logout();
  } catch {
    button.disabled = false;
    return;
  }
  const how = signInWith(item);
  const way = how === "google" ? "with Google" : how === "passkey" ? "with a passkey" : "again";
  ctx.signedOut(`Sign in ${way} to reach ${item.name || item.client}.`);
}

function stepUpRow(ctx, item) {
  const actions = [];
  if (item.unmet.includes("second_factor")) {
    // Added in this session, a second factor counts at once; one set up before needs a new sign-in.
    actions.push(h("a", { class: "button primary step-up-security", href: "#/security" }, "Add a second factor"));
  }
  const how = signInWith(item);
  // Only a second factor missing: signing in again helps only with one set up already, so the
  // button says so (else it is a loop back to this card).
  const factorOnly = item.unmet.length === 1 && item.unmet[0] === "second_factor";
  const again = factorOnly ? "Sign in again with your second factor" : "Sign in again";
  const label = how === "google" ? "Sign in with Google" : how === "passkey" ? "Sign in with a passkey" : again;
  const button = h("button", { type: "button", class: "button secondary step-up-sign-in", dataset: { method: how } }, label);
  button.addEventListener("click", () => signInAgain(ctx, item, button));
  actions.push(button);
  return h(
    "li",
    { "data-testid": "restricted-client", class: "list-row", dataset: { client: item.client, unmet: item.unmet.join(" ") } },
    h("span", { class: "step-up-needs" }, needsText(item)),
    h("span", { class: "actions" }, actions),
  );
}

/** The card above the clusters. */
export function stepUpSection(ctx, restricted) {
  return h(
    "section",
    { id: "step-up", class: "card notice stack", "aria-labelledby": "step-up-heading" },
    h("h2", { id: "step-up-heading" }, "Clients that ask for another sign-in"),
    h("ul", { class: "plain-list" }, restricted.map((item) => stepUpRow(ctx, item))),
  );
}
