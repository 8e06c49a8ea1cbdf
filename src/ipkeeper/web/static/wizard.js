// The wizard dialog: a list of steps with Back/Next/Finish; each step renders fields
// and may validate (async) before Next. Errors from the API are shown at their field.
// A step may add buttons of its own (`actions`: Accept Defaults, Next Server...); a
// finish (or an action) that opened the next wizard in the same dialog returns
// CONTINUED, and the dialog stays open.
"use strict";

import { el } from "./dom.js";

export const CONTINUED = Object.freeze({ continued: true });

export const dialog = document.getElementById("wizard");
let wizard = null;
let afterFinish = async () => {};

export function whenFinished(callback) { afterFinish = callback; }

export function notice(text) { document.getElementById("notice").textContent = text; }

export function currentTitle() { return dialog.open && wizard ? wizard.title : null; }

// False once the dialog was closed (Cancel while a request ran): what the request
// answers then goes to the notice, not into a dialog that reopens by itself.
export function stillOpen() { return dialog.open; }

export function values() {
  const data = {};
  for (const input of document.querySelectorAll("#wizard-body [name]")) data[input.name] = input.value.trim();
  return data;
}

export function showError(error) {
  document.getElementById("wizard-error").textContent = error.field ? `${error.field}: ${error.reason}` : String(error);
  for (const input of document.querySelectorAll("#wizard-body [name]")) {
    const match = error.field && input.name.replace(/_/g, "-") === String(error.field).replace(/_/g, "-");
    input.classList.toggle("invalid", Boolean(match));
    input.setAttribute("aria-invalid", String(Boolean(match)));
    if (match) input.focus();
  }
}

export function openWizard(title, steps, finish) {
  notice("");  // notes belong to the last task only
  wizard = { title, steps, finish, index: 0, data: {} };
  renderStep();
  if (!dialog.open) dialog.showModal();
}

function renderStep() {
  const step = wizard.steps[wizard.index];
  document.getElementById("wizard-title").textContent = wizard.title;
  document.getElementById("wizard-step").textContent = wizard.steps.length > 1 ? `Step ${wizard.index + 1} of ${wizard.steps.length}: ${step.title}` : step.title;
  document.getElementById("wizard-error").textContent = "";
  document.getElementById("wizard-body").replaceChildren(...step.render(wizard.data).flat());
  document.getElementById("wizard-back").hidden = wizard.index === 0;
  document.getElementById("wizard-next").textContent = wizard.index === wizard.steps.length - 1 ? (step.finishLabel || "Finish") : "Next";
  document.getElementById("wizard-cancel").hidden = Boolean(step.noCancel);
  document.getElementById("wizard-extra").replaceChildren(...(step.actions || []).map((action) =>
    el("button", { type: "button", onclick: () => act(action) }, action.label)));
  dialog.querySelector("#wizard-body [name]")?.focus();
}

function busy(on) {  // Cancel stays usable while a request runs
  for (const button of dialog.querySelectorAll("#wizard-next, #wizard-back, #wizard-extra button")) button.disabled = on;
}

// What a finished task left: the notes shown on the page, or the next wizard already open.
async function completed(result) {
  if (result?.continued) { await afterFinish(); return; }
  dialog.close();
  const notes = [...(result?.warnings || []), ...(result?.notes || [])];
  if (notes.length) notice(notes.join(" "));
  await afterFinish();
}

async function act(action) {
  Object.assign(wizard.data, values());
  busy(true);
  try {
    await completed(await action.run(wizard.data));
  } catch (error) {
    showError(error);
  } finally {
    busy(false);
  }
}

document.getElementById("wizard-cancel").addEventListener("click", () => dialog.close());
document.getElementById("wizard-back").addEventListener("click", () => { Object.assign(wizard.data, values()); wizard.index -= 1; renderStep(); });
document.getElementById("wizard-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const step = wizard.steps[wizard.index];
  Object.assign(wizard.data, values());
  busy(true);
  try {
    if (step.validate) await step.validate(wizard.data);
    if (wizard.index < wizard.steps.length - 1) { wizard.index += 1; renderStep(); return; }
    await completed(await wizard.finish(wizard.data));
  } catch (error) {
    showError(error);
  } finally {
    busy(false);
  }
});

// A task that fails before its dialog opens says so instead of doing nothing.
export function reported(task) {
  return () => Promise.resolve().then(task).catch((error) => notice(`could not open it: ${error.message}`));
}
