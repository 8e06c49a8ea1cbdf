// ipkeeper web GUI: the status view and a wizard for every task, over the public API only.
"use strict";

import { ApiError, TIMEOUTS, api, q, setToken, whenTokenMissing } from "./api.js";
import { choice, el, field, stateBadge, when } from "./dom.js";
import { history } from "./history.js";
import { properties } from "./properties.js";
import { extendWizard } from "./extend.js";
import { CONTINUED, notice, openWizard, reported, stillOpen, whenFinished } from "./wizard.js";

let status = null;
let selected = null;   // tag of the selected resource

function askToken() {
  const dialog = document.getElementById("token-dialog");
  if (!dialog.open) dialog.showModal();
}

whenTokenMissing(askToken);
document.getElementById("token-form").addEventListener("submit", () => {
  setToken(document.getElementById("token-input").value.trim());
  refresh();
});

// ---- the status view ------------------------------------------------------------

function renderServers() {
  const body = document.querySelector("#servers tbody");
  body.replaceChildren(...status.servers.map((server) => el("tr", { "data-server": server.name },
    el("th", { scope: "row" }, server.name + (server.local ? " (this server)" : "") + (server.witness ? " (witness)" : ""),
      server.version_mismatch ? el("div", { class: "warning" }, `ipkeeper ${server.version}: not this server's version`) : ""),
    el("td", {}, server.alive ? "yes" : "no"),
    el("td", {}, ...server.comm_paths.map((path) => el("div", { class: path.state === "up" ? "path-up" : "path-down" },
      `${path.local} → ${path.remote}: ${path.state}` + (path.rtt_ms != null ? ` (${path.rtt_ms.toFixed(1)} ms)` : "") + (path.reason ? ` — ${path.reason}` : "")))),
  )));
  const q = status.quorum;
  document.getElementById("quorum").textContent = `Quorum: ${q.mode}, ${q.votes} of ${q.of} votes` + (q.has_quorum ? "" : " — NO QUORUM") + (q.note ? ` (${q.note})` : "");
}

function treeOrder(resources) {
  // Parents first with their children below them, indented: the hierarchy tree.
  const byTag = new Map(resources.map((r) => [r.tag, r]));
  const rows = [];
  const visit = (res, depth, seen) => {
    if (seen.has(res.tag)) return;
    rows.push([res, depth]);
    for (const child of res.children) if (byTag.has(child)) visit(byTag.get(child), depth + 1, new Set([...seen, res.tag]));
  };
  for (const res of resources.filter((r) => r.parents.length === 0)) visit(res, 0, new Set());
  return rows;
}

function renderResources() {
  const names = status.servers.filter((s) => !s.witness).map((s) => s.name);
  document.getElementById("resources-head").replaceChildren(
    el("th", { scope: "col" }, "Resource"), el("th", { scope: "col" }, "Type"),
    ...names.map((n) => el("th", { scope: "col" }, n)));
  const body = document.querySelector("#resources tbody");
  body.replaceChildren(...treeOrder(status.resources).map(([res, depth]) => el("tr",
    { "data-tag": res.tag, class: res.tag === selected ? "selected" : "" },
    el("th", { scope: "row", style: { paddingLeft: `${0.5 + depth * 1.5}rem` } },
      el("button", { type: "button", class: "tag-button", "aria-pressed": String(res.tag === selected), onclick: () => select(res.tag) },
        (depth ? "└ " : "") + res.tag)),
    el("td", {}, res.type),
    ...names.map((n) => {
      const inst = res.servers[n];
      return el("td", { "data-server": n }, inst ? stateBadge(inst) : "", inst ? ` priority ${inst.priority}` : "not extended");
    }))));
  if (selected && !status.resources.some((r) => r.tag === selected)) select(null);
}

function select(tag) {
  selected = tag;
  document.getElementById("selected").textContent = tag ? `Selected: ${tag}` : "No resource selected.";
  const res = tag && status ? status.resources.find((r) => r.tag === tag) : null;
  for (const button of document.querySelectorAll("[data-action]")) {
    button.disabled = !tag || (button.dataset.action === "undepend" && !(res && res.children.length));
  }
  if (status) {
    renderResources();
    document.querySelector(`#resources tr[data-tag="${CSS.escape(tag || "")}"] .tag-button`)?.focus();
  }
}

// ---- the connection: every status request has a deadline; when the server stops
// answering the page says so at once, greys what it shows and offers the others.

const STALE_AFTER = 2000;   // ms without an answer before the page says so
let lastJson = "";
let lastAnswer = Date.now();
let lastError = "";
let connected = null;

function setConnection(ok, text) {
  // Announced (aria-live) only when the connection changes, not every second.
  const live = document.getElementById("connection");
  if (ok !== connected) live.setAttribute("aria-live", "polite");
  else live.removeAttribute("aria-live");
  connected = ok;
  live.textContent = text;
}

