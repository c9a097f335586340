"use strict";
// The ephemeral channel (docs/protocol.md §22) next to the real Croquet 2.0.4 client: two
// Croquet clients (Node.js) share a session with two Go replicas (client/internal/ephemeralpeer:
// the Go SDK's link and model runtime, joined to the Croquet session by its id) that ask for the
// channel in their JOIN and broadcast on it all the while the Croquet clients send increments.
// The Go replicas must get each other's broadcasts; the Croquet clients must see no difference:
// not one frame with an action they do not know (the reflector never sends them EPHM), no
// "Unknown action" warning or other complaint, no close, identical models with every increment
// exactly once, and the Go replicas only as views that come and go.
//
// Needs Go (the test builds the peer with go build).

const { test } = require("node:test");
const assert = require("node:assert/strict");

const { runScenario, buildGo, LineProcess, withTimeout, CroquetClient } = require("../lib/harness");
const { statesOf, waitForViews, waitForCounter, assertIdenticalModels, assertExactlyOnce, assertCleanRun } = require("../lib/checks");

const JOIN_TIMEOUT_MS = 30 * 1000;
const CONVERGE_MS = 20 * 1000;
const PEER_EXIT_TIMEOUT_MS = 30 * 1000;
const PEER_BROADCASTS = 150;
const INCREMENTS = 20;
// What a reflector sends a standard client (docs/protocol.md §6B). TICKs are counted by the frame
// tap without being forwarded; every other received frame is counted here.
const STANDARD_ACTIONS = new Set(["SYNC", "RECV", "TICK", "INFO", "REQU", "PONG"]);

/** A Go peer as a child process; its stdout lines are its protocol (client/internal/ephemeralpeer). */
class Peer extends LineProcess {
    constructor(bin, view, args) {
        super(bin, ["--view", view, ...args], { name: `peer ${view}` });
        this.view = view;
    }

    /** The broadcasts it received, by sender: {from: {count, last}}. */
    received() {
        const received = {};
        for (const line of this.lines) {
            const match = line.match(/^received from=(\S*) count=(\d+) last=(.*)$/);
            if (match) received[match[1]] = { count: Number(match[2]), last: match[3] };
        }
        return received;
    }
}

/**
 * Starts a Croquet client and counts the action of every frame it receives (the harness keeps
 * only its last frames; the frame tap forwards all but TICKs).
 */
async function startCountingClient(ctx, options) {
    const client = new CroquetClient(options);
    client.actionsIn = new Map();
    const onMessage = client.onMessage.bind(client);
    client.onMessage = message => {
        if (message && message.type === "frame" && message.frame.dir === "in") {
            const action = String(message.frame.action);
            client.actionsIn.set(action, (client.actionsIn.get(action) || 0) + 1);
        }
        onMessage(message);
    };
    ctx.clients.push(client);
    await client.waitJoined();
    return client;
}

test("ephemeral: Croquet clients see no difference while Go replicas in their session broadcast", { timeout: 180000 }, (t) =>
    runScenario(t, async ctx => {
        const [server, peerBin] = await Promise.all([ctx.startServer(), buildGo("./client/internal/ephemeralpeer")]);
        const name = "ephemeral";
        const a = await startCountingClient(ctx, { server, label: "A", name });
        const b = await startCountingClient(ctx, { server, label: "B", name });
        let states = await waitForViews([a, b], 2, CONVERGE_MS);
        const sessionId = states[0].sessionId;
        assert.equal(states[1].sessionId, sessionId, "both Croquet clients must be in one session");

        // Two Go replicas join the Croquet clients' session, ask for the channel and broadcast.
        const peers = [];
        try {
            for (const view of ["gopeer1", "gopeer2"]) {
                peers.push(new Peer(peerBin, view, ["--reflector", `ws://127.0.0.1:${server.port}/reflector`, "--session", sessionId,
                    "--broadcasts", String(PEER_BROADCASTS), "--every", "10ms", "--stay", "3s"]));
            }
            await Promise.all(peers.map(peer => peer.waitLine(/^joined view/, JOIN_TIMEOUT_MS, "to join the Croquet session")));
            ctx.note("both Go peers joined the Croquet session and broadcast");

            // Meanwhile the Croquet clients work as usual, and see the peers come as views.
            await Promise.all([a.increment(INCREMENTS, 40), b.increment(INCREMENTS, 40)]);
            states = await waitForViews([a, b], 4, CONVERGE_MS);
            for (const s of states) {
                for (const peer of peers) assert.ok(s.model.views.includes(peer.view), `client ${s.label} must see ${peer.view} join: ${s.model.views}`);
            }
            states = await waitForCounter([a, b], 2 * INCREMENTS, CONVERGE_MS);
            assertIdenticalModels(states);
            assertExactlyOnce(states[0].model.applied, { A: INCREMENTS, B: INCREMENTS });

            // The peers got each other's broadcasts, the latest of each among them, and nothing else.
            const statuses = await Promise.all(peers.map(peer => withTimeout(peer.exited, PEER_EXIT_TIMEOUT_MS, `peer ${peer.view} to finish`)));
            statuses.forEach((status, i) => assert.equal(status.code, 0, `peer ${peers[i].view} exited with ${JSON.stringify(status)}\n${peers[i].tail()}`));
            for (const [self, other] of [[peers[0], peers[1]], [peers[1], peers[0]]]) {
                const received = self.received();
                assert.deepEqual(Object.keys(received), [other.view], `peer ${self.view} must get broadcasts from ${other.view} only: ${JSON.stringify(received)}\n${self.tail()}`);
                assert.equal(received[other.view].last, `"${other.view}:${PEER_BROADCASTS}"`, `peer ${self.view} must get ${other.view}'s latest broadcast\n${self.tail()}`);
                ctx.note(`${self.view} got ${received[other.view].count} of ${other.view}'s ${PEER_BROADCASTS} broadcasts (paced and coalesced by its link)`);
            }
        } finally {
            for (const peer of peers) if (!peer.exitStatus) peer.child.kill("SIGKILL");
        }

        // The peers left: the Croquet clients see them go, and nothing else happened to them.
        states = await waitForViews([a, b], 2, CONVERGE_MS);
        states = await statesOf([a, b]);
        assertIdenticalModels(states);
        for (const [i, client] of [a, b].entries()) {
            const s = states[i];
            const unknown = [...client.actionsIn.keys()].filter(action => !STANDARD_ACTIONS.has(action));
            assert.deepEqual(unknown, [], `client ${s.label} was sent frames it does not know: ${JSON.stringify([...client.actionsIn])}`);
            assert.ok(client.actionsIn.get("RECV") > 0 && client.actionsIn.get("SYNC") === 1, `client ${s.label} frames: ${JSON.stringify([...client.actionsIn])}`);
            const warnings = s.consoleErrors.filter(e => /unknown action|EPHM/i.test(e.line));
            assert.deepEqual(warnings, [], `client ${s.label} complained about a frame`);
            assertCleanRun(s);
        }
        ctx.note(`frames received by A: ${JSON.stringify([...a.actionsIn])} (TICKs are not counted)`);
    }));
