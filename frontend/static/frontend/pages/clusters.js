// #/clusters: every cluster the user may see, grouped by client.

import { h, say } from "../dom.js";
import { clusterHref, commitCode, deliveryBadge, pageFrame, showError, storageSummary } from "./common.js";

export async function render(ctx) {
  const { status, error } = pageFrame(ctx, { title: "Clusters" });
  const container = h("div", { id: "clusters", class: "stack" });
  ctx.main.append(container);
  say(status, "Loading clusters…");

  let clients;
  try {
    clients = await ctx.api.clients({ signal: ctx.signal });
  } catch (failure) {
    say(status, "");
    showError(ctx, error, failure);
    return;
  }
  if (!ctx.isCurrent()) return;
  if (!clients.length) {
    say(status, "");
    container.append(
      h(
        "p",
        { id: "clusters-empty", class: "empty" },
        "You do not have access to any client yet. Ask an operator to grant you access.",
      ),
    );
    return;
  }

  const results = await Promise.allSettled(
    clients.map((client) => ctx.api.clusters(client.slug, { signal: ctx.signal })),
  );
  if (!ctx.isCurrent()) return;

  let count = 0;
  clients.forEach((client, index) => {
    const result = results[index];
    if (result.status === "fulfilled") count += result.value.length;
    container.append(clientGroup(ctx, client, result));
  });
  say(status, `${count} ${count === 1 ? "cluster" : "clusters"} in ${clients.length} ${clients.length === 1 ? "client" : "clients"}.`);
}

function clientGroup(ctx, client, result) {
  const headingId = `client-${client.slug}-heading`;
  const section = h(
    "section",
    {
      class: "card client-group",
      "data-testid": "client-group",
      dataset: { client: client.slug },
      "aria-labelledby": headingId,
    },
    h("h2", { id: headingId }, client.name || client.slug, " ", h("span", { class: "slug" }, client.slug)),
  );

  if (result.status === "rejected") {
    const message = ctx.errorMessage(result.reason);
    if (message) section.append(h("p", { class: "error", role: "alert" }, message));
    return section;
  }
  const clusters = [...result.value].sort((a, b) => a.name.localeCompare(b.name));
  section.append(clusters.length ? clustersTable(client, clusters) : h("p", { class: "empty" }, "No clusters yet."));
  return section;
}

function clusterRow(client, cluster) {
  return h(
    "tr",
    { "data-testid": "cluster-row", dataset: { client: client.slug, cluster: cluster.name } },
    h(
      "th",
      { scope: "row", "data-label": "Cluster" },
      h("a", { href: clusterHref(client.slug, cluster.name), "data-testid": "cluster-link" }, cluster.name),
    ),
    h("td", { class: "cluster-replicas", "data-label": "Replicas" }, String(cluster.replicas)),
    h("td", { class: "cluster-version", "data-label": "Version" }, cluster.version || "—"),
    h("td", { class: "cluster-storage", "data-label": "Storage" }, storageSummary(cluster)),
    h(
      "td",
      { class: "cluster-commit", "data-label": "Last commit" },
      commitCode(cluster.revision && cluster.revision.commit),
    ),
    h("td", { class: "cluster-pushed", "data-label": "Delivery" }, deliveryBadge(cluster.revision)),
  );
}

function clustersTable(client, clusters) {
  const labels = ["Cluster", "Replicas", "Version", "Storage", "Last commit", "Delivery"];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "responsive-table" },
      h("caption", { class: "visually-hidden" }, `Clusters of ${client.name || client.slug}`),
      h("thead", {}, h("tr", {}, labels.map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, clusters.map((cluster) => clusterRow(client, cluster))),
    ),
  );
}
