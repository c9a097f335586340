"use strict";
// The Go SDK end to end: the balls example (examples/balls) compiled to WebAssembly runs in
// two headless Chromium pages, and the same model runs natively in the Go bot
// (examples/balls/bot), all in one session of `metronome serve --web-root`. After pushes from
// both pages (real mouse clicks and window.metronome.push) and the bot, all three replicas must
// vote the same state hash at the same session time; a third page that joins late must start
// from a snapshot and reach the same hash at a later common vote.
//
// Needs Go (the test builds the wasm app with examples/balls/build.sh and the bot with go
// build) and /usr/bin/chromium (override with CHROMIUM_PATH; METRONOME_SKIP_BROWSER=1 skips).

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, execFile } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { promisify } = require("node:util");

const { runScenario, makeTempDir, REPO_ROOT, waitFor, withTimeout, listFiles, httpRequest } = require("../lib/harness");
const { CHROMIUM, CHROMIUM_ARGS, skipBrowser, assertChromium } = require("../lib/chromium");

const execFileAsync = promisify(execFile);

const BUILD_TIMEOUT_MS = 5 * 60 * 1000;
const JOIN_TIMEOUT_MS = 30 * 1000;
const CONVERGE_TIMEOUT_MS = 20 * 1000;
// Snapshot polls are at least 5 s of session time apart (island.SnapshotPollGapMs and the
// reflector's poll limit), so a vote after a given moment takes up to ~7 s.
const VOTE_TIMEOUT_MS = 25 * 1000;
const BOT_STOP_TIMEOUT_MS = 10 * 1000;
const PASSWORD = "balls e2e";
const BOT_PUSHES = 6;

