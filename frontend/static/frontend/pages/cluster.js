// #/clients/{client}/clusters/{cluster}: summary, deployment (as Argo CD reports it), scale
// replicas, change version, ask for storage, history.
//
// Each part of the page is built by one function that returns its element and what the
// save controller needs to update it; the controller owns the cluster once it is saved.
// The forms themselves are in cluster-forms.js, the deployment card in cluster-deployment.js.
// What a save did is said right below the form that saved, and cleared by the next action.

import { h, liveRegion, replaceChildren, say, shortCommit, timeElement } from "../dom.js";
import { deploymentSection } from "./cluster-deployment.js";
import { scaleForm, storageForm, versionForm } from "./cluster-forms.js";
import { clientPermissions, clusterHref, commitCode, deliveryBadge, pageFrame, pageLoad, storageSummary } from "./common.js";
import { olderPages } from "./older-pages.js";

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
  const loaded = await pageLoad(ctx, { status, error }, "Loading cluster…", async (options) => {
    const [cluster, permissions] = await Promise.all([
      ctx.api.cluster(client, name, options),
      ctx.api.permissions(options),
    ]);
    return { cluster, may: clientPermissions(permissions, client) };
  });
  if (loaded === undefined) return;

  // What the member's role allows is shown, not found out by a refused save.
  const { cluster, may } = loaded;
  const summary = summarySection(client, name, cluster, may.includes("credentials"));
  const forms = may.includes("configure") ? [scaleForm(cluster), versionForm(cluster), storageForm(cluster)] : [];
  const configure = forms.length ? configureSection(forms) : readOnlyNotice(client);
  const history = historySection(ctx, client, name);
  // Decommissioned while open (a save or the deployment poll answers 404): the page shows what a
  // fresh load would, the reason alone, not a live cluster with its forms and credentials link.
  const sections = () => [summary, deployment, configure, history].filter(Boolean).map((part) => part.element);
  const gone = (failure) => {
    if (!ctx.isCurrent()) return;
    for (const element of sections()) element.remove();
    say(error, ctx.errorMessage(failure));
  };
  const deployment = deploymentSection(ctx, client, name, cluster, { onGone: gone }); // null without Argo CD
  ctx.main.append(...sections());
  saveController(ctx, { cluster, summary, forms, configure, history, deployment, gone });
  if (deployment) deployment.follow(cluster);
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

function rotationSummary(client, name, cluster) {
  const rotation = cluster.rotation;
  if (!rotation) return "No rotation in progress";
  return [
    "In progress: the new and the previous API key both work until ",
    timeElement(rotation.finishesAt),
    ". ",
    h("a", { href: clusterHref(client, name, "/credentials") }, "Finish it on the credentials page"),
  ];
}

function summaryItems(client, name, cluster) {
  const endpoint = cluster.endpoint || {};
  const item = (label, id, value) => [h("dt", {}, label), h("dd", { id }, value)];
  return [
    item("Replicas", "summary-replicas", String(cluster.replicas)),
    item("Version", "summary-version", cluster.version || "—"),
    item("Storage", "summary-storage", storageSummary(cluster)),
    item("Key rotation", "summary-rotation", rotationSummary(client, name, cluster)),
    item("REST endpoint", "endpoint-rest", h("code", {}, endpoint.rest || "—")),
    item("gRPC endpoint", "endpoint-grpc", h("code", {}, endpoint.grpc || "—")),
    item("Last change", "summary-revision", revisionSummary(cluster.revision)),
  ];
}

/** The overview card: {element, update(cluster)}; the credentials link for those who may read them. */
function summarySection(client, name, cluster, credentials) {
  const list = h("dl", { id: "cluster-summary", class: "summary" }, summaryItems(client, name, cluster));
  const element = h(
    "section",
    { class: "card", "aria-labelledby": "summary-heading" },
    h("h2", { id: "summary-heading" }, "Overview"),
    list,
    credentials
      ? h(
          "p",
          {},
          h("a", { id: "credentials-link", href: clusterHref(client, name, "/credentials") }, "Connection credentials"),
        )
      : null,
  );
  return { element, update: (saved) => replaceChildren(list, summaryItems(client, name, saved)) };
}

