"use strict";
// The real Croquet 2.0.4 client (Node.js build) against `metronome serve`.
// Every client is its own `node lib/client-process.js` process (docs/protocol.md §15: `window` shim,
// step: "manual" stepped every 50 ms) running a counter model that records every increment
// as [sender, index], so loss, duplication and reordering are visible in the model state.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const { runScenario, waitFor, sleep, listFiles, httpRequest } = require("../lib/harness");
const {
    key, statesOf, waitForAll, waitForCounter, waitForViews, waitForSynced,
    assertIdenticalModels, assertNoDuplicatesInOrder, assertExactlyOnce, assertCleanRun, seqAfter,
} = require("../lib/checks");

const CONVERGE_MS = 20000;
const JOIN_VIEWS_MS = 15000;

/** The most recent SNAP or SAVE (`kind` "snaps" / "saves") any of the clients sent, or null. */
function latestSent(states, kind) {
    const sent = states.flatMap(s => s.frameStats[kind]).sort((x, y) => x.at - y.at);
    return sent.length ? sent[sent.length - 1] : null;
}

test("(a) three clients in one session converge and see each other", { timeout: 120000 }, (t) =>
    runScenario(t, async ctx => {
        const server = await ctx.startServer();
        const labels = ["A", "B", "C"];
        const clients = [];
        for (const label of labels) clients.push(await ctx.startClient({ server, label, name: "converge" }));

        let states = await waitForViews(clients, 3, JOIN_VIEWS_MS);
        const sessionIds = new Set(states.map(s => s.sessionId));
        assert.equal(sessionIds.size, 1, `all clients must be in one session, got ${[...sessionIds]}`);
        const viewIds = states.map(s => s.viewId).sort();
        for (const s of states) {
            assert.deepEqual([...s.model.views].sort(), viewIds, `client ${s.label}: view-join events must name exactly the 3 views`);
        }

        const perClient = 25;
        await Promise.all(clients.map(client => client.increment(perClient, 40)));
        states = await waitForCounter(clients, perClient * labels.length, CONVERGE_MS);

        assertIdenticalModels(states);
        assertExactlyOnce(states[0].model.applied, Object.fromEntries(labels.map(l => [l, perClient])));
        for (const s of states) {
            assertCleanRun(s);
            assert.equal(s.model.viewCount, 3, `client ${s.label} view count`);
        }
    }));

