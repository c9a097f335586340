"use strict";
// The session inspector of Metronome's admin listener (server/admin.go).
// It polls the JSON of /sessions (the list) or /sessions/<id> (one
// session, when the URL's hash is #session=<id>) once a second, one
// request at a time, and shows it. Everything the server sends is put into
// the page as text, never as HTML: session names, user values and close
// reasons come from clients.

const POLL_INTERVAL_MS = 1000;
const PAGE_SIZE = 100;

const state = { sort: "id", offset: 0, updates: 0, timer: null, generation: 0 };

// ---------------------------------------------------------------- formatting

function formatInteger(n) {
    return String(n);
}

function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    const units = ["KiB", "MiB", "GiB"];
    let value = n / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit++;
    }
    return `${value.toFixed(1)} ${units[unit]}`;
}

function formatDuration(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return `${ms} ms`;
    const seconds = ms / 1000;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ${minutes % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function formatPersisted(persisted) {
    const parts = [];
    if (persisted.startedFromPersistedData) parts.push("loaded");
    if (persisted.saves > 0) parts.push(`${persisted.saves} saved`);
    if (!parts.length) return persisted.persistentId ? "none yet" : "–";
    return parts.join(", ");
}

function shortId(id) {
    return id.length > 14 ? `${id.slice(0, 12)}…` : id;
}

// ---------------------------------------------------------------- DOM helpers

function element(tag, { text, className, title, field, attributes } = {}) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    if (title) node.title = title;
    if (field) node.dataset.field = field;
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    return node;
}

function cell(text, field, className) {
    return element("td", { text, field, className });
}

function numberCell(text, field) {
    return cell(text, field, "number");
}

// fillRows replaces a table's rows; an empty table says so (empty).
function fillRows(tbody, rows, empty) {
    if (!rows.length && empty) {
        const row = element("tr", { className: "muted" });
        row.append(element("td", { text: empty, attributes: { colspan: String(tbody.parentElement.tHead.rows[0].cells.length) } }));
        rows = [row];
    }
    tbody.replaceChildren(...rows);
}

function factRow(label, value, field, title) {
    const row = element("tr");
    row.append(element("th", { text: label, title }), cell(value, field));
    return row;
}

function setStatus(text, error) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.classList.toggle("error", !!error);
}

// ---------------------------------------------------------------- the list

function sessionRow(session) {
    const row = element("tr", { attributes: { "data-session-id": session.id } });
    const link = element("a", { text: shortId(session.id), title: session.id, attributes: { href: `#session=${encodeURIComponent(session.id)}` } });
    const name = element("td", { field: "id" });
    name.append(link);
    const label = [session.appId, session.name].filter(Boolean).join(" · ");
    if (label) name.append(element("span", { text: ` ${label}`, className: "muted" }));
    if (session.storageFailure) name.append(element("span", { text: " storage failed", className: "warning", title: session.storageFailure }));
    if (session.loading) name.append(element("span", { text: " loading", className: "muted" }));
    const members = numberCell(formatInteger(session.members), "members");
    members.title = `${session.connections} connections`;
    row.append(
        name,
        members,
        numberCell(session.inputsPerSecond.toFixed(1), "inputsPerSecond"),
        numberCell(formatInteger(session.seq), "seq"),
        numberCell(formatInteger(session.stamped), "stamped"),
        numberCell(formatDuration(session.started ? session.sessionTimeMs : null), "sessionTime"),
        numberCell(formatInteger(session.bufferedMessages), "bufferedMessages"),
        numberCell(formatBytes(session.bufferedBytes), "bufferedBytes"),
        numberCell(formatDuration(session.snapshotAgeMs), "snapshotAge"),
        cell(formatPersisted(session.persisted), "persisted"),
        cell(formatInteger(session.divergedTallies), "divergedTallies", session.divergedTallies ? "number warning" : "number"),
        numberCell(formatInteger(session.recentCloses), "recentCloses"),
    );
    if (session.divergedTallies) row.classList.add("diverged");
    row.addEventListener("click", event => {
        if (event.target.tagName !== "A") location.hash = `#session=${encodeURIComponent(session.id)}`;
    });
    return row;
}

