// #/clusters: every cluster the user may see, grouped by client (with the Team and Settings
// links of the clients it administers), and the clients this sign-in does not reach (step-up.js).

import { h, liveRegion, replaceChildren, say } from "../dom.js";
import { deploymentBadge, POLL_DELAYS_MS } from "./cluster-deployment.js";
import {
  clientPermissions,
  clusterHref,
  commitCode,
  confirmDialog,
  deliveryBadge,
  FILTER_FROM,
  loadFailed,
  pageFrame,
  rowFilter,
  showError,
  storageSummary,
} from "./common.js";
import { stepUpSection } from "./step-up.js";

export async function render(ctx) {
  const { status, error } = pageFrame(ctx, { title: "Clusters" });
  const container = h("div", { id: "clusters", class: "stack" });
  ctx.main.append(container);
  say(status, "Loading clusters…");

  let clients, permissions, clusters;
  try {
    // One request for every client's clusters: an operator may see hundreds of clients.
    [clients, permissions, clusters] = await Promise.all([
      ctx.api.clients({ signal: ctx.signal }),
      ctx.api.permissions({ signal: ctx.signal }),
      ctx.api.allClusters({ signal: ctx.signal }),
    ]);
  } catch (failure) {
    say(status, "");
    loadFailed(ctx, error, failure);
    return;
  }
  if (!ctx.isCurrent()) return;
  if ((permissions.restricted || []).length) container.before(stepUpSection(ctx, permissions.restricted));
  if (!clients.length) {
    say(status, "");
    container.append(
      h(
        "p",
        { id: "clusters-empty", class: "empty" },
        (permissions.restricted || []).length
          ? "Sign in as asked above to see your clusters."
          : "You are not a member of any client. Ask your team's admin to invite you.",
      ),
    );
    return;
  }

  const byClient = new Map(clients.map((client) => [client.slug, []]));
  for (const cluster of clusters) if (byClient.has(cluster.client)) byClient.get(cluster.client).push(cluster);
  // The portal's operators see every client without being a member of any: nothing to leave.
  const member = ctx.state.user !== null && !(ctx.state.user.scopes || []).includes("*");
  const leave = member ? leaving(ctx, container) : null;
  let count = 0;
  for (const client of clients) {
    count += byClient.get(client.slug).length;
    const group = clientGroup(ctx, client, byClient.get(client.slug), clientPermissions(permissions, client.slug));
    if (leave) group.append(leave.control(client));
    container.append(group);
  }
  say(status, clustersSummary(count, clients.length));
  if (count > FILTER_FROM) container.before(...clustersFilter(container));
}

/** What the page says it shows: "3 clusters in 2 clients." */
export function clustersSummary(count, clientCount) {
  const plural = (n, word) => `${n} ${n === 1 ? word : `${word}s`}`;
  return `${plural(count, "cluster")} in ${plural(clientCount, "client")}.`;
}

/** Finds clusters by name or client: clients with none shown are hidden while it filters. */
function clustersFilter(container) {
  const groups = () => [...container.querySelectorAll('[data-testid="client-group"]')];
  const status = liveRegion("clusters-filter-status");
  const filter = rowFilter({
    id: "clusters-filter",
    label: "Find a cluster",
    rows: () => [...container.querySelectorAll('[data-testid="cluster-row"]')],
    status,
    filtered: (wanted) => {
      for (const group of groups()) {
        group.hidden = Boolean(wanted) && !group.querySelector('[data-testid="cluster-row"]:not([hidden])');
      }
    },
  });
  return [filter, status];
}

/**
 * "Leave this client": a member ends their own membership (asked first); the page then shows the
 * clients left. A refusal (the last admin) is said beside the button.
 */
function leaving(ctx, container) {
  const dialog = confirmDialog({
    id: "leave-client-dialog",
    title: "Leave this client?",
    confirmLabel: "Leave",
    confirmId: "confirm-leave-client",
    cancelId: "cancel-leave-client",
  });
  container.append(dialog.element);
  function control(client) {
    const name = client.name || client.slug;
    const error = h("p", { class: "error row-error", role: "alert", "data-testid": "leave-error" });
    const button = h("button", { type: "button", class: "button secondary leave-client", "aria-label": `Leave ${name}` }, "Leave this client");
    button.addEventListener("click", async () => {
      say(error, "");
      const asked = [
        `You lose access to ${name} at once: your signed-in sessions and personal access tokens stop reaching it.`,
        "Only an admin of the client can invite you back.",
      ];
      if (!(await dialog.ask(asked))) return;
      button.disabled = true;
      try {
        await ctx.api.memberRemove(client.slug, ctx.state.user.id);
        ctx.rerender();
      } catch (failure) {
        button.disabled = false;
        showError(ctx, error, failure);
        button.focus();
      }
    });
    return h("div", { class: "client-leave" }, button, error);
  }
  return { control };
}

