// Password fields with their own error line, shared by the password change (#/security) and
// the reset (#/reset/...): the server's validator messages are shown under the field they
// are about (the answer's `fields`).

import { h, liveRegion, markInvalid, say } from "../dom.js";

const NEW_PASSWORD_HINT = "At least 8 characters; not a common password, not only digits, not like your email address.";

/** {input, error, row}: a labelled password input and the error line it is described by. */
export function passwordField({ id, label, autocomplete, hint = null }) {
  const hintId = hint ? `${id}-hint` : null;
  const error = liveRegion(`${id}-error`, { assertive: true, className: "error field-error" });
  const input = h("input", {
    id,
    name: id,
    type: "password",
    autocomplete,
    required: true,
    "aria-describedby": [hintId, `${id}-error`].filter(Boolean).join(" "),
  });
  input.addEventListener("input", () => {
    say(error, ""); // typing again answers the message
    markInvalid(input, false);
  });
  const row = h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { id: hintId, class: "hint" }, hint) : null,
    input,
    error,
  );
  return { input, error, row };
}

/** The new password typed twice: {password, repeat, rows, errors}. */
export function newPasswordFields({ id, label }) {
  const first = passwordField({ id, label, autocomplete: "new-password", hint: NEW_PASSWORD_HINT });
  const second = passwordField({
    id: `${id}-repeat`,
    label: `Repeat the ${label.toLowerCase()}`,
    autocomplete: "new-password",
  });
  return {
    password: first.input,
    repeat: second.input,
    rows: [first.row, second.row],
    errors: new Map([
      [first.input, first.error],
      [second.input, second.error],
    ]),
  };
}

/** Says `text` under `input` (and marks it invalid); "" clears it. */
export function fieldErrorSay(fields, input, text) {
  say(fields.errors.get(input), text);
  markInvalid(input, Boolean(text));
}

export function passwordFieldsClear(fields) {
  for (const input of fields.errors.keys()) fieldErrorSay(fields, input, "");
}

/** Both typed, and the same; else says which is wrong and focuses it. */
export function newPasswordsValid(fields) {
  if (!fields.password.value) {
    fieldErrorSay(fields, fields.password, "Enter the new password.");
    fields.password.focus();
    return false;
  }
  if (fields.repeat.value !== fields.password.value) {
    fieldErrorSay(fields, fields.repeat, "The two passwords are not the same.");
    fields.repeat.focus();
    return false;
  }
  return true;
}

/**
 * Shows a 400's field messages under the inputs `inputs` maps API field names to
 * ({newPassword: input}); returns true when it showed any (the first such field is focused).
 */
export function passwordFieldErrors(fields, failure, inputs) {
  const messages = (failure && failure.fields) || {};
  let first = null;
  for (const [name, input] of Object.entries(inputs)) {
    const texts = messages[name];
    if (!texts || !texts.length) continue;
    fieldErrorSay(fields, input, [].concat(texts).join(" "));
    first = first || input;
  }
  if (first) first.focus();
  return first !== null;
}
