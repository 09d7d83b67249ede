// #/clients/{client}/clusters/{cluster}: summary, scale replicas, change version, history.
//
// Each part of the page is built by one function that returns its element and what the
// save controller needs to update it; the controller owns the cluster once it is saved.

import { h, liveRegion, markInvalid, replaceChildren, say, shortCommit, timeElement } from "../dom.js";
import { clusterHref, commitCode, deliveryBadge, pageFrame, pageLoad, storageText } from "./common.js";

export async function render(ctx) {
  const { client, cluster: name } = ctx.params;
  const { status, error } = pageFrame(ctx, {
    title: `${client} / ${name}`,
    crumbs: [
      ["Clusters", "#/clusters"],
      [client, null],
      [name, null],
    ],
  });
  const cluster = await pageLoad(ctx, { status, error }, "Loading cluster…", (options) =>
    ctx.api.cluster(client, name, options),
  );
  if (cluster === undefined) return;

  const summary = summarySection(client, name, cluster);
  const forms = [scaleForm(cluster), versionForm(cluster)];
  const configure = configureSection(forms);
  const history = historySection(ctx, client, name);
  ctx.main.append(summary.element, configure.element, history.element);
  saveController(ctx, { cluster, summary, forms, configure, history });
  await history.load();
}

// --- summary -------------------------------------------------------------------------

function revisionSummary(revision) {
  if (!revision) return "No changes yet";
  return [
    commitCode(revision.commit),
    " ",
    deliveryBadge(revision),
    revision.author ? ` by ${revision.author}` : "",
    revision.committedAt ? [" on ", timeElement(revision.committedAt)] : "",
  ];
}

function summaryItems(cluster) {
  const endpoint = cluster.endpoint || {};
  const item = (label, id, value) => [h("dt", {}, label), h("dd", { id }, value)];
  return [
    item("Replicas", "summary-replicas", String(cluster.replicas)),
    item("Version", "summary-version", cluster.version || "—"),
    item("Storage", "summary-storage", storageText(cluster.storageGi)),
    item("REST endpoint", "endpoint-rest", h("code", {}, endpoint.rest || "—")),
    item("gRPC endpoint", "endpoint-grpc", h("code", {}, endpoint.grpc || "—")),
    item("Last change", "summary-revision", revisionSummary(cluster.revision)),
  ];
}

/** The overview card: {element, update(cluster)}. */
function summarySection(client, name, cluster) {
  const list = h("dl", { id: "cluster-summary", class: "summary" }, summaryItems(cluster));
  const element = h(
    "section",
    { class: "card", "aria-labelledby": "summary-heading" },
    h("h2", { id: "summary-heading" }, "Overview"),
    list,
    h(
      "p",
      {},
      h("a", { id: "credentials-link", href: clusterHref(client, name, "/credentials") }, "Connection credentials"),
    ),
  );
  return { element, update: (saved) => replaceChildren(list, summaryItems(saved)) };
}

// --- configure forms -----------------------------------------------------------------
//
// Each form is {element, button, field, changes(), update(cluster), fieldError(text)}:
// changes() returns what to save, or null after saying why the input cannot be saved.

function fieldError(input, region, text) {
  say(region, text);
  markInvalid(input, Boolean(text));
}

function replicasProblem(raw, minimum, maximum) {
  if (!/^\d+$/.test(raw)) return "Enter a whole number of replicas.";
  const value = Number(raw);
  return value < minimum || value > maximum ? `Between ${minimum} and ${maximum}.` : "";
}

function scaleForm(cluster) {
  const { replicasMin: minimum, replicasMax: maximum } = cluster;
  const input = h("input", {
    id: "replicas",
    name: "replicas",
    type: "number",
    inputmode: "numeric",
    min: minimum,
    max: maximum,
    step: 1,
    required: true,
    value: cluster.replicas,
    "aria-describedby": "replicas-hint replicas-error",
  });
  const error = liveRegion("replicas-error", { assertive: true, className: "error field-error" });
  const button = h("button", { type: "submit", id: "save-replicas", class: "button primary" }, "Save");
  const element = h(
    "form",
    { id: "scale-form", class: "inline-form", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: "replicas" }, "Replicas"),
      input,
      h("p", { id: "replicas-hint", class: "hint" }, `Between ${minimum} and ${maximum}.`),
      error,
    ),
    button,
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
  const update = (saved) => {
    input.value = String(saved.replicas);
  };
  return { element, button, field: "replicas", changes, update, fieldError: showError };
}