test("(b) a late joiner syncs from a forced snapshot plus replay", { timeout: 120000 }, (t) =>
    runScenario(t, async ctx => {
        const server = await ctx.startServer();
        const name = "snapshot";
        const a = await ctx.startClient({ server, label: "A", name });
        const b = await ctx.startClient({ server, label: "B", name });
        await waitForViews([a, b], 2, JOIN_VIEWS_MS);

        await Promise.all([a.increment(10, 30), b.increment(10, 30)]);
        await waitForCounter([a, b], 20, CONVERGE_MS);

        // The VM accepts a snapshot poll only ≥ 5 s of session time after the previous one.
        await waitForAll([a, b], s => s.synced === true && s.sessionTime > 5500, "session time > 5.5 s and synced", 15000);

        let snap = null;
        for (let attempt = 1; attempt <= 3 && !snap; attempt++) {
            await a.forceSnapshot();
            try {
                snap = await waitFor(async () => latestSent(await statesOf([a, b]), "snaps"),
                    { timeoutMs: 8000, what: "a client to upload a snapshot and send SNAP" });
            } catch (error) {
                if (attempt === 3) throw error;
                ctx.note(`forceSnapshot attempt ${attempt} produced no SNAP within 8 s; retrying`);
            }
        }
        ctx.note(`SNAP: ${JSON.stringify(snap)}`);
        assert.match(snap.url, new RegExp(`^${server.baseUrl}files/`), "snapshot URL must point at the box's /files/");

        // The uploaded snapshot is served back and is stored under the data directory.
        const download = await httpRequest(snap.url);
        assert.equal(download.status, 200, `GET ${snap.url}`);
        assert.equal(download.body.subarray(0, 4).toString(), "CRQ1", "snapshot must be the client's encrypted binary (CRQ1)");
        const stored = listFiles(server.dataDir).filter(rel => {
            const full = path.join(server.dataDir, rel);
            return fs.statSync(full).size === download.body.length && fs.readFileSync(full).equals(download.body);
        });
        assert.ok(stored.length > 0, `no file under the data dir ${server.dataDir} holds the uploaded snapshot; files: ${listFiles(server.dataDir).join(", ")}`);

        // More traffic after the snapshot, which the late joiner must replay.
        await Promise.all([a.increment(5, 60), b.increment(5, 60)]);
        const before = await waitForCounter([a, b], 30, CONVERGE_MS);
        const latestSnap = latestSent(before, "snaps");

        const lastSeenByA = a.framesOf("RECV", "in").pop().seq;
        const c = await ctx.startClient({ server, label: "C", name });
        const cState = await c.state();
        assert.equal(cState.sessionId, before[0].sessionId, "late joiner must join the same session");
        const sync = cState.frameStats.syncs[0];
        assert.ok(sync, "late joiner received no SYNC");
        assert.equal(sync.url, latestSnap.url, "SYNC must point the late joiner at the latest snapshot");
        assert.equal(sync.persisted, false, "SYNC of a running session must not be marked persisted");
        assert.equal(sync.snapshotSeq, latestSnap.seq, "SYNC snapshotSeq");
        assert.equal(sync.snapshotTime, latestSnap.time, "SYNC snapshotTime");
        // The replayed part: a gap-free run of every message stamped after the snapshot (docs/protocol.md §6B),
        // at least the increments sent after it.
        assert.ok(sync.messageSeqs.length >= 1, "SYNC must carry the messages sent after the snapshot");
        sync.messageSeqs.forEach((seq, i) => {
            assert.equal(seq, (latestSnap.seq + 1 + i) >>> 0, `SYNC message #${i} seq must follow the snapshot seq ${latestSnap.seq} without gaps: ${sync.messageSeqs}`);
        });
        assert.equal(sync.seq, sync.messageSeqs[sync.messageSeqs.length - 1], "SYNC seq must be the last message's seq");
        assert.ok(!seqAfter(sync.seq, lastSeenByA), `SYNC seq ${sync.seq} is older than the last seq ${lastSeenByA} client A received before C joined`);

        let states = await waitForCounter([a, b, c], 30, CONVERGE_MS);
        assertIdenticalModels(states);
        assertExactlyOnce(states[2].model.applied, { A: 15, B: 15 });

        // The late joiner is a full member: its input reaches everybody.
        await c.increment(3, 30);
        states = await waitForCounter([a, b, c], 33, CONVERGE_MS);
        assertIdenticalModels(states);
        assertExactlyOnce(states[0].model.applied, { A: 15, B: 15, C: 3 });
        await waitForViews([a, b, c], 3, JOIN_VIEWS_MS);
        for (const s of states) assertCleanRun(s);

        // The snapshot pointer and the messages after it survive a crash: everybody leaves,
        // kill -9 right away, restart, and a new client gets the same snapshot + replay.
        const timeline = states[0].frameStats.syncs[0].timeline;
        await Promise.all([a, b, c].map(client => client.leave()));
        await Promise.all([a, b, c].map(client => client.close()));
        await server.restart({ kill: true });
        const d = await ctx.startClient({ server, label: "D", name });
        const dSync = (await d.state()).frameStats.syncs[0];
        ctx.note(`SYNC after kill -9 and restart: ${JSON.stringify(dSync)}`);
        assert.equal(dSync.timeline, timeline, "the session keeps its timeline across a kill -9");
        assert.equal(dSync.url, latestSnap.url, "after the restart SYNC must still point at the snapshot");
        assert.equal(dSync.snapshotSeq, latestSnap.seq, "snapshotSeq after the restart");
        const [dState] = await waitForCounter([d], 33, CONVERGE_MS);
        assert.deepEqual(dState.model.applied, states[0].model.applied, "state after kill -9 and restart");
    }));

