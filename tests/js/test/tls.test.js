"use strict";
// `metronome serve --tls-cert FILE --tls-key FILE`: the real Croquet 2.0.4 client over https://
// and wss://, in Node.js and in headless Chromium (docs/operations.md, "TLS and reverse proxies").
// The certificate is self-signed, made by fixtures/selfsigned (Go) for 127.0.0.1 and localhost.
//
// Trust: Node.js clients get it through NODE_EXTRA_CA_CERTS, set in this process's environment,
// which the client processes inherit (Node.js reads it at start, so it does not affect this
// process); this process trusts it through https.globalAgent (lib/harness.js httpRequest uses
// it). Chromium ignores certificate errors (ignoreHTTPSErrors), as it has no way to take a CA
// for one context.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const https = require("node:https");
const path = require("node:path");
const tls = require("node:tls");
const { execFile } = require("node:child_process");
const { promisify } = require("node:util");

const { runScenario, waitFor, buildServer, makeTempDir, freePort, MetronomeServer, REPO_ROOT } = require("../lib/harness");
const { waitForCounter, assertIdenticalModels, assertExactlyOnce, assertCleanRun } = require("../lib/checks");
const { CHROMIUM, CHROMIUM_ARGS, skipBrowser, UI_TIMEOUT_MS, assertChromium, makeWebRoot } = require("../lib/chromium");
const { joinSnapshotLateJoin } = require("../lib/token-scenarios");
const { makeKeys } = require("../fixtures/tokens");

const execFileAsync = promisify(execFile);

const CONVERGE_MS = 20000;
const RELOAD_MS = 10000;

// ---------------------------------------------------------------- certificates

const certDir = makeTempDir("tls");
// Every certificate a test made: clients trust them all, so that one reloaded by the server is
// trusted too.
const trustedFile = path.join(certDir, "trusted.pem");
fs.writeFileSync(trustedFile, "");
process.env.NODE_EXTRA_CA_CERTS = trustedFile;

/**
 * Writes a new self-signed certificate with the given serial number to certFile and keyFile
 * (replacing them, as a renewal does) and trusts it.
 */
async function writeCertificate(serial, certFile, keyFile) {
    await execFileAsync("go", ["run", "./tests/js/fixtures/selfsigned", "-serial", String(serial), "-cert", certFile, "-key", keyFile],
        { cwd: REPO_ROOT, timeout: 120000 });
    const pem = fs.readFileSync(certFile, "utf8");
    fs.appendFileSync(trustedFile, pem);
    const ca = https.globalAgent.options.ca || [];
    https.globalAgent.options.ca = [...ca, pem];
    return pem;
}

/** The serial number (hex, e.g. "01") of the certificate a new TLS handshake with port sees. */
function presentedSerial(port) {
    return new Promise((resolve, reject) => {
        const socket = tls.connect({ host: "127.0.0.1", port, ca: https.globalAgent.options.ca }, () => {
            resolve(socket.getPeerCertificate().serialNumber);
            socket.end();
        });
        socket.on("error", reject);
    });
}

/** metronome serve over TLS: base URL https://127.0.0.1:<port>/. */
class TlsServer extends MetronomeServer {
    get baseUrl() { return `https://127.0.0.1:${this.port}/`; }
}

/** Starts a server with a new certificate (serial 1) and the given extra flags. */
async function startTlsServer(ctx, { webRoot, extraArgs = [] } = {}) {
    const certFile = path.join(makeTempDir("cert"), "cert.pem");
    const keyFile = path.join(path.dirname(certFile), "key.pem");
    await writeCertificate(1, certFile, keyFile);
    const server = new TlsServer({
        bin: await buildServer(), port: await freePort(), dataDir: makeTempDir("data"), webRoot,
        extraArgs: () => ["--tls-cert", certFile, "--tls-key", keyFile, ...extraArgs],
    });
    ctx.servers.push(server);
    await server.start();
    return Object.assign(server, { certFile, keyFile });
}

/** Checks that every WebSocket the client opened was wss:// to the server. */
function assertWss(client, server) {
    const opens = client.frames.filter(f => f.dir === "open");
    assert.ok(opens.length > 0, `client ${client.label} opened no WebSocket`);
    for (const open of opens) {
        assert.ok(open.text.startsWith(`wss://127.0.0.1:${server.port}/`), `client ${client.label} connected to ${open.text}, want wss://`);
    }
}

// ---------------------------------------------------------------- tests

