"use strict";
// Assertions over the replicated counter model reported by lib/client-process.js.

const assert = require("node:assert/strict");
const { waitFor } = require("./harness");

const key = ([client, index]) => `${client}#${index}`;

/** States of all clients, fetched in parallel. */
function statesOf(clients) {
    return Promise.all(clients.map(client => client.state()));
}

function shortState(state) {
    if (!state) return "no state";
    const m = state.model;
    return `${state.label}: connected=${state.connected} synced=${state.synced} time=${state.sessionTime} vmSeq=${state.vmSeq} ` +
        `views=${m ? JSON.stringify(m.views) : "-"} viewCount=${m ? m.viewCount : "-"} counter=${m ? m.counter : "-"} applied=${m ? m.applied.length : "-"}` +
        ` published=${state.published.length} joins=${state.frameStats.joins} closes=${state.frameStats.closes.length}` +
        (state.frameStats.closes.length ? ` last close=${JSON.stringify(state.frameStats.closes[state.frameStats.closes.length - 1])}` : "");
}

const describeStates = states => (states ? states.map(shortState).join("\n    ") : "none");

/** Waits until `predicate(state)` holds for the states of all clients (fetched together). */
async function waitForAll(clients, predicate, what, timeoutMs) {
    let last;
    return waitFor(async () => {
        const states = await statesOf(clients);
        last = states;
        return states.every(predicate) ? states : null;
    }, { timeoutMs, what, describe: () => describeStates(last) });
}

/** Waits until every client's model counter equals `counter`. */
function waitForCounter(clients, counter, timeoutMs) {
    return waitForAll(clients, s => s.model && s.model.counter === counter,
        `all ${clients.length} clients to reach counter ${counter}`, timeoutMs);
}

/** Waits until every client's model knows exactly `count` views (view-join/view-exit). */
function waitForViews(clients, count, timeoutMs) {
    return waitForAll(clients, s => s.model && s.model.views.length === count && s.model.viewCount === count,
        `all ${clients.length} clients to see ${count} views`, timeoutMs);
}

/** Waits until every client reports its controller as connected and synced. */
function waitForSynced(clients, timeoutMs) {
    return waitForAll(clients, s => s.connected && s.synced === true,
        `all ${clients.length} clients to be connected and synced`, timeoutMs);
}

/** Every client's model holds the identical list of applied increments (same order). */
function assertIdenticalModels(states, context = "") {
    const [first, ...rest] = states;
    for (const other of rest) {
        assert.deepEqual(other.model.applied, first.model.applied,
            `${context}client ${other.label} applied a different sequence of increments than client ${first.label}`);
        assert.equal(other.model.counter, first.model.counter,
            `${context}client ${other.label} counter ${other.model.counter} != client ${first.label} counter ${first.model.counter}`);
    }
}

/** No increment appears twice; each sender's increments appear in the order it sent them. */
function assertNoDuplicatesInOrder(applied, context = "") {
    const seen = new Set();
    const lastIndex = new Map();
    for (const entry of applied) {
        const k = key(entry);
        assert.ok(!seen.has(k), `${context}increment ${k} was applied twice`);
        seen.add(k);
        const [client, index] = entry;
        if (lastIndex.has(client)) {
            assert.ok(index > lastIndex.get(client),
                `${context}increments of ${client} were applied out of order: ${index} after ${lastIndex.get(client)}`);
        }
        lastIndex.set(client, index);
    }
}

/** `applied` holds exactly the increments 0..n-1 of every sender in `expected` ({label: n}). */
function assertExactlyOnce(applied, expected, context = "") {
    assertNoDuplicatesInOrder(applied, context);
    const want = [];
    for (const [label, n] of Object.entries(expected)) for (let i = 0; i < n; i++) want.push(`${label}#${i}`);
    const got = applied.map(key);
    const missing = want.filter(k => !got.includes(k));
    const unexpected = got.filter(k => !want.includes(k));
    assert.deepEqual({ missing, unexpected }, { missing: [], unexpected: [] },
        `${context}applied increments differ from the published ones`);
    assert.equal(applied.length, want.length, `${context}number of applied increments`);
}

/** The client never lost its connection and never rebooted its model. */
function assertCleanRun(state, context = "") {
    assert.deepEqual(state.frameStats.closes, [], `${context}client ${state.label} saw its WebSocket closed`);
    assert.equal(state.frameStats.joins, 1, `${context}client ${state.label} sent more than one JOIN`);
    assert.equal(state.viewsConstructed, 1, `${context}client ${state.label} rebooted its model/view`);
    const complaints = state.consoleErrors.filter(e => /mismatch|error|past message|sequence/i.test(e.line));
    assert.deepEqual(complaints, [], `${context}client ${state.label} logged errors`);
}

/** The most recent SNAP any of the states' clients sent, or null. */
function latestSnap(states) {
    const snaps = states.flatMap(s => s.frameStats.snaps).sort((x, y) => x.at - y.at);
    return snaps.length ? snaps[snaps.length - 1] : null;
}

/**
 * Has the clients take a snapshot: waits until all are synced at a session time past 5.5 s (the VM
 * accepts a snapshot poll only ≥ 5 s of session time after the previous one), then
 * `clients[0].forceSnapshot()` runs the poll → vote → upload → SNAP flow (docs/protocol.md §15),
 * tried up to three times, 8 s each. Returns the SNAP (`ctx` notes a retry).
 */
async function forceSnapshotAndWait(ctx, clients) {
    await waitForAll(clients, s => s.synced === true && s.sessionTime > 5500, "session time > 5.5 s and synced", 15000);
    let snap = null;
    for (let attempt = 1; attempt <= 3 && !snap; attempt++) {
        await clients[0].forceSnapshot();
        try {
            snap = await waitFor(async () => latestSnap(await statesOf(clients)), { timeoutMs: 8000, what: "a client to upload a snapshot and send SNAP" });
        } catch (error) {
            if (attempt === 3) throw error;
            ctx.note(`forceSnapshot attempt ${attempt} produced no SNAP within 8 s; retrying`);
        }
    }
    return snap;
}

/** 32-bit "b comes after a" as the client sees it (docs/protocol.md §4.5). */
function seqAfter(a, b) {
    return ((b - a) | 0) > 0;
}

module.exports = {
    key,
    statesOf,
    shortState,
    describeStates,
    waitForAll,
    waitForCounter,
    waitForViews,
    waitForSynced,
    assertIdenticalModels,
    assertNoDuplicatesInOrder,
    assertExactlyOnce,
    assertCleanRun,
    seqAfter,
    forceSnapshotAndWait,
};
