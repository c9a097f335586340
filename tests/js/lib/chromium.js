"use strict";
// Headless Chromium for the browser tests (driven through playwright-core): where it is, its
// flags, and the web root of the counter app of fixtures/browser-app.
//
// Needs /usr/bin/chromium (Debian package `chromium`; override with CHROMIUM_PATH). Without it a
// browser test FAILS, unless METRONOME_SKIP_BROWSER=1 is set (then it is skipped).

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const { makeTempDir, JS_ROOT } = require("./harness");

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
];
const skipBrowser = process.env.METRONOME_SKIP_BROWSER === "1";
// How long a page may take to show what a test waits for.
const UI_TIMEOUT_MS = 20000;

/** Fails the test, saying what to do, if there is no Chromium at CHROMIUM. */
function assertChromium() {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) or set METRONOME_SKIP_BROWSER=1 to skip this test`);
}

/** A web root with the app page of fixtures/browser-app, its script and the Croquet browser bundle. */
function makeWebRoot() {
    const webRoot = makeTempDir("webroot");
    const appDir = path.join(JS_ROOT, "fixtures", "browser-app");
    for (const file of fs.readdirSync(appDir)) fs.copyFileSync(path.join(appDir, file), path.join(webRoot, file));
    // pub/croquet.min.js is the package's self-contained browser build (defines window.Croquet)
    const bundle = require.resolve("@croquet/croquet/pub/croquet.min.js", { paths: [JS_ROOT] });
    fs.copyFileSync(bundle, path.join(webRoot, "croquet.min.js"));
    return webRoot;
}

module.exports = { CHROMIUM, CHROMIUM_ARGS, skipBrowser, UI_TIMEOUT_MS, assertChromium, makeWebRoot };