test("(c) persistSession data and session state survive the session ending and a server restart", { timeout: 150000 }, (t) =>
    runScenario(t, async ctx => {
        // What a user expects (docs/protocol.md §9.2, §8.1, §11.3):
        //  1. all clients leave; once the server dropped the idle session (≥ 10 s later), joining
        //     again with the SAME code resumes the SAME session (same id and timeline) from the
        //     server's stored state — the model is not re-initialised from persisted data;
        //  2. after a server restart, a NEW code version (here: a changed Croquet Constant, so a new
        //     session id with the same persistentId) starts a fresh session whose root model's
        //     init(options, persisted) receives the data the old version saved via persistSession.
        let server = await ctx.startServer();
        const name = "persistence";
        const a = await ctx.startClient({ server, label: "A", name, codeVersion: 1 });
        const b = await ctx.startClient({ server, label: "B", name, codeVersion: 1 });
        await waitForViews([a, b], 2, JOIN_VIEWS_MS);
        await Promise.all([a.increment(4, 30), b.increment(3, 30)]);
        let states = await waitForCounter([a, b], 7, CONVERGE_MS);
        await waitForSynced([a, b], 10000);
        const persistedState = states[0].model;
        const original = { sessionId: states[0].sessionId, persistentId: states[0].persistentId, timeline: states[0].frameStats.syncs[0].timeline };

        // The server may list sessions at /sessions (optional, docs/protocol.md §3.2); use it only if it lists ours.
        const sessionsListing = await server.get("sessions").catch(() => null);
        const canWatchSessions = !!(sessionsListing && sessionsListing.status === 200 && sessionsListing.body.toString().includes(original.sessionId));

        await a.persist();
        const save = await waitFor(async () => latestSent(await statesOf([a, b]), "saves"),
            { timeoutMs: 15000, what: "a client to upload persisted data and send SAVE" });
        ctx.note(`SAVE: ${JSON.stringify(save)}`);
        const saved = await httpRequest(save.url);
        assert.equal(saved.status, 200, `GET ${save.url}`);
        assert.equal(saved.body.subarray(0, 4).toString(), "CRQ1", "persisted data must be the client's encrypted binary");
        // the vote/upload/SAVE happens in the view layer; give the server a moment to store the pointer
        await sleep(500);

        await Promise.all([a.leave(), b.leave()]);
        await Promise.all([a.close(), b.close()]);
        const leftAt = Date.now();

        // Wait until the server has dropped the idle session: leave delay (1.25 s) + 10 s (docs/protocol.md §11.3).
        if (canWatchSessions) {
            await waitFor(async () => {
                const listing = await server.get("sessions");
                return !listing.body.toString().includes(original.sessionId);
            }, { timeoutMs: 30000, intervalMs: 500, what: "GET /sessions to stop listing the idle session" });
        }
        ctx.note(canWatchSessions ? `GET /sessions stopped listing the session ${Date.now() - leftAt} ms after the clients left` : "GET /sessions does not list sessions; waiting a fixed time");
        const minimumGone = 1250 + 10000 + 1500;
        if (Date.now() - leftAt < minimumGone) await sleep(minimumGone - (Date.now() - leftAt));

        // 1. Same code: the same session resumes from the server's stored state.
        const a2 = await ctx.startClient({ server, label: "A2", name, codeVersion: 1 });
        let s2 = await a2.state();
        assert.equal(s2.sessionId, original.sessionId, "same code must give the same session id");
        const resumeSync = s2.frameStats.syncs[0];
        ctx.note(`SYNC of the resumed session: ${JSON.stringify(resumeSync)}`);
        assert.equal(resumeSync.persisted, false, "a session with stored state must resume from it, not from persisted data");
        assert.equal(resumeSync.timeline, original.timeline, "a resumed session keeps its timeline (docs/protocol.md §8.1)");
        s2 = (await waitForCounter([a2], 7, CONVERGE_MS))[0];
        assert.deepEqual(s2.model.applied, persistedState.applied, "resumed session must have the same model state");
        assert.equal(s2.model.restoredFromPersisted, null, "resumed session must not re-run init with persisted data");
        await a2.increment(1);
        await waitForCounter([a2], 8, CONVERGE_MS);
        await a2.leave();
        await a2.close();

        // 2. Server restart, then a new code version: fresh session initialised from persisted data.
        await server.restart();
        const v2 = await ctx.startClient({ server, label: "V2", name, codeVersion: 2 });
        const s3 = await v2.state();
        assert.notEqual(s3.sessionId, original.sessionId, "a changed Constant must give a new session id");
        assert.equal(s3.persistentId, original.persistentId, "the persistentId does not depend on the code");
        const freshSync = s3.frameStats.syncs[0];
        ctx.note(`SYNC of the new code version's session: ${JSON.stringify(freshSync)}`);
        assert.equal(freshSync.persisted, true, `SYNC for the new session must carry the persisted data (got ${JSON.stringify(freshSync)})`);
        assert.equal(freshSync.url, save.url, "SYNC url must be the URL announced in SAVE");
        assert.deepEqual(s3.model.restoredFromPersisted, { counter: 7, entries: 7 }, "root model init must receive the persisted data");
        assert.deepEqual(s3.model.applied, persistedState.applied, "model state restored from persisted data");
        assert.equal(s3.model.counter, 7);

        // 3. The new version persists the data it started from: the client uploads to the same
        //    path (named by the hash of the data before encryption) with other bytes (a new random
        //    IV). The server must accept it without replacing the first file, so the client sends
        //    SAVE with the same URL, which still decrypts to the same data (docs/operations.md,
        //    "Uploaded files and browsers"). A client that is not synced yet skips the vote.
        await waitForSynced([v2], 10000);
        await v2.persist();
        const resave = await waitFor(async () => latestSent([await v2.state()], "saves"),
            { timeoutMs: 15000, what: "the new version to upload the same persisted data again and send SAVE" });
        ctx.note(`SAVE of the new version: ${JSON.stringify(resave)}`);
        assert.equal(resave.url, save.url, "the same data has the same URL");
        const kept = await httpRequest(resave.url);
        assert.equal(kept.status, 200, `GET ${resave.url}`);
        assert.ok(kept.body.equals(saved.body), "the server keeps the first upload of a persisted-data path");

        await v2.increment(2);
        await waitForCounter([v2], 9, CONVERGE_MS);
    }));

