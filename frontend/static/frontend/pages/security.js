// #/security[?next=/admin/...]: the account's second factors (authenticator app, recovery
// codes, passkeys) and its password. A staff account that must have a second factor is sent
// here first (mfa_enrolment_required); once it has one, it continues where it was going.

import { adminPath, appPath } from "../next.js";
import { focusKeep, h, replaceChildren, say } from "../dom.js";
import { enrolled, pageFrame, pageLoad, showError } from "./common.js";
import { passwordSection } from "./security-password.js";
import { passkeysSection } from "./security-passkeys.js";
import { recoveryCodesPanel, recoverySection, totpSection } from "./security-totp.js";
import { withReauthentication } from "./reauth.js";

export async function render(ctx) {
  const { status, error } = pageFrame(ctx, { title: "Security" });
  const notice = h("div", { id: "security-notice", class: "stack" });
  ctx.main.append(notice);
  const sentHere = Boolean(ctx.state.securityNotice);
  ctx.state.securityNotice = null;
  const overview = await pageLoad(ctx, { status, error }, "Loading your security settings…", (options) =>
    ctx.api.security(options),
  );
  if (overview === undefined) return;

  const page = securityPage(ctx, { status, error, notice, sentHere });
  const sections = [totpSection(page), recoverySection(page), passkeysSection(page), passwordSection(page)];
  page.sections = sections;
  ctx.main.append(page.codesSlot, ...sections.map((section) => section.element));
  page.show(overview);
}

/** What the sections share: the overview, the page's regions, reload and act. */
function securityPage(ctx, { status, error, notice, sentHere }) {
  const next = ctx.query.get("next");
  const page = {
    ctx,
    api: ctx.api,
    status,
    error,
    overview: null,
    sections: [],
    codesSlot: h("div", { id: "recovery-codes-slot" }),
    adminNext: adminPath(next, window.location.origin),
    show(overview) {
      page.overview = overview;
      noticeShow(page, notice, sentHere || Boolean(next));
      for (const section of page.sections) section.show(overview);
    },
    async reload() {
      const overview = await ctx.api.security({ signal: ctx.signal });
      if (ctx.isCurrent()) page.show(overview);
    },
    /**
     * Runs a sensitive `action` (asking to confirm it is you when the server wants that) with
     * `button` busy; shows a failure in `errorRegion` (the page's by default). -> result | undefined
     */
    async act(button, busyLabel, action, errorRegion = error) {
      const label = button.textContent;
      button.disabled = true;
      button.textContent = busyLabel;
      say(errorRegion, "");
      say(status, "");
      try {
        return await withReauthentication(ctx, action);
      } catch (failure) {
        showError(ctx, errorRegion, failure);
        return undefined;
      } finally {
        if (ctx.isCurrent()) {
          button.disabled = false;
          button.textContent = label;
          focusKeep(button);
        }
      }
    },
    /** Shows new recovery codes once; `done` runs when the user says they saved them. */
    codesShow(codes) {
      replaceChildren(
        page.codesSlot,
        recoveryCodesPanel(codes, () => {
          replaceChildren(page.codesSlot);
          say(status, "Recovery codes saved.");
          noticeShow(page, notice, sentHere || Boolean(next));
          focusKeep(document.getElementById("page-title")); // the Done button went with the panel
        }),
      );
      page.codesSlot.querySelector("h2").focus();
    },
  };
  return page;
}

/** Why the user is here and, once they have a second factor, where to continue. */
function noticeShow(page, notice, cameForEnrolment) {
  const overview = page.overview;
  if (overview.mfaRequired && !enrolled(overview)) {
    replaceChildren(
      notice,
      h(
        "p",
        { id: "enrolment-required", class: "notice warn" },
        "Your account must have a second factor before you can use the portal",
        page.adminNext ? " or the admin" : "",
        ": set up an authenticator app or add a passkey below.",
      ),
    );
    return;
  }
  const codesPending = page.codesSlot.childElementCount > 0;
  if (!cameForEnrolment || !enrolled(overview) || codesPending) {
    replaceChildren(notice);
    return;
  }
  replaceChildren(notice, continueAction(page));
}

function continueAction(page) {
  const ctx = page.ctx;
  if (page.adminNext) {
    const button = h(
      "button",
      { type: "button", id: "continue-admin", class: "button primary" },
      "Continue to the admin",
    );
    button.addEventListener("click", () => ctx.adminOpen(page.adminNext));
    return h("p", { class: "notice" }, "Your second factor is set up. ", button);
  }
  const target = appPath(ctx.query.get("next"), "/clusters");
  return h(
    "p",
    { class: "notice" },
    "Your second factor is set up. ",
    h("a", { id: "continue-app", href: `#${target}` }, "Continue to the portal"),
  );
}
