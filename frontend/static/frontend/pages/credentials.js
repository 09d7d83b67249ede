// #/clients/{client}/clusters/{cluster}/credentials: endpoints and API keys.
// Keys stay in the credentials view's closure and reach the DOM only once the user reveals them.

import { h, liveRegion, say } from "../dom.js";
import { clusterHref, pageFrame, showError, pageLoad } from "./common.js";

const MASK = "••••••••••••••••";

export async function render(ctx) {
  const { client, cluster: name } = ctx.params;
  const { status, error } = pageFrame(ctx, {
    title: `Credentials · ${client} / ${name}`,
    crumbs: [
      ["Clusters", "#/clusters"],
      [`${client} / ${name}`, clusterHref(client, name)],
      ["Credentials", null],
    ],
  });
  const credentials = await pageLoad(ctx, { status, error }, "Loading credentials…", (options) =>
    ctx.api.credentials(client, name, options),
  );
  if (credentials === undefined) return;

  const view = credentialsView(credentials);
  ctx.main.append(endpointsSection(view), keysSection(view), rotateSection(ctx, view, error));
  view.show();
}

function secretShow(element, value, label, revealed) {
  element.textContent = revealed ? value || "—" : MASK;
  element.dataset.masked = String(!revealed);
  if (revealed) element.removeAttribute("aria-label");
  else element.setAttribute("aria-label", `${label} hidden`);
}

/**
 * The value elements, the reveal button and the copy status. current() is the credentials
 * shown; replace(credentials) shows new ones, revealed.
 */
function credentialsView(initial) {
  let credentials = initial;
  let revealed = false;
  const view = {
    endpointRest: h("code", { id: "endpoint-rest" }),
    endpointGrpc: h("code", { id: "endpoint-grpc" }),
    apiKey: h("code", { id: "api-key", class: "secret" }),
    readOnlyApiKey: h("code", { id: "read-only-api-key", class: "secret" }),
    reveal: h("button", { type: "button", id: "reveal-keys", class: "button secondary", "aria-pressed": "false" }, "Reveal keys"),
    copyStatus: liveRegion("copy-status"),
    current: () => credentials,
    show() {
      const endpoint = credentials.endpoint || {};
      view.endpointRest.textContent = endpoint.rest || "—";
      view.endpointGrpc.textContent = endpoint.grpc || "—";
      secretShow(view.apiKey, credentials.apiKey, "API key", revealed);
      secretShow(view.readOnlyApiKey, credentials.readOnlyApiKey, "read-only API key", revealed);
      view.reveal.textContent = revealed ? "Hide keys" : "Reveal keys";
      view.reveal.setAttribute("aria-pressed", String(revealed));
    },
    replace(next) {
      credentials = next;
      revealed = true;
      view.show();
      say(view.copyStatus, "");
    },
  };
  view.reveal.addEventListener("click", () => {
    revealed = !revealed;
    view.show();
  });
  return view;
}

async function copyText(copyStatus, text, label) {
  try {
    if (!navigator.clipboard) throw new Error("no clipboard");
    await navigator.clipboard.writeText(text);
    say(copyStatus, `Copied ${label} to the clipboard.`);
  } catch {
    say(copyStatus, `Could not copy the ${label}. Reveal it and copy it by hand.`);
  }
}

/** A "Copy" button for the value `pick(credentials)` of the credentials shown when clicked. */
function copyButton(view, id, label, pick) {
  return h(
    "button",
    {
      type: "button",
      id,
      class: "button secondary small",
      "aria-label": `Copy ${label}`,
      onclick: () => copyText(view.copyStatus, pick(view.current()) || "", label),
    },
    "Copy",
  );
}

function credentialRow(label, valueElement, button) {
  return h("div", { class: "credential-row" }, h("dt", {}, label), h("dd", {}, valueElement, button));
}

function endpointsSection(view) {
  const endpoint = (credentials) => credentials.endpoint || {};
  return h(
    "section",
    { class: "card stack", "aria-labelledby": "endpoints-heading" },
    h("h2", { id: "endpoints-heading" }, "Endpoints"),
    h(
      "dl",
      { class: "credentials" },
      credentialRow("REST", view.endpointRest, copyButton(view, "copy-rest", "REST endpoint", (c) => endpoint(c).rest)),
      credentialRow("gRPC", view.endpointGrpc, copyButton(view, "copy-grpc", "gRPC endpoint", (c) => endpoint(c).grpc)),
    ),
  );
}

function keysSection(view) {
  return h(
    "section",
    { class: "card stack", "aria-labelledby": "keys-heading" },
    h("h2", { id: "keys-heading" }, "API keys"),
    h("p", { class: "hint" }, "Send the key in the api-key header. The read-only key can search but not write."),
    h(
      "dl",
      { class: "credentials" },
      credentialRow("API key", view.apiKey, copyButton(view, "copy-api-key", "API key", (c) => c.apiKey)),
      credentialRow(
        "Read-only API key",
        view.readOnlyApiKey,
        copyButton(view, "copy-read-only-api-key", "read-only API key", (c) => c.readOnlyApiKey),
      ),
    ),
    h("div", { class: "actions" }, view.reveal),
    view.copyStatus,
  );
}

function rotateDialog(client, name) {
  const cancel = h(
    "button",
    { type: "submit", value: "cancel", id: "cancel-rotate", class: "button secondary", autofocus: true },
    "Cancel",
  );
  const confirm = h("button", { type: "submit", value: "confirm", id: "confirm-rotate", class: "button danger" }, "Rotate keys");
  return h(
    "dialog",
    { id: "rotate-dialog", "aria-labelledby": "rotate-dialog-title", "aria-describedby": "rotate-dialog-text" },
    h(
      "form",
      { method: "dialog", class: "stack" },
      h("h2", { id: "rotate-dialog-title" }, "Rotate the API keys?"),
      h(
        "p",
        { id: "rotate-dialog-text" },
        `New keys are made for ${client} / ${name}. The current keys stop working once the change is delivered, so every application using them must be updated.`,
      ),
      h("div", { class: "actions" }, cancel, confirm),
    ),
  );
}

async function rotateKeys(ctx, { view, rotate, status, error }) {
  rotate.disabled = true;
  rotate.textContent = "Rotating…";
  say(error, "");
  say(status, "Rotating keys…");
  try {
    const credentials = await ctx.api.credentialsRotate(ctx.params.client, ctx.params.cluster);
    if (!ctx.isCurrent()) return;
    view.replace(credentials);
    say(status, "Keys rotated. The new keys are shown above; update every application that used the old ones.");
  } catch (failure) {
    say(status, "");
    showError(ctx, error, failure);
  } finally {
    if (ctx.isCurrent()) {
      rotate.disabled = false;
      rotate.textContent = "Rotate keys";
      rotate.focus();
    }
  }
}

function rotateSection(ctx, view, error) {
  const rotate = h("button", { type: "button", id: "rotate-keys", class: "button danger" }, "Rotate keys");
  const status = liveRegion("rotate-status");
  const dialog = rotateDialog(ctx.params.client, ctx.params.cluster);
  rotate.addEventListener("click", () => {
    dialog.returnValue = "";
    dialog.showModal();
  });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "confirm") rotateKeys(ctx, { view, rotate, status, error });
    else rotate.focus();
  });
  return h(
    "section",
    { class: "card stack", "aria-labelledby": "rotate-heading" },
    h("h2", { id: "rotate-heading" }, "Rotate keys"),
    h("p", { class: "hint" }, "Make new keys when the current ones may have leaked."),
    h("div", { class: "actions" }, rotate),
    status,
    dialog,
  );
}
