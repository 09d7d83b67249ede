// The cluster page's deployment card: the latest change's way to the cluster as steps
// (committed by whom → pushed → synced by Argo CD → healthy), with the live state read back
// from Argo CD (the cluster's `deployment`, null when the portal has no Argo CD).
//
// While the state is `pending` or `syncing` the card asks again, less and less often
// (POLL_DELAYS_MS); it stops when the state is final, while the page is hidden, for good
// when the user leaves the page (ctx.signal), and after POLL_LIMIT_MS without a save or a
// "Check again" (then the button is offered).

import { focusKeep, h, liveRegion, replaceChildren, say, shortCommit, timeElement } from "../dom.js";

export const ACTIVE_STATES = new Set(["pending", "syncing"]);
export const POLL_DELAYS_MS = [2000, 3000, 5000, 8000, 13000, 20000, 30000];
// Every question is an authenticated request, which resets the session's idle timeout
// (JWT_TTL, 20 minutes by default, not known to the page): a page left open on a stuck
// deployment must stop asking well within it, or the session would never expire.
export const POLL_LIMIT_MS = 10 * 60 * 1000;

export const STATE_LABELS = {
  pending: "Pending",
  syncing: "Syncing",
  deployed: "Deployed",
  degraded: "Degraded",
  failed: "Failed",
  unknown: "Unknown",
};

/** The state as a badge, Argo CD's message as its title (the clusters list). */
export function deploymentBadge(deployment) {
  return h(
    "span",
    { class: `badge state-${deployment.state}`, title: deployment.message || null, dataset: { state: deployment.state } },
    STATE_LABELS[deployment.state] || deployment.state,
  );
}

/** Each step's status for a state: done, current, failed, unknown or todo. */
export function stepStatuses(cluster) {
  const deployment = cluster.deployment;
  const revision = cluster.revision;
  const committed = revision ? "done" : "current";
  const pushed = !revision ? "todo" : revision.pushed ? "done" : "current";
  const tail = {
    pending: revision && revision.pushed ? ["current", "todo"] : ["todo", "todo"],
    syncing: deployment.sync === "Synced" ? ["done", "current"] : ["current", "todo"],
    deployed: ["done", "done"],
    degraded: ["done", "failed"],
    failed: ["failed", "todo"],
    unknown: ["unknown", "unknown"],
  }[deployment.state] || ["unknown", "unknown"];
  return { committed, pushed, synced: tail[0], healthy: tail[1] };
}

/** What went wrong, or what is going on, in a plain sentence. */
export function deploymentText(deployment) {
  const message = deployment.message || "";
  switch (deployment.state) {
    case "failed":
      return `Argo CD could not apply this change. ${message}`;
    case "degraded":
      return `The change is applied, but the cluster is not healthy. ${message}`;
    case "unknown":
      return `The portal cannot tell how the deployment is going right now. ${message}`;
    default:
      return message;
  }
}

function stepDetails(cluster, synced) {
  const revision = cluster.revision;
  const deployment = cluster.deployment;
  const author = revision && revision.author ? ` by ${revision.author}` : "";
  const deployed = deployment.deployedRevision;
  return {
    committed: revision ? [h("code", { class: "commit", title: revision.commit }, shortCommit(revision.commit)), author] : "Not yet",
    pushed: !revision ? "" : revision.pushed ? "On the git remote" : "Waiting for the git remote",
    synced: deployed
      ? ["Argo CD at ", h("code", { class: "commit", title: deployed }, shortCommit(deployed)), deployment.sync ? ` (${deployment.sync})` : ""]
      : "Argo CD has not said",
    // The health of what runs is about this change only once Argo CD applied it.
    healthy: deployment.health && synced === "done" ? `Health: ${deployment.health}` : "",
  };
}

const STEPS = [
  ["committed", "Committed"],
  ["pushed", "Pushed"],
  ["synced", "Synced by Argo CD"],
  ["healthy", "Healthy"],
];

// Seen, not only coloured: a failed step must not look like a done one to someone who cannot
// tell red from green (the words are there for screen readers).
const STEP_MARKS = { done: "✓", current: "…", failed: "✕", unknown: "?" };

function stepItems(cluster) {
  const statuses = stepStatuses(cluster);
  const details = stepDetails(cluster, statuses.synced);
  return STEPS.map(([key, label]) =>
    h(
      "li",
      { class: `step step-${statuses[key]}`, "data-step": key, "data-status": statuses[key] },
      h("span", { class: "step-marker", "aria-hidden": "true" }, STEP_MARKS[statuses[key]] || ""),
      h("span", { class: "step-label" }, label),
      h("span", { class: "visually-hidden" }, ` (${statuses[key] === "todo" ? "not yet" : statuses[key]})`),
      h("span", { class: "step-detail" }, details[key]),
    ),
  );
}

