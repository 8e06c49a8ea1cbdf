// The extend wizard (R18), as the guide's: the target server, switchback and priorities,
// then a page for every resource of the hierarchy (children first) with its IP and
// netmask shown read-only and its interface and tag on the target, defaults chosen by
// the target and shown before anything is done; "Accept Defaults" on every page, and
// after the extend "Next Server" to extend it to another server in turn.
"use strict";

import { ApiError, api } from "./api.js";
import { choice, el, field, shown } from "./dom.js";
import { CONTINUED, notice, openWizard, stillOpen } from "./wizard.js";

const held = (inst) => inst && (inst.state === "ISP" || inst.state === "ISU");

async function current(tag) {
  // A resource just created on another server, and its state there, reach this
  // server's status within a moment.
  let found = null;
  for (let tries = 0; tries < 15; tries += 1) {
    const status = await api("GET", "/status");
    const res = status.resources.find((r) => r.tag === tag || Object.values(r.servers).some((i) => i.tag === tag));
    if (res) found = { status, res };
    if (res && Object.values(res.servers).some(held)) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  if (!found) throw new ApiError("tag", `${tag} is not known to this server yet`);
  return found;
}

function warnings(list) {
  return list?.length ? el("ul", { class: "warning" }, ...list.map((w) => el("li", {}, w))) : "";
}

function resourcePage(res, r, i, template, acceptDefaults) {
  return {
    title: `${r.tag} on the target`,
    actions: [acceptDefaults],
    render: (d) => [
      el("p", {}, `${r.type === "ip" ? "IP resource" : `${r.type} resource`} ${r.tag} on ${d.target}:`),
      ...(r.type === "ip" ? [
        shown(`ip-${i}`, "IP resource", r.address, "As created; it cannot be changed here"),
        shown(`netmask-${i}`, "Netmask", r.netmask),
        choice(`interface_${i}`, `Interface on ${d.target}`, r.choices.map((c) => [c.name, `${c.name} — ${c.reason}`]),
          d[`interface_${i}`] || r.interface,
          `Valid there by R3, best first; default: ${r.template_interface} as on ${template}, where valid there`),
      ] : []),
      field(`target_tag_${i}`, "Target tag", d[`target_tag_${i}`] || r.target_tag, `Its tag on ${d.target}`),
      warnings(r.warnings),
    ],
  };
}

function resultPage(res, result, more) {
  const lines = result.resources.map((r) => el("li", {}, r.interface
    ? `${r.target_tag}: ${r.address} on ${r.interface}` : `${r.target_tag} (${r.type})`));
  openWizard(`Extend ${res.tag}`, [{
    title: `Extended to ${result.target}`,
    finishLabel: "Done",
    noCancel: true,
    actions: more ? [{ label: "Next Server", run: async () => (await extendWizard(res.tag) ? CONTINUED : {}) }] : [],
    render: () => [el("p", {}, `${res.tag} is extended from ${result.template} to ${result.target}, priority ${result.target_priority}:`),
      el("ul", { id: "extended" }, ...lines), warnings(result.warnings),
      more ? el("p", { class: "hint" }, "Next Server extends it to another server in turn.") : ""],
  }], async () => ({ warnings: result.warnings }));
}

// Opens the wizard for `tag`'s hierarchy; false (and a notice) when there is nothing to
// extend or nowhere to extend it from.
export async function extendWizard(tag) {
  const { status, res } = await current(tag);
  const targets = status.servers.filter((s) => !s.witness && !res.servers[s.name]).map((s) => s.name);
  const template = Object.keys(res.servers).find((n) => held(res.servers[n]));
  if (!template) {
    notice(`${res.tag} must be in service somewhere to be extended from there (its template).`);
    return false;
  }
  if (!targets.length) {
    notice(`${res.tag} is extended to every server.`);
    return false;
  }
  const first = Object.keys(res.servers).length === 1;
  const steps = [];
  const path = `/resources/${encodeURIComponent(res.tag)}/extend`;
  const request = (d) => ({
    target: d.target, target_priority: Number(d.target_priority || 10), switchback: d.switchback || res.switchback,
    template_priority: first ? Number(d.template_priority || 1) : null,
  });
  const answers = (d) => d.plan.resources.map((r, i) => ({
    tag: r.tag, interface: r.type === "ip" ? (d[`interface_${i}`] || r.interface) : null,
    target_tag: d[`target_tag_${i}`] || r.target_tag,
  }));
  const finish = async (d) => {
    const result = await api("POST", path, { ...request(d), resources: answers(d) });
    if (!stillOpen()) return { warnings: result.warnings };
    resultPage(res, result, targets.length > 1);
    return CONTINUED;
  };
  const plan = async (d) => {
    if (!d.target) throw new ApiError("target", "choose a server");
    if (d.plan && d.plan.target !== d.target) {  // answers for another target do not carry over
      for (const key of Object.keys(d)) if (/^(interface|target_tag)_\d+$/.test(key)) delete d[key];
    }
    // A dry run: the target's own choices and defaults, nothing done yet.
    d.plan = await api("POST", path, { ...request(d), dry_run: true });
    steps.splice(1, steps.length, ...d.plan.resources.map((r, i) => resourcePage(res, r, i, template, acceptDefaults)));
  };
  const acceptDefaults = { label: "Accept Defaults", run: async (d) => {
    if (!d.plan || d.plan.target !== d.target) await plan(d);
    return finish(d);
  } };
  steps.push({
    title: "Target server and priorities",
    actions: [acceptDefaults],
    render: (d) => [
      shown("template", "Template server", template, "Where it is in service; it is extended from there"),
      choice("target", "Target server", targets, d.target, "Servers it is not extended to yet"),
      choice("switchback", "Switchback", ["intelligent", "automatic"], d.switchback || res.switchback,
        "Automatic: back to the best server when it rejoins (R23)"),
      field("target_priority", "Target priority", d.target_priority || "10", "1 is the highest; unique per resource"),
      first ? field("template_priority", "Template priority", d.template_priority || "1", `Priority of ${template} (first extend only)`) : "",
    ],
    validate: plan,
  });
  steps.push({ title: "Each resource on the target", render: () => [] });  // until the plan is known
  openWizard(`Extend ${res.tag}`, steps, finish);
  return true;
}
