"use strict";
// `metronome serve --auth token` with the real Croquet 2.0.4 client (Node.js), unmodified: the
// app only puts its token into the box URL, box: "http://host:port/k/<token>/" (docs/operations.md,
// "Access control"). The client derives its reflector URL (.../k/<token>/reflector/<sessionId>) and
// its file URLs (.../k/<token>/files/...) from it.
//
// Tokens come from `metronome token keygen` / `metronome token mint`, and also from a few lines of
// Node.js crypto (mintToken in fixtures/tokens.js: what an operator's backend does), which checks
// the documented format independently of the Go code. The scenarios are in lib/token-scenarios.js;
// test/multisynq.test.js runs them with the Multisynq client.

const { test } = require("node:test");

const { runScenario } = require("../lib/harness");
const { tokenSession, refusedTokens } = require("../lib/token-scenarios");

test("(auth a) with a token in box the session works: join, converge, snapshot upload, late join", { timeout: 150000 }, (t) =>
    runScenario(t, ctx => tokenSession(ctx, { name: "access-control" })));

test("(auth b) without a token, or with a bad, expired or wrong-app token, the client is refused with the reason and stops", { timeout: 120000 }, (t) =>
    runScenario(t, ctx => refusedTokens(ctx)));
