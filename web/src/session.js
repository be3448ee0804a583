// The signed-in person: their token (kept in this tab's session storage only, so closing the
// tab signs them out) and who the intake service says the token names.

import { call } from "./api.js";

const TOKEN_KEY = "custody.token";

/** The token saved in this tab, if any. */
export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** Saves `token` for this tab (it survives a reload, not the tab's closing). */
export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** Forgets the token of this tab. */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A token as pasted: trimmed, without a "Bearer " prefix; null if it cannot be a JWT. */
export function cleanToken(text) {
  const token = String(text ?? "").trim().replace(/^Bearer\s+/i, "");
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token) ? token : null;
}

/** {sub, roles, cases} of the current token, as intake verified it. */
export function whoami() {
  return call("intake", "/v1/whoami");
}
