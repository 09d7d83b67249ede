// The authenticator app (TOTP) and the recovery codes on #/security. The QR code comes from
// the API as an SVG data: URI, shown as an <img> (the policy allows img-src data:, never
// inline markup). Recovery codes are shown once, until the user says they saved them.

import { h, liveRegion, markInvalid, replaceChildren, say } from "../dom.js";
import { confirmDialog, copyText, enrolled, showError } from "./common.js";

/** "JBSW Y3DP EHPK 3PXP": a secret grouped by four for typing. */
export function secretGroups(secret) {
  const groups = String(secret).match(/.{1,4}/g);
  return groups ? groups.join(" ") : "";
}

// The server ends every other session and every personal access token when the first second factor is set up.
export const OTHERS_SIGNED_OUT =
  "Every other device signed in to your account has been signed out and your personal access tokens are revoked (make new ones).";


function codeInput(id, describedBy) {
  return h("input", {
    id,
    name: id,
    class: "code-input",
    type: "text",
    inputmode: "numeric",
    autocomplete: "one-time-code",
    spellcheck: "false",
    required: true,
    "aria-describedby": describedBy,
  });
}

// --- the app -------------------------------------------------------------------------------

export function totpSection(page) {
  const parts = {
    state: h("p", { id: "totp-state" }),
    setup: h("button", { type: "button", id: "totp-setup", class: "button primary" }, "Set up an authenticator app"),
    remove: h("button", { type: "button", id: "totp-remove", class: "button secondary" }, "Remove the app"),
    panel: h("div", { id: "totp-panel", class: "stack" }),
    error: liveRegion("totp-error", { assertive: true, className: "error" }),
    status: liveRegion("totp-status"),
  };
  const element = h(
    "section",
    { id: "totp-section", class: "card stack", "aria-labelledby": "totp-heading" },
    h("h2", { id: "totp-heading" }, "Authenticator app"),
    parts.state,
    h("div", { class: "actions" }, parts.setup, parts.remove),
    parts.panel,
    parts.error,
    parts.status,
  );
  parts.setup.addEventListener("click", () => enrolStart(page, parts));
  parts.remove.addEventListener("click", () => removeAsk(page, parts));
  return {
    element,
    show(overview) {
      replaceChildren(
        parts.state,
        overview.totp
          ? [h("span", { class: "badge ok" }, "On"), " Every sign-in with your password asks for a code from the app."]
          : [
              h("span", { class: "badge" }, "Off"),
              " An app such as Google Authenticator, Microsoft Authenticator, 1Password or Aegis shows a new 6-digit code every 30 seconds.",
            ],
      );
      parts.setup.hidden = overview.totp || parts.panel.childElementCount > 0;
      parts.remove.hidden = !overview.totp || parts.panel.childElementCount > 0;
    },
  };
}

function panelClose(page, parts, focus) {
  replaceChildren(parts.panel);
  page.sections.forEach((section) => section.show(page.overview));
  say(parts.error, "");
  if (focus) focus.focus();
}

async function enrolStart(page, parts) {
  const enrolment = await page.act(parts.setup, "Starting…", () => page.api.totpStart(), parts.error);
  if (!enrolment || !page.ctx.isCurrent()) return;
  const code = codeInput("totp-code", "totp-code-hint totp-error");
  const confirm = h("button", { type: "submit", id: "totp-confirm", class: "button primary" }, "Turn on");
  const cancel = h("button", { type: "button", id: "totp-cancel", class: "button secondary" }, "Cancel");
  const form = h(
    "form",
    { id: "totp-confirm-form", class: "stack", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: "totp-code" }, "3. Enter the 6-digit code the app shows"),
      h("p", { id: "totp-code-hint", class: "hint" }, "This turns the app on and gives you recovery codes."),
      code,
    ),
    h("div", { class: "actions" }, confirm, cancel),
  );
  replaceChildren(
    parts.panel,
    h(
      "ol",
      { class: "enrol-steps" },
      h(
        "li",
        {},
        "1. Scan this QR code with your authenticator app.",
        h("img", {
          id: "totp-qr",
          class: "qr-code",
          src: enrolment.qrCode,
          alt: "QR code that adds your Qdrant Portal account to an authenticator app",
          width: 200,
          height: 200,
        }),
      ),
      h(
        "li",
        {},
        "2. Cannot scan it? Type this key into the app instead: ",
        h(
          "code",
          { id: "totp-secret", class: "secret-key", dataset: { secret: enrolment.secret } },
          secretGroups(enrolment.secret),
        ),
      ),
    ),
    form,
  );
  parts.setup.hidden = true;
  cancel.addEventListener("click", () => panelClose(page, parts, parts.setup));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    enrolConfirm(page, parts, { code, confirm });
  });
  code.focus();
}

