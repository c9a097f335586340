"use strict";
// The session inspector of the admin listener (`metronome serve --admin-addr`, server/admin.go,
// server/inspector/) in headless Chromium, watching a session of three real Croquet 2.0.4
// clients (Node.js): the page must show the session live, drill into it, and show the numbers
// that the clients and the JSON of /sessions/<id> report. A screenshot of the detail is saved.
//
// Needs /usr/bin/chromium (Debian package `chromium`; override with CHROMIUM_PATH). Without
// it this test FAILS, unless METRONOME_SKIP_BROWSER=1 is set.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const { runScenario, waitFor, httpRequest, freePort, makeTempDir } = require("../lib/harness");
const { waitForCounter, waitForViews, forceSnapshotAndWait } = require("../lib/checks");
const { CHROMIUM, CHROMIUM_ARGS, skipBrowser, UI_TIMEOUT_MS, assertChromium } = require("../lib/chromium");

const CONVERGE_MS = 20000;
const JOIN_VIEWS_MS = 15000;
// docs/protocol.md §4.5: the last assigned seq of a new session.
const SEQ_INITIAL = 0xFFFFFFF0;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

test("inspector: the admin listener shows a live session of real clients in Chromium", { timeout: 180000, skip: skipBrowser && "METRONOME_SKIP_BROWSER=1" }, (t) =>
    runScenario(t, async ctx => {
        assertChromium();
        const { chromium } = require("playwright-core");

        const adminPort = await freePort();
        const adminUrl = `http://127.0.0.1:${adminPort}/`;
        const server = await ctx.startServer({ extraArgs: () => ["--admin-addr", `127.0.0.1:${adminPort}`] });
        await waitFor(() => server.logLines.some(line => line.includes(`inspector at ${adminUrl}`)),
            { timeoutMs: 5000, what: `the server to log "inspector at ${adminUrl}"` });

        // What is served where: the public address serves neither /sessions nor the profiler.
        for (const relative of ["sessions", "debug/pprof/"]) {
            const publicAnswer = await server.get(relative);
            assert.equal(publicAnswer.status, 404, `public GET /${relative}`);
            assert.match(publicAnswer.body.toString(), /--admin-addr/, `public GET /${relative} must point to the admin listener`);
        }
        const profiler = await httpRequest(`${adminUrl}debug/pprof/`);
        assert.equal(profiler.status, 200, "admin GET /debug/pprof/");
        assert.match(profiler.body.toString(), /goroutine/, "the admin listener serves the profiler's index");

        const adminJSON = async relative => {
            const answer = await httpRequest(adminUrl + relative, { headers: { Accept: "application/json" } });
            assert.equal(answer.status, 200, `admin GET /${relative}: ${answer.body}`);
            return JSON.parse(answer.body.toString());
        };

        // Three clients in one session send some messages.
        const name = "inspector";
        const clients = [];
        for (const label of ["A", "B", "C"]) clients.push(await ctx.startClient({ server, label, name }));
        let states = await waitForViews(clients, 3, JOIN_VIEWS_MS);
        const sessionId = states[0].sessionId;
        const viewIds = states.map(s => s.viewId).sort();
        await Promise.all(clients.map((client, i) => client.increment(4 + i, 20)));
        states = await waitForCounter(clients, 15, CONVERGE_MS);
        const sends = states.reduce((sum, s) => sum + s.frameStats.sends, 0);
        const detailPath = `sessions/${encodeURIComponent(sessionId)}`;
        let detail = await waitFor(async () => {
            const d = await adminJSON(detailPath);
            return d.members === 3 && d.stamped >= sends ? d : null;
        }, { timeoutMs: 5000, what: `the JSON of session ${sessionId} to show 3 members and at least the ${sends} SENDs` });
        assert.equal(detail.connections, 3, "connections");
        assert.equal(detail.seq, (SEQ_INITIAL + detail.stamped) >>> 0, "seq is the last of the stamped messages");
        assert.equal(detail.bufferedMessages, detail.stamped, "without a snapshot every stamped message is buffered");
        assert.deepEqual(detail.memberList.map(m => m.viewId).sort(), viewIds, "the members' view ids are the clients'");
        ctx.note(`${sends} SENDs; the server stamped ${detail.stamped} messages (seq ${detail.seq})`);

        const context = await chromium.launchPersistentContext(makeTempDir("chromium-profile"), {
            executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, viewport: { width: 1400, height: 1000 },
        });
        const pageLog = [];
        try {
            const page = await context.newPage();
            page.on("console", message => pageLog.push(`${message.type()}: ${message.text()}`));
            page.on("pageerror", error => pageLog.push(`pageerror: ${error.message}`));
            await page.goto(adminUrl);
            const textOf = selector => page.evaluate(sel => { const node = document.querySelector(sel); return node ? node.textContent : null; }, selector);
            const waitForPage = async (predicate, argument, what) => {
                try {
                    await page.waitForFunction(predicate, argument, { timeout: UI_TIMEOUT_MS });
                } catch (error) {
                    throw new Error(`the inspector page never showed ${what}: status "${await textOf("#status")}" (${error.message.split("\n")[0]})`);
                }
            };

            // The list shows the session; it updates live while the clients send more.
            const row = `tr[data-session-id="${sessionId}"]`;
            const cellOf = field => `${row} [data-field="${field}"]`;
            await waitForPage(sel => { const node = document.querySelector(sel); return node && node.textContent === "3"; }, cellOf("members"), "the session with 3 members");
            const stampedShown = Number(await textOf(cellOf("stamped")));
            assert.ok(stampedShown >= sends, `the list shows ${stampedShown} stamped messages, fewer than the ${sends} SENDs`);
            await clients[0].increment(3, 20);
            states = await waitForCounter(clients, 18, CONVERGE_MS);
            await waitForPage(([sel, before]) => Number(document.querySelector(sel).textContent) > before, [cellOf("stamped"), stampedShown],
                `a live update of the stamped messages beyond ${stampedShown}`);

            // A snapshot: the clients vote with their state hashes (a divergence check) and one uploads it.
            const snap = await forceSnapshotAndWait(ctx, clients);
            detail = await waitFor(async () => {
                const d = await adminJSON(detailPath);
                return d.snapshot && d.snapshot.seq === snap.seq && d.divergence.checked >= 1 ? d : null;
            }, { timeoutMs: 5000, what: `the JSON to show the snapshot at seq ${snap.seq} and a checked vote` });
            assert.equal(detail.divergence.diverged, 0, "identical replicas vote the same state hash");
            assert.equal(detail.bufferedMessages, (detail.seq - detail.snapshot.seq) >>> 0, "the buffer holds the messages after the snapshot");

            const screenshots = makeTempDir("inspector");
            await page.screenshot({ path: path.join(screenshots, "inspector-list.png"), fullPage: true });

            // Drill into the session: the numbers shown are the JSON's.
            await page.click(`${row} [data-field="id"] a`);
            await waitForPage(() => !document.getElementById("detail-view").hidden, null, "the session's detail");
            const shownFacts = () => page.evaluate(() => Object.fromEntries(
                [...document.querySelectorAll("#facts [data-field], #divergence [data-field]")].map(node => [node.dataset.field, node.textContent])));
            let shown = null;
            detail = await waitFor(async () => {
                shown = await shownFacts();
                const d = await adminJSON(detailPath);
                const same = shown.members === String(d.members) && shown.connections === String(d.connections) &&
                    shown.seq === String(d.seq) && shown.stamped === String(d.stamped) &&
                    shown.bufferedMessages === String(d.bufferedMessages) && shown.diverged === String(d.divergence.diverged) &&
                    shown.talliesChecked === String(d.divergence.checked) && d.snapshot && shown.snapshot.startsWith(`seq ${d.snapshot.seq},`);
                return same ? d : null;
            }, { timeoutMs: UI_TIMEOUT_MS, what: "the detail page to show the JSON's numbers", describe: () => JSON.stringify(shown) });
            assert.equal(shown.members, "3", "members shown");
            assert.ok(Number(shown.stamped) >= sends, `stamped shown ${shown.stamped} ≥ ${sends} SENDs`);
            assert.equal(shown.diverged, "0", "divergences shown");
            const memberViews = await page.evaluate(() => [...document.querySelectorAll("#members tbody [data-field=viewId]")].map(node => node.textContent));
            assert.deepEqual(memberViews.sort(), viewIds, "the member list shows the clients' view ids");
            ctx.note(`detail shown: ${JSON.stringify(shown)}`);

            const screenshot = path.join(screenshots, "inspector-detail.png");
            await page.screenshot({ path: screenshot, fullPage: true });
            const png = fs.readFileSync(screenshot);
            assert.ok(png.subarray(0, 8).equals(PNG_SIGNATURE), "the screenshot is a PNG");
            assert.equal(png.subarray(12, 16).toString("latin1"), "IHDR", "the PNG starts with its header chunk");
            const width = png.readUInt32BE(16);
            const height = png.readUInt32BE(20);
            assert.ok(width >= 1000 && height >= 500, `screenshot of ${width}x${height} pixels`);
            assert.ok(png.length > 20000, `screenshot of ${png.length} bytes: too small to show the page`);
            ctx.note(`screenshot ${screenshot}: ${width}x${height}, ${png.length} bytes (kept with METRONOME_KEEP_TMP=1)`);
            assert.deepEqual(pageLog.filter(line => /error/i.test(line)), [], "the page logged errors");
        } catch (error) {
            error.message += `\n--- inspector page console ---\n${pageLog.slice(-40).join("\n")}`;
            throw error;
        } finally {
            await context.close();
        }
    }));
