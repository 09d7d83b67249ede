// The configure forms of the cluster page: replicas, version, storage.
//
// Each form is {element, button, field, changes(), update(cluster, {keepInput}), fieldError(text)} and may
// add confirm(changes) -> Promise<changes|null> (asks before a risky change) and extra
// actions [{button, label, done, send(api, client, name) -> Promise<cluster>}]. changes()
// returns what to save, or null after saying why the input cannot be saved.

import { h, liveRegion, markInvalid, replaceChildren, say } from "../dom.js";
import { confirmDialog, storageSummary } from "./common.js";

function fieldError(input, region, text) {
  say(region, text);
  markInvalid(input, Boolean(text));
}

function numberInput(id, { min, max, value, describedBy }) {
  return h("input", {
    id,
    name: id,
    type: "number",
    inputmode: "numeric",
    min,
    max,
    step: 1,
    required: true,
    value,
    "aria-describedby": describedBy,
  });
}

function replicasProblem(raw, minimum, maximum) {
  if (!/^\d+$/.test(raw)) return "Enter a whole number of replicas.";
  const value = Number(raw);
  return value < minimum || value > maximum ? `Between ${minimum} and ${maximum}.` : "";
}

function scaleDownText(from, to) {
  const removed = from - to;
  return [
    `Scaling down from ${from} replicas to ${to} removes ${removed === 1 ? "1 Qdrant peer" : `${removed} Qdrant peers`}, the highest-numbered ${removed === 1 ? "pod" : "pods"}.`,
    "Qdrant does not move shards off a peer that disappears: a shard whose only copy is on a removed peer is lost, with its data.",
    "Nor does it forget the peer: until it is removed from the cluster (DELETE /cluster/peer/{peer_id}, once it holds no shard), it still votes, and without a majority of its peers up Qdrant makes no cluster-wide change (creating or deleting a collection, moving a shard).",
    "Go ahead after moving or replicating the shards off the peers that go (or if every collection keeps a copy of each shard on the remaining peers) and removing those peers.",
  ];
}

export function scaleForm(cluster) {
  const { replicasMin: minimum, replicasMax: maximum } = cluster;
  let current = cluster.replicas;
  const input = numberInput("replicas", {
    min: minimum,
    max: maximum,
    value: cluster.replicas,
    describedBy: "replicas-hint replicas-error",
  });
  const error = liveRegion("replicas-error", { assertive: true, className: "error field-error" });
  const button = h("button", { type: "submit", id: "save-replicas", class: "button primary" }, "Save");
  const dialog = confirmDialog({
    id: "scale-down-dialog",
    title: "Scale down?",
    confirmLabel: "Scale down",
    cancelLabel: "Keep the replicas",
    confirmId: "confirm-scale-down",
    cancelId: "cancel-scale-down",
  });
  const element = h(
    "form",
    { id: "scale-form", class: "inline-form", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: "replicas" }, "Replicas"),
      h("div", { class: "control-row" }, input, button),
      h("p", { id: "replicas-hint", class: "hint" }, `Between ${minimum} and ${maximum}. Scaling down asks first.`),
      error,
    ),
    dialog.element,
  );
  const showError = (text) => fieldError(input, error, text);
  function changes() {
    const raw = input.value.trim();
    const problem = replicasProblem(raw, minimum, maximum);
    showError(problem);
    if (!problem) return { replicas: Number(raw) };
    input.focus();
    return null;
  }
  async function confirm(wanted) {
    if (wanted.replicas >= current) return wanted;
    const confirmed = await dialog.ask(scaleDownText(current, wanted.replicas));
    if (!confirmed) input.focus();
    return confirmed ? { ...wanted, confirm: true } : null;
  }
  // keepInput: the cluster was read again while the user's number waits to be saved.
  const update = (saved, { keepInput = false } = {}) => {
    current = saved.replicas;
    if (!keepInput) input.value = String(saved.replicas);
  };
  return { element, button, field: "replicas", changes, confirm, update, fieldError: showError };
}

