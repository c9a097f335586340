"use strict";
// Test harness: builds the metronome binary, runs it as a child process on a free port with a
// temporary data directory, kills / restarts it, runs real Croquet clients in child Node
// processes, and gathers diagnostics (server log, client frames and logs) for failures. It also
// builds other Go programs (buildGo) and runs them as line-protocol processes (LineProcess).

const { spawn, execFile, fork } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
const https = require("node:https");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { promisify } = require("node:util");

const execFileAsync = promisify(execFile);

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
const JS_ROOT = path.resolve(__dirname, "..");
const CLIENT_SCRIPT = path.join(__dirname, "client-process.js");

const BUILD_TIMEOUT_MS = 5 * 60 * 1000;
const SERVER_READY_TIMEOUT_MS = 20 * 1000;
const SERVER_STOP_TIMEOUT_MS = 10 * 1000;
const CLIENT_JOIN_TIMEOUT_MS = 30 * 1000;
const CLIENT_REQUEST_TIMEOUT_MS = 10 * 1000;
const LOG_LINES_KEPT = 5000;
const FRAMES_KEPT = 400;

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

// ---------------------------------------------------------------- temp dirs

const tempDirs = [];
function makeTempDir(prefix) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `metronome-js-${prefix}-`));
    tempDirs.push(dir);
    return dir;
}
// Child processes still running when this test process ends (e.g. after a test timeout).
const liveChildren = new Set();
process.on("exit", () => {
    for (const child of liveChildren) {
        try { child.kill("SIGKILL"); } catch (_) { /* already gone */ }
    }
    if (process.env.METRONOME_KEEP_TMP === "1") return;
    for (const dir of tempDirs) {
        try { fs.rmSync(dir, { recursive: true, force: true }); } catch (_) { /* best effort */ }
    }
});

// ---------------------------------------------------------------- waiting

/**
 * Polls `probe` until it returns a truthy value; fails after `timeoutMs` with a message that
 * includes `describe(lastValue)` so the failure says what was seen instead.
 */
async function waitFor(probe, { timeoutMs, intervalMs = 100, what, describe } = {}) {
    if (!timeoutMs) throw new Error("waitFor needs a timeoutMs");
    const deadline = Date.now() + timeoutMs;
    let last;
    let lastError;
    for (;;) {
        try {
            last = await probe();
            lastError = undefined;
            if (last) return last;
        } catch (error) {
            lastError = error;
        }
        if (Date.now() >= deadline) break;
        await sleep(intervalMs);
    }
    let detail = "";
    if (describe) {
        try { detail = describe(last); } catch (error) { detail = `(describe failed: ${error.message})`; }
    }
    const err = new Error(`timed out after ${timeoutMs} ms waiting for ${what || "condition"}` +
        (detail ? `\n  last observation: ${detail}` : "") +
        (lastError ? `\n  last error: ${lastError.stack || lastError}` : ""));
    throw err;
}

function withTimeout(promise, timeoutMs, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
        }),
    ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- HTTP helpers

function httpRequest(url, { method = "GET", body, timeoutMs = 5000, headers = {} } = {}) {
    return new Promise((resolve, reject) => {
        const transport = String(url).startsWith("https:") ? https : http; // https: trusts https.globalAgent.options.ca
        const request = transport.request(url, { method, headers, timeout: timeoutMs }, response => {
            const chunks = [];
            response.on("data", chunk => chunks.push(chunk));
            response.on("end", () => resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks) }));
            response.on("error", reject);
        });
        request.on("timeout", () => request.destroy(new Error(`HTTP ${method} ${url} timed out after ${timeoutMs} ms`)));
        request.on("error", reject);
        if (body !== undefined) request.write(body);
        request.end();
    });
}

