// #/clients/{client}/clusters/{cluster}: summary, scale replicas, change version, history.

import { h, liveRegion, replaceChildren, say, shortCommit, timeElement } from "../dom.js";
import { clusterHref, commitCode, deliveryBadge, pageFrame, pageLoad } from "./common.js";

const DEFAULT_REPLICAS_MIN = 1;

function firstInteger(...values) {
  return values.find((value) => Number.isInteger(value)) ?? null;
}

function changesText(changes) {
  if (!changes || typeof changes !== "object") return "";
  return Object.entries(changes)
    .map(([field, value]) =>
      Array.isArray(value) && value.length === 2 ? `${field}: ${value[0]} → ${value[1]}` : `${field}: ${value}`,
    )
    .join(", ");
}

function sameCommit(a, b) {
  if (!a || !b) return false;
  return a.startsWith(b) || b.startsWith(a);
}

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
  let cluster = await pageLoad(ctx, { status, error }, "Loading cluster…", (options) =>
    ctx.api.cluster(client, name, options),
  );
  if (cluster === undefined) return;

  // --- summary -----------------------------------------------------------------------
  const summary = h("dl", { id: "cluster-summary", class: "summary" });
  function renderSummary() {
    const endpoint = cluster.endpoint || {};
    const revision = cluster.revision;
    const item = (label, id, value) => [h("dt", {}, label), h("dd", { id }, value)];
    replaceChildren(
      summary,
      item("Replicas", "summary-replicas", String(cluster.replicas)),
      item("Version", "summary-version", cluster.version || "—"),
      item(
        "Storage",
        "summary-storage",
        cluster.storageGi === null || cluster.storageGi === undefined ? "—" : `${cluster.storageGi} Gi`,
      ),
      item("REST endpoint", "endpoint-rest", h("code", {}, endpoint.rest || "—")),
      item("gRPC endpoint", "endpoint-grpc", h("code", {}, endpoint.grpc || "—")),
      item(
        "Last change",
        "summary-revision",
        revision
          ? [
              commitCode(revision.commit),
              " ",
              deliveryBadge(revision),
              revision.author ? ` by ${revision.author}` : "",
              revision.committedAt ? [" on ", timeElement(revision.committedAt)] : "",
            ]
          : "No changes yet",
      ),
    );
  }
  renderSummary();

  ctx.main.append(
    h(
      "section",
      { class: "card", "aria-labelledby": "summary-heading" },
      h("h2", { id: "summary-heading" }, "Overview"),
      summary,
      h(
        "p",
        {},
        h("a", { id: "credentials-link", href: clusterHref(client, name, "/credentials") }, "Connection credentials"),
      ),
    ),
  );

  // --- scale and version forms ---------------------------------------------------------
  const minimum = firstInteger(cluster.replicasMin, ctx.config.replicasMin, DEFAULT_REPLICAS_MIN);
  const maximum = firstInteger(cluster.replicasMax, ctx.config.replicasMax);
  const rangeText =
    maximum === null ? `At least ${minimum}.` : `Between ${minimum} and ${maximum}.`;

  const replicas = h("input", {
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
  const replicasError = liveRegion("replicas-error", { assertive: true, className: "error field-error" });
  const saveReplicas = h("button", { type: "submit", id: "save-replicas", class: "button primary" }, "Save");
  const scaleForm = h(
    "form",
    { id: "scale-form", class: "inline-form", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: "replicas" }, "Replicas"),
      replicas,
      h("p", { id: "replicas-hint", class: "hint" }, rangeText),
      replicasError,
    ),
    saveReplicas,
  );

  const allowedVersions = Array.isArray(cluster.allowedVersions) ? cluster.allowedVersions.map(String) : null;
  let versionSelect = null;
  let saveVersion = null;
  let versionForm;
  const versionError = liveRegion("version-error", { assertive: true, className: "error field-error" });
  if (allowedVersions && allowedVersions.length) {
    const options = [...allowedVersions];
    if (cluster.version && !options.includes(cluster.version)) options.unshift(cluster.version);
    versionSelect = h(
      "select",
      { id: "version", name: "version", "aria-describedby": "version-error" },
      options.map((version) => h("option", { value: version, selected: version === cluster.version }, version)),
    );
    saveVersion = h("button", { type: "submit", id: "save-version", class: "button primary" }, "Change version");
    versionForm = h(
      "form",
      { id: "version-form", class: "inline-form", novalidate: true },
      h("div", { class: "field" }, h("label", { for: "version" }, "Qdrant version"), versionSelect, versionError),
      saveVersion,
    );
  } else {
    versionForm = h(
      "div",
      { class: "field" },
      h("span", { class: "label" }, "Qdrant version"),
      h("p", { id: "version-readonly" }, cluster.version || "—"),
    );
  }

  const saveStatus = liveRegion("save-status");
  const saveError = liveRegion("save-error", { assertive: true, className: "error" });
  const revisionCommit = h("code", { id: "revision-commit" });
  const revisionMessage = h("span", { id: "revision-message" });
  const revisionPushed = h("span", { id: "revision-pushed", class: "badge" });
  const revisionBox = h(
    "dl",
    { id: "revision", class: "summary revision", hidden: true },
    h("dt", {}, "Commit"),
    h("dd", {}, revisionCommit),
    h("dt", {}, "Message"),
    h("dd", {}, revisionMessage),
    h("dt", {}, "Delivery"),
    h("dd", {}, revisionPushed),
  );

  ctx.main.append(
    h(
      "section",
      { class: "card stack", "aria-labelledby": "configure-heading" },
      h("h2", { id: "configure-heading" }, "Configure"),
      scaleForm,
      versionForm,
      saveStatus,
      saveError,
      revisionBox,
    ),
  );

  // --- history -------------------------------------------------------------------------
  const historyStatus = liveRegion("history-status");
  const historyBody = h("div", { id: "history" });
  ctx.main.append(
    h(
      "section",
      { class: "card", "aria-labelledby": "history-heading" },
      h("h2", { id: "history-heading" }, "History"),
      historyStatus,
      historyBody,
    ),
  );

  async function loadHistory() {
    say(historyStatus, "Loading history…");
    historyBody.setAttribute("aria-busy", "true");
    let entries;
    try {
      entries = await ctx.api.clusterHistory(client, name, { signal: ctx.signal });
    } catch (failure) {
      say(historyStatus, "");
      if (ctx.isCurrent()) {
        const message = ctx.errorMessage(failure);
        if (message) replaceChildren(historyBody, h("p", { class: "error", role: "alert" }, message));
      }
      return [];
    } finally {
      historyBody.removeAttribute("aria-busy");
    }
    if (!ctx.isCurrent()) return entries;
    say(historyStatus, "");
    if (!entries.length) {
      replaceChildren(historyBody, h("p", { id: "history-empty", class: "empty" }, "No changes yet."));
      return entries;
    }
    const rows = entries.map((entry) =>
      h(
        "tr",
        { "data-testid": "history-row", dataset: { commit: entry.commit || "" } },
        h("td", { "data-label": "When" }, timeElement(entry.at)),
        h("td", { "data-label": "Author" }, entry.author || "—"),
        h("td", { "data-label": "Message" }, entry.message || "", h("span", { class: "changes" }, changesText(entry.changes))),
        h("td", { "data-label": "Commit" }, commitCode(entry.commit)),
      ),
    );
    replaceChildren(
      historyBody,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "responsive-table" },
          h("caption", { class: "visually-hidden" }, `Changes to ${client} / ${name}`),
          h(
            "thead",
            {},
            h("tr", {}, ["When", "Author", "Message", "Commit"].map((label) => h("th", { scope: "col" }, label))),
          ),
          h("tbody", {}, rows),
        ),
      ),
    );
    return entries;
  }

  // --- saving --------------------------------------------------------------------------
  let saving = false;
  const buttons = [saveReplicas, saveVersion].filter(Boolean);

  function fieldError(input, region, text) {
    say(region, text);
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  async function save(changes, button, form) {
    if (saving) return;
    saving = true;
    const label = button.textContent;
    const previousCommit = cluster.revision && cluster.revision.commit;
    for (const each of buttons) each.disabled = true;
    button.textContent = "Saving…";
    form.setAttribute("aria-busy", "true");
    say(saveError, "");
    say(saveStatus, "Saving…");
    try {
      const { status: httpStatus, data } = await ctx.api.clusterUpdate(client, name, changes);
      if (!ctx.isCurrent()) return;
      cluster = { ...cluster, ...data };
      renderSummary();
      replicas.value = String(cluster.replicas);
      if (versionSelect) versionSelect.value = cluster.version;
      const revision = cluster.revision;
      if (!revision || revision.commit === previousCommit) {
        revisionBox.hidden = true;
        say(saveStatus, "Nothing to change: the cluster already has these settings.");
        return;
      }
      const pending = httpStatus === 202 || revision.pushed === false;
      revisionCommit.textContent = shortCommit(revision.commit);
      revisionCommit.title = revision.commit;
      revisionCommit.dataset.commit = revision.commit;
      revisionMessage.textContent = revision.message || "";
      revisionPushed.textContent = pending ? "Pending push" : "Pushed";
      revisionPushed.dataset.pushed = String(!pending);
      revisionPushed.className = pending ? "badge warn" : "badge ok";
      revisionBox.hidden = false;
      say(
        saveStatus,
        pending
          ? `Committed ${shortCommit(revision.commit)}, but not pushed yet: the git remote could not be reached. The change is kept and will be delivered later.`
          : `Saved. Commit ${shortCommit(revision.commit)} was pushed.`,
      );
      const entries = await loadHistory();
      if (!revision.message && ctx.isCurrent()) {
        const entry = entries.find((each) => sameCommit(each.commit, revision.commit));
        if (entry) revisionMessage.textContent = entry.message || "";
      }
    } catch (failure) {
      if (!ctx.isCurrent()) return;
      say(saveStatus, "");
      const fields = failure.fields || {};
      const unplaced = [];
      for (const [field, messages] of Object.entries(fields)) {
        const text = [].concat(messages).join(" ");
        if (field === "replicas") fieldError(replicas, replicasError, text);
        else if (field === "version" && versionSelect) fieldError(versionSelect, versionError, text);
        else unplaced.push(text);
      }
      if (!Object.keys(fields).length || unplaced.length) {
        const message = ctx.errorMessage(failure);
        if (message) say(saveError, [message, ...unplaced].join(" "));
      }
    } finally {
      saving = false;
      if (ctx.isCurrent()) {
        for (const each of buttons) each.disabled = false;
        button.textContent = label;
        form.removeAttribute("aria-busy");
      }
    }
  }

  scaleForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const raw = replicas.value.trim();
    const value = Number(raw);
    let problem = "";
    if (!/^\d+$/.test(raw)) problem = "Enter a whole number of replicas.";
    else if (value < minimum || (maximum !== null && value > maximum)) problem = rangeText;
    fieldError(replicas, replicasError, problem);
    if (problem) {
      replicas.focus();
      return;
    }
    save({ replicas: value }, saveReplicas, scaleForm);
  });

  if (versionSelect) {
    versionForm.addEventListener("submit", (event) => {
      event.preventDefault();
      fieldError(versionSelect, versionError, "");
      save({ version: versionSelect.value }, saveVersion, versionForm);
    });
  }

  await loadHistory();
}
