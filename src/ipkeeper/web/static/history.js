// The cluster's history (R29): every server's events merged by time, filtered by
// server, resource, kind and age, refreshed while it is open.
"use strict";

import { api, q } from "./api.js";
import { choice, el, grid, when } from "./dom.js";
import { currentTitle, openWizard, values } from "./wizard.js";

const TITLE = "Cluster history";
const AGES = [["900", "last 15 minutes"], ["3600", "last hour"], ["86400", "last 24 hours"], ["604800", "last 7 days"], ["", "all"]];
// Kinds always offered; any other kind seen in the first page is offered too.
const KINDS = ["admin", "check-failed", "failover", "recovered", "state", "switchback"];

function rows(events) {
  return [...events].reverse().map((e) => el("tr", {},
    el("td", { class: "nowrap" }, when(e.ts)), el("td", {}, e.server), el("td", {}, e.tag || ""), el("td", {}, `${e.kind}: ${e.message}`)));
}

async function load(filters) {
  const since = filters.age ? Date.now() / 1000 - Number(filters.age) : null;
  return api("GET", "/history" + q({ limit: 300, server: filters.server, tag: filters.tag, kind: filters.kind, since }));
}

function show(data) {
  document.getElementById("events-table")?.closest(".scroll-x").replaceWith(grid("events-table", ["Time", "Server", "Resource", "Event"], rows(data.events)));
  const missing = data.unreachable.map((u) => `${u.server}: ${u.reason}`).join("; ");
  document.getElementById("history-missing").textContent = missing ? `No events from ${missing}` : "";
}

export async function history(status) {
  const servers = status.servers.map((s) => s.name);
  const tags = status.resources.map((r) => r.tag);
  const filters = { age: "3600", server: "", tag: "", kind: "" };
  const first = await load(filters);
  const kinds = [...new Set([...KINDS, ...first.events.map((e) => e.kind)])].sort();
  openWizard(TITLE, [{ title: "Every server's events, newest first; updated live", finishLabel: "Close", noCancel: true, render: () => [
    el("div", { class: "filters" },
      el("div", {}, choice("server", "Server", [["", "every server"], ...servers], "")),
      el("div", {}, choice("tag", "Resource", [["", "every resource"], ...tags], "")),
      el("div", {}, choice("kind", "Kind", [["", "every kind"], ...kinds], "")),
      el("div", {}, choice("age", "Since", AGES, "3600"))),
    el("p", { id: "history-missing", class: "hint", role: "status" }),
    grid("events-table", ["Time", "Server", "Resource", "Event"], rows(first.events))] }], async () => {});
  show(first);
  let busy = false;
  const reload = async () => {
    if (busy || currentTitle() !== TITLE) return;
    busy = true;
    try { Object.assign(filters, values()); show(await load(filters)); } catch (error) {
      document.getElementById("history-missing").textContent = `not updated: ${error.message}`;
    } finally { busy = false; }
  };
  for (const name of ["server", "tag", "kind", "age"]) document.getElementById(`f-${name}`).addEventListener("change", reload);
  const timer = setInterval(() => (currentTitle() === TITLE ? reload() : clearInterval(timer)), 2000);
}