/**
 * Three clients keep sending increments while the server is stopped (kill -9 or SIGTERM) and
 * started again on the same port and data directory. Asserts that every client rejoins
 * seamlessly (same session, same timeline, model not rebooted) and that nothing the model had
 * applied is lost or duplicated; only increments in flight at the moment of the stop may be lost.
 */
async function restartWhileSending(ctx, { kill }) {
    const how = kill ? "kill -9" : "SIGTERM";
    // rejoinLimit (client option, 0..60000 ms, default 1000) is how long the client keeps its
    // model while disconnected; a restart takes longer than the default 1 s, so the app
    // opts into 10 s — as an app that wants to survive a server restart would.
    const rejoinLimit = 10000;
    const server = await ctx.startServer();
    const name = kill ? "crash" : "graceful";
    const labels = ["A", "B", "C"];
    const clients = [];
    for (const label of labels) clients.push(await ctx.startClient({ server, label, name, rejoinLimit }));
    await waitForViews(clients, 3, JOIN_VIEWS_MS);
    await Promise.all(clients.map(c => c.increment(5, 30)));
    await waitForCounter(clients, 15, CONVERGE_MS);
    const initial = await statesOf(clients);
    const timeline = initial[0].frameStats.syncs[0].timeline;

    // Keep sending (10 per second per client) across the restart.
    const perClient = 40;
    const sending = Promise.all(clients.map(c => c.increment(perClient, 100)));
    await sleep(1200);
    const beforeStop = await statesOf(clients);
    const stopAt = Date.now();
    if (kill) await server.kill9();
    else await server.stop();
    await sleep(500);
    await server.start();
    const restartedAt = Date.now();
    ctx.note(`${how} at ${new Date(stopAt).toISOString()}, serving again ${restartedAt - stopAt} ms later`);
    await sending;

    await waitForSynced(clients, 30000);
    // A final marker from every client: once all markers are applied everywhere, every
    // surviving earlier increment is applied too (one sender's messages stay in order).
    await Promise.all(clients.map(c => c.increment(1)));
    const lastIndex = 5 + perClient; // indices 0..4 warm-up, 5..44 across the restart, 45 marker
    const final = await waitForAll(clients, s => s.model && labels.every(l => s.model.applied.some(([c, i]) => c === l && i === lastIndex)),
        "every client to apply every client's final marker increment", 30000);

    for (const s of final) {
        const before = initial.find(x => x.label === s.label);
        assert.equal(s.sessionId, before.sessionId, `client ${s.label} changed session`);
        assert.ok(s.frameStats.closes.length >= 1, `client ${s.label} never saw the connection drop`);
        assert.ok(s.frameStats.joins >= 2, `client ${s.label} never re-joined`);
        const syncs = s.frameStats.syncs;
        for (const sync of syncs) {
            assert.equal(sync.timeline, timeline, `client ${s.label}: SYNC after the restart has another timeline (server lost the session): ${JSON.stringify(sync)}`);
        }
        assert.equal(s.viewsConstructed, 1,
            `client ${s.label} rebooted its model (no seamless rejoin; docs/protocol.md §8.2). SYNCs seen: ${JSON.stringify(syncs.map(({ messageSeqs, ...rest }) => rest))}`);
    }

    assertIdenticalModels(final, `after ${how}: `);
    const applied = final[0].model.applied;
    assertNoDuplicatesInOrder(applied, `after ${how}: `);

    // Nothing any client had applied before the stop is lost (it was stamped, so it must be durable).
    for (const s of beforeStop) {
        assert.deepEqual(applied.slice(0, s.model.applied.length), s.model.applied,
            `increments client ${s.label} had applied before the ${how} are no longer the start of the history`);
    }

    // Increments that never arrived: only those that were in flight when the server went away, i.e.
    // published shortly before the stop and before the client noticed the disconnect. The client
    // library buffers what is published while it knows it is disconnected and sends it after the
    // seamless rejoin, so none of those may be missing.
    const appliedKeys = new Set(applied.map(key));
    for (const s of final) {
        const closeSeen = s.frameStats.closes.find(c => c.at >= stopAt);
        assert.ok(closeSeen, `client ${s.label} saw no close after the ${how}`);
        const missing = s.published.filter(p => !appliedKeys.has(`${s.label}#${p.index}`));
        const resync = s.frameStats.syncs.find(sync => sync.at > stopAt);
        ctx.note(`client ${s.label}: close seen ${closeSeen.at - stopAt} ms after the ${how} (code ${closeSeen.code} "${closeSeen.reason}"), ` +
            `SYNC after restart ${resync ? `${resync.at - stopAt} ms after the ${how}: seq ${resync.seq} time ${resync.time} ${resync.messageCount} messages` : "none"}, ` +
            `${s.frameStats.joins} JOINs, ${missing.length} increment(s) lost in flight${missing.length ? `: ${JSON.stringify(missing)}` : ""}`);
        for (const p of missing) {
            assert.ok(p.at <= closeSeen.at && p.at >= stopAt - 1500,
                `client ${s.label} increment #${p.index} (published ${p.at - stopAt} ms after the ${how}, close seen ${closeSeen.at - stopAt} ms after) was lost although it was not in flight when the server went away`);
        }
        assert.equal(s.published.length, lastIndex + 1, `client ${s.label} published count`);
    }
    await waitForViews(clients, 3, JOIN_VIEWS_MS);
}

