// Passkeys on #/security: the list (rename, remove) and "Add a passkey"
// (POST options -> navigator.credentials.create -> POST the credential).

import { h, liveRegion, markInvalid, replaceChildren, say, timeElement } from "../dom.js";
import { passkeyCreate, passkeyErrorMessage, passkeysSupported } from "../webauthn.js";
import { ApiError } from "../api.js";
import { confirmDialog, enrolled } from "./common.js";
import { OTHERS_SIGNED_OUT } from "./security-totp.js";

export function passkeysSection(page) {
  const supported = passkeysSupported();
  const parts = passkeyParts(supported);
  const form = h(
    "form",
    { id: "passkey-add-form", class: "field", novalidate: true },
    h("label", { for: "passkey-name" }, "Name of the new passkey"),
    h(
      "p",
      { id: "passkey-name-hint", class: "hint" },
      supported ? "So you can tell your passkeys apart, like “Work laptop”." : "This browser cannot create passkeys.",
    ),
    h("div", { class: "input-row" }, parts.name, parts.add),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    passkeyAdd(page, parts);
  });
  return {
    element: h(
      "section",
      { id: "passkeys-section", class: "card stack", "aria-labelledby": "passkeys-heading" },
      h("h2", { id: "passkeys-heading" }, "Passkeys"),
      h(
        "p",
        { class: "hint" },
        "A passkey is kept by this device (unlocked with your fingerprint, face or PIN) or by a security key. It can be your second factor, and it signs you in without a password.",
      ),
      parts.list,
      parts.empty,
      form,
      parts.error,
      parts.status,
      parts.dialog.element,
    ),
    show(overview) {
      replaceChildren(
        parts.list,
        overview.passkeys.map((passkey) => passkeyRow(page, parts, passkey)),
      );
      parts.empty.hidden = overview.passkeys.length > 0;
    },
  };
}

/** The section's elements that its functions share. */
function passkeyParts(supported) {
  return {
    list: h("ul", { id: "passkey-list", class: "passkey-list", "aria-labelledby": "passkeys-heading" }),
    empty: h("p", { id: "passkeys-empty", class: "empty" }, "No passkeys yet."),
    name: h("input", {
      id: "passkey-name",
      name: "passkey-name",
      type: "text",
      maxlength: 100,
      required: true,
      value: "Passkey",
      "aria-describedby": "passkey-name-hint passkeys-error",
      disabled: !supported,
    }),
    add: h(
      "button",
      { type: "submit", id: "passkey-add", class: "button primary", disabled: !supported },
      "Add a passkey",
    ),
    error: liveRegion("passkeys-error", { assertive: true, className: "error" }),
    status: liveRegion("passkeys-status"),
    dialog: confirmDialog({
      id: "passkey-remove-dialog",
      title: "Remove this passkey?",
      confirmLabel: "Remove",
      confirmId: "confirm-passkey-remove",
      cancelId: "cancel-passkey-remove",
    }),
  };
}

function passkeyRow(page, parts, passkey) {
  const name = h("span", { class: "passkey-name" }, passkey.name);
  const rename = h(
    "button",
    { type: "button", class: "button secondary small passkey-rename", "aria-label": `Rename ${passkey.name}` },
    "Rename",
  );
  const remove = h(
    "button",
    { type: "button", class: "button secondary small passkey-remove", "aria-label": `Remove ${passkey.name}` },
    "Remove",
  );
  const row = h(
    "li",
    { class: "passkey-row", "data-testid": "passkey-row", dataset: { passkeyId: passkey.id } },
    h("div", { class: "passkey-head" }, name, h("div", { class: "actions" }, rename, remove)),
    h(
      "p",
      { class: "hint" },
      "Added ",
      timeElement(passkey.createdAt),
      " · last used ",
      passkey.lastUsedAt ? timeElement(passkey.lastUsedAt) : "never",
    ),
  );
  rename.addEventListener("click", () => renameForm(page, parts, { passkey, row, name }));
  remove.addEventListener("click", async () => {
    if (!(await parts.dialog.ask([`“${passkey.name}” will no longer sign you in.`]))) return remove.focus();
    const done = await page.act(
      remove,
      "Removing…",
      async () => (await page.api.passkeyRemove(passkey.id), true),
      parts.error,
    );
    if (!done || !page.ctx.isCurrent()) return;
    say(parts.status, `Removed the passkey “${passkey.name}”.`);
    await page.reload();
    parts.name.focus();
  });
  return row;
}

function renameForm(page, parts, { passkey, row, name }) {
  const inputId = `passkey-rename-${passkey.id}`;
  const input = h("input", { id: inputId, type: "text", maxlength: 100, required: true, value: passkey.name });
  const save = h("button", { type: "submit", class: "button primary small" }, "Save");
  const cancel = h("button", { type: "button", class: "button secondary small" }, "Cancel");
  const form = h(
    "form",
    { class: "inline-form passkey-rename-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: inputId }, `New name for “${passkey.name}”`), input),
    h("div", { class: "actions" }, save, cancel),
  );
  row.replaceChildren(form);
  cancel.addEventListener("click", () => page.show(page.overview));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    markInvalid(input, !value);
    if (!value) return input.focus();
    const renamed = await page.act(save, "Saving…", () => page.api.passkeyRename(passkey.id, value), parts.error);
    if (!renamed || !page.ctx.isCurrent()) return;
    say(parts.status, `Renamed the passkey to “${renamed.name}”.`);
    await page.reload();
  });
  input.focus();
  input.select();
}

async function passkeyAdd(page, parts) {
  const name = parts.name.value.trim();
  markInvalid(parts.name, !name);
  say(parts.error, "");
  if (!name) {
    say(parts.error, "Give the passkey a name.");
    return parts.name.focus();
  }
  const first = !enrolled(page.overview);
  const register = async () => {
    const { token, publicKey } = await page.api.passkeyRegistrationOptions();
    const credential = await passkeyCreate(publicKey);
    return page.api.passkeyRegister(token, credential, name);
  };
  const added = await page.act(
    parts.add,
    "Waiting for your passkey…",
    async () => {
      try {
        return await register();
      } catch (failure) {
        const message = passkeyErrorMessage(failure);
        if (message) throw new ApiError({ status: 0, code: "passkey_refused", detail: message });
        throw failure;
      }
    },
    parts.error,
  );
  if (!added || !page.ctx.isCurrent()) return;
  say(parts.status, `Added the passkey “${added.name}”.${first ? ` ${OTHERS_SIGNED_OUT}` : ""}`);
  parts.name.value = "Passkey";
  await page.reload();
  parts.name.focus();
}