/** The Team and Settings links of a client the user administers. */
function adminLinks(client) {
  const base = `#/clients/${encodeURIComponent(client.slug)}`;
  const name = client.name || client.slug;
  return h(
    "p",
    { class: "client-admin-links" },
    h("a", { class: "team-link", href: `${base}/team`, "aria-label": `Team of ${name}` }, "Team"),
    " · ",
    h("a", { class: "settings-link", href: `${base}/settings`, "aria-label": `Sign-in policy of ${name}` }, "Sign-in policy"),
  );
}

function clientGroup(ctx, client, clientClusters, permissions) {
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
    permissions.includes("members") ? adminLinks(client) : null,
  );

  const clusters = [...clientClusters].sort((a, b) => a.name.localeCompare(b.name));
  section.append(clusters.length ? clustersTable(client, clusters) : h("p", { class: "empty" }, "No clusters in service. The portal's operators create them: ask them for one."));
  if (clusters.some(onItsWay)) deploymentsFollow(ctx, client, section);
  return section;
}

const ON_ITS_WAY = new Set(["pending", "syncing"]);
const onItsWay = (cluster) => Boolean(cluster.deployment) && ON_ITS_WAY.has(cluster.deployment.state);

/**
 * Asks for the client's clusters again while a change is on its way to one of them, on the
 * cluster page's back-off (not while the page is hidden), and updates their rows: a change
 * made a moment ago reads Deployed here without a reload.
 */
function deploymentsFollow(ctx, client, section) {
  let attempt = 0;
  const next = () => setTimeout(poll, POLL_DELAYS_MS[Math.min(attempt++, POLL_DELAYS_MS.length - 1)]);
  async function poll() {
    if (!ctx.isCurrent()) return;
    if (document.hidden) return next();
    let clusters;
    try {
      clusters = await ctx.api.clusters(client.slug, { signal: ctx.signal });
    } catch {
      return ctx.isCurrent() ? next() : undefined; // asked again later; signed out or left: stop
    }
    if (!ctx.isCurrent()) return;
    for (const cluster of clusters) rowUpdate(section, cluster);
    if (clusters.some(onItsWay)) next();
  }
  next();
}

function rowUpdate(section, cluster) {
  const row = [...section.querySelectorAll('[data-testid="cluster-row"]')].find((each) => each.dataset.cluster === cluster.name);
  if (!row) return;
  replaceChildren(row.querySelector(".cluster-commit"), commitCode(cluster.revision && cluster.revision.commit));
  replaceChildren(row.querySelector(".cluster-pushed"), deliveryBadge(cluster.revision));
  const cell = row.querySelector(".cluster-deployment");
  if (cell && cluster.deployment) {
    cell.dataset.state = cluster.deployment.state;
    replaceChildren(cell, deploymentBadge(cluster.deployment));
  }
}

function clusterRow(client, cluster, withDeployment) {
  return h(
    "tr",
    {
      "data-testid": "cluster-row",
      dataset: { client: client.slug, cluster: cluster.name, search: `${cluster.name} ${client.slug} ${client.name || ""}`.toLowerCase() },
    },
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
    withDeployment
      ? h(
          "td",
          { class: "cluster-deployment", "data-label": "Deployment", dataset: { state: cluster.deployment ? cluster.deployment.state : "" } },
          cluster.deployment ? deploymentBadge(cluster.deployment) : "—",
        )
      : null,
  );
}

function clustersTable(client, clusters) {
  // The Deployment column only when the portal reads deployments back from Argo CD.
  const withDeployment = clusters.some((cluster) => cluster.deployment);
  const labels = ["Cluster", "Replicas", "Version", "Storage", "Last commit", "Delivery", ...(withDeployment ? ["Deployment"] : [])];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "responsive-table" },
      h("caption", { class: "visually-hidden" }, `Clusters of ${client.name || client.slug}`),
      h("thead", {}, h("tr", {}, labels.map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, clusters.map((cluster) => clusterRow(client, cluster, withDeployment))),
    ),
  );
}