// --- configure ----------------------------------------------------------------------

/** In place of the forms, for a role that may only view: {element}. */
function readOnlyNotice(client) {
  const element = h(
    "section",
    { id: "configure-readonly", class: "card", "aria-labelledby": "configure-heading" },
    h("h2", { id: "configure-heading" }, "Configure"),
    h(
      "p",
      {},
      `Your role on ${client} may view this cluster but not change it: an admin of ${client} can change your role.`,
    ),
  );
  return { element };
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
    delete commit.dataset.commit;
  };
  const setMessage = (text) => {
    message.textContent = text || "";
  };
  return { element, show, hide, setMessage };
}

/**
 * The configure card: {element, status, error, revision, place(form), clear()}. What a save did
 * (status, error, commit) sits in one block that place(form) moves right below that form.
 */
function configureSection(forms) {
  const status = liveRegion("save-status");
  const error = liveRegion("save-error", { assertive: true, className: "error" });
  const revision = revisionBox();
  const feedback = h("div", { id: "save-feedback", class: "save-feedback" }, status, error, revision.element);
  const element = h(
    "section",
    { class: "card stack", "aria-labelledby": "configure-heading" },
    h("h2", { id: "configure-heading" }, "Configure"),
    forms.map((form) => form.element),
    feedback,
  );
  const place = (form) => {
    if (feedback.previousElementSibling !== form.element) form.element.after(feedback);
  };
  const clear = () => {
    say(status, "");
    say(error, "");
    revision.hide();
  };
  return { element, status, error, revision, place, clear };
}

// --- history -------------------------------------------------------------------------

/** "replicas: 2 → 3"; a field a change set for the first time reads "replicas: 1", one it
 * cleared "version: v1.15 → none". */
export function changesText(changes) {
  if (!changes || typeof changes !== "object") return "";
  const pair = ([before, after]) => (before === null ? String(after) : `${before} → ${after === null ? "none" : after}`);
  return Object.entries(changes)
    .map(([field, value]) => `${field}: ${Array.isArray(value) && value.length === 2 ? pair(value) : value}`)
    .join(", ");
}

/** "personal access token #3 “ci” from 203.0.113.5": how the author asked ("" when not recorded). */
export function sourceText(entry) {
  const from = entry.ip ? `from ${entry.ip}` : "";
  return [entry.via || "", from].filter(Boolean).join(" ");
}