function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.unref();
        server.on("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

/** Lists all regular files below `dir` (relative paths). */
function listFiles(dir) {
    const result = [];
    const walk = (current, relative) => {
        let entries;
        try { entries = fs.readdirSync(current, { withFileTypes: true }); } catch (_) { return; }
        for (const entry of entries) {
            const full = path.join(current, entry.name);
            const rel = relative ? path.join(relative, entry.name) : entry.name;
            if (entry.isDirectory()) walk(full, rel);
            else if (entry.isFile()) result.push(rel);
        }
    };
    walk(dir, "");
    return result;
}

// ---------------------------------------------------------------- child processes

/**
 * Calls `onLine` with every line that `stream` (a child's stdout or stderr) writes, without the
 * newline; with `flushAtEnd`, also with a last line that has none when the stream ends.
 */
function forEachLine(stream, onLine, { flushAtEnd = false } = {}) {
    let pending = "";
    stream.setEncoding("utf8");
    stream.on("data", chunk => {
        pending += chunk;
        const lines = pending.split("\n");
        pending = lines.pop();
        for (const line of lines) onLine(line);
    });
    if (flushAtEnd) stream.on("end", () => { if (pending) onLine(pending); });
}

/**
 * A child process whose stdout lines are its protocol (a Go peer or bot built by `buildGo`):
 * it keeps its stdout and stderr lines, waits for a line that matches, and is killed if it is
 * still running when this test process ends.
 */
class LineProcess {
    /**
     * @param {string} bin
     * @param {string[]} args
     * @param {object} options
     * @param {string} options.name what messages call it, e.g. "peer gopeer1"
     */
    constructor(bin, args, { name }) {
        this.name = name;
        this.lines = [];
        this.stderr = [];
        this.exitStatus = undefined;
        const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
        this.child = child;
        liveChildren.add(child);
        this.exited = new Promise(resolve => child.on("exit", (code, signal) => {
            liveChildren.delete(child);
            this.exitStatus = { code, signal };
            resolve(this.exitStatus);
        }));
        forEachLine(child.stdout, line => this.lines.push(line));
        forEachLine(child.stderr, line => this.stderr.push(line));
    }

    /** The first stdout line that matches `pattern` (its match), or null. */
    line(pattern) {
        for (const line of this.lines) {
            const match = line.match(pattern);
            if (match) return match;
        }
        return null;
    }

    /** Waits for a stdout line that matches `pattern`; fails at once if the process exits first. */
    waitLine(pattern, timeoutMs, what) {
        return waitFor(() => this.line(pattern) || (this.exitStatus && Promise.reject(new Error(`${this.name} exited ${JSON.stringify(this.exitStatus)}\n${this.tail()}`))),
            { timeoutMs, what: `${this.name}: ${what}`, describe: () => this.tail() });
    }

    tail(n = 30) {
        return `--- ${this.name} stdout ---\n${this.lines.slice(-n).join("\n")}\n--- ${this.name} stderr ---\n${this.stderr.slice(-n).join("\n")}`;
    }
}

// ---------------------------------------------------------------- building

/**
 * Runs a build command (go build, a build script) in the repository root; its error names the
 * command and carries its output.
 */
async function runBuild(command, args) {
    try {
        await execFileAsync(command, args, { cwd: REPO_ROOT, timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
    } catch (error) {
        throw new Error(`${command} ${args.join(" ")} failed in ${REPO_ROOT}:\n${error.stderr || ""}${error.stdout || ""}${error.message}`);
    }
}

/**
 * Builds the Go main package `pkg` (e.g. "./cmd/metronome") into a new temporary directory and
 * returns the binary's path (named `name`, by default the package's last element).
 */
async function buildGo(pkg, name = path.basename(pkg)) {
    const output = path.join(makeTempDir(name), name);
    await runBuild("go", ["build", "-o", output, pkg]);
    return output;
}

let buildPromise = null;

/**
 * Builds ./cmd/metronome once per test process (the Go build cache makes repeated builds in
 * other test files cheap). METRONOME_BIN may name an already built binary instead.
 */
function buildServer() {
    if (process.env.METRONOME_BIN) return Promise.resolve(process.env.METRONOME_BIN);
    if (!buildPromise) {
        buildPromise = (async () => {
            if (!fs.existsSync(path.join(REPO_ROOT, "go.mod"))) {
                throw new Error(`repository root not found: no go.mod in ${REPO_ROOT}`);
            }
            return buildGo("./cmd/metronome");
        })();
    }
    return buildPromise;
}

// ---------------------------------------------------------------- the server process

class MetronomeServer {
    /**
     * @param {object} options
     * @param {string} options.bin path of the metronome binary
     * @param {number} options.port
     * @param {string} options.dataDir
     * @param {string} [options.webRoot]
     * @param {function(MetronomeServer): string[]} [options.extraArgs] more flags for `serve`,
     *        computed from the server (e.g. its baseUrl, known only once the port is chosen)
     * @param {string} [options.name] what the log calls it (e.g. a cluster node's name)
     * @param {number} [options.readyTimeoutMs] how long start() waits for GET /healthz → 200
     *        (a cluster node answers only once a majority of its cluster is up)
     */
    constructor({ bin, port, dataDir, webRoot, extraArgs, name, readyTimeoutMs = SERVER_READY_TIMEOUT_MS }) {
        this.bin = bin;
        this.port = port;
        this.dataDir = dataDir;
        this.webRoot = webRoot;
        this.extraArgs = extraArgs || (() => []);
        this.name = name;
        this.readyTimeoutMs = readyTimeoutMs;
        this.process = null;
        this.generation = 0;
        this.logLines = [];
        this.exits = [];
    }

    static async start({ webRoot, extraArgs } = {}) {
        const bin = await buildServer();
        const server = new MetronomeServer({ bin, port: await freePort(), dataDir: makeTempDir("data"), webRoot, extraArgs });
        await server.start();
        return server;
    }

    get baseUrl() { return `http://127.0.0.1:${this.port}/`; }
    get running() { return !!this.process; }

    log(line) {
        this.logLines.push(line);
        if (this.logLines.length > LOG_LINES_KEPT) this.logLines.splice(0, this.logLines.length - LOG_LINES_KEPT);
    }

    async start() {
        if (this.process) throw new Error("server already running");
        this.generation++;
        const generation = this.generation;
        const args = ["serve", "--addr", `127.0.0.1:${this.port}`, "--data-dir", this.dataDir];
        if (this.webRoot) args.push("--web-root", this.webRoot);
        args.push(...this.extraArgs(this));
        this.log(`[harness] start #${generation}: ${this.bin} ${args.join(" ")}`);
        const child = spawn(this.bin, args, { stdio: ["ignore", "pipe", "pipe"] });
        this.process = child;
        liveChildren.add(child);
        const exited = new Promise(resolve => {
            child.on("exit", (code, signal) => {
                liveChildren.delete(child);
                this.log(`[harness] server #${generation} exited code=${code} signal=${signal}`);
                this.exits.push({ generation, code, signal, at: Date.now() });
                if (this.process === child) this.process = null;
                resolve({ code, signal });
            });
        });
        child.exited = exited;
        for (const stream of [child.stdout, child.stderr]) {
            forEachLine(stream, line => this.log(`[#${generation}] ${line}`), { flushAtEnd: true });
        }
        child.on("error", error => this.log(`[harness] spawn error: ${error.message}`));

        const deadline = Date.now() + this.readyTimeoutMs;
        let lastProblem = "";
        while (Date.now() < deadline) {
            if (this.process !== child) {
                throw new Error(`metronome exited before /healthz answered 200\n${this.logTail(60)}`);
            }
            try {
                const response = await httpRequest(`${this.baseUrl}healthz`, { timeoutMs: 1000 });
                if (response.status === 200) {
                    this.log(`[harness] server #${generation} ready`);
                    return;
                }
                lastProblem = `status ${response.status}`;
            } catch (error) {
                lastProblem = error.message;
            }
            await sleep(100);
        }
        throw new Error(`metronome did not answer GET /healthz with 200 within ${this.readyTimeoutMs} ms (last: ${lastProblem})\n${this.logTail(60)}`);
    }

    /** kill -9: no chance to persist anything that is not already on disk. */
    async kill9() {
        const child = this.process;
        if (!child) throw new Error("server not running");
        this.log(`[harness] kill -9 server #${this.generation}`);
        child.kill("SIGKILL");
        await withTimeout(child.exited, SERVER_STOP_TIMEOUT_MS, "server to die after SIGKILL");
    }

    /** Graceful stop (SIGTERM), falling back to SIGKILL. Returns the exit status. */
    async stop() {
        const child = this.process;
        if (!child) return null;
        this.log(`[harness] SIGTERM server #${this.generation}`);
        child.kill("SIGTERM");
        try {
            return await withTimeout(child.exited, SERVER_STOP_TIMEOUT_MS, "server to exit after SIGTERM");
        } catch (error) {
            this.log(`[harness] ${error.message}; sending SIGKILL`);
            child.kill("SIGKILL");
            await withTimeout(child.exited, SERVER_STOP_TIMEOUT_MS, "server to die after SIGKILL");
            throw error;
        }
    }

    /** Starts the server again on the same port and data directory. */
    async restart({ kill = false } = {}) {
        if (this.process) {
            if (kill) await this.kill9();
            else await this.stop();
        }
        await this.start();
    }

    logTail(lines = 150) {
        const tail = this.logLines.slice(-lines);
        return `--- metronome${this.name ? ` ${this.name}` : ""} log (last ${tail.length} of ${this.logLines.length} lines; data dir ${this.dataDir}) ---\n${tail.join("\n")}`;
    }

    /** GET a path relative to the server root (e.g. "files/x"). */
    get(relative, options) {
        return httpRequest(new URL(relative, this.baseUrl).href, options);
    }
}

// ---------------------------------------------------------------- Croquet clients

let clientCounter = 0;

class CroquetClient {
    /**
     * Starts a real Croquet client as a child Node process; `waitJoined()` waits for Session.join.
     * @param {object} options
     * @param {MetronomeServer} options.server
     * @param {string} [options.box]   the client's box URL (default the server's baseUrl; e.g. a
     *   proxy in front of several servers)
     * @param {string} options.label   sender label recorded in every increment ("A", "B", ...)
     * @param {string} options.name    Croquet session name
     * @param {string} [options.appId]
     * @param {string} [options.password]
     * @param {number} [options.rejoinLimit]
     * @param {*} [options.codeVersion] changes the Croquet Constants, i.e. the code hash
     * @param {string} [options.debug] Croquet debug flags, e.g. "session,snapshot"
     * @param {number} [options.stepMs] session.step interval (default 50 ms)
     * @param {string} [options.library] the client library the process loads (default @croquet/croquet;
     *   another build of the same client with the same API, e.g. @multisynq/client)
     */
    constructor({ server, box, label, name, appId = "io.metronome.jstest", password = "correct horse battery staple", rejoinLimit, codeVersion, debug, stepMs, library }) {
        this.label = label;
        this.name = name;
        this.number = ++clientCounter;
        this.logLines = [];
        this.frames = [];
        this.events = [];
        this.fatal = [];
        this.pending = new Map();
        this.nextRequestId = 1;
        this.exitStatus = null;
        const config = { label, name, appId, password, box: box || server.baseUrl, rejoinLimit, codeVersion, debug, stepMs, library };
        this.config = config;
        const child = fork(CLIENT_SCRIPT, [], {
            cwd: JS_ROOT,
            env: { ...process.env, CROQUET_CLIENT_CONFIG: JSON.stringify(config) },
            stdio: ["ignore", "pipe", "pipe", "ipc"],
            execArgv: [],
        });
        this.child = child;
        liveChildren.add(child);
        child.on("exit", () => liveChildren.delete(child));
        for (const stream of [child.stdout, child.stderr]) forEachLine(stream, line => this.log(line));
        this.exited = new Promise(resolve => {
            child.on("exit", (code, signal) => {
                this.exitStatus = { code, signal };
                this.log(`[harness] client process exited code=${code} signal=${signal}`);
                for (const { reject } of this.pending.values()) reject(new Error(`client ${label} exited (code=${code} signal=${signal})`));
                this.pending.clear();
                resolve();
            });
        });
        this.joined = new Promise((resolve, reject) => {
            this.resolveJoined = resolve;
            this.rejectJoined = reject;
        });
        this.joined.catch(() => {});
        child.on("exit", (code, signal) => this.rejectJoined(new Error(`client ${label} exited before joining (code=${code} signal=${signal})`)));
        child.on("message", message => this.onMessage(message));
    }

    log(line) {
        this.logLines.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
        if (this.logLines.length > LOG_LINES_KEPT) this.logLines.splice(0, this.logLines.length - LOG_LINES_KEPT);
    }

    onMessage(message) {
        if (!message || typeof message !== "object") return;
        if (message.type === "reply") {
            const waiter = this.pending.get(message.id);
            if (!waiter) return;
            this.pending.delete(message.id);
            if (message.ok) waiter.resolve(message.result);
            else waiter.reject(new Error(`client ${this.label}: ${message.error}`));
        } else if (message.type === "frame") {
            this.frames.push(message.frame);
            if (this.frames.length > FRAMES_KEPT) this.frames.splice(0, this.frames.length - FRAMES_KEPT);
        } else if (message.type === "event") {
            this.events.push({ at: Date.now(), ...message });
            if (message.event === "joined") this.resolveJoined(message.state);
            if (message.event === "fatal") {
                this.fatal.push(message.error);
                this.log(`[fatal] ${message.error}`);
            }
        }
    }

    async waitJoined(timeoutMs = CLIENT_JOIN_TIMEOUT_MS) {
        try {
            this.joinState = await withTimeout(this.joined, timeoutMs, `client ${this.label} to finish Session.join (session "${this.name}")`);
        } catch (error) {
            error.message += `\n${this.diagnostics()}`;
            throw error;
        }
        return this.joinState;
    }

    request(cmd, args, timeoutMs = CLIENT_REQUEST_TIMEOUT_MS) {
        if (this.exitStatus) return Promise.reject(new Error(`client ${this.label} is not running (exit ${JSON.stringify(this.exitStatus)})`));
        const id = this.nextRequestId++;
        const reply = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
        this.child.send({ id, cmd, args });
        return withTimeout(reply, timeoutMs, `client ${this.label} to answer "${cmd}"`).finally(() => this.pending.delete(id));
    }

    state() { return this.request("state"); }

    /** Publishes `count` increments (not waiting for them to be applied). */
    increment(count = 1, intervalMs = 0) {
        return this.request("increment", { count, intervalMs }, CLIENT_REQUEST_TIMEOUT_MS + count * intervalMs);
    }

    persist() { return this.request("persist"); }
    forceSnapshot() { return this.request("forceSnapshot"); }
    leave() { return this.request("leave"); }

    /** Outgoing / incoming frames of one action (from the frame tap). */
    framesOf(action, dir) {
        return this.frames.filter(f => f.action === action && (!dir || f.dir === dir));
    }

    async close() {
        if (this.exitStatus) return;
        try { this.child.send({ id: 0, cmd: "exit" }); } catch (_) { /* ignore */ }
        try {
            await withTimeout(this.exited, 3000, `client ${this.label} to exit`);
        } catch (_) {
            this.child.kill("SIGKILL");
            await withTimeout(this.exited, 5000, `client ${this.label} to die`);
        }
    }

    diagnostics({ frames = 60, logs = 60 } = {}) {
        const frameText = this.frames.slice(-frames).map(f => `  ${new Date(f.at).toISOString().slice(11, 23)} ${f.dir.padEnd(5)} ${f.text}`).join("\n");
        const logText = this.logLines.slice(-logs).map(l => `  ${l}`).join("\n");
        return `--- client ${this.label} (session "${this.name}", exit ${JSON.stringify(this.exitStatus)}) last ${Math.min(frames, this.frames.length)} non-TICK frames ---\n${frameText}\n--- client ${this.label} output (last ${logs} lines) ---\n${logText}` +
            (this.fatal.length ? `\n--- client ${this.label} fatal errors ---\n${this.fatal.join("\n")}` : "");
    }
}

// ---------------------------------------------------------------- per-test context

/**
 * Collects the servers and clients of one test, stops them afterwards, and appends their
 * diagnostics to the error if the test body fails.
 */
class TestContext {
    constructor(name) {
        this.name = name;
        this.servers = [];
        this.clients = [];
        this.notes = [];
        this.cleanups = [];
    }

    /** Runs `fn` at cleanup, after the clients are closed and before the servers stop. */
    onCleanup(fn) { this.cleanups.push(fn); }

    async startServer(options) {
        const server = await MetronomeServer.start(options);
        this.servers.push(server);
        return server;
    }

    async startClient(options) {
        const client = new CroquetClient(options);
        this.clients.push(client);
        await client.waitJoined();
        return client;
    }

    note(text) { this.notes.push(text); }

    diagnostics() {
        const parts = [];
        if (this.notes.length) parts.push(`--- notes ---\n${this.notes.join("\n")}`);
        for (const client of this.clients) parts.push(client.diagnostics());
        for (const server of this.servers) parts.push(server.logTail());
        return parts.join("\n");
    }

    async cleanup() {
        await Promise.allSettled(this.clients.map(client => client.close()));
        for (const fn of this.cleanups.splice(0).reverse()) {
            try { await fn(); } catch (_) { /* best effort */ }
        }
        await Promise.allSettled(this.servers.map(server => server.stop()));
    }
}

/**
 * Runs `body(ctx)` with a fresh TestContext for the node:test context `t`. On failure the error
 * carries all diagnostics; on success the scenario's notes are reported as test diagnostics.
 */
async function runScenario(t, body) {
    const ctx = new TestContext(t.name);
    try {
        await body(ctx);
        for (const note of ctx.notes) t.diagnostic(note);
    } catch (error) {
        const diagnostics = ctx.diagnostics();
        if (error && typeof error === "object") {
            try {
                error.message = `${error.message}\n\n===== diagnostics for "${t.name}" =====\n${diagnostics}`;
            } catch (_) {
                console.error(diagnostics);
            }
        }
        throw error;
    } finally {
        await ctx.cleanup();
    }
}

module.exports = {
    REPO_ROOT,
    JS_ROOT,
    MetronomeServer,
    CroquetClient,
    TestContext,
    runScenario,
    buildServer,
    runBuild,
    buildGo,
    forEachLine,
    LineProcess,
    makeTempDir,
    waitFor,
    withTimeout,
    httpRequest,
    freePort,
    listFiles,
    sleep,
};
