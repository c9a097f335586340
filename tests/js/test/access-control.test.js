"use strict";
// `metronome serve --auth token` with the real Croquet 2.0.4 client (Node.js), unmodified: the
// app only puts its token into the box URL, box: "http://host:port/k/<token>/" (docs/operations.md,
// "Access control"). The client derives its reflector URL (.../k/<token>/reflector/<sessionId>) and
// its file URLs (.../k/<token>/files/...) from it.
//
// Tokens come from `metronome token keygen` / `metronome token mint`, and also from a few lines of
// Node.js crypto (mintToken below: what an operator's backend does), which checks the documented
// format independently of the Go code.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");
const { execFile } = require("node:child_process");
const { promisify } = require("node:util");

const { runScenario, waitFor, sleep, listFiles, httpRequest, buildServer, makeTempDir, CroquetClient } = require("../lib/harness");
const { statesOf, waitForCounter, waitForViews, waitForAll, assertIdenticalModels, assertExactlyOnce, assertCleanRun } = require("../lib/checks");

const execFileAsync = promisify(execFile);

const APP_ID = "io.metronome.jstest"; // the appId of lib/client-process.js
const KEY_ID = "js-test";
const CONVERGE_MS = 20000;
const JOIN_VIEWS_MS = 15000;
// How long a refused client is watched for a reconnection attempt. The Croquet client reconnects
// after a non-fatal close at once, then after about 100-200 ms, so a loop shows within this.
const NO_RECONNECT_WATCH_MS = 4000;

/** A token as docs/operations.md describes it: mt1.<base64url(JSON claims)>.<base64url(Ed25519 signature)>. */
function mintToken(privateKey, claims) {
    const signed = `mt1.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
    const signature = crypto.sign(null, Buffer.from(signed), privateKey).toString("base64url");
    return `${signed}.${signature}`;
}

/**
 * A signing key made by `metronome token keygen`, a keys file with its line, and a token minted by
 * `metronome token mint` for the test app (with the box URL it prints).
 */
async function makeKeys(baseUrl) {
    const bin = await buildServer();
    const dir = makeTempDir("auth");
    const keyFile = path.join(dir, "signing.pem");
    const keygen = await execFileAsync(bin, ["token", "keygen", "--out", keyFile, "--kid", KEY_ID]);
    const keysFile = path.join(dir, "keys.txt");
    fs.writeFileSync(keysFile, `# written by access-control.test.js\n${keygen.stdout}`);
    return {
        keysFile,
        privateKey: crypto.createPrivateKey(fs.readFileSync(keyFile)),
        async mintWithCli(server) {
            const minted = await execFileAsync(bin, ["token", "mint", "--key", keyFile, "--kid", KEY_ID, "--app", APP_ID,
                "--ttl", "1h", "--sub", "cli-minted", "--server", server.baseUrl]);
            const [token, box] = minted.stdout.trim().split("\n");
            return { token, box };
        },
    };
}

const tokenServerArgs = keys => () => ["--auth", "token", "--auth-keys", keys.keysFile];

/** The most recent SNAP any of the states' clients sent, or null. */
function latestSnap(states) {
    const snaps = states.flatMap(s => s.frameStats.snaps).sort((x, y) => x.at - y.at);
    return snaps.length ? snaps[snaps.length - 1] : null;
}

test("(auth a) with a token in box the session works: join, converge, snapshot upload, late join", { timeout: 150000 }, (t) =>
    runScenario(t, async ctx => {
        const keys = await makeKeys();
        const server = await ctx.startServer({ extraArgs: tokenServerArgs(keys) });
        const { token, box } = await keys.mintWithCli(server);
        assert.equal(box, `${server.baseUrl}k/${token}/`, "metronome token mint prints the box URL");
        const boxed = { baseUrl: box }; // the harness gives clients box: server.baseUrl
        const name = "access-control";

        const a = await ctx.startClient({ server: boxed, label: "A", name });
        const b = await ctx.startClient({ server: boxed, label: "B", name });
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
        const withoutToken = await httpRequest(snap.url.replace(`/k/${token}/`, "/"));
        assert.equal(withoutToken.status, 401, "GET of the snapshot without the token");
        assert.match(withoutToken.body.toString(), /^not authorized: no token/);

        // A late joiner with another token (minted by Node.js crypto, for an app prefix) gets the
        // snapshot URL with the uploader's token in its SYNC, downloads it, and catches up.
        await Promise.all([a.increment(3, 50), b.increment(3, 50)]);
        await waitForCounter([a, b], 26, CONVERGE_MS);
        const otherToken = mintToken(keys.privateKey, {
            kid: KEY_ID, apps: ["io.metronome.*"], rights: ["join", "upload", "read"], exp: Math.floor(Date.now() / 1000) + 3600, sub: "node-minted",
        });
        const c = await ctx.startClient({ server: { baseUrl: `${server.baseUrl}k/${otherToken}/` }, label: "C", name });
        const sync = (await c.state()).frameStats.syncs[0];
        assert.equal(sync.url, snap.url, "the late joiner's SYNC names the uploaded snapshot");
        let states = await waitForCounter([a, b, c], 26, CONVERGE_MS);
        await c.increment(2, 30);
        states = await waitForCounter([a, b, c], 28, CONVERGE_MS);
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
    }));

test("(auth b) without a token, or with a bad, expired or wrong-app token, the client is refused with the reason and stops", { timeout: 120000 }, (t) =>
    runScenario(t, async ctx => {
        const keys = await makeKeys();
        const server = await ctx.startServer({ extraArgs: tokenServerArgs(keys) });
        const now = Math.floor(Date.now() / 1000);
        const claims = { kid: KEY_ID, apps: [APP_ID], rights: ["join", "upload", "read"], exp: now + 3600 };
        const strangerKey = crypto.generateKeyPairSync("ed25519").privateKey;
        const cases = [
            { label: "none", box: server.baseUrl, reason: /^not authorized: no token in the URL/, log: "websocket refused" },
            { label: "forged", box: `${server.baseUrl}k/${mintToken(strangerKey, claims)}/`, reason: /^not authorized: bad signature/, log: "websocket refused" },
            { label: "expired", box: `${server.baseUrl}k/${mintToken(keys.privateKey, { ...claims, exp: now - 60 })}/`, reason: /^not authorized: token expired at \d{4}-/, log: "websocket refused" },
            { label: "other-app", box: `${server.baseUrl}k/${mintToken(keys.privateKey, { ...claims, apps: ["io.other.app"] })}/`, reason: /^not authorized: token is not for app io\.metronome\.jstest \(it is for io\.other\.app\)/, log: "join refused" },
            { label: "garbage", box: `${server.baseUrl}k/let-me-in-please-pretty-please/`, reason: /^not authorized: not a signed token/, log: "websocket refused" },
        ];
        // Started together (each is its own process), watched together.
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
    }));
