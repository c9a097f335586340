"use strict";
// The Multisynq client, `@multisynq/client` 1.1.0, in Node.js against `metronome serve --auth
// token`. Multisynq is the Croquet client under another name: the same Model/View/Session API
// (Multisynq.Session.join), the same reflector protocol, and the same `box` option; without `box`
// it needs an apiKey and connects to Multisynq's own network, with `box` it needs none. The app
// carries its token in the box URL, box: "http://host:port/k/<token>/", as with Croquet 2.0.4
// (test/access-control.test.js).
//
// lib/client-process.js runs the same counter app as for Croquet; METRONOME_CLIENT_LIBRARY makes
// it load @multisynq/client instead (the client processes inherit this process's environment).

process.env.METRONOME_CLIENT_LIBRARY = "@multisynq/client";

const { test } = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const path = require("node:path");

const { runScenario, waitFor, sleep, listFiles, httpRequest, CroquetClient } = require("../lib/harness");
const { statesOf, waitForCounter, waitForViews, waitForAll, assertIdenticalModels, assertExactlyOnce, assertCleanRun } = require("../lib/checks");
const { makeKeys, mintToken } = require("../fixtures/tokens");

const MULTISYNQ_VERSION = "1.1.0";
const CONVERGE_MS = 20000;
const JOIN_VIEWS_MS = 15000;
// How long a refused client is watched for a reconnection attempt (the client reconnects after
// a non-fatal close at once, then after about 100-200 ms).
const NO_RECONNECT_WATCH_MS = 4000;

/** The most recent SNAP any of the states' clients sent, or null. */
function latestSnap(states) {
    const snaps = states.flatMap(s => s.frameStats.snaps).sort((x, y) => x.at - y.at);
    return snaps.length ? snaps[snaps.length - 1] : null;
}

/** Checks that a client ran Multisynq 1.1.0: it prints its version, and its JOIN names it as sdk. */
function assertMultisynq(client) {
    assert.ok(client.logLines.some(line => line.endsWith(`Multisynq ${MULTISYNQ_VERSION}`)),
        `client ${client.label} did not load Multisynq ${MULTISYNQ_VERSION}`);
    const joins = client.framesOf("JOIN", "out");
    assert.ok(joins.length > 0 && joins[0].text.includes(`"sdk":"${MULTISYNQ_VERSION}"`), `client ${client.label}'s JOIN: ${joins.map(f => f.text)}`);
}

test("(multisynq a) with a token in box: join, converge, snapshot upload, late join", { timeout: 120000 }, (t) =>
    runScenario(t, async ctx => {
        const keys = await makeKeys();
        const server = await ctx.startServer({ extraArgs: () => keys.serveArgs });
        const { token, box } = await keys.mintWithCli(server.baseUrl);
        const boxed = { baseUrl: box }; // the harness gives clients box: server.baseUrl
        const name = "multisynq";

        const a = await ctx.startClient({ server: boxed, label: "A", name });
        const b = await ctx.startClient({ server: boxed, label: "B", name });
        assertMultisynq(a);
        await waitForViews([a, b], 2, JOIN_VIEWS_MS);
        await Promise.all([a.increment(10, 30), b.increment(10, 30)]);
        await waitForCounter([a, b], 20, CONVERGE_MS);

        // A snapshot: voted, uploaded with PUT under the token's /files/, announced in SNAP.
        await waitForAll([a, b], s => s.synced === true && s.sessionTime > 5500, "session time > 5.5 s and synced", 15000);
        let snap = null;
        for (let attempt = 1; attempt <= 3 && !snap; attempt++) {
            await a.forceSnapshot();
            snap = await waitFor(async () => latestSnap(await statesOf([a, b])), { timeoutMs: 8000, what: "a snapshot upload and SNAP" })
                .catch(error => { if (attempt === 3) throw error; return null; });
        }
        ctx.note(`SNAP url: ${snap.url.replace(token, "<token>")}`);
        assert.ok(snap.url.startsWith(`${box}files/snapshots/`), `the snapshot URL must be under the box's files, with the token: ${snap.url}`);
        const stored = listFiles(path.join(server.dataDir, "files"));
        assert.ok(stored.some(file => file.startsWith("snapshots")), `no snapshot stored under the data dir: ${stored}`);
        const download = await httpRequest(snap.url);
        assert.equal(download.status, 200, "GET of the snapshot with the token");
        assert.equal(download.body.subarray(0, 4).toString(), "CRQ1", "the snapshot is the client's encrypted binary");

        // A late joiner with a token minted in Node.js catches up from the snapshot.
        await Promise.all([a.increment(3, 50), b.increment(3, 50)]);
        await waitForCounter([a, b], 26, CONVERGE_MS);
        const c = await ctx.startClient({ server: { baseUrl: `${server.baseUrl}k/${keys.mint({ sub: "late" })}/` }, label: "C", name });
        assertMultisynq(c);
        const sync = (await c.state()).frameStats.syncs[0];
        assert.equal(sync.url, snap.url, "the late joiner's SYNC names the uploaded snapshot");
        await waitForCounter([a, b, c], 26, CONVERGE_MS);
        await c.increment(2, 30);
        const states = await waitForCounter([a, b, c], 28, CONVERGE_MS);
        assertIdenticalModels(states);
        assertExactlyOnce(states[0].model.applied, { A: 13, B: 13, C: 2 });
        for (const s of states) assertCleanRun(s);
        const refusals = server.logLines.filter(line => line.includes("not authorized"));
        assert.deepEqual(refusals, [], "the server refused a request of the clients");
    }));