/** The card: {element, show(cluster), follow()}; null when the cluster has no deployment. */
export function deploymentSection(ctx, client, name, cluster, { onGone = () => {} } = {}) {
  if (!cluster.deployment) return null;
  const badge = h("span", { id: "deployment-state", class: "badge" });
  const steps = h("ol", { id: "deployment-steps", class: "steps" });
  const message = liveRegion("deployment-message");
  const checked = h("p", { id: "deployment-checked", class: "hint" });
  const check = h("button", { type: "button", id: "deployment-check", class: "button secondary small", hidden: true }, "Check again");
  const element = h(
    "section",
    { id: "deployment", class: "card", "aria-labelledby": "deployment-heading" },
    h("h2", { id: "deployment-heading" }, "Deployment ", badge),
    steps,
    message,
    h("div", { class: "actions" }, checked, check),
  );
  let current = cluster;

  function show(fresh) {
    current = fresh;
    const deployment = fresh.deployment;
    if (!deployment) return;
    badge.textContent = STATE_LABELS[deployment.state] || deployment.state;
    badge.dataset.state = deployment.state;
    badge.className = `badge state-${deployment.state}`;
    element.dataset.state = deployment.state;
    replaceChildren(steps, stepItems(fresh));
    message.className = ["failed", "degraded", "unknown"].includes(deployment.state) ? "error" : "status";
    // A live region rewritten with the same words is read out again: only a change is said.
    const text = deploymentText(deployment);
    if (message.textContent !== text) say(message, text);
    replaceChildren(checked, deployment.checkedAt ? ["Checked ", timeElement(deployment.checkedAt)] : "");
  }

  const poller = deploymentPoller(ctx, {
    fetch: () => ctx.api.cluster(client, name, { signal: ctx.signal }),
    onCluster: show,
    onIdle: (idle) => {
      check.hidden = !idle;
      if (idle && pressed) focusKeep(check); // it hid while checking: the keyboard goes back to it
      if (idle) pressed = false;
    },
    onGone: (failure) => {
      message.className = "error";
      say(message, ctx.errorMessage(failure));
      replaceChildren(checked, "");
      onGone(failure);
    },
  });
  let pressed = false;
  check.addEventListener("click", () => {
    pressed = true;
    say(message, "Checking…"); // then the answer, said even when it is the same as before
    poller.follow(current, { now: true });
  });
  show(cluster);
  return {
    element,
    show,
    follow: (fresh) => {
      show(fresh);
      poller.follow(fresh);
    },
  };
}

const commitOf = (cluster) => (cluster && cluster.revision ? cluster.revision.commit : null);

/**
 * The user saved while this question was out (`savedMeanwhile`): an answer about another commit
 * than the one now followed is about the older change; shown, it would put that change back on
 * screen and could stop the polling of the new one (whose follow() scheduled its own). Without
 * a save meanwhile, another commit is a later change made elsewhere: kept.
 */
const answerOutdated = (fresh, followed, savedMeanwhile) => savedMeanwhile && commitOf(fresh) !== commitOf(followed);

/**
 * Asks again while the state is active, with back-off; paused while the page is hidden,
 * stopped when the user leaves the page and after POLL_LIMIT_MS of waiting since the last
 * follow() (onIdle(true) then offers "Check again"). {follow(cluster, {now})}.
 */
export function deploymentPoller(ctx, { fetch, onCluster, onIdle, onGone = () => {} }) {
  let timer = null;
  let attempt = 0;
  let latest = null;
  let follows = 0; // how many times follow() was called: tells an answer that predates one
  let waited = 0; // ms of delays since the last follow() (a user's save or "Check again")

  // Asked about while the state is active, for POLL_LIMIT_MS after the user's last follow().
  const worthAsking = () =>
    latest && latest.deployment && ACTIVE_STATES.has(latest.deployment.state) && waited < POLL_LIMIT_MS;
  const stop = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };

  async function poll() {
    timer = null;
    if (!ctx.isCurrent() || document.hidden) return;
    const followsBefore = follows;
    try {
      const fresh = await fetch();
      if (answerOutdated(fresh, latest, follows !== followsBefore)) return;
      latest = fresh;
    } catch (failure) {
      if (!ctx.isCurrent() || !ctx.errorMessage(failure)) return; // left the page, or signed out
      if (failure.status === 404) {
        // The cluster is gone (decommissioned meanwhile): nothing more to ask; say so.
        latest = null;
        onIdle(false);
        onGone(failure);
        return;
      }
    }
    if (!ctx.isCurrent()) return;
    onCluster(latest);
    schedule();
  }

  function schedule() {
    stop();
    onIdle(!worthAsking());
    if (!worthAsking() || document.hidden || !ctx.isCurrent()) return;
    const delay = POLL_DELAYS_MS[Math.min(attempt, POLL_DELAYS_MS.length - 1)];
    timer = setTimeout(poll, delay);
    waited += delay;
    attempt += 1;
  }

  function visibilityChanged() {
    if (document.hidden) stop();
    else if (worthAsking() && timer === null) {
      attempt = 0;
      poll();
    }
  }

  document.addEventListener("visibilitychange", visibilityChanged);
  ctx.signal.addEventListener("abort", () => document.removeEventListener("visibilitychange", visibilityChanged));
  ctx.signal.addEventListener("abort", stop);

  return {
    follow(cluster, { now = false } = {}) {
      follows += 1;
      waited = 0;
      latest = cluster;
      attempt = 0;
      if (now) {
        stop();
        onIdle(false);
        poll();
      } else schedule();
    },
  };
}
