// An item's custody timeline, each event marked after its inclusion proof was checked here
// against the signed checkpoint and the pinned log key.

import { asSentence, call, sentenceOf } from "./api.js";
import { h, message, replace, timeElement } from "./dom.js";
import { checkChain, toBase64 } from "./ledger.js";

const ACTIONS = {
  submitted: "Submitted",
  received: "Received in full at intake",
  sealed: "Sealed in the vault",
  rejected: "Rejected by the vault",
  accessed: "File read",
  exported: "Exported",
  verified: "Fixity checked",
  damaged: "Found damaged",
  hold_set: "Legal hold set",
  hold_released: "Legal hold released",
  key_rotated: "Key rotated",
  expired: "Upload expired",
  terminated: "Upload cancelled",
};

function actorOf(event) {
  const actor = event?.actor ?? {};
  if (actor.service) return `the ${actor.service} service`;
  if (actor.sub) return `${actor.sub}${actor.roles?.length ? ` (${actor.roles.join(", ")})` : ""}`;
  return "unknown";
}

function markOf(verdict) {
  if (!verdict) return h("span", { class: "mark unchecked" }, h("span", { "aria-hidden": "true" }, "?"), " Not checked");
  return verdict.ok
    ? h("span", { class: "mark ok", dataset: { mark: "ok" } }, h("span", { "aria-hidden": "true" }, "✓"), " Proof checked")
    : h("span", { class: "mark bad", dataset: { mark: "bad" } }, h("span", { "aria-hidden": "true" }, "✗"), " Proof failed");
}

function eventItem(event, verdict) {
  const entry = verdict?.entry ?? event.entry ?? {};
  const custody = entry.event ?? {};
  const facts = [`log entry ${event.index}`, `event ${entry.item_seq ?? "?"} of this item`];
  if (custody.size !== undefined && custody.size !== null) facts.push(`${custody.size} bytes`);
  if (custody.commitments && Object.keys(custody.commitments).length) {
    facts.push(`committed, not shown: ${Object.keys(custody.commitments).sort().join(", ")}`);
  }
  return h(
    "li",
    { class: `event ${verdict ? (verdict.ok ? "ok" : "bad") : ""}`, dataset: { action: custody.action ?? "", index: event.index } },
    markOf(verdict),
    h("div", { class: "event-body" },
      h("p", { class: "event-title" }, h("strong", {}, ACTIONS[custody.action] ?? custody.action ?? "Unknown event")),
      h("p", { class: "event-actor" }, "By ", actorOf(custody)),
      h("p", { class: "event-time" }, timeElement(custody.time), custody.time && entry.logged_at ? " · logged " : "", timeElement(entry.logged_at)),
      h("p", { class: "event-facts" }, facts.join(" · ")),
      custody.sha256 ? h("p", { class: "event-facts" }, "SHA-256 ", h("code", { class: "wrap" }, custody.sha256)) : null,
      verdict && !verdict.ok ? h("p", { class: "problem-text" }, asSentence(verdict.problem)) : null,
      verdict?.caveat ? h("p", { class: "event-facts" }, `Note: ${verdict.caveat}.`) : null,
    ),
  );
}

function summaryOf(result, key, count) {
  if (!key) {
    return message("info", "No log key is pinned, so these events are shown unchecked. Pin the log key to check each event's proof.");
  }
  if (result.checkpointError) {
    return message("error", h("strong", {}, "✗ "), `The checkpoint these proofs rest on did not verify against the pinned key: ${result.checkpointError}. None of these events can be trusted from this answer.`);
  }
  const failed = result.events.filter((v) => !v.ok).length;
  const where = `the checkpoint of ${result.checkpoint.size} log entries signed by ${result.checkpoint.origin} (root ${toBase64(result.checkpoint.root).slice(0, 12)}…)`;
  if (failed === 0) {
    return message("ok", h("strong", {}, "✓ "), `All ${count} events are in the log: each event's inclusion proof leads to ${where}, and each links to the one before it.`);
  }
  return message("error", h("strong", {}, "✗ "), `${failed} of ${count} events failed their check against ${where}. The log, or this answer, was altered: report it to your organisation's auditors.`);
}

/**
 * Fills `container` with the custody timeline of `evidenceId`; `pinned` is pinnedKey()'s
 * answer or null. Resolves to the check's result (null when nothing could be checked).
 */
export async function renderTimeline(container, evidenceId, pinned) {
  replace(container, message("info", "Reading the custody timeline…"));
  let chain;
  try {
    chain = await call("audit", `/v1/custody/${encodeURIComponent(evidenceId)}`);
  } catch (err) {
    replace(container, message("error", sentenceOf(err)));
    return null;
  }
  const result = pinned ? checkChain(chain, pinned.key, evidenceId) : null;
  const verdicts = result?.events ?? [];
  replace(
    container,
    h("div", { class: "timeline-summary", dataset: { verified: result ? String(verdicts.every((v) => v.ok) && !result.checkpointError) : "unchecked" } }, summaryOf(result, pinned, chain.events.length)),
    h("ol", { class: "timeline" }, chain.events.map((event, i) => eventItem(event, verdicts[i]))),
    h("details", { class: "legend" },
      h("summary", {}, "What the marks mean"),
      h("p", {}, "✓ Proof checked: this browser hashed the event's log entry, followed its inclusion proof up to the root of the signed checkpoint, checked the checkpoint's Ed25519 signature with the pinned log key, and checked that the event is numbered and linked right after the item's previous one. An event changed after it was logged fails this check, unless whoever changed it also holds the log's signing key."),
      h("p", {}, "✗ Proof failed: one of those checks did not hold; the reason is written under the event."),
    ),
  );
  return result;
}