function versionOptions(cluster) {
  const versions = cluster.allowedVersions.map(String);
  if (cluster.version && !versions.includes(cluster.version)) versions.unshift(cluster.version);
  return versions.map((version) => h("option", { value: version, selected: version === cluster.version }, version));
}

function versionForm(cluster) {
  const select = h("select", { id: "version", name: "version", "aria-describedby": "version-error" }, versionOptions(cluster));
  const error = liveRegion("version-error", { assertive: true, className: "error field-error" });
  const button = h("button", { type: "submit", id: "save-version", class: "button primary" }, "Change version");
  const element = h(
    "form",
    { id: "version-form", class: "inline-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "version" }, "Qdrant version"), select, error),
    button,
  );
  const showError = (text) => fieldError(select, error, text);
  function changes() {
    showError("");
    return { version: select.value };
  }
  const update = (saved) => {
    select.value = saved.version;
  };
  return { element, button, field: "version", changes, update, fieldError: showError };
}

/** The box showing the commit a save made: {element, show(revision, pending), hide(), setMessage(text)}. */
function revisionBox() {
  const commit = h("code", { id: "revision-commit" });
  const message = h("span", { id: "revision-message" });
  const pushed = h("span", { id: "revision-pushed", class: "badge" });
  const element = h(
    "dl",
    { id: "revision", class: "summary revision", hidden: true },
    [h("dt", {}, "Commit"), h("dd", {}, commit)],
    [h("dt", {}, "Message"), h("dd", {}, message)],
    [h("dt", {}, "Delivery"), h("dd", {}, pushed)],
  );
  function show(revision, pending) {
    commit.textContent = shortCommit(revision.commit);
    commit.title = revision.commit;
    commit.dataset.commit = revision.commit;
    message.textContent = revision.message || "";
    pushed.textContent = pending ? "Pending push" : "Pushed";
    pushed.dataset.pushed = String(!pending);
    pushed.className = pending ? "badge warn" : "badge ok";
    element.hidden = false;
  }
  const hide = () => {
    element.hidden = true;
  };
  const setMessage = (text) => {
    message.textContent = text || "";
  };
  return { element, show, hide, setMessage };
}

/** The configure card: {element, status, error, revision}. */
function configureSection(forms) {
  const status = liveRegion("save-status");
  const error = liveRegion("save-error", { assertive: true, className: "error" });
  const revision = revisionBox();
  const element = h(
    "section",
    { class: "card stack", "aria-labelledby": "configure-heading" },
    h("h2", { id: "configure-heading" }, "Configure"),
    forms.map((form) => form.element),
    status,
    error,
    revision.element,
  );
  return { element, status, error, revision };
}

// --- history -------------------------------------------------------------------------

function changesText(changes) {
  if (!changes || typeof changes !== "object") return "";
  return Object.entries(changes)
    .map(([field, value]) =>
      Array.isArray(value) && value.length === 2 ? `${field}: ${value[0]} → ${value[1]}` : `${field}: ${value}`,
    )
    .join(", ");
}

function historyRow(entry) {
  return h(
    "tr",
    { "data-testid": "history-row", dataset: { commit: entry.commit || "" } },
    h("td", { "data-label": "When" }, timeElement(entry.at)),
    h("td", { "data-label": "Author" }, entry.author || "—"),
    h("td", { "data-label": "Message" }, entry.message || "", h("span", { class: "changes" }, changesText(entry.changes))),
    h("td", { "data-label": "Commit" }, commitCode(entry.commit)),
  );
}

function historyTable(client, name, entries) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "responsive-table" },
      h("caption", { class: "visually-hidden" }, `Changes to ${client} / ${name}`),
      h("thead", {}, h("tr", {}, ["When", "Author", "Message", "Commit"].map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, entries.map(historyRow)),
    ),
  );
}

