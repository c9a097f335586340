"use strict";
// The scenarios of `metronome serve --auth token` (docs/operations.md, "Access control") with a
// real client library in Node.js: test/access-control.test.js runs them with @croquet/croquet
// 2.0.4, test/multisynq.test.js with @multisynq/client 1.1.0, and test/tls.test.js runs the session
// part (joinSnapshotLateJoin) over wss://. The app only puts its token into the box URL, box:
// "http://host:port/k/<token>/"; the client derives its reflector URL
// (.../k/<token>/reflector/<sessionId>) and its file URLs (.../k/<token>/files/...) from it.
//
// Every scenario takes the options `library` (the client library lib/client-process.js loads;
// default @croquet/croquet) and `checkClient` (called with each client once it has joined, or
// been refused: a check of the library itself, e.g. its version).

const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const path = require("node:path");

const { sleep, listFiles, httpRequest, CroquetClient } = require("./harness");
const {
    statesOf, waitForCounter, waitForViews, waitForAll, assertIdenticalModels, assertExactlyOnce, assertCleanRun, forceSnapshotAndWait,
} = require("./checks");
const { APP_ID, KEY_ID, makeKeys, mintToken } = require("../fixtures/tokens");

const CONVERGE_MS = 20000;
const JOIN_VIEWS_MS = 15000;
// How long a refused client is watched for a reconnection attempt. The client reconnects after a
// non-fatal close at once, then after about 100-200 ms, so a loop shows within this.
const NO_RECONNECT_WATCH_MS = 4000;

const noCheck = () => {};

/**
 * Clients A and B (box `box`) join session `name`, send 10 increments each and converge; a forced
 * snapshot is uploaded with PUT under the box's files/ (with the token), announced in SNAP, stored
 * under the server's data dir and served back by GET (the client's encrypted binary, CRQ1). After 3
 * more increments each, a late joiner C (box `lateBox`) gets the snapshot's URL in its SYNC and
 * catches up to the counter 26. Returns the clients and the SNAP.
 */
async function joinSnapshotLateJoin(ctx, { server, box, lateBox = box, name, library, checkClient = noCheck }) {
    const start = async (label, baseUrl) => {
        const client = await ctx.startClient({ server: { baseUrl }, label, name, library });
        checkClient(client);
        return client;
    };
    const a = await start("A", box);
    const b = await start("B", box);
    await waitForViews([a, b], 2, JOIN_VIEWS_MS);
    await Promise.all([a.increment(10, 30), b.increment(10, 30)]);
    await waitForCounter([a, b], 20, CONVERGE_MS);

    const snap = await forceSnapshotAndWait(ctx, [a, b]);
    ctx.note(`SNAP url: ${snap.url.replace(/\/k\/[^/]+\//, "/k/<token>/")}`);
    assert.ok(snap.url.startsWith(`${box}files/snapshots/`), `the snapshot URL must be under the box's files, with the token: ${snap.url}`);
    const stored = listFiles(path.join(server.dataDir, "files"));
    assert.ok(stored.some(file => file.startsWith("snapshots")), `no snapshot stored under the data dir: ${stored}`);
    const download = await httpRequest(snap.url);
    assert.equal(download.status, 200, "GET of the snapshot with the token");
    assert.equal(download.body.subarray(0, 4).toString(), "CRQ1", "the snapshot is the client's encrypted binary");

    await Promise.all([a.increment(3, 50), b.increment(3, 50)]);
    await waitForCounter([a, b], 26, CONVERGE_MS);
    const c = await start("C", lateBox);
    const sync = (await c.state()).frameStats.syncs[0];
    assert.equal(sync.url, snap.url, "the late joiner's SYNC names the uploaded snapshot");
    await waitForCounter([a, b, c], 26, CONVERGE_MS);
    return { a, b, c, snap };
}

/**
 * (auth a): with a token minted by `metronome token mint` in box, the session works: join,
 * converge, snapshot upload, late join (joinSnapshotLateJoin), the late joiner with another token
 * (minted by Node.js crypto, for an app prefix). The snapshot is refused (401) without the token;
 * the server refuses nothing else and logs no token.
 */
