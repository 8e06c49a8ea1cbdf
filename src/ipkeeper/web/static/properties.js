// The properties of a resource on a server (R12-R15), in the guide's panels:
// general, relations, equivalencies, and the IP settings with the ping list (edited
// and saved as the guide's Modify Ping List) and source address (or an
// application's commands).
"use strict";

import { api, q } from "./api.js";
import { STATES, choice, el, field, grid, stateBadge, when } from "./dom.js";
import { CONTINUED, openWizard, reported } from "./wizard.js";

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

// The guide's "Modify Ping List": a list to select from, Add address (greyed until an
// address is typed), Remove selected address(es) (greyed until one is selected), and
// Save List, which asks for confirmation first; nothing changes before that.
function pingEditor(res, server, pings, edit) {
  const list = el("select", { id: "f-pinglist", multiple: true, size: "6", "aria-describedby": "pinglist-state" });
  const address = el("input", { id: "f-ping-add", type: "text", autocomplete: "off" });
  const add = el("button", { type: "button", disabled: true }, "Add address");
  const remove = el("button", { type: "button", disabled: true }, "Remove selected address(es)");
  const save = el("button", { type: "button", disabled: true }, "Save list");
  const state = el("p", { id: "pinglist-state", class: "hint" });
  const changed = () => edit.join(" ") !== pings.addresses.join(" ");
  const show = () => {
    list.replaceChildren(...edit.map((a) => el("option", { value: a }, a)));
    remove.disabled = true;
    save.disabled = !changed();
    state.textContent = (edit.length ? "" : "Empty: the broadcast ping is used (R9). ") + (changed() ? "Changed, not saved yet: Save list saves it." : "");
  };
  const addTyped = () => {
    for (const entry of address.value.split(/\s+/).filter(Boolean)) if (!edit.includes(entry)) edit.push(entry);
    address.value = "";
    add.disabled = true;
    show();
  };
  address.addEventListener("input", () => { add.disabled = !address.value.trim(); });
  address.addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();  // Enter here adds to the list; it does not apply the settings
    if (address.value.trim()) addTyped();
  });
  add.addEventListener("click", addTyped);
  list.addEventListener("change", () => { remove.disabled = list.selectedOptions.length === 0; });
  remove.addEventListener("click", () => {
    const gone = new Set([...list.selectedOptions].map((o) => o.value));
    edit.splice(0, edit.length, ...edit.filter((a) => !gone.has(a)));
    show();
  });
  save.addEventListener("click", reported(() => confirmSave(res, server, pings, [...edit])));
  show();
  return [
    el("h4", {}, `Ping list for ${pings.subnet} on ${server}`),
    el("label", { for: "f-pinglist" }, "Ping list"), list, state,
    el("label", { for: "f-ping-add" }, "Address to add"), address,
    el("p", { class: "hint" }, "IPv4 or IPv6; not a server of the cluster: it always answers (R13)"),
    el("div", { class: "row" }, add, remove, save),
  ];
}

function confirmSave(res, server, pings, edit) {
  openWizard(`Ping list of ${res.tag}`, [{
    title: `Save the ping list for ${pings.subnet} on ${server}?`, finishLabel: "Save",
    actions: [{ label: "Back to properties", run: async () => { await properties(res, server, "ip", edit); return CONTINUED; } }],
    render: () => [facts([["Saved now", pings.addresses], ["To be saved", edit.length ? edit : "empty: broadcast ping"]]),
      el("p", { class: "hint" }, "All the IP resources of the subnet on that server share it.")],
  }], async () => {
    const path = `/resources/${encodeURIComponent(res.tag)}/pinglist` + q({ server });
    const gone = pings.addresses.filter((a) => !edit.includes(a));
    const added = edit.filter((a) => !pings.addresses.includes(a));
    let result = pings;
    const warned = [];
    if (!edit.length) result = await api("POST", path, { verb: "clear", addresses: [] });
    else {  // adding first: a malformed address is refused before anything changed
      if (added.length) { result = await api("POST", path, { verb: "add", addresses: added }); warned.push(...(result.warnings || [])); }
      if (gone.length) result = await api("POST", path, { verb: "remove", addresses: gone });
    }
    openWizard(`Ping list of ${res.tag}`, [{
      title: "Ping list saved", finishLabel: "Done", noCancel: true,
      render: () => [facts([["Ping list", result.addresses.length ? result.addresses : "empty: broadcast ping"]]),
        ...warned.map((w) => el("p", { class: "warning" }, w))],
    }], async () => { await properties(res, server, "ip"); return CONTINUED; });
    return CONTINUED;
  });
  return CONTINUED;
}