test("(multisynq b) without a token, or with a forged, expired or wrong-app token, the join fails with the server's reason", { timeout: 90000 }, (t) =>
    runScenario(t, async ctx => {
        const keys = await makeKeys();
        const server = await ctx.startServer({ extraArgs: () => keys.serveArgs });
        const now = Math.floor(Date.now() / 1000);
        const strangerKey = crypto.generateKeyPairSync("ed25519").privateKey;
        const cases = [
            { label: "none", box: server.baseUrl, reason: /^not authorized: no token in the URL/ },
            { label: "forged", box: `${server.baseUrl}k/${mintToken(strangerKey, { kid: "js-test", apps: ["io.metronome.jstest"], rights: ["join"], exp: now + 3600 })}/`, reason: /^not authorized: bad signature/ },
            { label: "expired", box: `${server.baseUrl}k/${keys.mint({ exp: now - 60 })}/`, reason: /^not authorized: token expired at \d{4}-/ },
            { label: "other-app", box: `${server.baseUrl}k/${keys.mint({ apps: ["io.other.app"] })}/`, reason: /^not authorized: token is not for app io\.metronome\.jstest \(it is for io\.other\.app\)/ },
        ];
        const clients = cases.map(c => {
            const client = new CroquetClient({ server: { baseUrl: c.box }, label: c.label, name: "refused", debug: "session" });
            ctx.clients.push(client);
            return client;
        });
        await waitForAll(clients, s => s.frameStats.closes.length > 0, "every refused client to see its connection closed", 20000);
        await sleep(NO_RECONNECT_WATCH_MS);
        const states = await statesOf(clients);
        for (const [i, c] of cases.entries()) {
            const s = states[i];
            ctx.note(`${c.label}: closes ${JSON.stringify(s.frameStats.closes.map(({ code, reason }) => ({ code, reason })))}`);
            assertMultisynq(clients[i]);
            assert.equal(s.frameStats.closes.length, 1, `${c.label}: the client must be closed once and stop`);
            assert.equal(s.frameStats.closes[0].code, 4103, `${c.label}: close code`);
            assert.match(s.frameStats.closes[0].reason, c.reason, `${c.label}: close reason`);
            assert.equal(s.frameStats.opens, 1, `${c.label}: the client reconnected after a refusal (it must stop)`);
            assert.equal(s.joined, false, `${c.label}: Session.join must not have completed`);
            assert.ok(!clients[i].events.some(e => e.event === "joined"), `${c.label}: the client reported a join`);
            // With debug "session" the client prints the reason (a page shows it as a message).
            assert.ok(clients[i].logLines.some(line => line.includes("code=4103") && line.includes("not authorized")),
                `${c.label}: the client did not log the close reason`);
        }
        const refusalLines = server.logLines.filter(line => line.includes("refused: not authorized"));
        assert.equal(refusalLines.length, cases.length, `one refusal per client, got:\n${refusalLines.join("\n")}`);
        assert.equal(listFiles(path.join(server.dataDir, "sessions")).length, 0, "a refused client must not create a session");
    }));
