"use strict";
// A full disk under real Croquet 2.0.4 clients (Node.js).
//
// The server's data directory is on a 16 MiB ext4 loop image. Three clients join one session
// and publish increments ([sender, index] in the counter model) four times a second; a filler
// file takes every free block, so the server's commits fail with ENOSPC. The clients must be told
// clearly (a close 4003 that names storage, and upgrades refused with 503 + Retry-After while the
// store fails: server/health.go), and /healthz must say why. Then the filler is removed, and the
// clients must come back by themselves: the Croquet client reconnects after every close below
// 4100 and after every failed upgrade (it never gives up: node_modules/@croquet/croquet,
// Connection.socketClosed; back-off (d + 100) × (1 … 2) ms up to 30 s), and with rejoinLimit
// above the outage it rejoins seamlessly, which it does only if the SYNC continues exactly where
// it left off. Nothing may be lost: every increment any client had applied before the disk filled
// is still the start of the history, on the same timeline, in a late joiner too (its model comes
// from the server's store); nothing is applied twice; whatever was published after the recovery,
// or while a client knew it was disconnected (the library buffers it), arrives.
//
// Needs root (mkfs.ext4, losetup, mount); skipped with a message otherwise.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { execFileSync } = require("node:child_process");

const {
    runScenario, waitFor, sleep, httpRequest, buildServer, freePort, makeTempDir, MetronomeServer,
} = require("../lib/harness");
const { key, statesOf, waitForAll, waitForViews, assertIdenticalModels, assertNoDuplicatesInOrder, describeStates } = require("../lib/checks");

const IMAGE_BYTES = 16 << 20;
const SESSION = "diskfull";
const LABELS = ["A", "B", "C"];
/** Clients keep their model across an outage this long (the default 1 s would reboot it). */
const REJOIN_LIMIT_MS = 60000;
/** Each client publishes one increment this often, before, during and after the outage. */
const PUBLISH_INTERVAL_MS = 250;
/** How long the disk stays full once the server reports its storage failure. */
const FULL_MS = 5000;
/** The store retries a failed journal every 5 s at most; the clients' back-off is below 30 s. */
const HEALTHY_AGAIN_MS = 20000;
const RESUME_MS = 45000;
/** An increment may be lost only if its client's socket closed this soon after publishing it. */
const IN_FLIGHT_MS = 2000;
const CLOSE_RECONNECT = 4003;

/** Why the test cannot run here, or null. */
function missingSupport() {
    if (typeof process.getuid !== "function" || process.getuid() !== 0) {
        return "needs root to make and mount an ext4 loop image (mkfs.ext4, losetup, mount); run as root, as CI does";
    }
    for (const tool of ["mkfs.ext4", "losetup", "mount", "umount"]) {
        try {
            execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
        } catch (_) {
            return `needs ${tool} to make and mount an ext4 loop image`;
        }
    }
    if (!fs.existsSync("/dev/loop-control")) return "needs loop devices (/dev/loop-control)";
    return null;
}

/** A small ext4 file system in an image file, mounted; detach() unmounts it. */
class SmallDisk {
    constructor() {
        this.directory = makeTempDir("disk");
        this.image = path.join(this.directory, "disk.img");
        this.mountPath = path.join(this.directory, "mnt");
        fs.mkdirSync(this.mountPath);
        fs.closeSync(fs.openSync(this.image, "w"));
        fs.truncateSync(this.image, IMAGE_BYTES);
        // Without reserved blocks (-m 0): the server, which runs as root, meets the same full
        // disk as the filler.
        run("mkfs.ext4", "-q", "-F", "-m", "0", this.image);
        this.device = run("losetup", "--find", "--show", this.image).trim();
        try {
            run("mount", "-t", "ext4", this.device, this.mountPath);
        } catch (error) {
            run("losetup", "-d", this.device);
            throw error;
        }
        this.mounted = true;
    }

    get dataDirectory() { return path.join(this.mountPath, "data"); }

    /** Writes a file until no block is free; returns its path. */
    fill() {
        const filler = path.join(this.mountPath, "filler");
        const fd = fs.openSync(filler, "w");
        try {
            for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
                const buffer = Buffer.alloc(size, 0x5a);
                for (;;) {
                    try { fs.writeSync(fd, buffer); } catch (_) { break; }
                }
            }
            try { fs.fsyncSync(fd); } catch (_) { /* the data is what fills the disk, synced or not */ }
        } finally {
            fs.closeSync(fd);
        }
        return filler;
    }

    freeBytes() {
        const stats = fs.statfsSync(this.mountPath);
        return stats.bavail * stats.bsize;
    }

    detach() {
        if (this.mounted) {
            try { run("umount", this.mountPath); } catch (_) { try { run("umount", "-l", this.mountPath); } catch (_) { /* leave it */ } }
            this.mounted = false;
        }
        if (this.device) {
            try { run("losetup", "-d", this.device); } catch (_) { /* already gone */ }
            this.device = null;
        }
    }
}

