// Small helpers to build the page: elements, form fields, states, times.
"use strict";

export const STATES = { ISP: "in service, protected", ISU: "in service, unprotected", OSU: "out of service", OSF: "out of service, failed" };

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);  // CSSOM: allowed by the CSP, unlike a style attribute
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === "" || child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function field(name, label, value = "", hint = "", type = "text") {
  return [el("label", { for: `f-${name}` }, label),
    el("input", { id: `f-${name}`, name, type, value: value ?? "" }),
    hint ? el("p", { class: "hint" }, hint) : ""];
}

// A value shown in a form but not to be changed (the guide's read-only fields); no name,
// so it is not part of what the step sends.
export function shown(id, label, value, hint = "") {
  return [el("label", { for: `f-${id}` }, label),
    el("input", { id: `f-${id}`, type: "text", value: value ?? "", readonly: true, "aria-readonly": "true" }),
    hint ? el("p", { class: "hint" }, hint) : ""];
}

export function choice(name, label, options, value, hint = "") {
  const select = el("select", { id: `f-${name}`, name });
  for (const option of options) {
    const [val, text] = Array.isArray(option) ? option : [option, option];
    const node = el("option", { value: val }, text);
    if (val === value) node.selected = true;
    select.append(node);
  }
  return [el("label", { for: `f-${name}` }, label), select, hint ? el("p", { class: "hint" }, hint) : ""];
}

// A Unix time as local "YYYY-MM-DD HH:MM:SS": events of several days must not look alike.
export function when(ts) {
  if (ts === null || ts === undefined) return "–";
  const d = new Date(ts * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export function stateBadge(inst) {
  if (!inst || !inst.state) return el("span", { class: "state" }, "–");
  const detail = `${STATES[inst.state]}${inst.since ? ` since ${when(inst.since)}` : ""}${inst.reason ? `: ${inst.reason}` : ""}`;
  const badge = el("span", { class: `state ${inst.state}`, title: detail }, inst.state);
  const said = el("span", { class: "visually-hidden" }, ` ${detail}`);
  return inst.stale
    ? el("span", { class: "stale", title: "last report: the server is not reachable" }, badge, said, " (last report)")
    : el("span", {}, badge, said);
}

// A table whose first row is a header; wide tables scroll sideways on a phone.
export function grid(id, head, rows) {
  return el("div", { class: "scroll-x" }, el("table", { class: "grid", id },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows)));
}
