// ipkeeper web GUI: the status view and a wizard for every task, over the public API only.
"use strict";

const API = "/api/v1";
const STATES = { ISP: "in service, protected", ISU: "in service, unprotected", OSU: "out of service", OSF: "out of service, failed" };
let token = sessionStorage.getItem("ipkeeper-token") || "";
let status = null;
let selected = null;   // tag of the selected resource

// ---- the API ------------------------------------------------------------------

class ApiError extends Error {
  constructor(field, reason, code) { super(`${field}: ${reason}`); this.field = field; this.reason = reason; this.code = code; }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  // Read every answer's body, a refusal's too: a body left unread keeps its connection busy.
  const text = await response.text();
  if (response.status === 401) { askToken(); throw new ApiError("authorization", "the API token is missing or wrong", 401); }
  const data = text && response.headers.get("content-type")?.includes("json") ? JSON.parse(text) : {};
  if (!response.ok) {
    const error = data.error || { field: "request", reason: `HTTP ${response.status}` };
    throw new ApiError(error.field, error.reason, response.status);
  }
  return data;
}

function askToken() {
  const dialog = document.getElementById("token-dialog");
  if (!dialog.open) dialog.showModal();
}

document.getElementById("token-form").addEventListener("submit", () => {
  token = document.getElementById("token-input").value.trim();
  sessionStorage.setItem("ipkeeper-token", token);
  refresh();
});

// ---- the status view ------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);  // CSSOM: allowed by the CSP, unlike a style attribute
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function stateBadge(inst) {
  if (!inst || !inst.state) return el("span", { class: "state" }, "–");
  const badge = el("span", { class: `state ${inst.state}`, title: `${STATES[inst.state]}: ${inst.reason || ""}` }, inst.state);
  const said = el("span", { class: "visually-hidden" }, ` ${STATES[inst.state]}: ${inst.reason || ""}`);
  return inst.stale
    ? el("span", { class: "stale", title: "last report: the server is not reachable" }, badge, said, " (last report)")
    : el("span", {}, badge, said);
}