function showList(list) {
    fillRows(document.querySelector("#sessions tbody"), list.sessions.map(sessionRow));
    document.getElementById("empty").hidden = list.total > 0;
    const last = list.offset + list.sessions.length;
    document.getElementById("list-summary").textContent = list.total > list.sessions.length
        ? `sessions ${list.offset + 1}–${last} of ${list.total}`
        : `${list.total} session${list.total === 1 ? "" : "s"} in memory`;
    document.getElementById("previous").disabled = list.offset === 0;
    document.getElementById("next").disabled = last >= list.total;
}

// ---------------------------------------------------------------- one session

function showDetail(detail) {
    document.getElementById("detail-gone").hidden = true;
    document.getElementById("detail-title").textContent = detail.id;
    const facts = [
        factRow("app", detail.appId || "–", "appId"),
        factRow("name", detail.name || "–", "name"),
        factRow("timeline", detail.timeline || "–", "timeline"),
        factRow("members", formatInteger(detail.members), "members", "synced members, including those in their leave delay"),
        factRow("connections", formatInteger(detail.connections), "connections"),
        factRow("inputs/s", detail.inputsPerSecond.toFixed(1), "inputsPerSecond", "messages stamped per second"),
        factRow("seq", formatInteger(detail.seq), "seq", "sequence number of the last stamped message"),
        factRow("stamped", formatInteger(detail.stamped), "stamped", "messages stamped on this timeline"),
        factRow("session time", detail.started ? formatDuration(detail.sessionTimeMs) : "not started", "sessionTime"),
        factRow("buffered messages", formatInteger(detail.bufferedMessages), "bufferedMessages", "messages since the last snapshot, sent in the SYNC of every joiner"),
        factRow("buffered bytes", formatBytes(detail.bufferedBytes), "bufferedBytes"),
        factRow("snapshot", detail.snapshot
            ? `seq ${detail.snapshot.seq}, time ${detail.snapshot.time}, ${formatDuration(detail.snapshot.ageMs)} old (session time)` +
              (detail.snapshot.acceptedAgoMs !== undefined ? `, accepted ${formatDuration(detail.snapshot.acceptedAgoMs)} ago` : "")
            : "none", "snapshot"),
        factRow("snapshot url", detail.snapshot ? detail.snapshot.url : "–", "snapshotUrl"),
        factRow("persistent id", detail.persisted.persistentId || "–", "persistentId"),
        factRow("persisted data", persistedText(detail.persisted), "persisted"),
        factRow("open tallies", formatInteger(detail.openTallies), "openTallies"),
        factRow("tick", detail.tickMs ? `${detail.tickMs} ms, scale ${detail.scale}` : "–", "tick"),
    ];
    if (detail.storageFailure) facts.unshift(factRow("storage failure", detail.storageFailure, "storageFailure"));
    fillRows(document.querySelector("#facts tbody"), facts);
    showDivergence(detail.divergence);
    fillRows(document.querySelector("#members tbody"), detail.memberList.map(member => {
        const row = element("tr");
        const memberState = member.leaving ? "leaving" : member.synced ? "synced" : member.joined ? "joined" : "connected";
        row.append(numberCell(String(member.conn), "conn"), cell(member.viewId || "–", "viewId"), cell(memberState, "state"),
            cell(member.remote || "–", "remote"), cell(member.user || "–", "user", "code"));
        return row;
    }), "no members");
    if (detail.memberList.length < detail.connections) {
        const row = element("tr");
        row.append(element("td", { text: `… ${detail.connections - detail.memberList.length} more`, attributes: { colspan: "5" } }));
        document.querySelector("#members tbody").append(row);
    }
    fillRows(document.querySelector("#closes tbody"), detail.closes.map(close => {
        const row = element("tr");
        row.append(numberCell(formatDuration(close.agoMs), "ago"), numberCell(String(close.conn), "conn"),
            numberCell(close.code ? String(close.code) : "none", "code"), cell(close.code ? close.reason || "" : "connection lost", "reason"),
            cell(close.remote || "–", "remote"));
        return row;
    }), "none since the session was loaded");
}