async function enrolConfirm(page, parts, { code, confirm }) {
  const value = code.value.trim();
  say(parts.error, "");
  markInvalid(code, !value);
  if (!value) {
    say(parts.error, "Enter the code the app shows.");
    return code.focus();
  }
  confirm.disabled = true;
  const first = !enrolled(page.overview);
  try {
    const { recoveryCodes } = await page.api.totpConfirm(value);
    if (!page.ctx.isCurrent()) return;
    replaceChildren(parts.panel);
    say(parts.status, `Authenticator app turned on.${first ? ` ${OTHERS_SIGNED_OUT}` : ""}`);
    page.codesShow(recoveryCodes);
    await page.reload();
  } catch (failure) {
    const fieldText = failure.fields && failure.fields.code && [].concat(failure.fields.code).join(" ");
    if (fieldText) say(parts.error, fieldText);
    else showError(page.ctx, parts.error, failure);
    code.value = "";
    markInvalid(code, true);
    code.focus();
  } finally {
    confirm.disabled = false;
  }
}

function removeAsk(page, parts) {
  const code = codeInput("totp-remove-code", "totp-remove-hint totp-error");
  code.setAttribute("inputmode", "text");
  const confirm = h("button", { type: "submit", id: "totp-remove-confirm", class: "button danger" }, "Remove the app");
  const cancel = h("button", { type: "button", id: "totp-remove-cancel", class: "button secondary" }, "Cancel");
  const form = h(
    "form",
    { id: "totp-remove-form", class: "stack", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: "totp-remove-code" }, "Current code from the app"),
      h("p", { id: "totp-remove-hint", class: "hint" }, "Lost the app? Enter one of your recovery codes instead."),
      code,
    ),
    h("div", { class: "actions" }, confirm, cancel),
  );
  replaceChildren(parts.panel, form);
  parts.remove.hidden = true;
  cancel.addEventListener("click", () => panelClose(page, parts, parts.remove));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = code.value.trim();
    markInvalid(code, !value);
    if (!value) {
      say(parts.error, "Enter a current code.");
      return code.focus();
    }
    // The server takes a current code (or a recovery code) for the removal itself; when the last
    // sign-in is not recent, page.act asks the user to confirm it is them first, then retries.
    const remove = async () => {
      await page.api.totpRemove(value);
      return true;
    };
    const done = await page.act(confirm, "Removing…", remove, parts.error);
    if (!page.ctx.isCurrent()) return;
    if (!done) {
      code.value = "";
      markInvalid(code, true);
      return code.focus();
    }
    replaceChildren(parts.panel);
    say(parts.status, "Authenticator app removed.");
    await page.reload();
    (parts.setup.hidden ? page.ctx.main.querySelector("h1") : parts.setup).focus();
  });
  code.focus();
}

// --- recovery codes ----------------------------------------------------------------------

