// #/clients/{client}/clusters/{cluster}/credentials: endpoints, API keys, key rotation.
// The keys are asked for only when the user reveals or copies them: every read of them is on the
// client's audit trail, so opening the page for an endpoint must not count as one. They stay in
// the credentials view's closure and reach the DOM only once revealed.

import { ApiError } from "../api.js";
import { h, liveRegion, replaceChildren, say, timeElement } from "../dom.js";
import { clientPermissions, clusterHref, confirmDialog, copyText, pageFrame, showError, pageLoad } from "./common.js";
import { withReauthentication } from "./reauth.js";

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
  const summary = await pageLoad(ctx, { status, error }, "Loading credentials…", async (options) => {
    const [cluster, permissions] = await Promise.all([
      ctx.api.cluster(client, name, options),
      ctx.api.permissions(options),
    ]);
    if (!clientPermissions(permissions, client).includes("credentials")) {
      throw new ApiError({ status: 403, code: "permission_denied", detail: "Insufficient permissions" });
    }
    return { endpoint: cluster.endpoint, rotation: cluster.rotation, rotationMode: cluster.rotationMode };
  });
  if (summary === undefined) return;

  const fetchKeys = () => ctx.api.credentials(client, name, { signal: ctx.signal });
  const view = credentialsView(ctx, summary, fetchKeys, error);
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
 * shown (without keys until keys() asked for them); replace(credentials) shows new ones, revealed.
 */
function credentialsView(ctx, initial, fetchKeys, error) {
  let credentials = initial;
  let revealed = false;
  let asked = null; // the one request for the keys, shared by Reveal and Copy
  const view = {
    endpointRest: h("code", { id: "endpoint-rest" }),
    endpointGrpc: h("code", { id: "endpoint-grpc" }),
    apiKey: h("code", { id: "api-key", class: "secret" }),
    readOnlyApiKey: h("code", { id: "read-only-api-key", class: "secret" }),
    // Its words say the state: no aria-pressed, which would read "Hide keys, pressed".
    reveal: h("button", { type: "button", id: "reveal-keys", class: "button secondary" }, "Reveal keys"),
    copyStatus: liveRegion("copy-status"),
    current: () => credentials,
    show() {
      const endpoint = credentials.endpoint || {};
      view.endpointRest.textContent = endpoint.rest || "—";
      view.endpointGrpc.textContent = endpoint.grpc || "—";
      secretShow(view.apiKey, credentials.apiKey, "API key", revealed);
      secretShow(view.readOnlyApiKey, credentials.readOnlyApiKey, "read-only API key", revealed);
      view.reveal.textContent = revealed ? "Hide keys" : "Reveal keys";
    },
    replace(next) {
      credentials = next;
      revealed = true;
      view.show();
      say(view.copyStatus, "");
    },
    /** The credentials with their keys, asked of the server (and so audited) the first time. */
    async keys() {
      if (credentials.apiKey !== undefined) return credentials;
      asked = asked || fetchKeys();
      try {
        credentials = await asked;
        say(error, "");
        return credentials;
      } catch (failure) {
        asked = null;
        showError(ctx, error, failure);
        return null;
      }
    },
  };
  view.reveal.addEventListener("click", async () => {
    if (!revealed && !(await view.keys())) return;
    revealed = !revealed;
    view.show();
  });
  return view;
}

/** A "Copy" button for the value `pick(credentials)`; `secret`: a key, asked for first if need be. */
function copyButton(view, id, label, pick, { secret = false } = {}) {
  const copy = async () => {
    const credentials = secret ? await view.keys() : view.current();
    if (!credentials) return;
    copyText(view.copyStatus, pick(credentials) || "", `the ${label}`, "Reveal it and copy it by hand.");
  };
  return h(
    "button",
    { type: "button", id, class: "button secondary small", "aria-label": `Copy ${label}`, onclick: copy },
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
      credentialRow(
        "API key",
        view.apiKey,
        copyButton(view, "copy-api-key", "API key", (c) => c.apiKey, { secret: true }),
      ),
      credentialRow(
        "Read-only API key",
        view.readOnlyApiKey,
        copyButton(view, "copy-read-only-api-key", "read-only API key", (c) => c.readOnlyApiKey, { secret: true }),
      ),
    ),
    h("div", { class: "actions" }, view.reveal),
    view.copyStatus,
  );
}

// --- rotation ------------------------------------------------------------------------

function rotateQuestion(credentials) {
  if (credentials.rotationMode === "two_phase") {
    return [
      "A new API key is added next to the current one: both work until you finish the rotation (or until it finishes by itself after the grace period), so applications can switch without a refused request.",
      "Qdrant has no second read-only key: the read-only key is replaced now, and connections using the old read-only key fail as the pods restart.",
    ];
  }
  return [
    "This cluster's Qdrant version accepts one API key only: the new keys replace the old ones, and every connection using the old keys fails once the pods restart (they restart one at a time when the change is delivered).",
    "Qdrant v1.17.0 and later rotate the API key without refused requests.",
  ];
}

const FINISH_QUESTION = [
  "The new API key becomes the only one. The previous key stops working as the pods restart: every application must use the new key by now.",
];

