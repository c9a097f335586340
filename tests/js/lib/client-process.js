"use strict";
// One real Croquet 2.0.4 client (Node.js), run as a child process by lib/node-client.js.
//
// Each client lives in its own process because the 2.0.4 Node build needs a global
// `window` shim (docs/protocol.md §15) and keeps module-level state (controllers, upload worker),
// so clients in one process would interfere with each other.
//
// Configuration arrives in the environment variable CROQUET_CLIENT_CONFIG (JSON), not on
// the command line: the Croquet library parses process.argv as options (§2.1).
// The parent talks to us over the IPC channel:
//   parent -> child  {id, cmd, args}
//   child  -> parent {type: "reply", id, ok, result | error}
//                    {type: "frame", frame}      every non-TICK WebSocket frame (summarised)
//                    {type: "event", event, ...} joined / rebooted / fatal ...

const config = JSON.parse(process.env.CROQUET_CLIENT_CONFIG || "{}");

// --- the 2.0.4 Node workaround (docs/protocol.md §15): `box`/`files` are resolved against window.location
globalThis.window = { location: new URL(config.box) };

function send(message) {
    try {
        if (process.connected) process.send(message);
    } catch (_) { /* parent gone */ }
}

// --- frame tap: observe every WebSocket frame the library sends and receives.
// The library uses the `ws` package as its global WebSocket (same module instance as ours).
const wsModule = require("ws");
const WebSocketClass = wsModule.WebSocket;
const frameStats = { ticks: 0, lastTick: null, joins: 0, syncs: [], snaps: [], saves: [], closes: [], opens: 0, sends: 0, recvs: 0 };

/** Keeps the first 20 and the last 80 entries of a list that may grow without bound. */
function pushCapped(list, entry) {
    list.push(entry);
    if (list.length > 100) list.splice(20, 1);
}

/** A short, readable form of a frame for failure diagnostics: ciphertexts and ids elided. */
function compactText(parsed, text) {
    if (!parsed || typeof parsed !== "object") return text.length > 300 ? `${text.slice(0, 300)}...(${text.length} chars)` : text;
    const elide = value => (typeof value === "string" && value.length > 40 ? `<${value.length} chars>` : value);
    const shown = { ...parsed };
    if (typeof shown.id === "string") shown.id = `${shown.id.slice(0, 6)}…`;
    if (Array.isArray(shown.args)) shown.args = shown.args.map(elide);
    else if (shown.args && typeof shown.args === "object") {
        shown.args = { ...shown.args };
        if (Array.isArray(shown.args.messages)) {
            const seqs = shown.args.messages.map(m => m[1]);
            shown.args.messages = `<${seqs.length} messages${seqs.length ? ` seq ${seqs[0]}..${seqs[seqs.length - 1]}` : ""}>`;
        }
        for (const k of ["tove", "user", "hash"]) if (k in shown.args) shown.args[k] = elide(shown.args[k]);
    }
    const compact = JSON.stringify(shown);
    return compact.length > 500 ? `${compact.slice(0, 500)}...(${compact.length} chars)` : compact;
}

function summariseFrame(direction, text) {
    let parsed;
    try { parsed = JSON.parse(text); } catch (_) { parsed = null; }
    const action = parsed && typeof parsed === "object" ? parsed.action : undefined;
    const frame = { at: Date.now(), dir: direction, action, text: compactText(parsed, text) };
    if (action === "TICK") {
        frameStats.ticks++;
        frameStats.lastTick = parsed.args;
        return null; // too many to forward
    }
    if (action === "JOIN" && direction === "out") frameStats.joins++;
    if (action === "SEND" && direction === "out") frameStats.sends++;
    if (action === "RECV" && direction === "in") {
        frameStats.recvs++;
        if (Array.isArray(parsed.args)) {
            frame.time = parsed.args[0];
            frame.seq = parsed.args[1];
        }
        if (parsed.args && typeof parsed.args[2] === "object") frame.payload = parsed.args[2];
    }
    if (action === "SYNC" && direction === "in") {
        const a = parsed.args || {};
        const sync = {
            at: frame.at, url: a.url, persisted: !!a.persisted, time: a.time, seq: a.seq,
            snapshotTime: a.snapshotTime, snapshotSeq: a.snapshotSeq, timeline: a.timeline,
            messageCount: Array.isArray(a.messages) ? a.messages.length : null,
            messageSeqs: Array.isArray(a.messages) ? a.messages.map(m => m[1]) : null,
            hasTove: "tove" in a,
        };
        pushCapped(frameStats.syncs, sync);
        frame.sync = sync;
    }
    if (action === "SNAP" && direction === "out") { frameStats.snaps.push({ at: frame.at, ...parsed.args }); frame.args = parsed.args; }
    if (action === "SAVE" && direction === "out") { frameStats.saves.push({ at: frame.at, ...parsed.args }); frame.args = parsed.args; }
    return frame;
}

