// Small DOM helpers. Data only ever reaches the page through textContent and
// attributes, never through innerHTML.

/**
 * h("button", {id: "save", class: "primary", type: "submit", onclick: fn}, "Save")
 * Attributes starting with "on" become event listeners; `hidden`, `disabled`
 * and other booleans are set when true; `dataset` is an object of data-*.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      for (const [key, data] of Object.entries(value)) element.dataset[key] = String(data);
    } else if (name === "class") {
      element.className = value;
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces all children of `element`. */
export function replaceChildren(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

// The browser's time zone, named, and seconds: "Nov 27, 2026, 8:26:05 AM EST". A user telling
// an operator (whose admin shows UTC) "around 8:30" must be understood, and changes made within
// one minute must read apart. The title has the time in UTC.
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "long" });

/** A <time> element, or an em dash when there is no date. */
export function timeElement(iso) {
  if (!iso) return h("span", {}, "—");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, String(iso));
  const utc = date.toISOString();
  const title = utc.replace("T", " ").replace(/\.\d+Z$/, " UTC");
  return h("time", { datetime: utc, title }, dateText(iso));
}

/** An ISO time as the page shows it ("—" for none; the text itself if it is no time). */
export function dateText(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : dateFormat.format(date);
}

export function shortCommit(commit) {
  return commit ? String(commit).slice(0, 7) : "";
}

/** A status / error paragraph that screen readers announce when its text changes. */
export function liveRegion(id, { assertive = false, className = "status" } = {}) {
  return h("p", {
    id,
    class: className,
    role: assertive ? "alert" : "status",
    "aria-live": assertive ? "assertive" : "polite",
  });
}

/**
 * Sets a live region's text. Regions stay in the accessibility tree (never
 * `hidden`) so the change is announced; CSS collapses them while empty.
 */
export function say(region, text) {
  region.textContent = text || "";
}

/** The header of a table's buttons column: named for screen readers, blank on screen. */
export function actionsHeader() {
  return h("span", { class: "visually-hidden" }, "Actions");
}

/**
 * Take `row` out of its list, and return what puts the keyboard back where it was: on the
 * `selector` button of the next row shown (else the previous one), or on `fallback` (a heading,
 * tabindex=-1) when none is left. Called once the removal is said, so it is heard first.
 */
export function rowRemove(row, selector, fallback) {
  const shown = (candidate, step) => (candidate && candidate.hidden ? shown(candidate[step], step) : candidate);
  const next = shown(row.nextElementSibling, "nextElementSibling") || shown(row.previousElementSibling, "previousElementSibling");
  row.remove();
  return () => (next ? next.querySelector(selector) : fallback).focus();
}

/**
 * Gives the focus back to `control` when the page lost it (to <body>) while the control was
 * disabled, hidden or replaced: a keyboard or screen-reader user goes on from where they were.
 */
export function focusKeep(control) {
  const active = document.activeElement;
  // Inside a dialog that just closed counts as lost: the browser moves it to <body> a moment later.
  const lost = !active || active === document.body || !active.isConnected || Boolean(active.closest("dialog:not([open])"));
  if (lost && control && control.isConnected && !control.disabled && !control.hidden) control.focus();
}

/** Marks a form control invalid (or valid again) for assistive technology. */
export function markInvalid(input, invalid) {
  if (invalid) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}
