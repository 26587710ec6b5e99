// A form from a job's JSON Schema: choices as selects, numbers with their ranges, patterns
// and lengths checked in the browser (and again by the server), secrets as password fields
// that are never echoed, kept, or filled from a default.
import { el } from "./dom.js";

// `str | None` is anyOf [{type: string…}, {type: null}]: the field is that string, optional.
function resolve(prop) {
  const variants = (prop.anyOf || []).filter((p) => p.type !== "null");
  const base = variants.length === 1 ? { ...variants[0] } : { ...prop };
  for (const key of ["default", "description", "title", "x-secret", "writeOnly"]) {
    if (prop[key] !== undefined && base[key] === undefined) base[key] = prop[key];
  }
  return base;
}

// Python's (?P<name>…) is JavaScript's (?<name>…); a pattern JavaScript cannot read is
// left to the server.
function regex(pattern) {
  try {
    return new RegExp(pattern.replaceAll("(?P<", "(?<"), "u");
  } catch {
    return null;
  }
}

function input(name, prop, required) {
  const secret = Boolean(prop["x-secret"] || prop.writeOnly || prop.format === "password");
  const common = { id: `f-${name}`, name, required, "aria-describedby": `h-${name}` };
  if (Array.isArray(prop.enum)) {
    const options = prop.enum.map((v) => el("option", { value: v, selected: v === prop.default }, v));
    if (!required) options.unshift(el("option", { value: "" }, "—"));
    return el("select", common, options);
  }
  if (prop.type === "boolean") {
    return el("input", { ...common, type: "checkbox", required: false, checked: prop.default === true });
  }
  if (prop.type === "integer" || prop.type === "number") {
    const min = prop.minimum ?? (prop.exclusiveMinimum != null ? prop.exclusiveMinimum + (prop.type === "integer" ? 1 : 0) : null);
    const max = prop.maximum ?? (prop.exclusiveMaximum != null ? prop.exclusiveMaximum - (prop.type === "integer" ? 1 : 0) : null);
    return el("input", {
      ...common, type: "number", step: prop.type === "integer" ? "1" : "any",
      min, max, value: prop.default ?? null,
    });
  }
  const field = el("input", {
    ...common,
    type: secret ? "password" : "text",
    autocomplete: secret ? "new-password" : "off",
    minlength: prop.minLength, maxlength: prop.maxLength,
    value: secret ? null : prop.default ?? null,
    spellcheck: "false",
  });
  const re = prop.pattern ? regex(prop.pattern) : null;
  if (re) {
    field.dataset.pattern = prop.pattern;
    const check = () => field.setCustomValidity(
      field.value === "" || re.test(field.value) ? "" : `does not match ${prop.pattern}`,
    );
    field.addEventListener("input", check);
    check();
  }
  return field;
}

function lines(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
    const at = l.indexOf("=");
    return at < 0 ? [l, false, ""] : [l.slice(0, at), true, l.slice(at + 1)];
  });
}

export function buildForm(schema, onSubmit) {
  const required = new Set(schema.required || []);
  const fields = new Map();
  const rows = Object.entries(schema.properties || {}).map(([name, raw]) => {
    const prop = resolve(raw);
    const field = input(name, prop, required.has(name));
    fields.set(name, { field, prop });
    return el("div", { class: "field" },
      el("label", { for: field.id }, name, required.has(name) ? el("span", { class: "req", title: "required" }, " *") : null),
      field,
      el("small", { id: `h-${name}`, class: "help" }, prop.description || ""),
      el("span", { class: "error", dataset: { for: name }, role: "status" }),
    );
  });
  // A script job takes any name=value (webhookd style): one per line, names checked.
  const open = schema.additionalProperties && typeof schema.additionalProperties === "object";
  const names = regex((schema.propertyNames || {}).pattern || "^[a-z_][a-z0-9_]*$");
  const extra = open ? el("textarea", { id: "f-_extra", name: "_extra", rows: 3, spellcheck: "false",
    placeholder: "name=value, one per line" }) : null;
  if (extra) {
    extra.addEventListener("input", () => {
      const bad = lines(extra.value).find(([k, sep]) => !sep || !names.test(k));
      extra.setCustomValidity(bad ? `not name=value with a lower-case name: ${bad[0]}` : "");
    });
    rows.push(el("div", { class: "field" }, el("label", { for: extra.id }, "more parameters"), extra,
      el("small", { class: "help" }, "this job takes any parameter as name=value (its environment)"),
      el("span", { class: "error", dataset: { for: "_extra" } })));
  }
  const form = el("form", { class: "job-form", novalidate: false }, rows,
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Start run")),
  );
  // A click on "Start run" with an invalid field fires `invalid` on each (the browser
  // then sends nothing, and no `submit`): say why beside each field, not only in a bubble.
  form.addEventListener("invalid", (event) => {
    const slot = form.querySelector(`.error[data-for="${CSS.escape(event.target.name)}"]`);
    if (slot) slot.replaceChildren(event.target.validationMessage);
    event.target.setAttribute("aria-invalid", "true");
  }, true);
  form.addEventListener("input", (event) => {
    const slot = form.querySelector(`.error[data-for="${CSS.escape(event.target.name)}"]`);
    if (slot && event.target.validity.valid) slot.replaceChildren();
    if (event.target.validity.valid) event.target.removeAttribute("aria-invalid");
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors();
    // The browser's own check first; a form whose checks were bypassed meets the server's.
    if (!form.noValidate && !form.checkValidity()) {
      form.reportValidity();
      for (const field of form.elements) if (field.name && !field.validity.valid) showError(field.name, field.validationMessage);
      return;
    }
    onSubmit(values());
  });

  function values() {
    const out = {};
    for (const [name, { field, prop }] of fields) {
      if (field.type === "checkbox") out[name] = field.checked;
      else if (field.value === "") continue;
      else if (field.type === "number") out[name] = Number(field.value);
      else if (prop.type === "array") out[name] = field.value.split("\n").filter(Boolean);
      else out[name] = field.value;
    }
    if (extra) for (const [k, , v] of lines(extra.value)) if (!(k in out)) out[k] = v;
    return out;
  }
  function showError(name, reason) {
    const slot = form.querySelector(`.error[data-for="${CSS.escape(name)}"]`);
    const target = slot || form.querySelector(".actions");
    target.append(slot ? reason : el("p", { class: "error" }, `${name}: ${reason}`));
    fields.get(name)?.field.setAttribute("aria-invalid", "true");
  }
  function clearErrors() {
    for (const slot of form.querySelectorAll(".error")) slot.replaceChildren();
    for (const { field } of fields.values()) field.removeAttribute("aria-invalid");
  }
  function forgetSecrets() {
    for (const { field } of fields.values()) if (field.type === "password") field.value = "";
  }
  return { form, showError, clearErrors, forgetSecrets };
}