function ipSettings(shown, pings, res, server, edit) {
  const effective = shown.source_address_effective ? ` (in effect: ${shown.source_address_effective})` : "";
  return [
    facts([["Virtual IP", shown.virtual_ip], ["Netmask", shown.netmask], ["Subnet", `${shown.subnet} (${shown.prefix_bits} bits)`], ["Interface", shown.interface]]),
    choice("source-address", "Source address", ["no", "yes"], shown.source_address, `Traffic to the subnet leaves from the VIP (R14)${effective}`),
    choice("restore-recover", "Restore and recover", ["enable", "disable"], shown.restore_recover, "Disable: in service without the address, unchecked (R15)"),
    choice("broadcast-ping", "Broadcast ping", ["yes", "no"], shown.broadcast_ping || "yes", "No: never a broadcast ping for it, only its subnet's ping list (R9)"),
    ...pingEditor(res, server, pings, edit),
  ];
}

function commands(shown) {
  return [facts([["Start", shown.restore], ["Stop", shown.remove], ["Check", shown.check], ["Recover", shown.recover || "–"], ["Timeout", `${shown.timeout} s`]])];
}

export async function properties(res, server, tab, edit) {
  server = server || Object.keys(res.servers).find((n) => res.servers[n].state === "ISP") || Object.keys(res.servers)[0];
  const tag = encodeURIComponent(res.tag);
  const shown = await api("GET", `/resources/${tag}` + q({ server }));
  const pings = res.type === "ip" ? await api("GET", `/resources/${tag}/pinglist` + q({ server })) : null;
  const working = edit || (pings ? [...pings.addresses] : []);  // the ping list as edited, until saved
  const panels = [
    { id: "general", title: "General", body: general(shown, res) },
    { id: "relations", title: "Relations", body: [facts([["Parents (depend on it)", shown.parents], ["Children (it depends on)", shown.children]])] },
    { id: "equivalencies", title: "Equivalencies", body: equivalencies(shown, res) },
    res.type === "ip" ? { id: "ip", title: "IP settings", body: ipSettings(shown, pings, res, server, working) } : { id: "commands", title: "Commands", body: commands(shown) },
  ];
  openWizard(`Properties of ${res.tag}`, [{ title: `On server ${server}`, finishLabel: "Apply settings", render: () => [
    choice("server-view", "Server", Object.keys(res.servers), server),
    el("div", { id: "properties" }, ...tabs(panels, tab))] }],
  async (d) => {
    const changes = [["switchback", d.switchback, res.switchback]];
    if (res.type === "ip") changes.push(["source-address", d["source-address"], shown.source_address], ["restore-recover", d["restore-recover"], shown.restore_recover],
      ["broadcast-ping", d["broadcast-ping"], shown.broadcast_ping || "yes"]);
    const notes = [];
    if (pings && working.join(" ") !== pings.addresses.join(" ")) notes.push("The ping list's changes were not saved (Save list saves them).");
    for (const [key, value, before] of changes)
      if (value !== before) notes.push(...((await api("PUT", `/resources/${tag}/settings/${key}` + q({ server }), { value })).notes || []));
    return { notes };
  });
  document.getElementById("f-server-view").addEventListener("change", (e) => reported(() => properties(res, e.target.value))());
}
