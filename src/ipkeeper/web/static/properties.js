// The properties of a resource on a server (R12-R15), in the guide's panels:
// general, relations, equivalencies, and the IP settings with ping list and
// source address (or an application's commands).
"use strict";

import { api, q } from "./api.js";
import { STATES, choice, el, field, grid, stateBadge, when } from "./dom.js";
import { openWizard, reported, showError, values } from "./wizard.js";

const text = (value) => (Array.isArray(value) ? value.join(", ") || "none" : value ?? "–");

function facts(rows) {
  return el("dl", { class: "facts" }, ...rows.filter(Boolean).map(([term, value]) =>
    [el("dt", {}, term), el("dd", {}, value instanceof Node ? value : String(text(value)))]));
}

function tabs(panels, open) {
  const chosen = panels.some((p) => p.id === open) ? open : panels[0].id;
  const show = (id, focus) => {
    for (const p of panels) {
      const tab = document.getElementById(`tab-${p.id}`);
      tab.setAttribute("aria-selected", String(p.id === id));
      tab.tabIndex = p.id === id ? 0 : -1;
      document.getElementById(`panel-${p.id}`).hidden = p.id !== id;
    }
    if (focus) document.getElementById(`tab-${id}`).focus();
  };
  const move = (event, index) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step) { event.preventDefault(); show(panels[(index + step + panels.length) % panels.length].id, true); }
  };
  const list = el("div", { role: "tablist", "aria-label": "Properties", class: "tabs" }, ...panels.map((p, i) =>
    el("button", { type: "button", role: "tab", id: `tab-${p.id}`, "aria-controls": `panel-${p.id}`,
      "aria-selected": String(p.id === chosen), tabindex: p.id === chosen ? "0" : "-1",
      onclick: () => show(p.id, false), onkeydown: (e) => move(e, i) }, p.title)));
  return [list, ...panels.map((p) => el("section", { role: "tabpanel", id: `panel-${p.id}`, "aria-labelledby": `tab-${p.id}`,
    class: "panel", hidden: p.id !== chosen }, ...p.body))];
}

function general(shown, res) {
  const check = shown.last_check ? `${shown.last_check.ok ? "ok" : "failed"}: ${shown.last_check.reason} (${when(shown.last_check.at)})` : null;
  return [
    facts([
      ["Tag", shown.tag], ["Type", shown.type], ["Server", shown.server],
      ["State", el("span", { id: "prop-state" }, stateBadge(shown), ` ${STATES[shown.state] || "unknown"}`)],
      ["Since", el("span", { id: "prop-since" }, when(shown.since))],
      ["Reason", el("span", { id: "prop-reason" }, shown.reason || "–")],
      ["Priority", shown.priority],
      (shown.pending || shown.busy) && ["In progress", shown.busy || shown.pending],
      check && ["Last check", check],
      shown.warnings?.length && ["Warnings", shown.warnings.join(" ")],
    ]),
    choice("switchback", "Switchback", ["intelligent", "automatic"], res.switchback, "Automatic: back to the best server when it rejoins (R23)"),
  ];
}

function equivalencies(shown, res) {
  return [grid("equivalents", ["Server", "Tag", "Priority", "State"], shown.equivalents.map((e) =>
    el("tr", {}, el("td", {}, e.server), el("td", {}, e.tag), el("td", {}, String(e.priority)), el("td", {}, stateBadge(res.servers[e.server])))))];
}

function ipSettings(shown, pings, res, server) {
  const effective = shown.source_address_effective ? ` (in effect: ${shown.source_address_effective})` : "";
  return [
    facts([["Virtual IP", shown.virtual_ip], ["Netmask", shown.netmask], ["Subnet", `${shown.subnet} (${shown.prefix_bits} bits)`], ["Interface", shown.interface]]),
    choice("source-address", "Source address", ["no", "yes"], shown.source_address, `Traffic to the subnet leaves from the VIP (R14)${effective}`),
    choice("restore-recover", "Restore and recover", ["enable", "disable"], shown.restore_recover, "Disable: in service without the address, unchecked (R15)"),
    el("h4", {}, `Ping list for ${pings.subnet} on ${server}`),
    el("ul", { id: "pinglist" }, ...pings.addresses.map((a) => el("li", {}, a, " ",
      el("button", { type: "button", onclick: () => editPings(res, server, "remove", [a]) }, `Remove ${a}`)))),
    pings.addresses.length ? "" : el("p", { class: "hint" }, "Empty: the broadcast ping is used (R9)."),
    field("ping-add", "Add addresses to the ping list", "", "Separated by spaces; empty list: broadcast ping (R13)"),
    el("div", { class: "row" },
      el("button", { type: "button", onclick: () => editPings(res, server, "add", values()["ping-add"].split(/\s+/).filter(Boolean)) }, "Add to ping list"),
      el("button", { type: "button", onclick: () => editPings(res, server, "clear", []) }, "Clear ping list")),
  ];
}

function commands(shown) {
  return [facts([["Start", shown.restore], ["Stop", shown.remove], ["Check", shown.check], ["Recover", shown.recover || "–"], ["Timeout", `${shown.timeout} s`]])];
}

export async function properties(res, server, tab) {
  server = server || Object.keys(res.servers).find((n) => res.servers[n].state === "ISP") || Object.keys(res.servers)[0];
  const tag = encodeURIComponent(res.tag);
  const shown = await api("GET", `/resources/${tag}` + q({ server }));
  const pings = res.type === "ip" ? await api("GET", `/resources/${tag}/pinglist` + q({ server })) : null;
  const panels = [
    { id: "general", title: "General", body: general(shown, res) },
    { id: "relations", title: "Relations", body: [facts([["Parents (depend on it)", shown.parents], ["Children (it depends on)", shown.children]])] },
    { id: "equivalencies", title: "Equivalencies", body: equivalencies(shown, res) },
    res.type === "ip" ? { id: "ip", title: "IP settings", body: ipSettings(shown, pings, res, server) } : { id: "commands", title: "Commands", body: commands(shown) },
  ];
  openWizard(`Properties of ${res.tag}`, [{ title: `On server ${server}`, finishLabel: "Apply settings", render: () => [
    choice("server-view", "Server", Object.keys(res.servers), server),
    el("div", { id: "properties" }, ...tabs(panels, tab))] }],
  async (d) => {
    const changes = [["switchback", d.switchback, res.switchback]];
    if (res.type === "ip") changes.push(["source-address", d["source-address"], shown.source_address], ["restore-recover", d["restore-recover"], shown.restore_recover]);
    const notes = [];
    for (const [key, value, before] of changes)
      if (value !== before) notes.push(...((await api("PUT", `/resources/${tag}/settings/${key}` + q({ server }), { value })).notes || []));
    return { notes };
  });
  document.getElementById("f-server-view").addEventListener("change", (e) => reported(() => properties(res, e.target.value))());
  document.getElementById("f-ping-add")?.addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();  // Enter here adds to the list; it does not apply the settings
    editPings(res, server, "add", e.target.value.split(/\s+/).filter(Boolean));
  });
}

async function editPings(res, server, verb, addresses) {
  try {
    const result = await api("POST", `/resources/${encodeURIComponent(res.tag)}/pinglist` + q({ server }), { verb, addresses });
    await properties(res, server, "ip");
    if (result.warnings?.length) document.getElementById("wizard-error").textContent = result.warnings.join("; ");
  } catch (error) {
    showError(error);
  }
}
