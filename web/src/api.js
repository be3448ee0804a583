// Calls to the three services with the person's bearer token; every failure becomes a
// sentence a person can act on.

const SERVICE_NAMES = { intake: "intake", evidence: "evidence", audit: "custody ledger (audit)" };

/** A call failed; `message` is the sentence to show. */
export class ApiError extends Error {
  constructor(message, { status = 0, requestId = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.requestId = requestId;
  }
}

/** The shape of an evidence id; anything else in an address names no item. */
export const EVIDENCE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const state = { config: null, token: null, onUnauthorized: null };

/** Where the services are (from /config.json) and the token to send. */
export function configure({ config, token, onUnauthorized } = {}) {
  if (config !== undefined) state.config = config;
  if (token !== undefined) state.token = token;
  if (onUnauthorized !== undefined) state.onUnauthorized = onUnauthorized;
}

/** The base URL of `service` ("intake", "evidence", "audit"). */
export function baseUrl(service) {
  return state.config[`${service}_url`];
}

/** The token calls carry now. */
export function currentToken() {
  return state.token;
}

/** `text` as a sentence: a capital first letter and a closing full stop. */
export function asSentence(text) {
  const trimmed = String(text ?? "").trim();
  if (!trimmed) return "";
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function detailOf(bodyText) {
  if (!bodyText) return "";
  try {
    const body = JSON.parse(bodyText);
    if (typeof body?.detail === "string") return body.detail;
    if (Array.isArray(body?.detail)) {
      return body.detail.map((d) => `${(d.loc ?? []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
    }
  } catch {
    // not JSON: a proxy's page, say; its text is not for people
  }
  return "";
}

/**
 * The sentence for a failed answer of `service`: what went wrong (the service's own words
 * where it gave them) and what the person can do about it.
 */
export function describeFailure(service, status, bodyText, requestId) {
  const name = SERVICE_NAMES[service] ?? service;
  const detail = detailOf(bodyText);
  const reference = requestId ? ` Quote request id ${requestId} if you report it.` : "";
  if (status === 0) {
    return `Could not reach the ${name} service. Check your network connection and try again; if it keeps failing, the service may be down.`;
  }
  if (status === 401) {
    return `The ${name} service refused your token (${detail || "no valid token"}). Sign in again with a fresh token.`;
  }
  if (status === 403) {
    return `${asSentence(detail || "You may not do this")} If you need it, ask an administrator to assign you the role or the case.`;
  }
  if (status === 404 && (!detail || detail === "Not Found")) {
    return `The ${name} service does not offer this; it may run an older version than this page. Reload the page, and tell your administrator if it persists.`;
  }
  if (status === 429) return `The ${name} service is busy. Wait a minute and try again.`;
  if (status >= 500) {
    const what = detail ? asSentence(detail) : `The ${name} service failed (HTTP ${status}).`;
    return `${what} Try again in a minute; if it keeps failing, tell your administrator.${reference}`;
  }
  return asSentence(detail || `The ${name} service refused the request (HTTP ${status})`);
}

/**
 * Calls `service` at `path`. Returns the parsed JSON (or text, or the Response itself with
 * `raw`), or throws ApiError with a sentence.
 */
export async function call(service, path, { method = "GET", body, json, headers = {}, signal, raw = false, anonymous = false } = {}) {
  const sent = { ...headers };
  if (!anonymous && state.token) sent.Authorization = `Bearer ${state.token}`;
  let payload = body;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(`${baseUrl(service)}${path}`, { method, headers: sent, body: payload, signal, cache: "no-store" });
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    throw new ApiError(describeFailure(service, 0), { status: 0 });
  }
  if (!response.ok) {
    const requestId = response.headers.get("X-Request-ID");
    const text = await response.text().catch(() => "");
    if (response.status === 401 && state.onUnauthorized) state.onUnauthorized();
    throw new ApiError(describeFailure(service, response.status, text, requestId), { status: response.status, requestId });
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") ?? "";
  return type.includes("json") ? response.json() : response.text();
}

/** A sentence for any thrown value (ApiError's own, or a generic one). */
export function sentenceOf(err) {
  if (err instanceof ApiError) return err.message;
  if (err?.name === "VerificationFailed") return asSentence(err.message);
  return `Something went wrong in this page (${err?.message ?? err}). Reload the page and try again.`;
}
