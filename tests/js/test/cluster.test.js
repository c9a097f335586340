"use strict";
// Cluster mode (docs/cluster.md) under real Croquet 2.0.4 clients (Node.js).
//
// Three `metronome serve` processes form a cluster (each embeds a NATS server with JetStream; they
// find each other through --cluster-routes). One node, the session's owner (holder of its lease in
// JetStream KV, --cluster-lease 1.5 s), stamps the session; the other nodes pass the WebSocket
// upgrades of its clients on to the owner (an HTTP reverse proxy). When the owner dies, its lease
// expires and the next node a client reaches claims the session and restores it from JetStream;
// the clients see their connection break and reconnect.
//
// The counter model of lib/client-process.js records every increment as [sender, index], so loss,
// duplication and reordering are visible in the replicated state; the checks are those of
// lib/checks.js and of the single-server kill -9 test (test/node-client.test.js (d)).
//
// Which node owns the session is read from each node's admin listener (GET /sessions lists the
// sessions the node has an actor for), how many connections it forwards from its /metrics
// (metronome_cluster_forwarded_connections).
//
// (1) Six clients, two joined through each node's address at once, converge: one node owns the
//     session, the other two forward their clients, every client applies the identical history,
//     each increment once, and none is ever closed or rejoins.
// (2) The owner is killed with kill -9 while every client sends. The clients of the two other
//     nodes reconnect to their node (which waits out the dead owner's lease, then claims the
//     session and restores it from JetStream, or forwards to the node that did); the clients
//     that were on the dead node reach it through a small TCP proxy (a load balancer) that moves
//     them to a live node. All rejoin seamlessly on the same timeline (the client reboots its
//     model otherwise), converge, apply nothing twice, lose nothing they had applied, and lose
//     only increments in flight when the owner died. How long the failover took, and what the
//     nodes logged meanwhile (lease expiry, JetStream leader elections), is reported, not
//     asserted.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const net = require("node:net");
const path = require("node:path");

const {
    runScenario, waitFor, sleep, httpRequest, buildServer, freePort, makeTempDir, MetronomeServer,
} = require("../lib/harness");
const {
    key, statesOf, waitForAll, waitForCounter, waitForViews, waitForSynced,
    assertIdenticalModels, assertNoDuplicatesInOrder, assertExactlyOnce, assertCleanRun,
} = require("../lib/checks");

const NODES = 3;
/** A node answers /healthz only once a majority of the cluster is up (they start together). */
const CLUSTER_READY_MS = 60000;
const JOIN_VIEWS_MS = 20000;
const CONVERGE_MS = 20000;
/**
 * The failover: the dead owner's lease runs out (1.5 s); if the owner also led the Raft group of
 * the leases' KV bucket or of the sessions' stream, that group elects a new leader first (NATS: an
 * election timeout of 4 to 9 s), before the lease can expire or an append succeed; then the
 * clients' reconnect back-off. With a wide margin.
 */
const FAILOVER_MS = 40000;
/**
 * Clients keep their model across the failover this long (the default 1 s would reboot it); the
 * maximum, so that how long the failover takes is reported, not asserted.
 */
const REJOIN_LIMIT_MS = 60000;
/** An increment may be lost only if it was published this soon before the kill (in flight). */
const IN_FLIGHT_MS = 1500;

// ---------------------------------------------------------------- the cluster

/**
 * Starts NODES `metronome serve` processes as one cluster (all at once: each waits for a JetStream
 * majority) and waits until each is serving. Every node has an admin listener; `node.adminUrl`.
 */
