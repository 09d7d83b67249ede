// #/clients/{client}/clusters/{cluster}/credentials: endpoints and API keys.
// Keys stay in this closure and reach the DOM only once the user reveals them.

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
  let credentials = await pageLoad(ctx, { status, error }, "Loading credentials…", (options) =>
    ctx.api.credentials(client, name, options),
  );
  if (credentials === undefined) return;

  let revealed = false;
  const copyStatus = liveRegion("copy-status");
  const rotateStatus = liveRegion("rotate-status");

  async function copy(text, label) {
    try {
      if (!navigator.clipboard) throw new Error("no clipboard");
      await navigator.clipboard.writeText(text);
      say(copyStatus, `Copied ${label} to the clipboard.`);
    } catch {
      say(copyStatus, `Could not copy the ${label}. Reveal it and copy it by hand.`);
    }
  }

  const endpointRest = h("code", { id: "endpoint-rest" });
  const endpointGrpc = h("code", { id: "endpoint-grpc" });
  const apiKey = h("code", { id: "api-key", class: "secret" });
  const readOnlyApiKey = h("code", { id: "read-only-api-key", class: "secret" });
  const reveal = h(
    "button",
    { type: "button", id: "reveal-keys", class: "button secondary", "aria-pressed": "false" },
    "Reveal keys",
  );

  function showValues() {
    const endpoint = credentials.endpoint || {};
    endpointRest.textContent = endpoint.rest || "—";
    endpointGrpc.textContent = endpoint.grpc || "—";
    for (const [element, value, label] of [
      [apiKey, credentials.apiKey, "API key"],
      [readOnlyApiKey, credentials.readOnlyApiKey, "read-only API key"],
    ]) {
      element.textContent = revealed ? value || "—" : MASK;
      element.dataset.masked = String(!revealed);
      if (revealed) element.removeAttribute("aria-label");
      else element.setAttribute("aria-label", `${label} hidden`);
    }
    reveal.textContent = revealed ? "Hide keys" : "Reveal keys";
    reveal.setAttribute("aria-pressed", String(revealed));
  }

  reveal.addEventListener("click", () => {
    revealed = !revealed;
    showValues();
  });

  const copyButton = (id, label, value) =>
    h(
      "button",
      { type: "button", id, class: "button secondary small", "aria-label": `Copy ${label}`, onclick: () => copy(value(), label) },
      "Copy",
    );

  const row = (label, valueElement, button) =>
    h("div", { class: "credential-row" }, h("dt", {}, label), h("dd", {}, valueElement, button));

  ctx.main.append(
    h(
      "section",
      { class: "card stack", "aria-labelledby": "endpoints-heading" },
      h("h2", { id: "endpoints-heading" }, "Endpoints"),
      h(
        "dl",
        { class: "credentials" },
        row("REST", endpointRest, copyButton("copy-rest", "REST endpoint", () => (credentials.endpoint || {}).rest || "")),
        row("gRPC", endpointGrpc, copyButton("copy-grpc", "gRPC endpoint", () => (credentials.endpoint || {}).grpc || "")),
      ),
    ),
    h(
      "section",
      { class: "card stack", "aria-labelledby": "keys-heading" },
      h("h2", { id: "keys-heading" }, "API keys"),
      h("p", { class: "hint" }, "Send the key in the api-key header. The read-only key can search but not write."),
      h(
        "dl",
        { class: "credentials" },
        row("API key", apiKey, copyButton("copy-api-key", "API key", () => credentials.apiKey || "")),
        row(
          "Read-only API key",
          readOnlyApiKey,
          copyButton("copy-read-only-api-key", "read-only API key", () => credentials.readOnlyApiKey || ""),
        ),
      ),
      h("div", { class: "actions" }, reveal),
      copyStatus,
    ),
    rotateSection(),
  );
  showValues();

  function rotateSection() {
    const rotate = h("button", { type: "button", id: "rotate-keys", class: "button danger" }, "Rotate keys");
    const cancel = h(
      "button",
      { type: "submit", value: "cancel", id: "cancel-rotate", class: "button secondary", autofocus: true },
      "Cancel",
    );
    const confirm = h(
      "button",
      { type: "submit", value: "confirm", id: "confirm-rotate", class: "button danger" },
      "Rotate keys",
    );
    const dialog = h(
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

    rotate.addEventListener("click", () => {
      dialog.returnValue = "";
      dialog.showModal();
    });
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "confirm") {
        rotate.focus();
        return;
      }
      rotate.disabled = true;
      rotate.textContent = "Rotating…";
      say(error, "");
      say(rotateStatus, "Rotating keys…");
      try {
        credentials = await ctx.api.credentialsRotate(client, name);
        if (!ctx.isCurrent()) return;
        revealed = true;
        showValues();
        say(copyStatus, "");
        say(rotateStatus, "Keys rotated. The new keys are shown above; update every application that used the old ones.");
      } catch (failure) {
        say(rotateStatus, "");
        showError(ctx, error, failure);
      } finally {
        if (ctx.isCurrent()) {
          rotate.disabled = false;
          rotate.textContent = "Rotate keys";
          rotate.focus();
        }
      }
    });

    return h(
      "section",
      { class: "card stack", "aria-labelledby": "rotate-heading" },
      h("h2", { id: "rotate-heading" }, "Rotate keys"),
      h("p", { class: "hint" }, "Make new keys when the current ones may have leaked."),
      h("div", { class: "actions" }, rotate),
      rotateStatus,
      dialog,
    );
  }
}