function persistedText(persisted) {
    const parts = [persisted.startedFromPersistedData ? "session started from persisted data" : "not started from persisted data"];
    parts.push(`${persisted.saves} saved since loaded` + (persisted.lastSaveAgeMs !== undefined ? `, last ${formatDuration(persisted.lastSaveAgeMs)} ago` : ""));
    if (persisted.pointerStored !== undefined) parts.push(persisted.pointerStored ? "pointer stored" : "no pointer stored");
    if (persisted.pointerError) parts.push(`pointer unreadable: ${persisted.pointerError}`);
    return parts.join("; ");
}

function showDivergence(divergence) {
    fillRows(document.querySelector("#divergence tbody"), [
        factRow("tallies checked", formatInteger(divergence.checked), "talliesChecked", "completed votes whose voters reported a state hash"),
        factRow("diverged", formatInteger(divergence.diverged), "diverged", "votes in which the replicas reported different state hashes"),
        ...(divergence.unchecked ? [factRow("not checked", formatInteger(divergence.unchecked), "unchecked")] : []),
    ]);
    const box = document.getElementById("divergence-last");
    box.replaceChildren();
    const last = divergence.last;
    if (!last) return;
    box.append(element("p", { className: "warning",
        text: `Last divergence ${formatDuration(last.agoMs)} ago: ${last.key} (session time ${last.time}, ${last.missingVotes} votes missing)` }));
    const table = element("table");
    table.append(element("thead"));
    table.tHead.append(element("tr"));
    for (const heading of ["hash", "votes", "views"]) table.tHead.rows[0].append(element("th", { text: heading }));
    const body = element("tbody");
    for (const hash of last.hashes) {
        const row = element("tr");
        row.append(cell(hash.hash, "hash", "code"), numberCell(String(hash.votes), "votes"), cell(hash.views.join(", "), "views"));
        body.append(row);
    }
    table.append(body);
    box.append(table);
    if (last.cut) box.append(element("p", { className: "muted", text: "Some votes are not listed." }));
}

// ---------------------------------------------------------------- polling

function selectedSession() {
    const match = /^#session=(.+)$/.exec(location.hash);
    return match ? decodeURIComponent(match[1]) : null;
}

async function fetchJSON(url) {
    const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) {
        const error = new Error(`${url}: ${response.status} ${(await response.text()).trim()}`);
        error.status = response.status;
        throw error;
    }
    return response.json();
}

async function update(generation) {
    const id = selectedSession();
    document.getElementById("list-view").hidden = id !== null;
    document.getElementById("detail-view").hidden = id === null;
    try {
        if (id === null) {
            const query = new URLSearchParams({ format: "json", sort: state.sort, offset: String(state.offset), limit: String(PAGE_SIZE) });
            const list = await fetchJSON(`sessions?${query}`);
            if (generation !== state.generation) return;
            showList(list);
        } else {
            try {
                const detail = await fetchJSON(`sessions/${encodeURIComponent(id)}`);
                if (generation !== state.generation) return;
                showDetail(detail);
            } catch (error) {
                if (error.status !== 404 || generation !== state.generation) throw error;
                const gone = document.getElementById("detail-gone");
                gone.textContent = "This session is no longer in memory (it ended, or the server restarted).";
                gone.hidden = false;
            }
        }
        state.updates++;
        document.body.dataset.updates = String(state.updates);
        setStatus(`live · updated ${new Date().toLocaleTimeString()}`);
    } catch (error) {
        if (generation === state.generation) setStatus(`not updated: ${error.message}`, true);
    }
}

// poll runs one update at a time, then waits POLL_INTERVAL_MS; a new
// generation (the view changed) starts at once and drops stale answers.
function poll() {
    clearTimeout(state.timer);
    const generation = ++state.generation;
    update(generation).finally(() => {
        if (generation === state.generation) state.timer = setTimeout(poll, POLL_INTERVAL_MS);
    });
}

document.getElementById("sort").addEventListener("change", event => {
    state.sort = event.target.value;
    state.offset = 0;
    poll();
});
document.getElementById("previous").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    poll();
});
document.getElementById("next").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    poll();
});
window.addEventListener("hashchange", poll);
poll();