async function startCluster(ctx, clusterName) {
    const bin = await buildServer();
    const specs = [];
    for (let i = 1; i <= NODES; i++) {
        specs.push({ name: `n${i}`, port: await freePort(), adminPort: await freePort(), routePort: await freePort() });
    }
    const routes = specs.map(spec => `nats://127.0.0.1:${spec.routePort}`).join(",");
    const nodes = specs.map(spec => {
        const node = new MetronomeServer({
            bin, port: spec.port, dataDir: makeTempDir(`cluster-${spec.name}`), name: spec.name, readyTimeoutMs: CLUSTER_READY_MS,
            extraArgs: () => ["--admin-addr", `127.0.0.1:${spec.adminPort}`,
                "--cluster-name", clusterName, "--node-name", spec.name,
                "--cluster-listen", `127.0.0.1:${spec.routePort}`, "--cluster-routes", routes],
        });
        node.adminUrl = `http://127.0.0.1:${spec.adminPort}/`;
        ctx.servers.push(node);
        return node;
    });
    const startedAt = Date.now();
    await Promise.all(nodes.map(node => node.start()));
    await waitFor(() => nodes.every(node => node.logLines.some(line => line.includes('msg="metronome serving"'))),
        { timeoutMs: 10000, what: 'every node to log msg="metronome serving"' });
    ctx.note(`cluster "${clusterName}" of ${NODES} nodes serving ${Date.now() - startedAt} ms after start: ` +
        nodes.map(node => `${node.name} ${node.baseUrl} (admin ${node.adminUrl})`).join(", "));
    return nodes;
}

/** The session ids a node has an actor for (its admin GET /sessions, one id per line). */
async function ownedSessions(node) {
    const answer = await httpRequest(`${node.adminUrl}sessions`, { timeoutMs: 2000 });
    assert.equal(answer.status, 200, `${node.name}: admin GET /sessions`);
    return answer.body.toString().split("\n").map(line => line.trim()).filter(Boolean);
}

/** A node's metric (the first sample of `name` on its admin /metrics), or NaN. */
async function metric(node, name) {
    const answer = await httpRequest(`${node.adminUrl}metrics`, { timeoutMs: 2000 });
    const line = answer.body.toString().split("\n").find(l => l.startsWith(`${name} `));
    return line ? Number(line.split(" ")[1]) : NaN;
}

/**
 * Waits until exactly one of the running `nodes` lists `sessionId` in its /sessions, and returns
 * it; `lists` says what each node listed.
 */
async function waitForOwner(nodes, sessionId, timeoutMs) {
    let last = [];
    return waitFor(async () => {
        last = await Promise.all(nodes.map(async node => ({ node, ids: await ownedSessions(node) })));
        const owners = last.filter(entry => entry.ids.includes(sessionId));
        return owners.length === 1 ? owners[0].node : null;
    }, {
        timeoutMs, what: `exactly one node to own session ${sessionId}`,
        describe: () => last.map(entry => `${entry.node.name}: [${entry.ids.join(", ")}]`).join("; "),
    });
}

/** The log time (`time=...`) of a node's log line, in ms since the epoch, or NaN. */
function logTime(line) {
    const match = /time=(\S+)/.exec(line);
    return match ? Date.parse(match[1]) : NaN;
}

/**
 * The JetStream streams each node led at `at` (from the NATS log: "JetStream cluster new stream
 * leader for '$G > <stream>'", logged by the new leader), as {stream: node name}.
 */
function streamLeaders(nodes, at) {
    const leaders = {};
    const events = [];
    for (const node of nodes) {
        for (const line of node.logLines) {
            const match = /new stream leader for '\$G > ([^']+)'/.exec(line);
            if (match && logTime(line) <= at) events.push({ at: logTime(line), stream: match[1], node: node.name });
        }
    }
    for (const event of events.sort((x, y) => x.at - y.at)) leaders[event.stream] = event.node;
    return leaders;
}

/**
 * What the nodes logged about the session and JetStream since `since`: each line's node, ms after
 * `since`, and a short text; for the failover's account.
 */
