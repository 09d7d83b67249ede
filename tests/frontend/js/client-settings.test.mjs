// The sign-in policy's confirmation: what saving would cost, in the words the admin confirms.

import assert from "node:assert/strict";
import { test } from "node:test";

import { impactParagraphs } from "../../../frontend/static/frontend/pages/client-settings.js";

const NOTHING = { changes: ["allowed methods: any -> password"], membersToSignInAgain: [], tokensLosingClient: 0 };

test("a change that cuts no one off needs no confirmation", () => {
  assert.deepEqual(impactParagraphs("client1", NOTHING), []);
});

test("the members and tokens a stricter policy cuts off are named and counted", () => {
  const impact = {
    changes: ["allowed methods: any -> password", "second factor required: no -> yes"],
    membersToSignInAgain: [
      { email: "a@example.com", name: "Ann", unmet: ["second_factor"], detail: "sign in with a second factor" },
      { email: "b@example.com", name: "", unmet: ["method"], detail: "sign in another way" },
    ],
    tokensLosingClient: 1,
  };
  assert.deepEqual(impactParagraphs("client1", impact), [
    "Changes: allowed methods: any -> password; second factor required: no -> yes.",
    "2 members will reach client1 again only once they sign in as it asks:",
    "Ann (a@example.com): sign in with a second factor.",
    "b@example.com: sign in another way.",
    "1 personal access token loses client1: their owners make new ones from a session that meets the policy.",
  ]);
});

test("a long list of members ends with how many more", () => {
  const members = Array.from({ length: 11 }, (_, index) => ({
    email: `m${index}@example.com`, name: "", unmet: ["method"], detail: "sign in another way",
  }));
  const paragraphs = impactParagraphs("client1", { ...NOTHING, membersToSignInAgain: members, tokensLosingClient: 3 });
  assert.equal(paragraphs.length, 1 + 1 + 8 + 1 + 1);
  assert.equal(paragraphs.at(-2), "And 3 more.");
  assert.match(paragraphs.at(-1), /^3 personal access tokens lose client1/);
});
