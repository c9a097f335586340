"use strict";
// The Multisynq client, `@multisynq/client` 1.1.0, in Node.js against `metronome serve --auth
// token`. Multisynq is the Croquet client under another name: the same Model/View/Session API
// (Multisynq.Session.join), the same reflector protocol, and the same `box` option; without `box`
// it needs an apiKey and connects to Multisynq's own network, with `box` it needs none. The app
// carries its token in the box URL, box: "http://host:port/k/<token>/", as with Croquet 2.0.4:
// these are the scenarios of test/access-control.test.js (lib/token-scenarios.js) with this client.
//
// lib/client-process.js runs the same counter app as for Croquet; the `library` option of its
// clients makes it load @multisynq/client instead.

const { test } = require("node:test");
const assert = require("node:assert/strict");

const { runScenario } = require("../lib/harness");
const { tokenSession, refusedTokens } = require("../lib/token-scenarios");

const LIBRARY = "@multisynq/client";
const MULTISYNQ_VERSION = "1.1.0";

/** Checks that a client ran Multisynq 1.1.0: it prints its version, and its JOIN names it as sdk. */
function assertMultisynq(client) {
    assert.ok(client.logLines.some(line => line.endsWith(`Multisynq ${MULTISYNQ_VERSION}`)),
        `client ${client.label} did not load Multisynq ${MULTISYNQ_VERSION}`);
    const joins = client.framesOf("JOIN", "out");
    assert.ok(joins.length > 0 && joins[0].text.includes(`"sdk":"${MULTISYNQ_VERSION}"`), `client ${client.label}'s JOIN: ${joins.map(f => f.text)}`);
}

test("(multisynq a) with a token in box: join, converge, snapshot upload, late join", { timeout: 120000 }, (t) =>
    runScenario(t, ctx => tokenSession(ctx, { name: "multisynq", library: LIBRARY, checkClient: assertMultisynq })));

test("(multisynq b) without a token, or with a forged, expired or wrong-app token, the join fails with the server's reason", { timeout: 90000 }, (t) =>
    runScenario(t, ctx => refusedTokens(ctx, { library: LIBRARY, checkClient: assertMultisynq })));