function run(command, ...args) {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Publishes one increment per client every PUBLISH_INTERVAL_MS until stop(). */
function startPublishing(clients) {
    let running = true;
    const loop = (async () => {
        while (running) {
            await Promise.all(clients.map(client => client.increment(1).catch(() => {})));
            await sleep(PUBLISH_INTERVAL_MS);
        }
    })();
    return async () => { running = false; await loop; };
}

async function health(server) {
    const response = await httpRequest(`${server.baseUrl}healthz`, { timeoutMs: 2000 });
    return { status: response.status, body: response.body.toString().trim() };
}

/** What a client was told since `since`: closes and failed upgrades, from its frame tap. */
function toldSince(client, since) {
    return client.frames.filter(f => f.at >= since && (f.dir === "close" || f.dir === "error"));
}

/** The increments of `state`'s client that are missing from `applied`. */
function missingIncrements(state, applied) {
    const present = new Set(applied.map(key));
    return state.published.filter(entry => !present.has(key([state.label, entry.index])));
}

test("disk full: clients are told clearly, resume by themselves, nothing lost", { timeout: 120000 }, async (t) => {
    const missing = missingSupport();
    if (missing) {
        t.skip(missing);
        return;
    }
    let disk;
    try {
        disk = new SmallDisk();
    } catch (error) {
        t.skip(`cannot make and mount an ext4 loop image: ${error.message.split("\n")[0]}`);
        return;
    }
    const nodeOptions = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = `${nodeOptions || ""} --require ${path.join(__dirname, "..", "fixtures", "ws-error-tap.js")}`.trim();
    try {
        await runScenario(t, ctx => diskFull(ctx, disk));
    } finally {
        if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
        else process.env.NODE_OPTIONS = nodeOptions;
        disk.detach(); // runScenario stopped the server and the clients
    }
});

async function diskFull(ctx, disk) {
    const server = new MetronomeServer({
        bin: await buildServer(), port: await freePort(), dataDir: disk.dataDirectory,
        // Uploads (snapshots) may use the whole small disk: the test is about the sessions.
        extraArgs: () => ["--durable=true", "--files-disk-reserve", "-1"],
    });
    ctx.servers.push(server);
    await server.start();

    const clients = [];
    for (const label of LABELS) clients.push(await ctx.startClient({ server, label, name: SESSION, rejoinLimit: REJOIN_LIMIT_MS }));
    await waitForViews(clients, LABELS.length, 15000);

    // Before the fault: everybody has applied the same history.
    await Promise.all(clients.map(client => client.increment(10, 30)));
    const before = await waitForAll(clients, s => s.model && s.model.counter === 10 * LABELS.length, "30 increments applied everywhere", 20000);
    assertIdenticalModels(before, "before the disk filled: ");
    const appliedBefore = before[0].model.applied;
    const timeline = before[0].timeline;
    assert.ok(timeline, "the clients know the session's timeline");

    const stopPublishing = startPublishing(clients);
    await sleep(1000);
    const appliedAtFill = (await statesOf(clients)).map(s => s.model.applied);
    const filler = disk.fill();
    const filledAt = Date.now();
    ctx.note(`disk full: ${disk.freeBytes()} bytes free`);

    // The server says so: /healthz 503 with the reason.
    const unhealthy = await waitFor(async () => {
        const answer = await health(server);
        return answer.status === 503 ? answer : null;
    }, { timeoutMs: 15000, what: "/healthz to answer 503 while the disk is full" });
    assert.match(unhealthy.body, /storage/i, "/healthz must name the storage failure");
    assert.match(unhealthy.body, /no space left on device/i, "/healthz must name the cause");
    ctx.note(`/healthz while full: ${unhealthy.status} ${unhealthy.body}`);

    // Every client is told: a 4003 close naming storage (its session's commit failed), then
    // upgrades refused with 503 and Retry-After while the store fails.
    await waitFor(() => clients.every(client => toldSince(client, filledAt).some(f => f.dir === "close")),
        { timeoutMs: 15000, what: "every client to see its connection closed while the disk is full",
            describe: () => clients.map(c => `${c.label}: ${toldSince(c, filledAt).map(f => f.text).join(" | ")}`).join("; ") });
    await sleep(FULL_MS);
    const told = clients.map(client => ({ label: client.label, frames: toldSince(client, filledAt) }));
    for (const { label, frames } of told) {
        for (const frame of frames.filter(f => f.dir === "close")) {
            const code = Number(/code=(\d+)/.exec(frame.text)[1]);
            if (code === CLOSE_RECONNECT) {
                assert.match(frame.text, /storage failure, please reconnect/, `client ${label}: a 4003 close must say why`);
            } else {
                assert.equal(code, 1006, `client ${label}: while the disk is full a connection ends with 4003 (session failed) or 1006 (upgrade refused), not ${frame.text}`);
            }
        }
        for (const frame of frames.filter(f => f.dir === "error" && f.text.startsWith("unexpected-response"))) {
            assert.match(frame.text, /^unexpected-response 503 retry-after=\d+$/, `client ${label}: a refused upgrade must be 503 with Retry-After`);
        }
    }
    const closes4003 = told.flatMap(c => c.frames).filter(f => f.text.startsWith(`code=${CLOSE_RECONNECT}`)).length;
    const refusals503 = told.flatMap(c => c.frames).filter(f => f.text.startsWith("unexpected-response 503")).length;
    assert.ok(closes4003 > 0, `no client was closed with ${CLOSE_RECONNECT} while the disk was full`);
    assert.ok(refusals503 > 0, "no reconnect attempt was refused with 503 while the disk was full");
    ctx.note(`while full: ${closes4003} closes 4003, ${refusals503} upgrades refused with 503; ` +
        told.map(c => `${c.label}: ${c.frames.map(f => f.text).slice(0, 4).join(" | ")}`).join("; "));

    // Space returns: the server recovers, the clients come back by themselves.
    fs.rmSync(filler);
    const freedAt = Date.now();
    await waitFor(async () => (await health(server)).status === 200,
        { timeoutMs: HEALTHY_AGAIN_MS, what: "/healthz to answer 200 after the space was freed" });
    const healthyMs = Date.now() - freedAt;
    await waitForAll(clients, s => s.connected && s.synced === true, "every client to reconnect and sync by itself", RESUME_MS);
    const resumedAt = Date.now();
    ctx.note(`space freed: healthy after ${healthyMs} ms, every client synced after ${resumedAt - freedAt} ms`);

    await sleep(2000); // increments published after the recovery
    await stopPublishing();
    const published = (await statesOf(clients)).reduce((sum, s) => sum + s.published.length, 0);
    const states = await waitFor(async () => {
        const now = await statesOf(clients);
        const counters = new Set(now.map(s => s.model && s.model.counter));
        if (counters.size !== 1) return null;
        await sleep(1000); // and nothing more arrives
        const later = await statesOf(clients);
        return later.every((s, i) => s.model.counter === now[i].model.counter) ? later : null;
    }, { timeoutMs: 20000, what: "the clients to agree on the final history", describe: () => "" }).catch(async error => {
        error.message += `\n    ${describeStates(await statesOf(clients))}`;
        throw error;
    });
    assertIdenticalModels(states, "after the recovery: ");
    const applied = states[0].model.applied;
    assertNoDuplicatesInOrder(applied, "after the recovery: ");

    // Nothing any client had applied before the fault is lost or changed.
    assert.deepEqual(applied.slice(0, appliedBefore.length), appliedBefore, "the history before the disk filled must be kept");
    for (const [i, atFill] of appliedAtFill.entries()) {
        assert.deepEqual(applied.slice(0, atFill.length), atFill, `client ${LABELS[i]}'s history when the disk filled must be kept`);
    }
    // The session kept its timeline and every client rejoined seamlessly (the client checks
    // that the SYNC continues where it left off; otherwise it rebuilds its model).
    for (const state of states) {
        const timelines = new Set(state.frameStats.syncs.map(s => s.timeline));
        assert.deepEqual([...timelines], [timeline], `client ${state.label}: every SYNC must be on the session's timeline`);
        assert.equal(state.viewsConstructed, 1, `client ${state.label} rebuilt its model: its rejoin was not seamless`);
        assert.ok(state.frameStats.syncs.length >= 2, `client ${state.label} did not rejoin`);
    }
    // What was published after the recovery, or while the client knew it was disconnected
    // (buffered by the library), arrived; only increments in flight when the server failed a
    // commit may be lost (the Croquet client does not re-send them).
    let lost = 0;
    for (const state of states) {
        const closes = state.frameStats.closes.map(c => c.at);
        for (const entry of missingIncrements(state, applied)) {
            const inFlight = entry.connected && closes.some(at => at >= entry.at && at - entry.at <= IN_FLIGHT_MS);
            assert.ok(inFlight && entry.at < resumedAt,
                `increment ${state.label}#${entry.index} (published ${entry.at - filledAt} ms after the disk filled, connected=${entry.connected}) never arrived`);
            lost++;
        }
    }

    // A late joiner builds its model from the server's store: the same history.
    const late = await ctx.startClient({ server, label: "D", name: SESSION });
    const lateState = await waitFor(async () => {
        const s = await late.state();
        return s.model && s.model.counter === applied.length ? s : null;
    }, { timeoutMs: 20000, what: "the late joiner to apply the whole history" });
    assert.deepEqual(lateState.model.applied, applied, "the late joiner's model must hold the same history");
    assert.equal(lateState.timeline, timeline, "the late joiner must join the session's timeline");

    const log = server.logLines.join("\n");
    assert.match(log, /level=ERROR msg="session storage failed/, "the server must log the storage failure at ERROR");
    assert.doesNotMatch(log, /quarantined|damaged/i, "a full disk must not be taken for damage");
    ctx.note(`history: ${applied.length} increments (${appliedBefore.length} before the fault) of ${published} published; ` +
        `${lost} lost in flight when a commit failed`);
}