/** Builds the web root (wasm + page) and the bot, in parallel; returns their paths. */
async function buildExample() {
    const webRoot = makeTempDir("balls-web");
    const bot = path.join(makeTempDir("balls-bot"), "bot");
    const run = async (command, args) => {
        try {
            await execFileAsync(command, args, { cwd: REPO_ROOT, timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
        } catch (error) {
            throw new Error(`${command} ${args.join(" ")} failed:\n${error.stderr || ""}${error.stdout || ""}${error.message}`);
        }
    };
    await Promise.all([
        run("bash", [path.join(REPO_ROOT, "examples", "balls", "build.sh"), webRoot]),
        run("go", ["build", "-o", bot, "./examples/balls/bot"]),
    ]);
    for (const file of ["index.html", "loader.js", "wasm_exec.js", "balls.wasm"]) {
        assert.ok(fs.existsSync(path.join(webRoot, file)), `build.sh must put ${file} into the web root`);
    }
    return { webRoot, bot };
}

/** The native Go bot as a child process; its stdout lines are the protocol (see bot/main.go). */
class Bot {
    constructor(bin, args) {
        this.lines = [];
        this.stderr = [];
        this.child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
        this.exited = new Promise(resolve => this.child.on("exit", (code, signal) => {
            this.exitStatus = { code, signal };
            resolve(this.exitStatus);
        }));
        process.on("exit", () => { if (!this.exitStatus) this.child.kill("SIGKILL"); });
        for (const [stream, into] of [[this.child.stdout, this.lines], [this.child.stderr, this.stderr]]) {
            let pending = "";
            stream.setEncoding("utf8");
            stream.on("data", chunk => {
                pending += chunk;
                const lines = pending.split("\n");
                pending = lines.pop();
                into.push(...lines);
            });
        }
    }

    line(pattern) {
        for (const line of this.lines) {
            const match = line.match(pattern);
            if (match) return match;
        }
        return null;
    }

    waitLine(pattern, timeoutMs, what) {
        return waitFor(() => this.line(pattern) || (this.exitStatus && Promise.reject(new Error(`bot exited ${JSON.stringify(this.exitStatus)}`))),
            { timeoutMs, what: `bot: ${what}`, describe: () => this.tail() });
    }

    lastVote() {
        for (let i = this.lines.length - 1; i >= 0; i--) {
            const match = this.lines[i].match(/^vote time=(\d+) hash=([0-9a-f]+)$/);
            if (match) return { time: Number(match[1]), hash: match[2] };
        }
        return { time: -1, hash: "" };
    }

    async stop() {
        if (this.exitStatus) return this.exitStatus;
        this.child.kill("SIGTERM");
        try {
            return await withTimeout(this.exited, BOT_STOP_TIMEOUT_MS, "the bot to exit after SIGTERM");
        } catch (error) {
            this.child.kill("SIGKILL");
            throw error;
        }
    }

    tail(n = 40) {
        return `--- bot stdout (last ${n}) ---\n${this.lines.slice(-n).join("\n")}\n--- bot stderr ---\n${this.stderr.slice(-n).join("\n")}`;
    }
}

test("go wasm: two Chromium pages and a native Go bot run the balls model to the same state hash", { timeout: 300000, skip: skipBrowser && "METRONOME_SKIP_BROWSER=1" }, (t) =>
    runScenario(t, async ctx => {
        assertChromium();
        const { chromium } = require("playwright-core");

        const built = Date.now();
        const { webRoot, bot: botBin } = await buildExample();
        ctx.note(`built the wasm app and the bot in ${Date.now() - built} ms`);
        const started = Date.now();
        const server = await ctx.startServer({ webRoot });
        const wasm = await httpRequest(`${server.baseUrl}balls.wasm`, { method: "HEAD" });
        assert.equal(wasm.status, 200, "HEAD /balls.wasm from --web-root");
        assert.equal(wasm.headers["content-type"], "application/wasm", "balls.wasm must be served as application/wasm (for instantiateStreaming)");

        const room = `balls-${process.pid}-${Date.now()}`;
        const context = await chromium.launchPersistentContext(makeTempDir("chromium-profile"), {
            executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true,
            viewport: { width: 1000, height: 800 },
        });
        const pageLog = [];
        let bot;
        try {
            const openPage = async label => {
                const page = await context.newPage();
                page.on("console", message => pageLog.push(`[${label}] ${message.type()}: ${message.text()}`));
                page.on("pageerror", error => pageLog.push(`[${label}] pageerror: ${error.message}`));
                await page.goto(`${server.baseUrl}?room=${encodeURIComponent(room)}&pw=${encodeURIComponent(PASSWORD)}`);
                await page.waitForFunction(() => window.metronome && (window.metronome.ready || window.metronome.error), null, { timeout: JOIN_TIMEOUT_MS })
                    .catch(async error => {
                        throw new Error(`page ${label} did not join: status "${await page.textContent("#status")}" (${error.message.split("\n")[0]})`);
                    });
                const failure = await page.evaluate(() => window.metronome.error);
                assert.equal(failure, null, `page ${label} failed to join`);
                const info = await page.evaluate(() => ({ viewId: window.metronome.viewId, sessionId: window.metronome.sessionId }));
                return {
                    label, page, ...info,
                    state: () => page.evaluate(() => window.metronome.state()),
                    lastVote: () => page.evaluate(() => window.metronome.lastVote()),
                    stats: () => page.evaluate(() => window.metronome.stats()),
                    push: (x, y) => page.evaluate(([px, py]) => window.metronome.push(px, py), [x, y]),
                };
            };
            const botReplica = () => ({ label: "bot", lastVote: async () => bot.lastVote() });
            const states = pages => Promise.all(pages.map(p => p.state()));

            /** Waits until every page shows `count` views and `pushes` pushes; returns their states. */
            const waitPages = (pages, what, predicate) => {
                let last;
                return waitFor(async () => {
                    last = await states(pages);
                    return last.every(predicate) && last;
                }, { timeoutMs: CONVERGE_TIMEOUT_MS, what, describe: () => JSON.stringify(last && last.map((s, i) => ({ page: pages[i].label, time: s.time, pushes: s.pushes, views: s.views }))) });
            };

            /** Waits until all replicas' latest votes are at one session time ≥ after; returns them. */
            const commonVote = async (replicas, after) => {
                let votes;
                await waitFor(async () => {
                    votes = await Promise.all(replicas.map(r => r.lastVote()));
                    return votes.every(v => v.hash !== "" && v.time >= after && v.time === votes[0].time);
                }, { timeoutMs: VOTE_TIMEOUT_MS, intervalMs: 200, what: `a common snapshot vote at session time ≥ ${after}`,
                    describe: () => JSON.stringify(votes && votes.map((v, i) => ({ replica: replicas[i].label, ...v }))) });
                return votes.map((v, i) => ({ replica: replicas[i].label, ...v }));
            };

            // Two pages join the room; they are one session and see each other.
            const first = await openPage("first");
            const second = await openPage("second");
            assert.equal(first.sessionId, second.sessionId, "both pages must be in the same session");
            assert.notEqual(first.viewId, second.viewId);
            await waitPages([first, second], "both pages to see two views", s => s.views === 2);

            // The native bot joins and pushes balls while the pages interact.
            bot = new Bot(botBin, ["--reflector", `ws://127.0.0.1:${server.port}/reflector`, "--room", room, "--pw", PASSWORD,
                "--pushes", String(BOT_PUSHES), "--every", "250ms", "--stay", "120s"]);
            const botView = (await bot.waitLine(/^view (\S+) session (\S+)$/, JOIN_TIMEOUT_MS, "to join"));
            assert.equal(botView[2], first.sessionId, "the bot must join the pages' session (same app, version, room)");
            await waitPages([first, second], "both pages to see three views", s => s.views === 3);

            // The first page: real mouse input on the canvas (pointer moves, two clicks).
            const canvas = await first.page.$("#balls");
            const box = await canvas.boundingBox();
            await first.page.bringToFront();
            await first.page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.3);
            await first.page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.35, { steps: 5 });
            await first.page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.5);
            await first.page.mouse.click(box.x + box.width * 0.1, box.y + box.height * 0.9);
            // The second page: pushes through the test API, at world points.
            for (const [x, y] of [[100, 100], [400, 250], [700, 400]]) await second.push(x, y);
            await bot.waitLine(/^pushed \d+$/, CONVERGE_TIMEOUT_MS, `to publish ${BOT_PUSHES} pushes`);
            const pushes = 2 + 3 + BOT_PUSHES;
            const applied = await waitPages([first, second], `both pages to apply ${pushes} pushes`, s => s.pushes === pushes);

            // Everyone sees the first page's pointer (active, where the mouse is).
            await waitPages([first, second], "the first page's pointer to be active in both pages",
                s => s.pointers.some(p => p.view === first.viewId && p.active));

            // The three replicas vote the same hash at the same session time after all pushes.
            const after = Math.max(...applied.map(s => s.time));
            const votes = await commonVote([first, second, botReplica()], after);
            assert.ok(votes.every(v => v.hash === votes[0].hash), `replicas voted different state hashes at session time ${votes[0].time}: ${JSON.stringify(votes)}`);
            ctx.note(`pages and bot agree at session time ${votes[0].time}: ${votes[0].hash.slice(0, 16)}…`);

            // A snapshot of the session was uploaded (by the replica the vote chose).
            await waitFor(() => listFiles(server.dataDir).some(f => f.includes(first.sessionId) && f.endsWith(".snap")),
                { timeoutMs: CONVERGE_TIMEOUT_MS, what: "a snapshot of the session in the data dir", describe: () => listFiles(server.dataDir).join(", ") });

            // A third page joins late, from that snapshot, and pushes too.
            const third = await openPage("third");
            assert.equal(third.sessionId, first.sessionId);
            const thirdStats = await third.stats();
            assert.ok(thirdStats.fromSnapshot, `the late page must start from a snapshot: stats ${JSON.stringify(thirdStats)}`);
            assert.ok(thirdStats.snapshotURL.includes(first.sessionId), `the snapshot URL must name the session: ${thirdStats.snapshotURL}`);
            await third.push(400, 250);
            const all = [first, second, third];
            const late = await waitPages(all, `all pages to apply ${pushes + 1} pushes and see four views`, s => s.pushes === pushes + 1 && s.views === 4);
            const lateVotes = await commonVote([first, second, third, botReplica()], Math.max(...late.map(s => s.time)));
            assert.ok(lateVotes.every(v => v.hash === lateVotes[0].hash), `replicas voted different state hashes at session time ${lateVotes[0].time}: ${JSON.stringify(lateVotes)}`);
            ctx.note(`with the late page, all four agree at session time ${lateVotes[0].time}: ${lateVotes[0].hash.slice(0, 16)}…`);

            // No replica reported a divergence; the visible page drew frames.
            const finalStates = await states(all);
            finalStates.forEach((s, i) => assert.equal(s.divergences, 0, `page ${all[i].label} reported divergences`));
            assert.ok(!bot.line(/^divergence/), `the bot reported a divergence:\n${bot.tail()}`);
            await third.page.bringToFront();
            await waitFor(async () => (await third.state()).frames > 0, { timeoutMs: 5000, what: "the visible page to draw frames" });

            // The bot leaves with a consistent final state.
            await bot.stop();
            const final = bot.line(/^state time=(\d+) seq=(\d+) hash=([0-9a-f]{64}) pushes=(\d+) snapshot=(.*)$/);
            assert.ok(final, `the bot must print its final state:\n${bot.tail()}`);
            assert.equal(Number(final[4]), pushes + 1, "the bot applied every push");
            assert.equal(bot.exitStatus.code, 0, `the bot exited with ${JSON.stringify(bot.exitStatus)}\n${bot.tail()}`);
            ctx.note(`scenario took ${Date.now() - started} ms after the build`);
        } catch (error) {
            error.message += `\n--- browser console (last 80) ---\n${pageLog.slice(-80).join("\n")}` + (bot ? `\n${bot.tail()}` : "");
            throw error;
        } finally {
            if (bot && !bot.exitStatus) bot.child.kill("SIGKILL");
            await context.close();
        }
    }));
