// Unit tests of frontend/static/frontend/pages/cluster-deployment.js: node --test tests/frontend/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ACTIVE_STATES,
  POLL_DELAYS_MS,
  deploymentPoller,
  deploymentText,
  stepStatuses,
} from "../../../frontend/static/frontend/pages/cluster-deployment.js";

const pushed = { commit: "a".repeat(40), pushed: true, author: "alice@example.com" };

function cluster(state, { revision = pushed, sync = "Synced", message = "" } = {}) {
  return { revision, deployment: { state, sync, message } };
}

test("a change not pushed yet waits at the push step", () => {
  assert.deepEqual(stepStatuses(cluster("pending", { revision: { ...pushed, pushed: false } })), {
    committed: "done",
    pushed: "current",
    synced: "todo",
    healthy: "todo",
  });
});

test("a pushed change waits for Argo CD, then for the pods", () => {
  assert.deepEqual(stepStatuses(cluster("pending")), {
    committed: "done",
    pushed: "done",
    synced: "current",
    healthy: "todo",
  });
  assert.equal(stepStatuses(cluster("syncing", { sync: "OutOfSync" })).synced, "current");
  assert.deepEqual(stepStatuses(cluster("syncing", { sync: "Synced" })), {
    committed: "done",
    pushed: "done",
    synced: "done",
    healthy: "current",
  });
});

test("final states mark the step that went wrong", () => {
  assert.deepEqual(Object.values(stepStatuses(cluster("deployed"))), ["done", "done", "done", "done"]);
  assert.equal(stepStatuses(cluster("failed")).synced, "failed");
  assert.equal(stepStatuses(cluster("degraded")).healthy, "failed");
  assert.equal(stepStatuses(cluster("unknown")).synced, "unknown");
});

test("failures are said plainly, with Argo CD's words", () => {
  assert.equal(
    deploymentText({ state: "failed", message: "StatefulSet is invalid" }),
    "Argo CD could not apply this change. StatefulSet is invalid",
  );
  assert.match(deploymentText({ state: "degraded", message: "1/3 pods" }), /^The change is applied, but the cluster is not healthy\. 1\/3 pods$/);
  assert.match(deploymentText({ state: "unknown", message: "Argo CD cannot be reached." }), /cannot tell/);
  assert.equal(deploymentText({ state: "deployed", message: "healthy" }), "healthy");
});

test("only pending and syncing are polled, less and less often", () => {
  assert.deepEqual([...ACTIVE_STATES].sort(), ["pending", "syncing"]);
  assert.ok(POLL_DELAYS_MS.every((delay, index) => index === 0 || delay > POLL_DELAYS_MS[index - 1]));
  assert.ok(POLL_DELAYS_MS.at(-1) <= 30_000);
});

// --- The poller ------------------------------------------------------------------------------

function deferred() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A poller whose fetches the test answers by hand; it records what the page was shown. */
function pollerUnderTest(t) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  globalThis.document = { hidden: false, addEventListener() {}, removeEventListener() {} };
  const leave = new AbortController();
  t.after(() => leave.abort());
  const questions = [];
  const shown = [];
  const idle = [];
  const ctx = { signal: leave.signal, isCurrent: () => !leave.signal.aborted, errorMessage: () => "failed" };
  const poller = deploymentPoller(ctx, {
    fetch: () => {
      const answer = deferred();
      questions.push(answer);
      return answer.promise;
    },
    onCluster: (fresh) => shown.push(fresh),
    onIdle: (value) => idle.push(value),
  });
  return { poller, questions, shown, idle };
}

const at = (commit, state) => ({ revision: { ...pushed, commit }, deployment: { state, sync: "Synced", message: "" } });
const settle = () => new Promise((resolve) => setImmediate(resolve));

