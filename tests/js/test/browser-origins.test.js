"use strict";
// `metronome serve --allowed-origins` with the real Croquet 2.0.4 browser bundle in headless
// Chromium (docs/operations.md, "Uploaded files and browsers"): a page whose origin is listed
// joins, plays and uploads a snapshot (its WebSocket upgrade and its PUT carry the Origin header
// exactly as the browser writes it); a page of an origin that is not listed cannot connect.
//
// Needs /usr/bin/chromium like test/browser.test.js; METRONOME_SKIP_BROWSER=1 skips it.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const { runScenario, makeTempDir, waitFor, sleep, listFiles } = require("../lib/harness");
const { CHROMIUM, CHROMIUM_ARGS, skipBrowser, UI_TIMEOUT_MS, assertChromium, makeWebRoot } = require("../lib/chromium");

const originOf = server => server.baseUrl.replace(/\/$/, "");

test("browser: --allowed-origins lets the listed page join and upload, and refuses another page", { timeout: 180000, skip: skipBrowser && "METRONOME_SKIP_BROWSER=1" }, (t) =>
    runScenario(t, async ctx => {
        assertChromium();
        const { chromium } = require("playwright-core");
        const webRoot = makeWebRoot();
        // The page's own origin is listed (the server serves the app itself) ...
        const listing = await ctx.startServer({ webRoot, extraArgs: server => ["--allowed-origins", `https://app.elsewhere.example,${originOf(server)}`] });
        // ... or not.
        const refusing = await ctx.startServer({ webRoot, extraArgs: () => ["--allowed-origins", "https://app.elsewhere.example"] });

        const context = await chromium.launchPersistentContext(makeTempDir("chromium-profile"), {
            executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true,
        });
        const pageLog = [];
        const openPage = async (label, server) => {
            const p = await context.newPage();
            p.on("console", message => pageLog.push(`[${label}] ${message.type()}: ${message.text()}`));
            p.on("pageerror", error => pageLog.push(`[${label}] pageerror: ${error.message}`));
            await p.goto(`${server.baseUrl}?session=origins`);
            return p;
        };
        try {
            // 1. The listed page joins, counts, and uploads a snapshot (a same-origin PUT, which
            //    browsers send with an Origin header).
            const page = await openPage("listed", listing);
            await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("joined"), null, { timeout: UI_TIMEOUT_MS })
                .catch(async error => { throw new Error(`the listed page did not join: "${await page.textContent("#status")}" (${error.message})`); });
            await page.click("#inc");
            await page.waitForFunction(() => document.getElementById("count").textContent === "1", null, { timeout: UI_TIMEOUT_MS });
            // The VM accepts a snapshot poll only after 5 s of session time.
            await page.waitForFunction(() => window.croquetSession.view.now() > 5500, null, { timeout: UI_TIMEOUT_MS });
            const snapshotFiles = () => listFiles(path.join(listing.dataDir, "files", "snapshots"));
            for (let attempt = 1; attempt <= 3 && snapshotFiles().length === 0; attempt++) {
                await page.evaluate(() => window.croquetSession.view.realm.vm.forceSnapshot());
                await waitFor(() => snapshotFiles().length > 0, { timeoutMs: 8000, what: "the listed page to upload a snapshot" })
                    .catch(error => { if (attempt === 3) throw error; });
            }
            ctx.note(`snapshot uploaded by the listed page: ${snapshotFiles().join(", ")}`);

            // 2. The same page from a server that does not list its origin cannot connect: the
            //    server refuses the WebSocket upgrade (403) and logs the origin it refused.
            const refused = await openPage("refused", refusing);
            await waitFor(() => refusing.logLines.some(line => line.includes("websocket upgrade refused: origin not allowed") && line.includes(originOf(refusing))),
                { timeoutMs: UI_TIMEOUT_MS, what: "the server to log a refused upgrade from the page's origin", describe: () => refusing.logLines.slice(-10).join("\n") });
            await sleep(1000);
            const status = await refused.textContent("#status");
            assert.ok(!status.startsWith("joined"), `a page of an origin that is not listed must not join (status "${status}")`);
        } catch (error) {
            error.message += `\n--- browser console ---\n${pageLog.slice(-60).join("\n")}`;
            throw error;
        } finally {
            await context.close();
        }
    }));
