"use strict";
// `metronome serve --auth token` with the real Croquet 2.0.4 browser bundle in headless Chromium
// (docs/operations.md, "Access control"). The page of fixtures/browser-app/ gets its box from its
// URL (?box=http://host/k/<token>/), as an app would from its backend. With valid tokens two
// pages join and count, one uploads a snapshot (a PUT under the box's files/, with the token), and
// a late page loads from that snapshot and counts on. Pages without a token, with an expired
// token and with a token for another app never join, and the client names the server's reason.
//
// Needs /usr/bin/chromium like test/browser.test.js; METRONOME_SKIP_BROWSER=1 skips it.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const { runScenario, makeTempDir, waitFor, sleep, listFiles } = require("../lib/harness");
const { CHROMIUM, CHROMIUM_ARGS, skipBrowser, UI_TIMEOUT_MS, assertChromium, makeWebRoot } = require("../lib/chromium");
const { makeKeys } = require("../fixtures/tokens");

const PAGE_APP_ID = "io.metronome.browsertest"; // the appId of fixtures/browser-app/app.js

test("browser: with --auth token, pages with a token join, snapshot and late-join; pages without one are refused with the reason", { timeout: 180000, skip: skipBrowser && "METRONOME_SKIP_BROWSER=1" }, (t) =>
    runScenario(t, async ctx => {
        assertChromium();
        const { chromium } = require("playwright-core");
        const keys = await makeKeys();
        const server = await ctx.startServer({ webRoot: makeWebRoot(), extraArgs: () => keys.serveArgs });
        const boxOf = token => `${server.baseUrl}k/${token}/`;
        const forPage = (claims = {}) => keys.mint({ apps: [PAGE_APP_ID], ...claims });

        const context = await chromium.launchPersistentContext(makeTempDir("chromium-profile"), {
            executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true,
        });
        const pageLog = [];
        const openPage = async (label, box, session = "auth") => {
            const p = await context.newPage();
            p.on("console", message => pageLog.push(`[${label}] ${message.type()}: ${message.text()}`));
            p.on("pageerror", error => pageLog.push(`[${label}] pageerror: ${error.message}`));
            const query = new URLSearchParams({ session, debug: "session" });
            if (box) query.set("box", box);
            await p.goto(`${server.baseUrl}?${query}`);
            return p;
        };
        const joined = (label, p) => p.waitForFunction(() => document.getElementById("status").textContent.startsWith("joined"), null, { timeout: UI_TIMEOUT_MS })
            .catch(async error => { throw new Error(`${label} did not join: "${await p.textContent("#status")}" (${error.message})`); });
        const shows = (p, count) => p.waitForFunction(n => document.getElementById("count").textContent === String(n), count, { timeout: UI_TIMEOUT_MS });
        try {
            // 1. Two pages with tokens join and count.
            const a = await openPage("a", boxOf(forPage()));
            const b = await openPage("b", boxOf(forPage({ sub: "page-b" })));
            await joined("page a", a);
            await joined("page b", b);
            for (let i = 0; i < 3; i++) await (i % 2 ? b : a).click("#inc");
            await shows(a, 3);
            await shows(b, 3);

            // 2. Page a uploads a snapshot through its box (the PUT carries its token).
            await a.waitForFunction(() => window.croquetSession.view.now() > 5500, null, { timeout: UI_TIMEOUT_MS });
            const uploaded = () => listFiles(path.join(server.dataDir, "files"));
            for (let attempt = 1; attempt <= 3 && uploaded().length === 0; attempt++) {
                await a.evaluate(() => window.croquetSession.view.realm.vm.forceSnapshot());
                await waitFor(() => uploaded().length > 0, { timeoutMs: 8000, what: "page a to upload a snapshot" })
                    .catch(error => { if (attempt === 3) throw error; });
            }
            ctx.note(`snapshot uploaded by page a: ${uploaded().join(", ")}`);
            const snapLine = () => server.logLines.find(line => line.includes("/k/<token>/files/"));
            await waitFor(() => snapLine(), { timeoutMs: 10000, what: "the server to log the SNAP's URL (under the box, token redacted)" });

            // 3. A late page with its own token loads from that snapshot and counts on.
            const late = await openPage("late", boxOf(forPage({ sub: "page-late" })));
            await joined("the late page", late);
            await shows(late, 3);
            await late.click("#inc");
            for (const p of [a, b, late]) await shows(p, 4);

            // 4. Pages without a token, with an expired token, or with a token for another app do
            //    not join; the client logs the server's reason, and the server logs the refusal.
            const refusals = [
                { label: "no token", box: null, reason: "not authorized: no token in the URL" },
                { label: "expired", box: boxOf(forPage({ exp: Math.floor(Date.now() / 1000) - 60 })), reason: "not authorized: token expired at" },
                { label: "wrong app", box: boxOf(keys.mint({ apps: ["com.example.other"] })), reason: `not authorized: token is not for app ${PAGE_APP_ID}` },
            ];
            const refusedPages = [];
            for (const refusal of refusals) refusedPages.push(await openPage(refusal.label, refusal.box, "auth"));
            for (const refusal of refusals) {
                await waitFor(() => pageLog.some(line => line.startsWith(`[${refusal.label}]`) && line.includes(refusal.reason)),
                    { timeoutMs: UI_TIMEOUT_MS, what: `the "${refusal.label}" page to log the reason "${refusal.reason}"`, describe: () => pageLog.filter(line => line.startsWith(`[${refusal.label}]`)).slice(-10).join("\n") });
            }
            await sleep(2000);
            for (const [i, refusal] of refusals.entries()) {
                const status = await refusedPages[i].textContent("#status");
                assert.ok(!status.startsWith("joined"), `the "${refusal.label}" page must not join (status "${status}")`);
                assert.ok(server.logLines.some(line => line.includes("not authorized") && line.includes(refusal.reason.replace("not authorized: ", ""))),
                    `the server logs the refusal of "${refusal.label}"`);
            }
            // The session went on untouched.
            await a.click("#inc");
            for (const p of [a, b, late]) await shows(p, 5);
            ctx.note(`refused pages: ${refusals.map(r => r.label).join(", ")}; session counted to 5 across three pages`);
        } catch (error) {
            error.message += `\n--- browser console ---\n${pageLog.slice(-80).join("\n")}`;
            throw error;
        } finally {
            await context.close();
        }
    }));
