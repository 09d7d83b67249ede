// #/sessions: the user's sessions; this device marked; revoke one or all others.

import { dateText, h, liveRegion, replaceChildren, say, timeElement } from "../dom.js";
import { pageFrame, showError, pageLoad } from "./common.js";

/** "Firefox on Linux" from a user agent string; good enough to recognise a device. */
export function deviceName(userAgent) {
  if (!userAgent) return "Unknown device";
  const browsers = [
    [/Edg\//, "Edge"],
    [/OPR\/|Opera/, "Opera"],
    [/Firefox\//, "Firefox"],
    [/Chrom(e|ium)\//, "Chrome"],
    [/Safari\//, "Safari"],
    [/curl\//, "curl"],
    [/python-requests|python-urllib|httpx|aiohttp/i, "Python client"],
  ];
  const systems = [
    [/Android/, "Android"],
    [/iPhone|iPad|iOS/, "iOS"],
    [/Windows/, "Windows"],
    [/Mac OS X|Macintosh/, "macOS"],
    [/CrOS/, "ChromeOS"],
    [/Linux/, "Linux"],
  ];
  const browser = (browsers.find(([pattern]) => pattern.test(userAgent)) || [null, null])[1];
  const system = (systems.find(([pattern]) => pattern.test(userAgent)) || [null, null])[1];
  if (browser && system) return `${browser} on ${system}`;
  // Else a program's own name ("Wget/1.21"), but not "Mozilla", which every browser claims.
  const product = /^([A-Za-z][\w.-]*)\//.exec(userAgent);
  const program = product && product[1] !== "Mozilla" ? product[1] : null;
  return browser || system || program || "Unknown device";
}

const AMR_LABELS = {
  password: "password",
  google: "Google",
  passkey: "passkey",
  totp: "authenticator app",
  webauthn: "passkey",
  recovery: "recovery code",
};

/** How a session was signed in to, from its `amr`: "password + authenticator app". */
export function signInMethods(amr) {
  const labels = (amr || []).map((method) => AMR_LABELS[method] || String(method));
  return labels.length ? labels.join(" + ") : "—";
}

export async function render(ctx) {
  const { status, error } = pageFrame(ctx, { title: "Sessions" });
  const sessions = await pageLoad(ctx, { status, error }, "Loading sessions…", (options) =>
    ctx.api.sessions(options),
  );
  if (sessions === undefined) return;

  const view = {
    error,
    status: liveRegion("sessions-status"),
    list: h("ul", { id: "sessions-list", class: "session-list", "aria-labelledby": "page-title" }),
    signoutOthers: h("button", { type: "button", id: "signout-others", class: "button danger" }, "Sign out other devices"),
  };
  const store = sessionStore(ctx, view);
  view.signoutOthers.addEventListener("click", () => signOutOthers(ctx, store, view));
  store.show(sessions);
  ctx.main.append(view.list, h("div", { class: "actions" }, view.signoutOthers), view.status);
}

function currentFirstThenRecent(a, b) {
  return Number(b.current) - Number(a.current) || String(b.lastSeenAt).localeCompare(String(a.lastSeenAt));
}

/**
 * The sessions shown: show(sessions) lists them; revoke(session) ends one on the server and
 * removes its row (a session that has ended meanwhile answers 404: it is gone all the same).
 */
function sessionStore(ctx, view) {
  const { list, signoutOthers } = view;
  let sessions = [];
  const store = {
    others: () => sessions.filter((session) => !session.current),
    updateOthersButton() {
      signoutOthers.disabled = store.others().length === 0;
    },
    show(fresh) {
      sessions = fresh.sort(currentFirstThenRecent);
      replaceChildren(
        list,
        sessions.map((session) => sessionRow(session, session.current ? null : revokeButton(ctx, session, store, view))),
      );
      store.updateOthersButton();
    },
    async revoke(session) {
      try {
        await ctx.api.sessionRevoke(session.id);
      } catch (failure) {
        if (failure.status !== 404) throw failure;
      }
      sessions = sessions.filter((each) => each.id !== session.id);
      const row = list.querySelector(`[data-session-id="${CSS.escape(String(session.id))}"]`);
      if (row) row.remove();
      store.updateOthersButton();
    },
  };
  return store;
}

function sessionDetails(session) {
  return h(
    "dl",
    { class: "session-details" },
    h("dt", {}, "IP address"),
    h("dd", {}, session.ip || "—"),
    h("dt", {}, "Signed in"),
    h("dd", {}, timeElement(session.createdAt)),
    h("dt", {}, "Signed in with"),
    h(
      "dd",
      { class: "session-amr", "data-testid": "session-amr", dataset: { amr: (session.amr || []).join(" ") } },
      signInMethods(session.amr),
    ),
    h("dt", {}, "Last active"),
    h("dd", {}, timeElement(session.lastSeenAt)),
  );
}

function sessionRow(session, revoke) {
  return h(
    "li",
    {
      class: "card session-row",
      "data-testid": "session-row",
      dataset: { sessionId: session.id, current: String(Boolean(session.current)) },
    },
    h(
      "div",
      { class: "session-head" },
      h("h2", { class: "session-name" }, deviceName(session.userAgent)),
      session.current ? h("span", { class: "badge ok current-badge" }, "This device") : null,
    ),
    h("p", { class: "user-agent" }, session.userAgent || ""),
    sessionDetails(session),
    revoke ? h("div", { class: "actions" }, revoke) : null,
  );
}

/** What a Revoke button says to a screen reader: two laptops of one make must not sound the same. */
export function revokeLabel(session) {
  const signedIn = dateText(session.createdAt);
  return `Revoke the ${deviceName(session.userAgent)} session signed in ${signedIn}${session.ip ? ` from ${session.ip}` : ""}`;
}

function revokeButton(ctx, session, store, view) {
  const name = deviceName(session.userAgent);
  const button = h(
    "button",
    { type: "button", class: "button secondary revoke-session", "aria-label": revokeLabel(session) },
    "Revoke",
  );
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "Revoking…";
    say(view.error, "");
    try {
      await store.revoke(session);
      say(view.status, `Revoked the ${name} session.`);
      const next = view.list.querySelector(".revoke-session") || view.signoutOthers;
      (next.disabled ? ctx.main.querySelector("h1") : next).focus();
    } catch (failure) {
      button.disabled = false;
      button.textContent = "Revoke";
      showError(ctx, view.error, failure);
    }
  });
  return button;
}

function devicesText(count) {
  return count === 1 ? "1 other device" : `${count} other devices`;
}

/** Signs every other session out, going on past a failure, then lists the sessions again. */
async function signOutOthers(ctx, store, view) {
  const targets = store.others();
  const button = view.signoutOthers;
  button.disabled = true;
  button.textContent = "Signing out…";
  say(view.error, "");
  say(view.status, "Signing out other devices…");
  const failures = [];
  for (const session of targets) {
    try {
      await store.revoke(session);
    } catch (failure) {
      if (!ctx.isCurrent()) return; // signed out meanwhile, or left the page
      failures.push(failure);
    }
  }
  if (!ctx.isCurrent()) return;
  button.textContent = "Sign out other devices";
  const done = targets.length - failures.length;
  say(view.status, failures.length ? `Signed out ${done} of ${devicesText(targets.length)}.` : `Signed out ${devicesText(done)}.`);
  if (failures.length) showError(ctx, view.error, failures[0]);
  try {
    store.show(await ctx.api.sessions({ signal: ctx.signal }));
  } catch (failure) {
    store.updateOthersButton();
    if (!failures.length) showError(ctx, view.error, failure);
  }
  if (ctx.isCurrent() && button.disabled) ctx.main.querySelector("h1").focus(); // nothing left to sign out
}