test("an answer about the older commit that arrives after a save is dropped", async (t) => {
  const { poller, questions, shown, idle } = pollerUnderTest(t);
  const older = "a".repeat(40);
  const newer = "b".repeat(40);
  poller.follow(at(older, "syncing"), { now: true }); // "Check again": a question goes out
  assert.equal(questions.length, 1);

  poller.follow(at(newer, "pending")); // the user saved meanwhile
  questions[0].resolve(at(older, "deployed")); // the question about the older change comes back
  await settle();

  assert.deepEqual(shown, []); // the new change stays on screen
  assert.equal(idle.at(-1), false); // and is still followed
  t.mock.timers.tick(POLL_DELAYS_MS[0]);
  assert.equal(questions.length, 2, "the new change is asked about at the first delay");
  questions[1].resolve(at(newer, "deployed"));
  await settle();
  assert.deepEqual(shown.map((cluster) => [cluster.revision.commit, cluster.deployment.state]), [[newer, "deployed"]]);
  assert.equal(idle.at(-1), true); // final: polling stops
});

test("without a save, an answer about a later commit (made elsewhere) is shown", async (t) => {
  const { poller, questions, shown } = pollerUnderTest(t);
  poller.follow(at("a".repeat(40), "pending"), { now: true });

  questions[0].resolve(at("c".repeat(40), "syncing"));
  await settle();

  assert.deepEqual(shown.map((cluster) => cluster.revision.commit), ["c".repeat(40)]);
});

test("a stuck deployment is asked about for ten minutes at most, then Check again is offered", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  globalThis.document = { hidden: false, addEventListener() {}, removeEventListener() {} };
  const leave = new AbortController();
  t.after(() => leave.abort());
  const ctx = { signal: leave.signal, isCurrent: () => !leave.signal.aborted, errorMessage: () => "failed" };
  const stuck = at("a".repeat(40), "pending");
  let questions = 0;
  const idle = [];
  const poller = deploymentPoller(ctx, {
    fetch: async () => {
      questions += 1;
      return stuck;
    },
    onCluster: () => {},
    onIdle: (value) => idle.push(value),
  });
  const wait = async (ms) => {
    for (let elapsed = 0; elapsed < ms; elapsed += 1000) {
      t.mock.timers.tick(1000);
      await settle();
    }
  };

  poller.follow(stuck); // the user saved: a change Argo CD never picks up
  await wait(4 * 60 * 60 * 1000); // the page stays open all afternoon

  assert.ok(questions > 10 && questions <= 30, `${questions} questions in four hours`);
  assert.equal(idle.at(-1), true, "Check again is offered");
  const asked = questions;

  poller.follow(stuck, { now: true }); // "Check again"
  await wait(60 * 1000);
  assert.ok(questions > asked + 1, "asking resumes, for another ten minutes");
  assert.equal(idle.at(-1), false);
});

test("a cluster gone meanwhile (404) stops the asking and says why", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  globalThis.document = { hidden: false, addEventListener() {}, removeEventListener() {} };
  const leave = new AbortController();
  t.after(() => leave.abort());
  const ctx = { signal: leave.signal, isCurrent: () => !leave.signal.aborted, errorMessage: (error) => error.detail };
  const gone = Object.assign(new Error("gone"), { status: 404, detail: "This cluster was decommissioned." });
  const told = [];
  const idle = [];
  let questions = 0;
  const poller = deploymentPoller(ctx, {
    fetch: async () => {
      questions += 1;
      throw gone;
    },
    onCluster: () => assert.fail("nothing to show"),
    onIdle: (value) => idle.push(value),
    onGone: (failure) => told.push(ctx.errorMessage(failure)),
  });

  poller.follow(at("a".repeat(40), "syncing"), { now: true });
  await settle();
  t.mock.timers.tick(60_000);
  await settle();

  assert.deepEqual(told, ["This cluster was decommissioned."]);
  assert.equal(questions, 1, "not asked again");
  assert.equal(idle.at(-1), false, "no Check again for a cluster that is gone");
});