test("(tls a) Node.js clients over wss:// with a token: join, converge, snapshot over https, late join, certificate reload on SIGHUP", { timeout: 150000 }, (t) =>
    runScenario(t, async ctx => {
        const keys = await makeKeys();
        const server = await startTlsServer(ctx, { extraArgs: keys.serveArgs });
        assert.ok(server.logLines.some(line => line.includes(`metronome serving on https://127.0.0.1:${server.port}/`)),
            "serve prints its https:// URL");
        const boxed = { baseUrl: `${server.baseUrl}k/${keys.mint({ sub: "tls" })}/` };
        const name = "tls";

        // Join, converge, a snapshot uploaded with PUT over https (the box is https://) and
        // downloaded over https by the test and by a late joiner, who catches up.
        const { a, b, c } = await joinSnapshotLateJoin(ctx, { server, box: boxed.baseUrl, name });

        // A renewed certificate: the files are replaced and SIGHUP re-reads them. New handshakes
        // see it; the connections made before go on.
        assert.equal(await presentedSerial(server.port), "01", "the certificate served at start");
        await writeCertificate(2, server.certFile, server.keyFile);
        server.process.kill("SIGHUP");
        await waitFor(() => server.logLines.some(line => line.includes("TLS certificate reloaded")), { timeoutMs: RELOAD_MS, what: "the reload to be logged" });
        assert.equal(await presentedSerial(server.port), "02", "the certificate served after SIGHUP");
        const d = await ctx.startClient({ server: boxed, label: "D", name });
        await Promise.all([c.increment(2, 30), d.increment(2, 30)]);
        const states = await waitForCounter([a, b, c, d], 30, CONVERGE_MS);
        assertIdenticalModels(states);
        assertExactlyOnce(states[0].model.applied, { A: 13, B: 13, C: 2, D: 2 });
        for (const s of states) assertCleanRun(s);
        for (const client of [a, b, c, d]) assertWss(client, server);
        assert.ok(!server.logLines.some(line => line.includes("not authorized")), "the server refused a request of the clients");
    }));

test("(tls b) Chromium pages over https:// and wss://, one reached through the HTTP redirect", { timeout: 150000, skip: skipBrowser && "METRONOME_SKIP_BROWSER=1" }, (t) =>
    runScenario(t, async ctx => {
        assertChromium();
        const { chromium } = require("playwright-core");
        const webRoot = makeWebRoot();
        const redirectPort = await freePort();
        const server = await startTlsServer(ctx, { webRoot, extraArgs: ["--http-redirect-addr", `127.0.0.1:${redirectPort}`] });

        const context = await chromium.launchPersistentContext(makeTempDir("chromium-profile"), {
            executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, ignoreHTTPSErrors: true,
        });
        const pageLog = [];
        try {
            const openPage = async (label, url) => {
                const page = await context.newPage();
                page.on("console", message => pageLog.push(`[${label}] ${message.type()}: ${message.text()}`));
                page.on("pageerror", error => pageLog.push(`[${label}] pageerror: ${error.message}`));
                page.on("websocket", socket => pageLog.push(`[${label}] websocket ${socket.url()}`));
                await page.goto(url);
                await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("joined"), null, { timeout: UI_TIMEOUT_MS })
                    .catch(async error => {
                        throw new Error(`page ${label} did not join: status "${await page.textContent("#status")}" (${error.message})`);
                    });
                return page;
            };
            const waitForText = (page, selector, expected) =>
                page.waitForFunction(([sel, want]) => document.querySelector(sel).textContent === want, [selector, expected], { timeout: UI_TIMEOUT_MS });

            const first = await openPage("first", `${server.baseUrl}?session=tls`);
            const second = await openPage("second", `http://127.0.0.1:${redirectPort}/?session=tls`);
            assert.equal(second.url(), `${server.baseUrl}?session=tls`, "the plain-HTTP address redirects to https");
            for (let i = 0; i < 3; i++) {
                await first.click("#inc");
                await second.click("#inc");
            }
            await Promise.all([first, second].map(page => waitForText(page, "#count", "6")));
            const late = await openPage("late", `${server.baseUrl}?session=tls`);
            await waitForText(late, "#count", "6");
            await late.click("#inc");
            await Promise.all([first, second, late].map(page => waitForText(page, "#count", "7")));
            await Promise.all([first, second, late].map(page => waitForText(page, "#views", "3")));
            const sockets = pageLog.filter(line => line.includes("websocket "));
            assert.equal(sockets.length, 3, `one WebSocket per page:\n${sockets.join("\n")}`);
            for (const line of sockets) assert.match(line, new RegExp(`websocket wss://127\\.0\\.0\\.1:${server.port}/reflector/`));
        } catch (error) {
            error.message += `\n--- page log ---\n${pageLog.join("\n")}`;
            throw error;
        } finally {
            await context.close();
        }
    }));