export function recoverySection(page) {
  const parts = {
    state: h("p", { id: "recovery-state" }),
    regenerate: h(
      "button",
      { type: "button", id: "recovery-regenerate", class: "button secondary" },
      "Create new recovery codes",
    ),
    error: liveRegion("recovery-error", { assertive: true, className: "error" }),
    dialog: confirmDialog({
      id: "recovery-dialog",
      title: "Create new recovery codes?",
      confirmLabel: "Create new codes",
      confirmId: "confirm-recovery",
      cancelId: "cancel-recovery",
    }),
  };
  parts.regenerate.addEventListener("click", async () => {
    const asked = ["Your current recovery codes stop working at once; only the new ones will."];
    const replacing = page.overview.recoveryCodesLeft > 0;
    if (replacing && !(await parts.dialog.ask(asked))) return parts.regenerate.focus();
    const answer = await page.act(parts.regenerate, "Creating…", () => page.api.recoveryCodesRegenerate(), parts.error);
    if (answer && page.ctx.isCurrent()) {
      page.codesShow(answer.recoveryCodes);
      await page.reload();
    }
  });
  return {
    element: h(
      "section",
      { id: "recovery-section", class: "card stack", "aria-labelledby": "recovery-heading" },
      h("h2", { id: "recovery-heading" }, "Recovery codes"),
      parts.state,
      h("div", { class: "actions" }, parts.regenerate),
      parts.error,
      parts.dialog.element,
    ),
    show(overview) {
      parts.regenerate.hidden = !enrolled(overview);
      parts.regenerate.textContent = overview.recoveryCodesLeft ? "Create new recovery codes" : "Create recovery codes";
      parts.state.className = enrolled(overview) && overview.recoveryCodesLeft <= 3 ? "notice warn" : "";
      replaceChildren(parts.state, recoveryStateText(overview));
    },
  };
}

function recoveryStateText(overview) {
  const left = overview.recoveryCodesLeft;
  if (!enrolled(overview)) {
    return "Recovery codes come with a second factor: set up an authenticator app or a passkey first.";
  }
  if (!left) {
    return "You have no recovery codes. Create some, so that you can still sign in if you lose your app or passkey.";
  }
  return `${left} of 10 codes left. Each code signs you in once when you cannot use your app or passkey.`;
}

function codesText(codes) {
  return `Qdrant Portal recovery codes (each works once)\n\n${codes.join("\n")}\n`;
}

function codesDownload(codes, status) {
  const url = URL.createObjectURL(new Blob([codesText(codes)], { type: "text/plain" }));
  const link = h("a", { href: url, download: "qdrant-portal-recovery-codes.txt", hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
  say(status, "Downloaded qdrant-portal-recovery-codes.txt.");
}

/** The codes, shown this once, with copy, download and "I saved them". */
export function recoveryCodesPanel(codes, done) {
  const status = liveRegion("recovery-copy-status");
  const saved = h("input", { type: "checkbox", id: "recovery-saved" });
  const finish = h("button", { type: "button", id: "recovery-done", class: "button primary", disabled: true }, "Done");
  saved.addEventListener("change", () => {
    finish.disabled = !saved.checked;
  });
  finish.addEventListener("click", done);
  return h(
    "section",
    { id: "recovery-codes-panel", class: "card stack codes-panel", "aria-labelledby": "recovery-codes-heading" },
    h("h2", { id: "recovery-codes-heading", tabindex: "-1" }, "Save your recovery codes"),
    h(
      "p",
      {},
      "Keep these codes somewhere safe, like a password manager. Each one signs you in once when you cannot use your authenticator app or passkey. They are shown only now.",
    ),
    h(
      "ol",
      { id: "recovery-codes", class: "recovery-codes" },
      codes.map((code) => h("li", {}, h("code", {}, code))),
    ),
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        {
          type: "button",
          id: "recovery-copy",
          class: "button secondary",
          onclick: () => copyText(status, codesText(codes), "the recovery codes", "Select them and copy them by hand."),
        },
        "Copy",
      ),
      h(
        "button",
        {
          type: "button",
          id: "recovery-download",
          class: "button secondary",
          onclick: () => codesDownload(codes, status),
        },
        "Download",
      ),
    ),
    status,
    h("div", { class: "checkbox-field" }, saved, h("label", { for: "recovery-saved" }, "I have saved these codes")),
    h("div", { class: "actions" }, finish),
  );
}
