// #/confirm?next=/admin/...: the admin's sensitive actions (a key rotation, resetting someone's
// second factors) need a recent sign-in, as the API's do. The admin sends an operator here to
// confirm it is them (the app's one prompt, pages/reauth.js), then back to the admin page.

import { h, liveRegion, say } from "../dom.js";
import { adminPath } from "../next.js";
import { confirmItIsYou } from "./reauth.js";

export async function render(ctx) {
  ctx.setTitle("Confirm it is you");
  const admin = adminPath(ctx.query.get("next"), window.location.origin);
  const status = liveRegion("confirm-status");
  const again = h("button", { type: "button", id: "confirm-identity", class: "button primary", hidden: true }, "Confirm it is you");
  ctx.main.append(
    h(
      "section",
      { class: "card stack" },
      h("h1", { id: "page-title", tabindex: "-1" }, "Confirm it is you"),
      h("p", {}, "The admin's action needs a recent sign-in. Once you have confirmed, you go back to the admin: repeat the action there."),
      status,
      again,
    ),
  );
  async function confirm() {
    again.hidden = true;
    if (await confirmItIsYou(ctx)) {
      if (!ctx.isCurrent()) return;
      say(status, "Confirmed.");
      if (admin) ctx.adminOpen(admin);
      else ctx.navigate("/clusters", { replace: true });
      return;
    }
    if (!ctx.isCurrent()) return;
    say(status, "Nothing was confirmed.");
    again.hidden = false;
    again.focus();
  }
  again.addEventListener("click", confirm);
  confirm();
}
