// The pinned key of the custody log: every check in this page trusts it and nothing else.
// The deployment may pin it (intake's web_log_key setting); otherwise each person pins one in
// their browser, pasted from a trusted channel or, knowingly, the one the log serves now.

import { call, sentenceOf } from "./api.js";
import { field, h, message, replace } from "./dom.js";
import { parseLogKey } from "./ledger.js";

const STORAGE_KEY = "custody.logkey";

/** The pinned key: {key, text, source: "deployment" | "browser"}, or null. */
export function pinnedKey(config) {
  if (config.log_key) return { key: parseLogKey(config.log_key), text: config.log_key, source: "deployment" };
  const text = localStorage.getItem(STORAGE_KEY);
  if (!text) return null;
  try {
    return { key: parseLogKey(text), text, source: "browser" };
  } catch {
    localStorage.removeItem(STORAGE_KEY);
    return null;
  }
}

/** Pins `text` in this browser after checking it reads as a log key. */
export function pinKey(text) {
  const key = parseLogKey(text);
  localStorage.setItem(STORAGE_KEY, key.text);
  return key;
}

/** Un-pins the browser's key. */
export function unpinKey() {
  localStorage.removeItem(STORAGE_KEY);
}

/** A panel showing the pinned key and letting the person pin or change it; `onChange()` after. */
export function keyPanel(config, onChange) {
  const panel = h("section", { class: "panel key-panel", "aria-labelledby": "key-title" });
  const render = (note) => {
    const pinned = pinnedKey(config);
    const input = h("input", { type: "text", autocomplete: "off", spellcheck: "false", class: "mono" });
    const problems = h("div");
    const served = h("div");
    const form = h(
      "form",
      {
        class: "stack",
        onsubmit: (event) => {
          event.preventDefault();
          try {
            pinKey(input.value);
            render(message("ok", "Key pinned. Every proof on this page is now checked against it."));
            onChange();
          } catch (err) {
            replace(problems, message("error", sentenceOf(err)));
            input.setAttribute("aria-invalid", "true");
            input.focus();
          }
        },
      },
      field("Log key", input, "ORIGIN+KEYID+KEY, from a source you trust (your organisation's published copy, or the command line's `custody chain --log-key`)."),
      problems,
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Pin this key"), h("button", {
        type: "button",
        onclick: async () => {
          try {
            const text = (await call("audit", "/v1/log/key", { anonymous: true })).trim();
            replace(served, message("info", "The log serves this key now. Pin it only if it matches the one your organisation published; otherwise a substituted log would pass every check."), h("p", {}, h("code", { class: "wrap" }, text)));
            input.value = text;
            input.focus();
          } catch (err) {
            replace(served, message("error", sentenceOf(err)));
          }
        },
      }, "Show the key the log serves")),
      served,
    );
    replace(
      panel,
      h("h3", { id: "key-title" }, "Pinned log key"),
      note ?? null,
      pinned
        ? [
            h("p", {}, pinned.source === "deployment" ? "Pinned by this deployment:" : "Pinned in this browser:"),
            h("p", {}, h("code", { class: "wrap", dataset: { pinnedKey: "" } }, pinned.text)),
            pinned.source === "browser"
              ? h("button", { type: "button", class: "quiet", onclick: () => { unpinKey(); render(); onChange(); } }, "Unpin this key")
              : null,
          ]
        : [message("info", "No log key is pinned yet: checkpoints and proofs cannot be checked until one is."), form],
    );
  };
  render();
  return panel;
}
