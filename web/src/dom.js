// Building the page from plain DOM nodes: text is always set as text, never parsed as HTML.

/**
 * An element: h("p", {class: "note"}, "text", child…). Attributes named on* take functions
 * (event listeners); `false`, null and undefined attributes and children are left out.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, ...children);
  return element;
}

/** Appends children (nodes, strings, arrays of them) to `element`. */
export function append(element, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces the children of `element`. */
export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, ...children);
}

/** A byte count as a person reads it (1.5 MiB). */
export function bytes(n) {
  if (!Number.isFinite(n)) return "";
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${n} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A time as a person reads it, in their own zone, with the zone named. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    timeZoneName: "short",
  });
}

/** A <time> element for an ISO time. */
export function timeElement(iso) {
  return iso ? h("time", { datetime: iso }, when(iso)) : "";
}

/** A message that screen readers announce: role=alert for problems, status otherwise. */
export function message(kind, ...text) {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, ...text);
}

let uniqueCounter = 0;

/** An id unique in this page, for label/aria wiring. */
export function uniqueId(prefix) {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

/** A labelled form field: {label, input, hint}. */
export function field(label, input, hint) {
  const id = input.id || uniqueId("field");
  input.id = id;
  const hintElement = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintElement) input.setAttribute("aria-describedby", hintElement.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hintElement);
}