test("(d) kill -9 of the server: clients rejoin seamlessly on the same timeline, nothing applied is lost or duplicated", { timeout: 150000 }, (t) =>
    runScenario(t, ctx => restartWhileSending(ctx, { kill: true })));

test("(d2) graceful restart (SIGTERM) while clients send: the same guarantees", { timeout: 150000 }, (t) =>
    runScenario(t, ctx => restartWhileSending(ctx, { kill: false })));

test("(e) two sessions on one server do not see each other's messages", { timeout: 120000 }, (t) =>
    runScenario(t, async ctx => {
        const server = await ctx.startServer();
        const one = [
            await ctx.startClient({ server, label: "one-A", name: "room-one" }),
            await ctx.startClient({ server, label: "one-B", name: "room-one" }),
        ];
        const two = [
            await ctx.startClient({ server, label: "two-A", name: "room-two" }),
            await ctx.startClient({ server, label: "two-B", name: "room-two" }),
        ];
        const viewsOne = await waitForViews(one, 2, JOIN_VIEWS_MS);
        const viewsTwo = await waitForViews(two, 2, JOIN_VIEWS_MS);
        assert.notEqual(viewsOne[0].sessionId, viewsTwo[0].sessionId, "different names must give different sessions");

        await Promise.all([...one, ...two].map(c => c.increment(8, 30)));
        const statesOne = await waitForCounter(one, 16, CONVERGE_MS);
        const statesTwo = await waitForCounter(two, 16, CONVERGE_MS);
        // give stray cross-session traffic a chance to show up before checking
        await sleep(500);
        const all = await statesOf([...one, ...two]);

        assertIdenticalModels(statesOne, "room-one: ");
        assertIdenticalModels(statesTwo, "room-two: ");
        assertExactlyOnce(all[0].model.applied, { "one-A": 8, "one-B": 8 }, "room-one: ");
        assertExactlyOnce(all[2].model.applied, { "two-A": 8, "two-B": 8 }, "room-two: ");
        const idsOne = statesOne.map(s => s.viewId).sort();
        const idsTwo = statesTwo.map(s => s.viewId).sort();
        for (const s of all.slice(0, 2)) assert.deepEqual([...s.model.views].sort(), idsOne, `${s.label} views`);
        for (const s of all.slice(2)) assert.deepEqual([...s.model.views].sort(), idsTwo, `${s.label} views`);
        for (const s of all) assertCleanRun(s);
    }));
