"use strict";
// The real Croquet 2.0.4 browser bundle in headless Chromium, served by `metronome serve
// --web-root`: two pages of a shared-counter app click buttons and must show the same count.
//
// Needs /usr/bin/chromium (Debian package `chromium`; override with CHROMIUM_PATH). Without
// it this test FAILS, unless METRONOME_SKIP_BROWSER=1 is set.

const { test } = require("node:test");
const assert = require("node:assert/strict");

const { runScenario, makeTempDir, JS_ROOT, httpRequest } = require("../lib/harness");
const { CHROMIUM, CHROMIUM_ARGS, skipBrowser, UI_TIMEOUT_MS, assertChromium, makeWebRoot } = require("../lib/chromium");

test("browser: two Chromium pages share a counter through metronome", { timeout: 180000, skip: skipBrowser && "METRONOME_SKIP_BROWSER=1" }, (t) =>
    runScenario(t, async ctx => {
        assertChromium();
        const { chromium } = require("playwright-core");

        const webRoot = makeWebRoot();
        const server = await ctx.startServer({ webRoot });

        // the web root is served at / (index.html for the directory)
        const page = await httpRequest(server.baseUrl);
        assert.equal(page.status, 200, "GET / from --web-root");
        assert.match(page.body.toString(), /Shared counter/, "GET / must serve the web root's index.html");
        const script = await httpRequest(`${server.baseUrl}croquet.min.js`);
        assert.equal(script.status, 200, "GET /croquet.min.js from --web-root");

        const context = await chromium.launchPersistentContext(makeTempDir("chromium-profile"), {
            executablePath: CHROMIUM,
            args: CHROMIUM_ARGS,
            headless: true,
        });
        try {
            const pageLog = [];
            const openPage = async label => {
                const p = await context.newPage();
                p.on("console", message => pageLog.push(`[${label}] ${message.type()}: ${message.text()}`));
                p.on("pageerror", error => pageLog.push(`[${label}] pageerror: ${error.message}`));
                await p.goto(`${server.baseUrl}?session=clicks`);
                await p.waitForFunction(() => document.getElementById("status").textContent.startsWith("joined"), null, { timeout: UI_TIMEOUT_MS })
                    .catch(async error => {
                        throw new Error(`page ${label} did not join: status "${await p.textContent("#status")}" (${error.message})`);
                    });
                return p;
            };
            const textOf = (p, selector) => p.textContent(selector);
            const waitForText = async (p, label, selector, expected) => {
                try {
                    await p.waitForFunction(([sel, want]) => document.querySelector(sel).textContent === want, [selector, expected], { timeout: UI_TIMEOUT_MS });
                } catch (error) {
                    throw new Error(`page ${label}: ${selector} is "${await textOf(p, selector)}", expected "${expected}" (${error.message.split("\n")[0]})`);
                }
            };

            try {
                const first = await openPage("first");
                const second = await openPage("second");
                const sessionOf = p => p.evaluate(() => window.croquetSession.id);
                assert.equal(await sessionOf(first), await sessionOf(second), "both pages must be in the same session");
                await waitForText(first, "first", "#views", "2");
                await waitForText(second, "second", "#views", "2");

                // interleaved clicks in both pages
                for (let i = 0; i < 3; i++) {
                    await first.click("#inc");
                    await second.click("#inc");
                }
                await first.click("#inc");
                await waitForText(first, "first", "#count", "7");
                await waitForText(second, "second", "#count", "7");

                // a third page joining later gets the same state (SYNC replay in the browser)
                const third = await openPage("third");
                await waitForText(third, "third", "#count", "7");
                await waitForText(first, "first", "#views", "3");
                await third.click("#inc");
                for (const [p, label] of [[first, "first"], [second, "second"], [third, "third"]]) await waitForText(p, label, "#count", "8");
            } catch (error) {
                error.message += `\n--- browser console ---\n${pageLog.slice(-80).join("\n")}`;
                throw error;
            }
        } finally {
            await context.close();
        }
    }));

// The embedded demo (no --web-root) with the client module served by metronome itself
// (--croquet-client): it works without internet. This machine has none, so the CDN
// fallback cannot be what makes it work.
test("browser: the embedded demo works offline with --croquet-client", { timeout: 120000, skip: skipBrowser && "METRONOME_SKIP_BROWSER=1" }, (t) =>
    runScenario(t, async ctx => {
        assertChromium();
        const { chromium } = require("playwright-core");
        const module = require.resolve("@croquet/croquet/pub/croquet.esm.js", { paths: [JS_ROOT] });
        const server = await ctx.startServer({ extraArgs: () => ["--croquet-client", module] });
        const served = await httpRequest(`${server.baseUrl}croquet.esm.js`);
        assert.equal(served.status, 200, "GET /croquet.esm.js with --croquet-client");

        const context = await chromium.launchPersistentContext(makeTempDir("chromium-profile"), {
            executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true,
        });
        const pageLog = [];
        try {
            const openPage = async label => {
                const p = await context.newPage();
                p.on("console", message => pageLog.push(`[${label}] ${message.type()}: ${message.text()}`));
                p.on("pageerror", error => pageLog.push(`[${label}] pageerror: ${error.message}`));
                await p.goto(server.baseUrl);
                await p.waitForFunction(() => document.getElementById("status").textContent.startsWith("joined"), null, { timeout: UI_TIMEOUT_MS })
                    .catch(async error => {
                        throw new Error(`demo page ${label} did not join: status "${await p.textContent("#status")}" (${error.message})`);
                    });
                return p;
            };
            const first = await openPage("first");
            await first.click("#increment");
            await first.click("#increment");
            await first.waitForFunction(() => document.getElementById("count").textContent === "2", null, { timeout: UI_TIMEOUT_MS })
                .catch(async () => { throw new Error(`count is "${await first.textContent("#count")}", expected "2"`); });
        } catch (error) {
            error.message += `\n--- browser console ---\n${pageLog.slice(-40).join("\n")}`;
            throw error;
        } finally {
            await context.close();
        }
    }));