/** What the rotation card says: the phase in progress, or how a rotation would go. */
function rotationState(credentials) {
  const rotation = credentials.rotation;
  if (rotation) {
    return [
      "Rotation in progress: the new API key (shown above) and the previous one both work until ",
      timeElement(rotation.finishesAt),
      ". Switch every application to the new key, then finish the rotation.",
    ];
  }
  return credentials.rotationMode === "two_phase"
    ? "Make new keys when the current ones may have leaked. The API key rotates in two phases, without refused requests."
    : "Make new keys when the current ones may have leaked. This cluster's Qdrant version takes new keys in one step: connections using the old keys fail once the pods restart.";
}

async function rotationStep(ctx, parts, { button, busyLabel, call, doneText }) {
  const label = button.textContent;
  parts.rotate.disabled = parts.finish.disabled = true;
  button.textContent = busyLabel;
  say(parts.error, "");
  say(parts.status, busyLabel);
  try {
    const { status, data: credentials } = await call(ctx.params.client, ctx.params.cluster);
    if (!ctx.isCurrent()) return;
    parts.view.replace(credentials);
    say(parts.status, status === 202 ? `${doneText(credentials)} ${NOT_PUSHED_TEXT}` : doneText(credentials));
  } catch (failure) {
    say(parts.status, "");
    showError(ctx, parts.error, failure);
  } finally {
    if (ctx.isCurrent()) {
      button.textContent = label;
      parts.refresh();
      (parts.finish.hidden ? parts.rotate : parts.finish).focus();
    }
  }
}

const NOT_PUSHED_TEXT =
  "The git remote has not taken the change yet: the keys reach the cluster once it does (the cluster page shows when).";

/**
 * How the user learns the cluster has restarted with new keys: the cluster page's Deployment
 * card where the portal follows deployments; otherwise no page would ever say it.
 */
export function restartedSign(config) {
  return config.deploymentsFollowed
    ? "Deployment on the cluster page says Deployed"
    : "this portal does not follow deployments: allow a few minutes after the change is delivered, or ask your operators";
}

export function rotatedText(credentials, config) {
  const sign = restartedSign(config);
  return credentials.rotation
    ? `New keys made. The new API key works next to the previous one once the cluster has restarted with it (${sign}): switch your applications to it then, and finish the rotation. The read-only key is replaced at that restart too (Qdrant has no second read-only key).`
    : `Keys rotated. The new keys are shown above and work once the cluster has restarted with them (${sign}); update every application that used the old ones.`;
}

function rotateSection(ctx, view, error) {
  const parts = {
    view,
    error,
    rotate: h("button", { type: "button", id: "rotate-keys", class: "button danger" }, "Rotate keys"),
    finish: h("button", { type: "button", id: "finish-rotation", class: "button primary" }, "Finish rotation"),
    state: h("p", { id: "rotation-state", class: "notice" }),
    status: liveRegion("rotate-status"),
  };
  const ask = { id: "rotate-dialog", title: "Rotate the API keys?", confirmLabel: "Rotate keys" };
  const rotateDialog = confirmDialog({ ...ask, confirmId: "confirm-rotate", cancelId: "cancel-rotate" });
  const finishDialog = confirmDialog({
    id: "finish-dialog",
    title: "Finish the rotation?",
    confirmLabel: "Finish rotation",
    confirmId: "confirm-finish",
    cancelId: "cancel-finish",
  });
  parts.refresh = () => {
    const credentials = view.current();
    replaceChildren(parts.state, rotationState(credentials));
    parts.state.className = credentials.rotation || credentials.rotationMode === "two_phase" ? "notice" : "notice warn";
    parts.finish.hidden = !credentials.rotation;
    parts.rotate.disabled = Boolean(credentials.rotation);
    parts.finish.disabled = false;
  };
  parts.rotate.addEventListener("click", async () => {
    if (!(await rotateDialog.ask(rotateQuestion(view.current())))) return parts.rotate.focus();
    // A sensitive action: after REAUTHENTICATION_WINDOW the user confirms it is them first.
    const call = (client, cluster) => withReauthentication(ctx, () => ctx.api.credentialsRotate(client, cluster));
    const doneText = (credentials) => rotatedText(credentials, ctx.config);
    rotationStep(ctx, parts, { button: parts.rotate, busyLabel: "Rotating…", call, doneText });
  });
  parts.finish.addEventListener("click", async () => {
    if (!(await finishDialog.ask(FINISH_QUESTION))) return parts.finish.focus();
    const call = (client, cluster) =>
      withReauthentication(ctx, () => ctx.api.credentialsRotationFinish(client, cluster));
    const doneText = () =>
      `Rotation finished: once the cluster has restarted (${restartedSign(ctx.config)}), the new API key is the only one.`;
    rotationStep(ctx, parts, { button: parts.finish, busyLabel: "Finishing…", call, doneText });
  });
  parts.refresh();
  return h(
    "section",
    { class: "card stack", "aria-labelledby": "rotate-heading" },
    h("h2", { id: "rotate-heading" }, "Rotate keys"),
    parts.state,
    h("div", { class: "actions" }, parts.rotate, parts.finish),
    parts.status,
    rotateDialog.element,
    finishDialog.element,
  );
}
