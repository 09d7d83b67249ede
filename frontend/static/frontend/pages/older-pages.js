// "Show older" under a list the API gives newest first, a page at a time (`?before=<the oldest
// id shown>`): a cluster's history, a client's audit trail.

import { h, say } from "../dom.js";

/**
 * The paging of one list: {more, load()}. `more` is the "Show older" button to put under the
 * list; load() reads the newest page (again, after a change) and resolves to its entries ([] on
 * failure); each press of `more` appends the page before the oldest entry shown.
 *
 * - `read(before, options)` asks the API for a page (`before` null: the newest);
 * - `show(entries, older)` puts a page in `list`: appended when `older`, else in place of all;
 * - `failed(message)` says why the newest page could not be read (an older one's failure is
 *   said in `status` and keeps what is shown);
 * - `words`: {loading: "Loading history…", one: "change", many: "changes"} for `status`
 *   (`loading` "": the newest page is read without a word).
 *
 * One older page at a time: a second press while one is on its way is ignored. An older page
 * is appended only to the list it continues: after a reload meanwhile, it would repeat or skip
 * entries. `list` is aria-busy while any page is on its way. When the last page takes the
 * button away from under the keyboard, `heading` (tabindex=-1) gets the focus.
 */
export function olderPages(ctx, { id, list, heading, status, pageSize, words, read, show, failed }) {
  const more = h("button", { type: "button", id, class: "button secondary", hidden: true }, "Show older");
  let oldest = null;
  let generation = 0; // bumped by each load(): the answer of an earlier one is not shown
  let paging = false; // an older page is on its way: another press would add it twice
  let reading = 0; // pages on their way

  async function fetchPage(before) {
    const older = before !== null;
    const mine = older ? generation : ++generation;
    const current = () => ctx.isCurrent() && (older ? before === oldest : mine === generation);
    say(status, older ? `Loading older ${words.many}…` : words.loading);
    reading += 1;
    list.setAttribute("aria-busy", "true");
    let entries;
    try {
      entries = await read(before, { signal: ctx.signal });
    } catch (failure) {
      if (!current()) return [];
      const message = ctx.errorMessage(failure); // null: the app says it (signed out) or none asked
      say(status, older ? message : "");
      if (!older && message) failed(message);
      return [];
    } finally {
      reading -= 1;
      if (!reading) list.removeAttribute("aria-busy");
    }
    if (!current()) return entries;
    show(entries, older);
    const noun = entries.length === 1 ? words.one : words.many;
    say(status, older ? `${entries.length} older ${noun} shown.` : "");
    if (entries.length) oldest = entries[entries.length - 1].id;
    const focused = document.activeElement === more;
    more.hidden = entries.length < pageSize;
    if (focused && more.hidden) heading.focus(); // the button went away under the keyboard
    return entries;
  }
  more.addEventListener("click", async () => {
    if (paging) return; // not disabled: a disabled button would lose the keyboard's focus
    paging = true;
    try {
      await fetchPage(oldest);
    } finally {
      paging = false;
    }
  });
  return { more, load: () => fetchPage(null) };
}