function historyRow(entry) {
  const source = sourceText(entry);
  return h(
    "tr",
    { "data-testid": "history-row", dataset: { commit: entry.commit || "" } },
    h("td", { "data-label": "When" }, timeElement(entry.at)),
    h("td", { "data-label": "Author" }, entry.author || "—", source ? h("span", { class: "changes change-source" }, source) : ""),
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

const HISTORY_PAGE_SIZE = 100; // the API's page

/** The history card: {element, load()}; load() resolves to the newest entries ([] on failure);
 * "Show older" pages back (older-pages.js). */
function historySection(ctx, client, name) {
  const status = liveRegion("history-status");
  const body = h("div", { id: "history" });
  const heading = h("h2", { id: "history-heading", tabindex: "-1" }, "History");
  const pages = olderPages(ctx, {
    id: "history-more",
    list: body,
    heading,
    status,
    pageSize: HISTORY_PAGE_SIZE,
    words: { loading: "Loading history…", one: "change", many: "changes" },
    read: (before, options) => ctx.api.clusterHistory(client, name, before, options),
    show(entries, older) {
      const rows = body.querySelector("tbody");
      if (older && rows) rows.append(...entries.map(historyRow));
      else if (entries.length) replaceChildren(body, historyTable(client, name, entries));
      else replaceChildren(body, h("p", { id: "history-empty", class: "empty" }, "No changes yet."));
    },
    failed: (message) => replaceChildren(body, h("p", { class: "error", role: "alert" }, message)),
  });
  const element = h("section", { class: "card", "aria-labelledby": "history-heading" }, heading, status, body, pages.more);
  return { element, load: pages.load };
}

// --- saving --------------------------------------------------------------------------

function sameCommit(a, b) {
  if (!a || !b) return false;
  return a.startsWith(b) || b.startsWith(a);
}

/**
 * Disables every button of every form and marks `button`'s form busy; returns the function that
 * undoes it. A button its form has locked (data-locked, e.g. no newer version) stays disabled.
 */
function markSaving(forms, form, button, label) {
  const buttons = forms.flatMap((each) => [each.button, ...(each.actions || []).map((action) => action.button)]);
  const before = button.textContent;
  // A disabled button loses the focus to the page: it comes back once the save is over, so a
  // keyboard user goes on from where they were (unless something else took it meanwhile).
  const focused = document.activeElement;
  for (const each of buttons) each.disabled = true;
  button.textContent = label;
  form.element.setAttribute("aria-busy", "true");
  return () => {
    for (const each of buttons) each.disabled = each.dataset.locked === "true";
    button.textContent = before;
    form.element.removeAttribute("aria-busy");
    const lost = !document.activeElement || document.activeElement === document.body;
    // A button the save hid (Cancel request, once cancelled) hands the focus to its form's field.
    const target = focused && focused.hidden ? form.element.querySelector("input, select") : focused;
    if (lost && buttons.includes(focused) && !focused.disabled && target) target.focus();
  };
}

function savedText(revision) {
  const commit = shortCommit(revision.commit);
  return revision.pushed === false
    ? `Committed ${commit}, but not pushed yet: the git remote could not be reached. The change is kept and will be delivered later.`
    : `Saved. Commit ${commit} was pushed.`;
}

/** What a save did, in words: the commit it made, and what now waits for an operator. */
function outcomeText(saved, { previousCommit, asked, done }) {
  const texts = [];
  const revision = saved.revision;
  if (revision && revision.commit !== previousCommit) texts.push(savedText(revision));
  if (asked.storageGi !== undefined && saved.storage && saved.storage.state === "waiting_for_operator") {
    texts.push(`Storage ${storageSummary(saved)}: the cluster keeps ${saved.storageGi} Gi until then.`);
  }
  if (done) texts.push(done);
  return texts.length ? texts.join(" ") : "Nothing to change: the cluster already has these settings.";
}

/** Shows the commit a save made (if any) and what it did, then reloads the history. */
async function showOutcome(ctx, { configure, history }, saved, context) {
  const revision = saved.revision;
  const committed = revision && revision.commit !== context.previousCommit;
  if (committed) configure.revision.show(revision, revision.pushed === false);
  else configure.revision.hide();
  say(configure.status, outcomeText(saved, context));
  const entries = await history.load();
  if (committed && !revision.message && ctx.isCurrent()) {
    const entry = entries.find((each) => sameCommit(each.commit, revision.commit));
    if (entry) configure.revision.setMessage(entry.message);
  }
}

/** Puts field errors next to their field; the rest goes to the save error region. */
function showSaveFailure(ctx, { forms, configure }, failure) {
  configure.clear(); // no success of an earlier save stays next to an error
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

/** Shows `fresh` in every part of the page; the `editing` form's input keeps what the user typed. */
function clusterShow(saver, fresh, editing = null) {
  const { parts } = saver;
  saver.cluster = { ...saver.cluster, ...fresh };
  parts.summary.update(saver.cluster);
  for (const each of parts.forms) each.update(saver.cluster, { keepInput: each === editing });
  if (parts.deployment) parts.deployment.follow(saver.cluster);
}

/**
 * Sends one request with the forms busy and shows what it did. Returns true when the server
 * asked for a confirmation and `context.staleAsks` says that means the page is out of date.
 */
async function saveRun(saver, form, button, label, send, context) {
  const { ctx, parts } = saver;
  if (saver.busy) return false;
  saver.busy = true;
  let stale = false;
  const previousCommit = saver.cluster.revision && saver.cluster.revision.commit;
  const restore = markSaving(parts.forms, form, button, label);
  parts.configure.place(form);
  parts.configure.clear();
  say(parts.configure.status, label);
  try {
    saver.sending = true;
    const data = await send();
    saver.sending = false;
    if (!ctx.isCurrent()) return false;
    clusterShow(saver, data);
    await showOutcome(ctx, parts, saver.cluster, { previousCommit, ...context });
  } catch (failure) {
    if (context.staleAsks && failure.code === "confirmation_required") stale = true;
    else if (failure.status === 404) await notFoundShow(saver, failure);
    else if (ctx.isCurrent()) showSaveFailure(ctx, parts, failure);
  } finally {
    saver.busy = saver.sending = false;
    if (ctx.isCurrent()) restore();
  }
  return stale && ctx.isCurrent();
}

/**
 * A 404 may be the cluster's (decommissioned meanwhile: the page shows the reason alone) or a
 * part's (a storage request an operator resolved meanwhile): reading the cluster tells which,
 * and shows it as it is now beside the refusal.
 */
async function notFoundShow(saver, failure) {
  const { ctx, parts } = saver;
  try {
    const fresh = await ctx.api.cluster(saver.client, saver.name, { signal: ctx.signal });
    if (!ctx.isCurrent()) return;
    clusterShow(saver, fresh);
  } catch (again) {
    if (again.status === 404) return parts.gone(again);
  }
  if (ctx.isCurrent()) showSaveFailure(ctx, parts, failure);
}

/** Asks before a risky change (a scale-down), then saves the form; true when the page was out of date. */
async function formSubmit(saver, form, { reread = false } = {}) {
  let changes = form.changes();
  if (changes && form.confirm) changes = await form.confirm(changes);
  if (!changes) return false;
  const send = async () => (await saver.ctx.api.clusterUpdate(saver.client, saver.name, changes)).data;
  return saveRun(saver, form, form.button, "Saving…", send, { asked: changes, staleAsks: !reread && Boolean(form.confirm) });
}

/**
 * The server asked for a confirmation the page did not ask for: the cluster was changed
 * elsewhere (scaled 2 → 5 while this page, loaded at 2, sends 3). Reads it again, shows it as
 * it is now, and submits once more, so that the scale-down is asked about like any other.
 */
async function rereadThenSubmit(saver, form) {
  const { ctx, parts } = saver;
  // Busy until the form is submitted again: a save started meanwhile would race this one.
  saver.busy = true;
  try {
    const fresh = await ctx.api.cluster(saver.client, saver.name, { signal: ctx.signal });
    if (!ctx.isCurrent()) return;
    clusterShow(saver, fresh, form);
    say(parts.configure.status, `The cluster was changed meanwhile: it now has ${saver.cluster.replicas} replicas.`);
    // The history shows that change too, even when the user now keeps the replicas as they are.
    await parts.history.load();
  } catch (failure) {
    if (failure.status === 404) await notFoundShow(saver, failure);
    else if (ctx.isCurrent()) showSaveFailure(ctx, parts, failure);
    return;
  } finally {
    saver.busy = false;
  }
  if (ctx.isCurrent()) await formSubmit(saver, form, { reread: true });
}

/** Runs the forms' requests one at a time and shows each saved cluster in every part. */
function saveController(ctx, parts) {
  const { client, cluster: name } = ctx.params;
  // busy: a save is under way, from sending to its outcome shown and history read;
  // sending: its request has not been answered yet.
  const saver = { ctx, parts, client, name, cluster: parts.cluster, busy: false, sending: false };
  for (const form of parts.forms) {
    // The next action clears what the last save said: typing, or saving again (not what a
    // save still waiting for its answer says).
    form.element.addEventListener("input", () => {
      if (!saver.sending) parts.configure.clear();
    });
    form.element.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (saver.busy) return;
      parts.configure.place(form);
      parts.configure.clear();
      if (await formSubmit(saver, form)) await rereadThenSubmit(saver, form);
    });
    for (const action of form.actions || []) {
      action.button.addEventListener("click", () =>
        saveRun(saver, form, action.button, action.label, () => action.send(ctx.api, client, name), {
          asked: {},
          done: action.done,
        }),
      );
    }
  }
}