async function tokenSession(ctx, { name, library, checkClient = noCheck }) {
    const keys = await makeKeys();
    const server = await ctx.startServer({ extraArgs: () => keys.serveArgs });
    const { token, box } = await keys.mintWithCli(server.baseUrl);
    assert.equal(box, `${server.baseUrl}k/${token}/`, "metronome token mint prints the box URL");
    const otherToken = keys.mint({ apps: ["io.metronome.*"], sub: "node-minted" });
    const { a, b, c, snap } = await joinSnapshotLateJoin(ctx, {
        server, box, lateBox: `${server.baseUrl}k/${otherToken}/`, name, library, checkClient,
    });

    const withoutToken = await httpRequest(snap.url.replace(`/k/${token}/`, "/"));
    assert.equal(withoutToken.status, 401, "GET of the snapshot without the token");
    assert.match(withoutToken.body.toString(), /^not authorized: no token/);

    await c.increment(2, 30);
    const states = await waitForCounter([a, b, c], 28, CONVERGE_MS);
    assertIdenticalModels(states);
    assertExactlyOnce(states[0].model.applied, { A: 13, B: 13, C: 2 });
    for (const s of states) assertCleanRun(s);
    // The only refusal is the test's own GET without the token.
    const refusals = server.logLines.filter(line => line.includes("not authorized"));
    assert.equal(refusals.length, 1, `the server refused a request of the clients:\n${refusals.join("\n")}`);
    assert.match(refusals[0], /file request refused: not authorized.* method=GET/);
    // Tokens are credentials: the server logs snapshot URLs with "<token>" in their place.
    for (const secret of [token, otherToken]) {
        assert.ok(!server.logLines.some(line => line.includes(secret.slice(0, 40))), "a token appears in the server log");
    }
    assert.ok(server.logLines.some(line => line.includes("/k/<token>/files/snapshots/")), "the snapshot URL is logged, redacted");
}

/**
 * (auth b): clients without a token, or with a forged, expired, wrong-app or garbage token are
 * each closed once with 4103 and the reason, do not reconnect, never complete Session.join and log
 * the reason; the server logs one refusal per client (the wrong app at JOIN) and creates no session.
 */
async function refusedTokens(ctx, { library, checkClient = noCheck } = {}) {
    const keys = await makeKeys();
    const server = await ctx.startServer({ extraArgs: () => keys.serveArgs });
    const now = Math.floor(Date.now() / 1000);
    const strangerKey = crypto.generateKeyPairSync("ed25519").privateKey;
    const forged = mintToken(strangerKey, { kid: KEY_ID, apps: [APP_ID], rights: ["join", "upload", "read"], exp: now + 3600 });
    const cases = [
        { label: "none", box: server.baseUrl, reason: /^not authorized: no token in the URL/ },
        { label: "forged", box: `${server.baseUrl}k/${forged}/`, reason: /^not authorized: bad signature/ },
        { label: "expired", box: `${server.baseUrl}k/${keys.mint({ exp: now - 60 })}/`, reason: /^not authorized: token expired at \d{4}-/ },
        { label: "other-app", box: `${server.baseUrl}k/${keys.mint({ apps: ["io.other.app"] })}/`, reason: /^not authorized: token is not for app io\.metronome\.jstest \(it is for io\.other\.app\)/ },
        { label: "garbage", box: `${server.baseUrl}k/let-me-in-please-pretty-please/`, reason: /^not authorized: not a signed token/ },
    ];
    // Started together (each is its own process), watched together.
    const clients = cases.map(c => {
        const client = new CroquetClient({ server: { baseUrl: c.box }, label: c.label, name: "refused", debug: "session", library });
        ctx.clients.push(client);
        return client;
    });
    await waitForAll(clients, s => s.frameStats.closes.length > 0, "every refused client to see its connection closed", 20000);
    await sleep(NO_RECONNECT_WATCH_MS);
    const states = await statesOf(clients);
    for (const [i, c] of cases.entries()) {
        const s = states[i];
        ctx.note(`${c.label}: closes ${JSON.stringify(s.frameStats.closes.map(({ code, reason }) => ({ code, reason })))}`);
        checkClient(clients[i]);
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
    // Exactly one refusal per client on the server (no loop), each logged with its reason.
    const refusalLines = server.logLines.filter(line => line.includes("refused: not authorized"));
    assert.equal(refusalLines.length, cases.length, `one refusal per client, got:\n${refusalLines.join("\n")}`);
    assert.equal(refusalLines.filter(line => line.includes("join refused")).length, 1, "the wrong-app token is refused at JOIN");
    assert.equal(listFiles(path.join(server.dataDir, "sessions")).length, 0, "a refused client must not create a session");
}

module.exports = { joinSnapshotLateJoin, tokenSession, refusedTokens };