// Where the other servers' GUIs are: each peer's address on the network this page
// was reached on (the comm path whose local end is this page's host), same port.
function otherGuis() {
  if (!status) return [];
  const here = location.hostname.replace(/^\[|\]$/g, "");
  const port = location.port ? `:${location.port}` : "";
  return status.servers.filter((s) => !s.local).flatMap((s) => {
    const same = s.comm_paths.filter((p) => p.local === here);
    return (same.length ? same : s.comm_paths).map((p) => ({
      name: s.name, address: p.remote,
      url: `${location.protocol}//${p.remote.includes(":") ? `[${p.remote}]` : p.remote}${port}/`,
    }));
  });
}

function watchConnection() {
  const silent = Date.now() - lastAnswer;
  const banner = document.getElementById("banner");
  const stale = silent > STALE_AFTER;
  document.querySelector("main").classList.toggle("stale-page", stale);
  if (!stale) { banner.hidden = true; return; }
  const name = status ? status.server : "This server";
  document.getElementById("banner-text").textContent =
    `${name} is not answering: no answer for ${Math.round(silent / 1000)} s (last answer ${when(lastAnswer / 1000)}). ` +
    "What this page shows is as it was then." + (lastError ? ` (${lastError})` : "");
  const links = otherGuis();
  const offer = document.getElementById("banner-others");
  if (banner.hidden || offer.dataset.count !== String(links.length)) {
    offer.dataset.count = String(links.length);
    offer.replaceChildren(...(links.length ? ["Open another server's GUI: ",
      ...links.flatMap((l, i) => [i ? ", " : "", el("a", { href: l.url }, `${l.name} (${l.address})`)])] : []));
  }
  banner.hidden = false;
  setConnection(false, `no answer for ${Math.round(silent / 1000)} s`);
}

async function refresh() {
  try {
    const fresh = await api("GET", "/status", undefined, TIMEOUTS.status);
    lastAnswer = Date.now();
    lastError = "";
    setConnection(true, `updated ${new Date().toLocaleTimeString()}`);
    watchConnection();
    const json = JSON.stringify(fresh);
    if (json === lastJson) return;   // nothing changed: keep the page (and the focus) as it is
    lastJson = json;
    status = fresh;
    document.getElementById("server-name").textContent = `— ${status.server}`;
    const focused = document.activeElement?.closest("tr[data-tag]")?.dataset.tag;
    renderServers();
    renderResources();
    if (focused) document.querySelector(`#resources tr[data-tag="${CSS.escape(focused)}"] .tag-button`)?.focus();
  } catch (error) {
    lastError = error.message;
    if (error.code) {  // it answered, if only to refuse
      lastAnswer = Date.now();
      setConnection(false, `not updated: ${error.message}`);
    }
    watchConnection();
  }
}

async function poll() {
  await refresh();
  setTimeout(poll, 1000);
}

whenFinished(refresh);

// ---- tasks ------------------------------------------------------------------------

const resource = () => status.resources.find((r) => r.tag === selected);
const serverNames = () => status.servers.filter((s) => !s.witness).map((s) => s.name);
const maybe = (value) => (value === "" ? null : value);

// The netmask a new VIP is offered: dotted for IPv4, a prefix length for IPv6 (R2).
const defaultNetmask = (address) => (String(address || "").includes(":") ? "64" : "255.255.255.0");

function servers() {
  const here = status.servers.find((s) => s.local)?.name;
  return [serverNames(), here];
}

// The last page of a create: in service where it was made, and "Continue" into the extend
// wizard, as the guide's; Cancel leaves it unprotected (the notice says so).
function created(result, server) {
  if (!stillOpen()) return { warnings: result.warnings };
  openWizard(`Created ${result.tag}`, [{
    title: `${result.tag} is ${result.state} on ${server}`, finishLabel: "Continue",
    render: () => [el("p", {}, `${result.tag} is created and in service on ${server}.`),
      el("p", { class: "warning" }, "It is not protected until it is extended to another server: Continue extends it now."),
      ...(result.warnings || []).filter((w) => !w.startsWith("not extended")).map((w) => el("p", { class: "warning" }, w))],
  }], async () => (await extendWizard(result.tag) ? CONTINUED : {}));
  notice((result.warnings || []).join(" "));  // on the page too, if it is cancelled
  return CONTINUED;
}

