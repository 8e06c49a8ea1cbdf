// The wizard dialog: a list of steps with Back/Next/Finish; each step renders fields
// and may validate (async) before Next. Errors from the API are shown at their field.
"use strict";

export const dialog = document.getElementById("wizard");
let wizard = null;
let afterFinish = async () => {};

export function whenFinished(callback) { afterFinish = callback; }

export function notice(text) { document.getElementById("notice").textContent = text; }

export function currentTitle() { return dialog.open && wizard ? wizard.title : null; }

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
    if (notes.length) notice(notes.join(" "));
    await afterFinish();
  } catch (error) {
    showError(error);
  } finally {
    next.disabled = false;
  }
});

// A task that fails before its dialog opens says so instead of doing nothing.
export function reported(task) {
  return () => Promise.resolve().then(task).catch((error) => notice(`could not open it: ${error.message}`));
}