/** The history card: {element, load()}; load() resolves to the entries shown ([] on failure). */
function historySection(ctx, client, name) {
  const status = liveRegion("history-status");
  const body = h("div", { id: "history" });
  const element = h(
    "section",
    { class: "card", "aria-labelledby": "history-heading" },
    h("h2", { id: "history-heading" }, "History"),
    status,
    body,
  );

  async function load() {
    say(status, "Loading history…");
    body.setAttribute("aria-busy", "true");
    let entries;
    try {
      entries = await ctx.api.clusterHistory(client, name, { signal: ctx.signal });
    } catch (failure) {
      say(status, "");
      const message = ctx.isCurrent() && ctx.errorMessage(failure);
      if (message) replaceChildren(body, h("p", { class: "error", role: "alert" }, message));
      return [];
    } finally {
      body.removeAttribute("aria-busy");
    }
    if (!ctx.isCurrent()) return entries;
    say(status, "");
    replaceChildren(
      body,
      entries.length ? historyTable(client, name, entries) : h("p", { id: "history-empty", class: "empty" }, "No changes yet."),
    );
    return entries;
  }
  return { element, load };
}

// --- saving --------------------------------------------------------------------------

function sameCommit(a, b) {
  if (!a || !b) return false;
  return a.startsWith(b) || b.startsWith(a);
}

/** Disables every save button and marks `form` busy; returns the function that undoes it. */
function markSaving(forms, form) {
  const label = form.button.textContent;
  for (const each of forms) each.button.disabled = true;
  form.button.textContent = "Saving…";
  form.element.setAttribute("aria-busy", "true");
  return () => {
    for (const each of forms) each.button.disabled = false;
    form.button.textContent = label;
    form.element.removeAttribute("aria-busy");
  };
}

function savedText(revision, pending) {
  const commit = shortCommit(revision.commit);
  return pending
    ? `Committed ${commit}, but not pushed yet: the git remote could not be reached. The change is kept and will be delivered later.`
    : `Saved. Commit ${commit} was pushed.`;
}

/** Shows the commit a save made (or that it made none), then reloads the history. */
async function showRevision(ctx, { configure, history }, revision, { httpStatus, previousCommit }) {
  if (!revision || revision.commit === previousCommit) {
    configure.revision.hide();
    say(configure.status, "Nothing to change: the cluster already has these settings.");
    return;
  }
  const pending = httpStatus === 202 || revision.pushed === false;
  configure.revision.show(revision, pending);
  say(configure.status, savedText(revision, pending));
  const entries = await history.load();
  if (!revision.message && ctx.isCurrent()) {
    const entry = entries.find((each) => sameCommit(each.commit, revision.commit));
    if (entry) configure.revision.setMessage(entry.message);
  }
}

/** Puts field errors next to their field; the rest goes to the save error region. */
function showSaveFailure(ctx, { forms, configure }, failure) {
  say(configure.status, "");
  const fields = failure.fields || {};
  const unplaced = [];
  for (const [field, messages] of Object.entries(fields)) {
    const text = [].concat(messages).join(" ");
    const form = forms.find((each) => each.field === field);
    if (form) form.fieldError(text);
    else unplaced.push(text);
  }
  if (!Object.keys(fields).length || unplaced.length) {
    const message = ctx.errorMessage(failure);
    if (message) say(configure.error, [message, ...unplaced].join(" "));
  }
}

/** Submits the forms one save at a time and shows each saved cluster in every part. */
function saveController(ctx, parts) {
  const { client, cluster: name } = ctx.params;
  let cluster = parts.cluster;
  let saving = false;

  async function save(changes, form) {
    if (saving) return;
    saving = true;
    const previousCommit = cluster.revision && cluster.revision.commit;
    const restore = markSaving(parts.forms, form);
    say(parts.configure.error, "");
    say(parts.configure.status, "Saving…");
    try {
      const { status: httpStatus, data } = await ctx.api.clusterUpdate(client, name, changes);
      if (!ctx.isCurrent()) return;
      cluster = { ...cluster, ...data };
      parts.summary.update(cluster);
      for (const each of parts.forms) each.update(cluster);
      await showRevision(ctx, parts, cluster.revision, { httpStatus, previousCommit });
    } catch (failure) {
      if (ctx.isCurrent()) showSaveFailure(ctx, parts, failure);
    } finally {
      saving = false;
      if (ctx.isCurrent()) restore();
    }
  }

  for (const form of parts.forms) {
    form.element.addEventListener("submit", (event) => {
      event.preventDefault();
      const changes = form.changes();
      if (changes) save(changes, form);
    });
  }
}