function createIp() {
  const [names, here] = servers();
  openWizard("Create IP resource", [
    { title: "Address", render: (d) => {
        const parts = [
          field("address", "IP address or host name", d.address, "IPv4, IPv6, or a name from /etc/hosts or DNS (R1)"),
          field("netmask", "Netmask", d.netmask || defaultNetmask(d.address), "Dotted netmask or prefix length for IPv4, prefix length for IPv6 (R2)"),
          choice("server", "Server", names, d.server || here, "Where it is created and in service (any server of the cluster)")];
        const [address, netmask] = [parts[0][1], parts[1][1]];
        address.addEventListener("input", () => {  // the family's default, until the netmask is edited
          if (netmask.dataset.edited !== "yes") netmask.value = defaultNetmask(address.value);
        });
        netmask.addEventListener("input", () => { netmask.dataset.edited = "yes"; });
        return parts;
      },
      validate: async (d) => { d.interfaces = (await api("GET", "/interfaces" + q({ address: d.address, netmask: d.netmask, server: d.server }))).interfaces;
        if (!d.interfaces.length) throw new ApiError("interface", `no interface on ${d.server} can carry this address`); } },
    { title: "Interface, tag and checks", render: (d) => [
        choice("interface", "Interface", d.interfaces.map((i) => [i.name, `${i.name} — ${i.reason}`]), d.interface, `Valid choices on ${d.server}, best first (R3)`),
        field("tag", "Tag", (d.tag && d.tag !== d.offeredTag) ? d.tag : (d.offeredTag = `ip-${d.address}`), "Unique name of the resource (R4)"),
        choice("switchback", "Switchback", ["intelligent", "automatic"], d.switchback || "intelligent", "Automatic: move back to this server when it rejoins (R23)"),
        field("pinglist", "Ping list (optional)", d.pinglist, "Addresses to ping instead of the broadcast, separated by spaces: needed where nothing on the subnet answers a broadcast ping (R13)"),
        choice("broadcast_ping", "Broadcast ping", [["yes", "yes: when the subnet has no ping list"], ["no", "no: not for this resource (its own NOBCASTPING)"]], d.broadcast_ping || "yes")] },
  ], async (d) => created(await api("POST", "/resources/ip", {
    address: d.address, netmask: d.netmask, interface: d.interface, tag: d.tag, switchback: d.switchback, server: d.server,
    pinglist: (d.pinglist || "").split(/\s+/).filter(Boolean), broadcast_ping: d.broadcast_ping !== "no" }), d.server));
}

function createApp() {
  const [names, here] = servers();
  openWizard("Create application resource", [
    { title: "Commands", render: (d) => [
        choice("server", "Server", names, d.server || here, "Where it is created and in service; the commands must exist there"),
        field("tag", "Tag", d.tag), field("restore", "Start command", d.restore, "Run without a shell, as root"),
        field("remove", "Stop command", d.remove), field("check", "Check command", d.check, "Exit 0 when healthy"),
        field("recover", "Recover command (optional)", d.recover), field("timeout", "Timeout (seconds)", d.timeout || "60")] },
  ], async (d) => created(await api("POST", "/resources/app", { server: d.server, tag: d.tag, restore: d.restore, remove: d.remove,
    check: d.check, recover: maybe(d.recover), timeout: Number(d.timeout) }), d.server));
}

function simpleAction(title, text, render, action) {
  openWizard(title, [{ title: text, render, finishLabel: "OK" }], action);
}

function actions() {
  const res = resource();
  const tag = encodeURIComponent(res.tag);
  const extendedTo = Object.keys(res.servers);
  const others = status.resources.filter((r) => r.tag !== res.tag).map((r) => r.tag);
  return {
    "in-service": () => simpleAction(`In service: ${res.tag}`, "Bring the whole hierarchy in service on a server (it moves there)",
      () => [choice("server", "Server", extendedTo, extendedTo.find((n) => res.servers[n].state !== "ISP"))],
      (d) => api("POST", `/resources/${tag}/in-service`, { server: d.server })),
    "out-of-service": () => simpleAction(`Out of service: ${res.tag}`, "Take the whole hierarchy out of service, parents first", () => [],
      () => api("POST", `/resources/${tag}/out-of-service`)),
    "extend": () => extendWizard(res.tag),
    "unextend": () => simpleAction(`Unextend ${res.tag}`, "Remove the hierarchy from one server (not where it is in service)",
      () => [choice("server", "Server", extendedTo.filter((n) => !["ISP", "ISU"].includes(res.servers[n].state)))],
      (d) => api("POST", `/resources/${tag}/unextend`, { server: d.server })),
    "depend": () => simpleAction(`Dependency of ${res.tag}`, `${res.tag} will depend on (need) the child you choose`,
      () => [choice("child", "Child", others.filter((t) => !res.children.includes(t)))],
      (d) => api("POST", "/dependencies", { parent: res.tag, child: d.child })),
    "undepend": () => simpleAction(`Delete a dependency of ${res.tag}`, "Choose the child to detach",
      () => [choice("child", "Child", res.children)],
      (d) => api("DELETE", `/dependencies/${tag}/${encodeURIComponent(d.child)}`)),
    "delete": () => simpleAction(`Delete ${res.tag}`, `Delete ${res.tag} and everything that depends on it from every server (taken out of service first)`, () => [],
      () => api("DELETE", `/resources/${tag}`)),
    "properties": () => properties(res),
  };
}

document.querySelectorAll("[data-action]").forEach((button) =>
  button.addEventListener("click", reported(() => actions()[button.dataset.action]())));
document.getElementById("create-ip").addEventListener("click", reported(createIp));
document.getElementById("create-app").addEventListener("click", reported(createApp));
document.getElementById("show-history").addEventListener("click", reported(() => history(status)));

select(null);
poll();
setInterval(watchConnection, 250);