function renderServers() {
  const body = document.querySelector("#servers tbody");
  body.replaceChildren(...status.servers.map((server) => el("tr", { "data-server": server.name },
    el("th", { scope: "row" }, server.name + (server.local ? " (this server)" : "") + (server.witness ? " (witness)" : "")),
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

let lastJson = "";
let connected = null;

function setConnection(ok, text) {
  // Announced (aria-live) only when the connection changes, not every second.
  const live = document.getElementById("connection");
  if (ok !== connected) live.setAttribute("aria-live", "polite");
  else live.removeAttribute("aria-live");
  connected = ok;
  live.textContent = text;
}

async function refresh() {
  try {
    const fresh = await api("GET", "/status");
    setConnection(true, `updated ${new Date().toLocaleTimeString()}`);
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
    setConnection(false, `not updated: ${error.message}`);
  }
}

// ---- wizards ----------------------------------------------------------------------
// A wizard is a list of steps; each step renders fields and may validate (async)
// before Next. Errors from the API are shown at the field they name.

const dialog = document.getElementById("wizard");
let wizard = null;

function field(name, label, value = "", hint = "", type = "text") {
  return [el("label", { for: `f-${name}` }, label),
    el("input", { id: `f-${name}`, name, type, value: value ?? "" }),
    hint ? el("p", { class: "hint" }, hint) : ""];
}

function choice(name, label, options, value, hint = "") {
  const select = el("select", { id: `f-${name}`, name });
  for (const option of options) {
    const [val, text] = Array.isArray(option) ? option : [option, option];
    const node = el("option", { value: val }, text);
    if (val === value) node.selected = true;
    select.append(node);
  }
  return [el("label", { for: `f-${name}` }, label), select, hint ? el("p", { class: "hint" }, hint) : ""];
}

function values() {
  const data = {};
  for (const input of document.querySelectorAll("#wizard-body [name]")) data[input.name] = input.value.trim();
  return data;
}

function showError(error) {
  document.getElementById("wizard-error").textContent = error.field ? `${error.field}: ${error.reason}` : String(error);
  for (const input of document.querySelectorAll("#wizard-body [name]")) {
    const match = error.field && input.name.replace(/_/g, "-") === String(error.field).replace(/_/g, "-");
    input.classList.toggle("invalid", Boolean(match));
    input.setAttribute("aria-invalid", String(Boolean(match)));
    if (match) input.focus();
  }
}

function openWizard(title, steps, finish) {
  document.getElementById("notice").textContent = "";  // notes belong to the last task only
  wizard = { title, steps, finish, index: 0, data: {} };
  renderStep();
  dialog.showModal();
}

function renderStep() {
  const step = wizard.steps[wizard.index];
  document.getElementById("wizard-title").textContent = wizard.title;
  document.getElementById("wizard-step").textContent = wizard.steps.length > 1 ? `Step ${wizard.index + 1} of ${wizard.steps.length}: ${step.title}` : step.title;
  document.getElementById("wizard-error").textContent = "";
  document.getElementById("wizard-body").replaceChildren(...step.render(wizard.data).flat());
  document.getElementById("wizard-back").hidden = wizard.index === 0;
  document.getElementById("wizard-next").textContent = wizard.index === wizard.steps.length - 1 ? (step.finishLabel || "Finish") : "Next";
  dialog.querySelector("#wizard-body [name]")?.focus();
}

document.getElementById("wizard-cancel").addEventListener("click", () => dialog.close());
document.getElementById("wizard-back").addEventListener("click", () => { Object.assign(wizard.data, values()); wizard.index -= 1; renderStep(); });
document.getElementById("wizard-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const step = wizard.steps[wizard.index];
  Object.assign(wizard.data, values());
  const next = document.getElementById("wizard-next");
  next.disabled = true;
  try {
    if (step.validate) await step.validate(wizard.data);
    if (wizard.index < wizard.steps.length - 1) { wizard.index += 1; renderStep(); return; }
    const result = await wizard.finish(wizard.data);
    dialog.close();
    const notes = [...(result?.warnings || []), ...(result?.notes || [])];
    if (notes.length) document.getElementById("notice").textContent = notes.join(" ");
    await refresh();
  } catch (error) {
    showError(error);
  } finally {
    next.disabled = false;
  }
});

const resource = () => status.resources.find((r) => r.tag === selected);
const serverNames = () => status.servers.filter((s) => !s.witness).map((s) => s.name);
const q = (params) => "?" + new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null)).toString();
const maybe = (value) => (value === "" ? null : value);

function createIp() {
  openWizard("Create IP resource", [
    { title: "Address", render: (d) => [
        field("address", "IP address or host name", d.address, "IPv4, IPv6, or a name from /etc/hosts or DNS (R1)"),
        field("netmask", "Netmask", d.netmask || "255.255.255.0", "Dotted netmask or prefix length (R2)")],
      validate: async (d) => { d.interfaces = (await api("GET", "/interfaces" + q({ address: d.address, netmask: d.netmask }))).interfaces;
        if (!d.interfaces.length) throw new ApiError("interface", "no interface here can carry this address"); } },
    { title: "Interface and tag", render: (d) => [
        choice("interface", "Interface", d.interfaces.map((i) => [i.name, `${i.name} — ${i.reason}`]), d.interface, "Valid choices on this server, best first (R3)"),
        field("tag", "Tag", (d.tag && d.tag !== d.offeredTag) ? d.tag : (d.offeredTag = `ip-${d.address}`), "Unique name of the resource (R4)"),
        choice("switchback", "Switchback", ["intelligent", "automatic"], d.switchback || "intelligent", "Automatic: move back to this server when it rejoins (R23)")] },
  ], (d) => api("POST", "/resources/ip", { address: d.address, netmask: d.netmask, interface: d.interface, tag: d.tag, switchback: d.switchback }));
}

function createApp() {
  openWizard("Create application resource", [
    { title: "Commands", render: (d) => [
        field("tag", "Tag", d.tag), field("restore", "Start command", d.restore, "Run without a shell, as root"),
        field("remove", "Stop command", d.remove), field("check", "Check command", d.check, "Exit 0 when healthy"),
        field("recover", "Recover command (optional)", d.recover), field("timeout", "Timeout (seconds)", d.timeout || "60")] },
  ], (d) => api("POST", "/resources/app", { tag: d.tag, restore: d.restore, remove: d.remove, check: d.check, recover: maybe(d.recover), timeout: Number(d.timeout) }));
}

function extend() {
  const res = resource();
  const targets = serverNames().filter((n) => !res.servers[n]);
  const first = Object.keys(res.servers).length === 1;
  const template = Object.entries(res.servers).find(([, i]) => i.state === "ISP" || i.state === "ISU")?.[0];
  if (!template) {
    document.getElementById("notice").textContent = `${res.tag} must be in service somewhere to be extended from there (its template).`;
    return;
  }
  openWizard(`Extend ${res.tag}`, [
    { title: "Target server", render: (d) => [
        choice("target", "Target server", targets, d.target, targets.length ? "Servers it is not extended to yet" : "It is extended to every server"),
        choice("switchback", "Switchback", ["intelligent", "automatic"], d.switchback || res.switchback)],
      validate: async (d) => { if (!d.target) throw new ApiError("target", "choose a server"); } },
    { title: "Priorities", render: (d) => [
        field("target_priority", "Target priority", d.target_priority || "10", "1 is the highest; unique per resource"),
        first ? field("template_priority", "Template priority", d.template_priority || "1", `Priority of ${template} (first extend only)`) : ""],
      validate: async (d) => {
        if (res.type !== "ip") { d.interfaces = []; return; }
        const shown = await api("GET", `/resources/${encodeURIComponent(res.tag)}` + q({ server: template }));
        d.interfaces = (await api("GET", "/interfaces" + q({ address: shown.virtual_ip, netmask: shown.netmask, server: d.target }))).interfaces; } },
    { title: "Target interface and tag", render: (d) => [
        res.type === "ip" ? choice("interface", `Interface on ${d.target}`, d.interfaces.map((i) => [i.name, `${i.name} — ${i.reason}`]), d.interface, "Valid there by R3, best first") : "",
        field("target_tag", "Target tag", d.target_tag || res.tag)] },
  ], (d) => api("POST", `/resources/${encodeURIComponent(res.tag)}/extend`, {
    target: d.target, target_priority: Number(d.target_priority), switchback: d.switchback,
    template_priority: first ? Number(d.template_priority) : null, interface: maybe(d.interface || ""), target_tag: d.target_tag === res.tag ? null : maybe(d.target_tag) }));
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
    "extend": extend,
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

function reported(task) {
  // A task that fails before its dialog opens says so instead of doing nothing.
  return () => Promise.resolve().then(task).catch((error) => {
    document.getElementById("notice").textContent = `could not open it: ${error.message}`;
  });
}

document.querySelectorAll("[data-action]").forEach((button) =>
  button.addEventListener("click", reported(() => actions()[button.dataset.action]())));
document.getElementById("create-ip").addEventListener("click", reported(createIp));
document.getElementById("create-app").addEventListener("click", reported(createApp));
document.getElementById("show-events").addEventListener("click", reported(events));

// ---- properties, with ping list and settings (R12-R15) ------------------------------

async function properties(res, server) {
  server = server || Object.keys(res.servers).find((n) => res.servers[n].state === "ISP") || Object.keys(res.servers)[0];
  const tag = encodeURIComponent(res.tag);
  const shown = await api("GET", `/resources/${tag}` + q({ server }));
  const pings = res.type === "ip" ? await api("GET", `/resources/${tag}/pinglist` + q({ server })) : null;
  const rows = Object.entries(shown).filter(([k, v]) => v !== null && !["since", "pending", "id"].includes(k)).map(([k, v]) =>
    el("tr", {}, el("th", { scope: "row" }, k.replace(/_/g, " ")), el("td", {}, propertyText(k, v))));
  const edits = res.type === "ip" ? [
    choice("source-address", "Source address", ["no", "yes"], shown.source_address, "Traffic to the subnet leaves from the VIP (R14)"),
    choice("restore-recover", "Restore and recover", ["enable", "disable"], shown.restore_recover, "Disable: in service without the address, unchecked (R15)"),
    el("label", {}, `Ping list for ${pings.subnet} on ${server}`),
    el("ul", { id: "pinglist" }, ...pings.addresses.map((a) => el("li", {}, a, " ",
      el("button", { type: "button", onclick: () => editPings(res, server, "remove", [a]) }, `Remove ${a}`)))),
    field("ping-add", "Add addresses to the ping list", "", "Separated by spaces; empty list: broadcast ping (R13)"),
    el("button", { type: "button", onclick: () => editPings(res, server, "add", values()["ping-add"].split(/\s+/).filter(Boolean)) }, "Add to ping list"),
    el("button", { type: "button", onclick: () => editPings(res, server, "clear", []) }, "Clear ping list"),
  ] : [];
  openWizard(`Properties of ${res.tag}`, [{ title: `On server ${server}`, finishLabel: "Apply settings", render: () => [
    choice("server-view", "Server", Object.keys(res.servers), server),
    el("table", { class: "grid", id: "properties" }, ...rows),
    choice("switchback", "Switchback", ["intelligent", "automatic"], res.switchback), ...edits] }],
  async (d) => {
    const changes = [["switchback", d.switchback, res.switchback]];
    if (res.type === "ip") changes.push(["source-address", d["source-address"], shown.source_address], ["restore-recover", d["restore-recover"], shown.restore_recover]);
    const notes = [];
    for (const [key, value, before] of changes)
      if (value !== before) notes.push(...(await api("PUT", `/resources/${tag}/settings/${key}` + q({ server }), { value })).notes);
    return { notes };
  });
  document.getElementById("f-server-view").addEventListener("change", (e) => { dialog.close(); reported(() => properties(res, e.target.value))(); });
  document.getElementById("f-ping-add")?.addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();  // Enter here adds to the list; it does not apply the settings
    editPings(res, server, "add", e.target.value.split(/\s+/).filter(Boolean));
  });
}