function clusterEvents(nodes, since, sessionId) {
    const patterns = [
        [/msg="(JetStream cluster new (?:stream|metadata) leader[^"]*|Self is new JetStream cluster metadata leader)"/, m => m[1]],
        [/msg="session resumed from storage"/, () => "session resumed from storage"],
        [/msg="session storage failed[^"]*" .*err="((?:[^"\\]|\\.)*)"/, m => `session storage failed: ${m[1].replace(/^session \\"[^\\]*\\": /, "")}`],
        [/msg="(session is owned by another node)[^"]*" .*err="((?:[^"\\]|\\.)*)"/, m => {
            const expecting = /append expecting last sequence \d+/.exec(m[2]);
            const code = /err_code=\d+ description=[^)]*/.exec(m[2]);
            return `${m[1]} (${[expecting && expecting[0], code && code[0]].filter(Boolean).join(": ") || m[2]})`;
        }],
        [/msg="(session ownership lost[^"]*)"/, m => m[1]],
        [/msg="(websocket upgrade refused[^"]*)"/, m => m[1]],
    ];
    const events = [];
    for (const node of nodes) {
        for (const line of node.logLines) {
            const at = logTime(line);
            if (!(at >= since)) continue;
            if (/msg="session/.test(line) && !line.includes(sessionId)) continue;
            for (const [pattern, text] of patterns) {
                const match = pattern.exec(line);
                if (match) { events.push({ at, node: node.name, text: text(match) }); break; }
            }
        }
    }
    return events.sort((x, y) => x.at - y.at);
}

/**
 * The events, those of one node with one text folded into one entry with their first and last
 * times and count ("n2 +1506..+5042 ms session resumed from storage (×8)"), in order of first time.
 */
function describeEvents(events, since) {
    const groups = new Map();
    for (const event of events) {
        const k = `${event.node}\u0000${event.text}`;
        const group = groups.get(k);
        if (group) { group.to = event.at; group.count++; }
        else groups.set(k, { node: event.node, text: event.text, from: event.at, to: event.at, count: 1 });
    }
    return [...groups.values()].sort((x, y) => x.from - y.from)
        .map(g => `${g.node} +${g.from - since}${g.count > 1 ? `..+${g.to - since}` : ""} ms ${g.text}${g.count > 1 ? ` (×${g.count})` : ""}`).join("; ") || "nothing";
}

// ---------------------------------------------------------------- a TCP proxy

/**
 * A TCP proxy in front of the nodes, as a load balancer: each connection goes to the first node
 * in `nodes` order that accepts it (a refused connection tries the next), so its clients are all
 * on the first node while it lives and move to the next live one when it dies. `routes` records
 * where every connection went.
 */
class FailoverProxy {
    constructor(nodes) {
        this.nodes = nodes;
        this.routes = [];
        this.sockets = new Set();
    }

    async listen() {
        this.server = net.createServer(socket => this.accept(socket));
        await new Promise((resolve, reject) => {
            this.server.once("error", reject);
            this.server.listen(0, "127.0.0.1", resolve);
        });
        this.port = this.server.address().port;
        return this;
    }

    get baseUrl() { return `http://127.0.0.1:${this.port}/`; }

    track(socket) {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
    }

    accept(client) {
        this.track(client);
        client.pause();
        let upstream = null;
        client.on("error", () => { if (upstream) upstream.destroy(); });
        client.on("close", () => { if (upstream) upstream.destroy(); });
        const refused = [];
        const tryNode = i => {
            if (client.destroyed) return;
            if (i >= this.nodes.length) {
                this.routes.push({ at: Date.now(), node: null, refused });
                client.destroy();
                return;
            }
            const node = this.nodes[i];
            const socket = net.connect(node.port, "127.0.0.1");
            socket.once("error", () => {
                socket.destroy();
                refused.push(node.name);
                tryNode(i + 1);
            });
            socket.once("connect", () => {
                socket.removeAllListeners("error");
                upstream = socket;
                this.track(socket);
                this.routes.push({ at: Date.now(), node: node.name, refused: refused.slice() });
                socket.on("error", () => client.destroy());
                socket.on("close", () => client.destroy());
                if (client.destroyed) { socket.destroy(); return; }
                client.pipe(socket);
                socket.pipe(client);
                client.resume();
            });
        };
        tryNode(0);
    }

    close() {
        for (const socket of this.sockets) socket.destroy();
        return new Promise(resolve => this.server.close(() => resolve()));
    }

    describeRoutes(since = 0) {
        return this.routes.filter(r => r.at >= since)
            .map(r => `${r.node || "none"}${r.refused.length ? ` (refused by ${r.refused.join(", ")})` : ""}`).join(", ");
    }
}

/**
 * Runs `fn` with fixtures/ws-error-tap.js preloaded into the client processes: a refused upgrade
 * (503 while the session's owner cannot be reached) shows in their frames as dir "error".
 */
async function withErrorTap(fn) {
    const nodeOptions = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = `${nodeOptions || ""} --require ${path.join(__dirname, "..", "fixtures", "ws-error-tap.js")}`.trim();
    try {
        return await fn();
    } finally {
        if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
        else process.env.NODE_OPTIONS = nodeOptions;
    }
}

// ---------------------------------------------------------------- the scenarios

test("cluster (1): six clients on three nodes, one session, converge through the owner", { timeout: 120000 }, (t) =>
    runScenario(t, async ctx => {
        const nodes = await startCluster(ctx, "converge");
        const name = "cluster-converge";
        // Two clients per node, all joining at once: the nodes race to claim the new session, one
        // wins and the others forward their clients to it before the upgrade (no client is
        // accepted and then sent away).
        const placement = [["A", 0], ["B", 0], ["C", 1], ["D", 1], ["E", 2], ["F", 2]];
        const labels = placement.map(([label]) => label);
        const clients = await Promise.all(placement.map(([label, i]) => ctx.startClient({ server: nodes[i], label, name })));

        let states = await waitForViews(clients, clients.length, JOIN_VIEWS_MS);
        const sessionIds = new Set(states.map(s => s.sessionId));
        assert.equal(sessionIds.size, 1, `all clients must be in one session, got ${[...sessionIds]}`);
        const sessionId = states[0].sessionId;
        const viewIds = states.map(s => s.viewId).sort();
        for (const s of states) {
            assert.deepEqual([...s.model.views].sort(), viewIds, `client ${s.label}: view-join events must name exactly the ${clients.length} views`);
        }

        // Exactly one node has the session; the other two forward their two clients each to it.
        const owner = await waitForOwner(nodes, sessionId, 5000);
        const lists = await Promise.all(nodes.map(ownedSessions));
        for (const [i, node] of nodes.entries()) {
            if (node !== owner) assert.deepEqual(lists[i], [], `${node.name} is not the owner: it must hold no session`);
        }
        const expectForwarded = node => (node === owner ? 0 : placement.filter(([, i]) => nodes[i] === node).length);
        let forwarded = [];
        await waitFor(async () => {
            forwarded = await Promise.all(nodes.map(node => metric(node, "metronome_cluster_forwarded_connections")));
            return nodes.every((node, i) => forwarded[i] === expectForwarded(node));
        }, { timeoutMs: 5000, what: "each non-owner node to forward its own two clients (metronome_cluster_forwarded_connections)",
            describe: () => nodes.map((node, i) => `${node.name}: ${forwarded[i]} (want ${expectForwarded(node)})`).join(", ") });
        ctx.note(`owner ${owner.name}; forwarded connections: ${nodes.map((node, i) => `${node.name} ${forwarded[i]}`).join(", ")}`);

        const perClient = 20;
        await Promise.all(clients.map(client => client.increment(perClient, 30)));
        states = await waitForCounter(clients, perClient * clients.length, CONVERGE_MS);
        const joinedAt = Math.min(...states.map(s => s.joinedAt));
        ctx.note(`the nodes about the session since the first join: ${describeEvents(clusterEvents(nodes, joinedAt - 5000, sessionId), joinedAt)}`);

        assertIdenticalModels(states);
        assertExactlyOnce(states[0].model.applied, Object.fromEntries(labels.map(l => [l, perClient])));
        for (const s of states) {
            assertCleanRun(s);
            assert.equal(s.model.viewCount, clients.length, `client ${s.label} view count`);
        }
        ctx.note(`${states[0].model.applied.length} increments applied identically by all ${clients.length} clients ` +
            `(${states[0].model.applied.slice(0, 12).map(key).join(" ")} ...)`);
    }));

test("cluster (2): kill -9 of the owner: clients of the surviving nodes go on, nothing lost or applied twice", { timeout: 120000 }, (t) =>
    withErrorTap(() => runScenario(t, async ctx => {
        const nodes = await startCluster(ctx, "failover");
        const name = "cluster-failover";
        // A load balancer in front of the nodes that prefers n1: the clients behind it start on n1
        // and move to a live node when n1 dies.
        const proxy = await new FailoverProxy(nodes).listen();
        ctx.onCleanup(() => proxy.close());

        // The first client reaches n1 (through the proxy), so n1 claims the session.
        const clients = [await ctx.startClient({ server: nodes[0], box: proxy.baseUrl, label: "P1", name, rejoinLimit: REJOIN_LIMIT_MS })];
        const later = [["P2", null], ["C", 1], ["D", 1], ["E", 2], ["F", 2]];
        clients.push(...await Promise.all(later.map(([label, i]) => i === null
            ? ctx.startClient({ server: nodes[0], box: proxy.baseUrl, label, name, rejoinLimit: REJOIN_LIMIT_MS })
            : ctx.startClient({ server: nodes[i], label, name, rejoinLimit: REJOIN_LIMIT_MS }))));
        const labels = clients.map(client => client.label);
        const where = client => (client.config.box === proxy.baseUrl ? "proxy" : nodes.find(node => node.baseUrl === client.config.box).name);

        await waitForViews(clients, clients.length, JOIN_VIEWS_MS);
        await Promise.all(clients.map(c => c.increment(5, 30)));
        await waitForCounter(clients, 5 * clients.length, CONVERGE_MS);
        const initial = await statesOf(clients);
        const sessionId = initial[0].sessionId;
        const timeline = initial[0].frameStats.syncs[0].timeline;
        const owner = await waitForOwner(nodes, sessionId, 5000);
        assert.equal(owner, nodes[0], `the session must be owned by the node its first client reached (n1), not ${owner.name}`);
        assert.deepEqual(proxy.routes.map(r => r.node), ["n1", "n1"], "the proxy's clients must start on n1");
        const survivors = nodes.filter(node => node !== owner);
        ctx.note(`owner ${owner.name}; clients: ${clients.map(c => `${c.label}@${where(c)}`).join(", ")}`);

        // Keep sending (10 per second per client) across the failover.
        const perClient = 50;
        const sending = Promise.all(clients.map(c => c.increment(perClient, 100)));
        await sleep(1200);
        const beforeKill = await statesOf(clients);
        const leaders = streamLeaders(nodes, Date.now());
        ctx.note(`JetStream stream leaders before the kill: ${Object.entries(leaders).map(([stream, node]) => `${stream} ${node}`).join(", ")}`);
        const killAt = Date.now();
        await owner.kill9();
        ctx.note(`kill -9 ${owner.name} at ${new Date(killAt).toISOString()}`);

        // Every client sees its connection break and rejoins: the direct ones through their own
        // node (which waits out the dead owner's lease, then claims or forwards), the proxied ones
        // through the next live node.
        await waitForAll(clients, s => s.connected && s.synced === true && s.frameStats.syncs.some(sync => sync.at > killAt),
            "every client to rejoin after the kill (a SYNC after it) and be synced", FAILOVER_MS);
        const newOwner = await waitForOwner(survivors, sessionId, 5000);
        const movedAt = Date.now();
        await sending;

        // A final marker from every client: once all markers are applied everywhere, every
        // surviving earlier increment is applied too (one sender's messages stay in order).
        await Promise.all(clients.map(c => c.increment(1)));
        const lastIndex = 5 + perClient; // 0..4 warm-up, 5..54 across the failover, 55 the marker
        const final = await waitForAll(clients, s => s.model && labels.every(l => s.model.applied.some(([c, i]) => c === l && i === lastIndex)),
            "every client to apply every client's final marker increment", CONVERGE_MS);

        // The account of the failover, noted before any assertion so that a failure carries it:
        // each client's close, rejoin and losses, and what the surviving nodes logged meanwhile.
        const applied = final[0].model.applied;
        const appliedKeys = new Set(applied.map(key));
        const missingOf = s => s.published.filter(p => !appliedKeys.has(`${s.label}#${p.index}`));
        const moves = [];
        for (const s of final) {
            const client = clients.find(c => c.label === s.label);
            const closeSeen = s.frameStats.closes.find(c => c.at >= killAt);
            const resync = s.frameStats.syncs.find(sync => sync.at > killAt);
            const refused = client.frames.filter(f => f.at >= killAt && f.dir === "error" && f.text.startsWith("unexpected-response")).length;
            const missing = missingOf(s);
            const closeCodes = new Map();
            for (const close of s.frameStats.closes.filter(c => c.at >= killAt)) closeCodes.set(close.code, (closeCodes.get(close.code) || 0) + 1);
            if (resync) moves.push(resync.at - killAt);
            ctx.note(`client ${s.label}@${where(client)}: ` +
                (closeSeen ? `close ${closeSeen.at - killAt} ms after the kill (code ${closeSeen.code} "${closeSeen.reason}"), ` : "no close after the kill, ") +
                (resync ? `SYNC again ${resync.at - killAt} ms after the kill (seq ${resync.seq}, ${resync.messageCount} messages), ` : "no SYNC after the kill, ") +
                `${s.frameStats.joins} JOINs, closes ${[...closeCodes].map(([code, n]) => `${code}×${n}`).join(" ") || "none"}, ${refused} upgrade(s) refused, ` +
                `${missing.length} increment(s) lost${missing.length ? `: ${JSON.stringify(missing.map(p => ({ ...p, at: p.at - killAt })))} (at: ms after the kill)` : ""}`);
        }
        const resumed = newOwner.logLines.find(line => line.includes('msg="session resumed from storage"') && line.includes(sessionId));
        ctx.note(`session moved to ${newOwner.name} (${resumed ? resumed.replace(/^\[#\d+\] /, "") : "no \"session resumed from storage\" line"}); ` +
            `clients synced again ${Math.min(...moves)}..${Math.max(...moves)} ms after the kill (all of them by ${movedAt - killAt} ms); ` +
            `proxy routes after the kill: ${proxy.describeRoutes(killAt)}; history: ${applied.length} increments`);
        ctx.note(`the surviving nodes after the kill (${owner.name} led ${Object.keys(leaders).filter(s => leaders[s] === owner.name).join(", ") || "no stream"}): ` +
            describeEvents(clusterEvents(survivors, killAt, sessionId), killAt));

        for (const s of final) {
            const before = initial.find(x => x.label === s.label);
            assert.equal(s.sessionId, before.sessionId, `client ${s.label} changed session`);
            assert.ok(s.frameStats.closes.some(c => c.at >= killAt), `client ${s.label} never saw its connection break`);
            assert.ok(s.frameStats.joins >= 2, `client ${s.label} never re-joined`);
            for (const sync of s.frameStats.syncs) {
                assert.equal(sync.timeline, timeline, `client ${s.label}: a SYNC after the failover is on another timeline (the new owner lost the session): ${JSON.stringify(sync)}`);
            }
            assert.equal(s.viewsConstructed, 1,
                `client ${s.label} rebooted its model (no seamless rejoin; docs/protocol.md §8.2). SYNCs seen: ${JSON.stringify(s.frameStats.syncs.map(({ messageSeqs, ...rest }) => rest))}`);
        }

        assertIdenticalModels(final, "after the failover: ");
        assertNoDuplicatesInOrder(applied, "after the failover: ");

        // Nothing any client had applied before the kill is lost: it was stamped, so JetStream
        // acknowledged it to the owner, and the new owner restored it.
        for (const s of beforeKill) {
            assert.deepEqual(applied.slice(0, s.model.applied.length), s.model.applied,
                `increments client ${s.label} had applied before the kill -9 are no longer the start of the history`);
        }

        // Increments that never arrived: only those in flight when the owner died (published
        // shortly before the kill and before the client saw its connection break). What a client
        // published while it knew it was disconnected was buffered and sent after the rejoin.
        for (const s of final) {
            const closeSeen = s.frameStats.closes.find(c => c.at >= killAt);
            for (const p of missingOf(s)) {
                assert.ok(p.at <= closeSeen.at && p.at >= killAt - IN_FLIGHT_MS,
                    `client ${s.label} increment #${p.index} (published ${p.at - killAt} ms after the kill, close seen ${closeSeen.at - killAt} ms after) ` +
                    "was lost although it was not in flight when the owner died");
            }
            assert.equal(s.published.length, lastIndex + 1, `client ${s.label} published count`);
        }
        // (A connection made while the killed process was still exiting may reach it.)
        const exitedAt = owner.exits[owner.exits.length - 1].at;
        assert.ok(proxy.routes.filter(r => r.at > exitedAt).every(r => r.node && r.node !== owner.name),
            `once ${owner.name} had exited the proxy's clients must reach a live node, got: ${proxy.describeRoutes(exitedAt)}`);

        // The session goes on at the new owner with every client.
        await waitForViews(clients, clients.length, JOIN_VIEWS_MS);
        await waitForSynced(clients, 5000);
        const lists = await Promise.all(survivors.map(ownedSessions));
        assert.deepEqual(lists.map(ids => ids.includes(sessionId)), survivors.map(node => node === newOwner),
            "exactly one surviving node holds the session");
    })));