function versionHint(cluster) {
  const versions = cluster.allowedVersions || [];
  if (versions.length <= 1) return `No newer version is offered for ${cluster.version}.`;
  return "Upgrades only, one minor version at a time: Qdrant supports no downgrade and no skipped minor version.";
}

export function versionForm(cluster) {
  const select = h("select", { id: "version", name: "version", "aria-describedby": "version-hint version-error" });
  const hint = h("p", { id: "version-hint", class: "hint" });
  const error = liveRegion("version-error", { assertive: true, className: "error field-error" });
  const button = h("button", { type: "submit", id: "save-version", class: "button primary" }, "Change version");
  const element = h(
    "form",
    { id: "version-form", class: "inline-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "version" }, "Qdrant version"), h("div", { class: "control-row" }, select, button), hint, error),
  );
  const showError = (text) => fieldError(select, error, text);
  function changes() {
    showError("");
    return { version: select.value };
  }
  function update(saved) {
    // The cluster's own version first, then where it may go: exactly what the API accepts.
    const versions = (saved.allowedVersions || [saved.version]).map(String);
    replaceChildren(select, versions.map((version) => h("option", { value: version, selected: version === saved.version }, version)));
    select.value = saved.version;
    hint.textContent = versionHint(saved);
    const locked = versions.length <= 1;
    select.disabled = button.disabled = locked;
    button.dataset.locked = String(locked);
  }
  update(cluster);
  return { element, button, field: "version", changes, update, fieldError: showError };
}

function storageProblem(raw, minimum, maximum) {
  if (!/^\d+$/.test(raw)) return "Enter a whole number of GiB.";
  const value = Number(raw);
  if (value < minimum) return `Storage only grows: at least ${minimum} GiB.`;
  return value > maximum ? `At most ${maximum} GiB.` : "";
}

function storageElement({ input, error, request, button, cancel }) {
  const hint = "Grows only. An operator expands the volumes; until then the cluster keeps its current size.";
  return h(
    "form",
    { id: "storage-form", class: "inline-form", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: "storage-gi" }, "Storage (GiB)"),
      h("div", { class: "control-row" }, input, button),
      h("p", { id: "storage-hint", class: "hint" }, hint),
      error,
      h("div", { class: "actions" }, request, cancel),
    ),
  );
}

export function storageForm(cluster) {
  let current = cluster;
  const input = numberInput("storage-gi", {
    min: cluster.storageGi,
    max: cluster.storageGiMax,
    value: cluster.storageGi,
    describedBy: "storage-hint storage-error storage-request",
  });
  const error = liveRegion("storage-error", { assertive: true, className: "error field-error" });
  // The request's standing state, not an announcement: the save's status says it once already.
  const request = h("p", { id: "storage-request", class: "notice" });
  const cancel = h("button", { type: "button", id: "cancel-storage-request", class: "button secondary", hidden: true }, "Cancel request");
  const button = h("button", { type: "submit", id: "save-storage", class: "button primary" }, "Request storage");
  const element = storageElement({ input, error, request, button, cancel });
  const showError = (text) => fieldError(input, error, text);
  function changes() {
    const raw = input.value.trim();
    const problem = storageProblem(raw, current.storageGi, current.storageGiMax);
    showError(problem);
    if (!problem) return { storageGi: Number(raw) };
    input.focus();
    return null;
  }
  function update(saved) {
    current = saved;
    const waiting = saved.storage && saved.storage.state === "waiting_for_operator";
    say(request, waiting ? `Storage ${storageSummary(saved)}.` : "");
    cancel.hidden = !waiting;
    input.min = String(saved.storageGi);
    input.value = String(waiting ? saved.storage.requestedGi : saved.storageGi);
  }
  update(cluster);
  const actions = [
    {
      button: cancel,
      label: "Cancelling…",
      done: "Storage request cancelled.",
      send: (api, client, name) => api.storageRequestCancel(client, name),
    },
  ];
  return { element, button, field: "storageGi", changes, update, fieldError: showError, actions };
}