const originalSend = WebSocketClass.prototype.send;
WebSocketClass.prototype.send = function tappedSend(data, ...rest) {
    const frame = summariseFrame("out", String(data));
    if (frame) send({ type: "frame", frame });
    return originalSend.call(this, data, ...rest);
};
const originalEmit = WebSocketClass.prototype.emit;
WebSocketClass.prototype.emit = function tappedEmit(event, ...args) {
    if (event === "message") {
        const frame = summariseFrame("in", String(args[0]));
        if (frame) send({ type: "frame", frame });
    } else if (event === "open") {
        frameStats.opens++;
        send({ type: "frame", frame: { at: Date.now(), dir: "open", text: String(this.url) } });
    } else if (event === "close") {
        const close = { at: Date.now(), code: args[0], reason: String(args[1] || "") };
        pushCapped(frameStats.closes, close);
        send({ type: "frame", frame: { at: close.at, dir: "close", text: `code=${close.code} reason=${close.reason}` } });
    }
    return originalEmit.call(this, event, ...args);
};

// --- console capture: forward library warnings/errors (view count mismatch etc.)
const consoleErrors = [];
for (const level of ["error", "warn"]) {
    const original = console[level].bind(console);
    console[level] = (...args) => {
        const line = args.map(a => (a instanceof Error ? a.stack : typeof a === "string" ? a : safeJson(a))).join(" ");
        consoleErrors.push({ at: Date.now(), level, line: line.slice(0, 1000) });
        if (consoleErrors.length > 200) consoleErrors.shift();
        original(...args);
    };
}
function safeJson(value) {
    try { return JSON.stringify(value); } catch (_) { return String(value); }
}

// The client library: @croquet/croquet 2.0.4, or another build of the same client with the same
// API named by config.library (the `library` option of lib/harness.js CroquetClient;
// test/multisynq.test.js: @multisynq/client).
const Croquet = require(config.library || "@croquet/croquet");

// A code-version constant: Constants are hashed into the session id (docs/protocol.md §2.3), so a
// different value is a "new version of the app": new session id, same persistentId.
if (config.codeVersion !== undefined) Croquet.Constants.APP_CODE_VERSION = config.codeVersion;

// --- the counter model: every increment is recorded with its sender and per-sender index
// so that loss, duplication and reordering are all visible in the replicated state.
class CounterModel extends Croquet.Model {
    init(options, persisted) {
        super.init(options);
        this.counter = 0;
        this.applied = [];          // [client, index] in the order the model applied them
        this.initCount = 1;         // a rebuilt model starts over; a snapshot-restored one keeps it
        this.restoredFromPersisted = null;
        this.views = [];            // view-join / view-exit as seen by the model
        if (persisted) {
            this.counter = persisted.counter;
            this.applied = persisted.applied.map(entry => entry.slice());
            this.restoredFromPersisted = { counter: persisted.counter, entries: persisted.applied.length };
        }
        this.subscribe("counter", "inc", this.increment);
        this.subscribe("counter", "persist", this.persistNow);
        this.subscribe(this.sessionId, "view-join", this.viewJoined);
        this.subscribe(this.sessionId, "view-exit", this.viewExited);
    }

    increment({ client, index, by }) {
        this.counter += by;
        this.applied.push([client, index]);
        this.publish("counter", "changed");
    }

    persistNow() {
        // Croquet's persistence API (docs/protocol.md §9.2): the root model hands over a plain object.
        this.persistSession(() => ({ counter: this.counter, applied: this.applied }));
    }

    viewJoined(viewId) {
        const id = typeof viewId === "string" ? viewId : viewId.viewId;
        if (!this.views.includes(id)) this.views.push(id);
    }

    viewExited(viewId) {
        const id = typeof viewId === "string" ? viewId : viewId.viewId;
        this.views = this.views.filter(v => v !== id);
    }
}
CounterModel.register("CounterModel");

