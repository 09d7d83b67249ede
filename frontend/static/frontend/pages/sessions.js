// #/sessions: the user's sessions; this device marked; revoke one or all others.

import { h, liveRegion, replaceChildren, say, timeElement } from "../dom.js";
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
    [/python-requests|httpx|aiohttp/i, "Python client"],
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
  return browser || system || "Unknown device";
}

export async function render(ctx) {
  const { status, error } = pageFrame(ctx, { title: "Sessions" });
  let sessions = await pageLoad(ctx, { status, error }, "Loading sessions…", (options) =>
    ctx.api.sessions(options),
  );
  if (sessions === undefined) return;

  const sessionsStatus = liveRegion("sessions-status");
  const list = h("ul", { id: "sessions-list", class: "session-list", "aria-labelledby": "page-title" });
  const signoutOthers = h(
    "button",
    { type: "button", id: "signout-others", class: "button danger" },
    "Sign out other devices",
  );

  sessions.sort((a, b) => Number(b.current) - Number(a.current) || String(b.lastSeenAt).localeCompare(String(a.lastSeenAt)));

  function others() {
    return sessions.filter((session) => !session.current);
  }

  function updateOthersButton() {
    signoutOthers.disabled = others().length === 0;
  }

  async function revoke(session) {
    await ctx.api.sessionRevoke(session.id);
    sessions = sessions.filter((each) => each.id !== session.id);
    const row = list.querySelector(`[data-session-id="${CSS.escape(String(session.id))}"]`);
    if (row) row.remove();
    updateOthersButton();
  }

  function sessionRow(session) {
    const name = deviceName(session.userAgent);
    const details = h(
      "dl",
      { class: "session-details" },
      h("dt", {}, "IP address"),
      h("dd", {}, session.ip || "—"),
      h("dt", {}, "Signed in"),
      h("dd", {}, timeElement(session.createdAt)),
      h("dt", {}, "Last active"),
      h("dd", {}, timeElement(session.lastSeenAt)),
    );
    const row = h(
      "li",
      {
        class: "card session-row",
        "data-testid": "session-row",
        dataset: { sessionId: session.id, current: String(Boolean(session.current)) },
      },
      h(
        "div",
        { class: "session-head" },
        h("h2", { class: "session-name" }, name),
        session.current ? h("span", { class: "badge ok current-badge" }, "This device") : null,
      ),
      h("p", { class: "user-agent" }, session.userAgent || ""),
      details,
    );
    if (!session.current) {
      const button = h(
        "button",
        { type: "button", class: "button secondary revoke-session", "aria-label": `Revoke ${name} session` },
        "Revoke",
      );
      button.addEventListener("click", async () => {
        button.disabled = true;
        button.textContent = "Revoking…";
        say(error, "");
        try {
          await revoke(session);
          say(sessionsStatus, `Revoked the ${name} session.`);
          const next = list.querySelector(".revoke-session") || signoutOthers;
          (next.disabled ? ctx.main.querySelector("h1") : next).focus();
        } catch (failure) {
          button.disabled = false;
          button.textContent = "Revoke";
          showError(ctx, error, failure);
        }
      });
      row.append(h("div", { class: "actions" }, button));
    }
    return row;
  }

  signoutOthers.addEventListener("click", async () => {
    const targets = others();
    signoutOthers.disabled = true;
    signoutOthers.textContent = "Signing out…";
    say(error, "");
    say(sessionsStatus, "Signing out other devices…");
    let done = 0;
    try {
      for (const session of targets) {
        await revoke(session);
        done += 1;
      }
      say(sessionsStatus, done === 1 ? "Signed out 1 other device." : `Signed out ${done} other devices.`);
    } catch (failure) {
      say(sessionsStatus, done ? `Signed out ${done} of ${targets.length} other devices.` : "");
      showError(ctx, error, failure);
    } finally {
      if (ctx.isCurrent()) {
        signoutOthers.textContent = "Sign out other devices";
        updateOthersButton();
      }
    }
  });

  replaceChildren(list, sessions.map(sessionRow));
  updateOthersButton();
  ctx.main.append(list, h("div", { class: "actions" }, signoutOthers), sessionsStatus);
}