function propertyText(key, value) {
  if (key === "equivalents") return value.map((e) => `${e.server}: ${e.tag} (priority ${e.priority})`).join(", ");
  if (key === "last_check") return `${value.ok ? "ok" : "failed"}: ${value.reason}`;
  if (Array.isArray(value)) return value.join(", ") || "–";
  return String(value);
}

async function editPings(res, server, verb, addresses) {
  try {
    const result = await api("POST", `/resources/${encodeURIComponent(res.tag)}/pinglist` + q({ server }), { verb, addresses });
    dialog.close();
    await properties(res, server);
    if (result.warnings.length) document.getElementById("wizard-error").textContent = result.warnings.join("; ");
  } catch (error) {
    showError(error);
  }
}

// ---- the event log (R29) ------------------------------------------------------------

async function events() {
  const load = async () => (await api("GET", "/events?limit=200")).events.reverse();
  const table = () => el("table", { class: "grid", id: "events-table" },
    el("tr", {}, el("th", { scope: "col" }, "Time"), el("th", { scope: "col" }, "Server"), el("th", { scope: "col" }, "Resource"), el("th", { scope: "col" }, "Event")));
  const fill = (node, list) => node.append(...list.map((e) => el("tr", {}, el("td", {}, new Date(e.ts * 1000).toLocaleTimeString()),
    el("td", {}, e.server), el("td", {}, e.tag || ""), el("td", {}, `${e.kind}: ${e.message}`))));
  const first = await load();
  openWizard("Event log", [{ title: "Newest first; updated live", finishLabel: "Close", render: () => { const t = table(); fill(t, first); return [t]; } }], async () => {});
  const timer = setInterval(async () => {
    if (!dialog.open || wizard.title !== "Event log") { clearInterval(timer); return; }
    const t = table(); fill(t, await load());
    document.getElementById("events-table")?.replaceWith(t);
  }, 1500);
}

select(null);
refresh();
setInterval(refresh, 1000);