let viewsConstructed = 0;
class CounterView extends Croquet.View {
    constructor(model) {
        super(model);
        viewsConstructed++;
        this.model = model;
        this.subscribe(this.viewId, "synced", this.onSynced);
        send({ type: "event", event: "view-constructed", count: viewsConstructed });
    }

    onSynced(synced) {
        send({ type: "event", event: "synced", synced });
    }
}

// --- increments published by this client (for loss analysis by the test)
const published = [];   // {index, at, connected}
let nextIndex = 0;
let session = null;
let joinedAt = null;

function controller() {
    return session && session.view ? session.view.realm.controller : null;
}

function state() {
    const model = session && session.view ? session.view.model : null;
    const ctrl = controller();
    return {
        label: config.label,
        sessionId: session ? session.id : null,
        persistentId: session ? session.persistentId : null,
        viewId: session && session.view ? session.view.viewId : null,
        joined: !!session,
        joinedAt,
        connected: !!(ctrl && ctrl.connected),
        synced: ctrl ? ctrl.synced : null,
        timeline: ctrl ? ctrl.timeline : null,
        sessionTime: session && session.view ? session.view.now() : null,
        vmSeq: ctrl && ctrl.vm ? ctrl.vm.seq : null,
        viewsConstructed,
        model: model ? {
            counter: model.counter,
            applied: model.applied,
            initCount: model.initCount,
            views: model.views.slice(),
            viewCount: model.viewCount,
            restoredFromPersisted: model.restoredFromPersisted,
        } : null,
        published: published.slice(),
        frameStats,
        consoleErrors: consoleErrors.slice(-50),
    };
}

function publishIncrement() {
    const view = session && session.view;
    const ctrl = controller();
    const entry = { index: nextIndex++, at: Date.now(), connected: !!(ctrl && ctrl.connected) };
    if (!view) {
        entry.noView = true;
        published.push(entry);
        return entry;
    }
    published.push(entry);
    view.publish("counter", "inc", { client: config.label, index: entry.index, by: 1 });
    return entry;
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

const commands = {
    state: async () => state(),
    increment: async ({ count = 1, intervalMs = 0 } = {}) => {
        const entries = [];
        for (let i = 0; i < count; i++) {
            entries.push(publishIncrement());
            if (intervalMs && i < count - 1) await sleep(intervalMs);
        }
        return entries;
    },
    persist: async () => {
        session.view.publish("counter", "persist");
        return true;
    },
    forceSnapshot: async () => {
        // docs/protocol.md §15: triggers the full poll -> vote -> upload -> SNAP flow
        session.view.realm.vm.forceSnapshot();
        return true;
    },
    leave: async () => {
        const left = await session.leave();
        return { left };
    },
    exit: async () => {
        setTimeout(() => process.exit(0), 20);
        return true;
    },
};

process.on("message", async message => {
    if (!message || typeof message !== "object" || !message.cmd) return;
    const handler = commands[message.cmd];
    if (!handler) {
        send({ type: "reply", id: message.id, ok: false, error: `unknown command ${message.cmd}` });
        return;
    }
    try {
        const result = await handler(message.args);
        send({ type: "reply", id: message.id, ok: true, result });
    } catch (error) {
        send({ type: "reply", id: message.id, ok: false, error: error && error.stack || String(error) });
    }
});
process.on("disconnect", () => process.exit(0));
process.on("uncaughtException", error => {
    send({ type: "event", event: "fatal", error: error && error.stack || String(error) });
    console.error("uncaughtException", error);
});
process.on("unhandledRejection", error => {
    send({ type: "event", event: "fatal", error: error && error.stack || String(error) });
    console.error("unhandledRejection", error);
});

async function main() {
    const joinOptions = {
        appId: config.appId,
        name: config.name,
        password: config.password,
        box: config.box,
        model: CounterModel,
        view: CounterView,
        step: "manual",
    };
    if (config.rejoinLimit !== undefined) joinOptions.rejoinLimit = config.rejoinLimit;
    if (config.debug) joinOptions.debug = config.debug;
    session = await Croquet.Session.join(joinOptions);
    joinedAt = Date.now();
    setInterval(() => session.step(Date.now()), config.stepMs || 50);
    send({ type: "event", event: "joined", state: state() });
}

main().catch(error => {
    send({ type: "event", event: "fatal", error: error && error.stack || String(error) });
    console.error(error);
    setTimeout(() => process.exit(1), 100);
});
