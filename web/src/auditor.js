// The auditor's page: the log's latest signed checkpoint and size, checked against the pinned
// key and, by a consistency proof, against the checkpoints this browser saw before; the items
// most recently in the log; any item's custody timeline with a checked mark per event.

import { EVIDENCE_ID, call, sentenceOf } from "./api.js";
import { field, h, message, replace, timeElement } from "./dom.js";
import { decodeLeaf, fromBase64, openCheckpoint, toBase64, verifyConsistency } from "./ledger.js";
import { keyPanel, pinnedKey } from "./logkey.js";
import { renderTimeline } from "./timeline.js";

const SEEN_KEY = "custody.checkpoints";
const KEEP_SEEN = 20;
const RECENT_ENTRIES = 200;

function seenCheckpoints(origin) {
  try {
    return (JSON.parse(localStorage.getItem(SEEN_KEY) ?? "[]") ?? []).filter((c) => c.origin === origin);
  } catch {
    return [];
  }
}

function rememberCheckpoint(checkpoint) {
  let all;
  try {
    all = JSON.parse(localStorage.getItem(SEEN_KEY) ?? "[]") ?? [];
  } catch {
    all = [];
  }
  const size = String(checkpoint.size);
  if (all.some((c) => c.origin === checkpoint.origin && c.size === size)) return;
  all.unshift({ origin: checkpoint.origin, size, root: toBase64(checkpoint.root), seen_at: new Date().toISOString() });
  localStorage.setItem(SEEN_KEY, JSON.stringify(all.slice(0, KEEP_SEEN)));
}

/** Checks the latest checkpoint and that the log only grew since the last one seen here. */
async function renderLogState(container, pinned) {
  replace(container, message("info", "Reading the latest checkpoint…"));
  let note;
  try {
    note = await call("audit", "/v1/log/checkpoint", { anonymous: true });
  } catch (err) {
    replace(container, message("error", sentenceOf(err)));
    return null;
  }
  if (!pinned) {
    replace(container, message("info", "Pin the log key to check the latest checkpoint."), h("pre", { class: "note" }, note));
    return null;
  }
  let checkpoint;
  try {
    checkpoint = openCheckpoint(note, pinned.key);
  } catch (err) {
    replace(container, message("error", h("strong", {}, "✗ The latest checkpoint did not verify"), `: ${err.message}. Do not rely on this log's answers until your organisation's auditors have looked into it.`), h("pre", { class: "note" }, note));
    return null;
  }
  const seen = seenCheckpoints(checkpoint.origin);
  const previous = seen.find((c) => BigInt(c.size) <= checkpoint.size);
  let growth = null;
  if (previous) {
    const same = BigInt(previous.size) === checkpoint.size;
    try {
      const proof = same
        ? []
        : (await call("audit", `/v1/log/proof/consistency?first=${previous.size}&second=${checkpoint.size}`)).hashes.map((p) => fromBase64(p, "the consistency proof"));
      verifyConsistency(BigInt(previous.size), checkpoint.size, proof, fromBase64(previous.root, "a stored root"), checkpoint.root);
      growth = same
        ? message("ok", h("strong", {}, "✓ Unchanged"), " since this browser first saw this checkpoint (", timeElement(previous.seen_at), ").")
        : message("ok", h("strong", {}, "✓ The log only grew"), ` since this browser saw it at ${previous.size} entries (`, timeElement(previous.seen_at), "): its consistency proof checked.");
    } catch (err) {
      growth = message("error", h("strong", {}, "✗ The log was rewritten"), ` since this browser saw it at ${previous.size} entries (`, timeElement(previous.seen_at), `): ${sentenceOf(err)} Report it to your organisation's auditors.`);
    }
  }
  rememberCheckpoint(checkpoint);
  const history = seenCheckpoints(checkpoint.origin);
  replace(
    container,
    message("ok", h("strong", {}, "✓ Latest checkpoint verified"), ` with the pinned key: the log holds `, h("strong", { dataset: { logSize: String(checkpoint.size) } }, String(checkpoint.size)), " entries."),
    growth,
    h("dl", { class: "facts" },
      h("dt", {}, "Log"), h("dd", {}, checkpoint.origin),
      h("dt", {}, "Size"), h("dd", {}, `${checkpoint.size} entries`),
      h("dt", {}, "Root hash"), h("dd", {}, h("code", { class: "wrap" }, toBase64(checkpoint.root))),
    ),
    h("h4", {}, "Checkpoints seen in this browser"),
    h("table", { class: "checkpoints" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Entries"), h("th", { scope: "col" }, "Root hash"), h("th", { scope: "col" }, "First seen"))),
      h("tbody", {}, history.map((c) => h("tr", {}, h("td", {}, c.size), h("td", {}, h("code", {}, `${c.root.slice(0, 16)}…`)), h("td", {}, timeElement(c.seen_at))))),
    ),
  );
  return checkpoint;
}

/** The items whose events are among the log's most recent entries, newest first. */
async function renderRecent(container, size) {
  if (size === null || size === undefined || size === 0n) {
    replace(container);
    return;
  }
  const start = size > BigInt(RECENT_ENTRIES) ? size - BigInt(RECENT_ENTRIES) : 0n;
  let answer;
  try {
    answer = await call("audit", `/v1/log/entries?start=${start}&limit=${RECENT_ENTRIES}`);
  } catch (err) {
    replace(container, message("error", sentenceOf(err)));
    return;
  }
  const items = new Map();
  for (const { leaf } of answer.entries.slice().reverse()) {
    const event = decodeLeaf(leaf)?.event;
    if (!event?.evidence_id || items.has(event.evidence_id)) continue;
    items.set(event.evidence_id, event);
  }
  replace(
    container,
    h("h3", {}, "Items most recently in the log"),
    items.size
      ? h("ul", { class: "recent" }, [...items.values()].map((event) => h("li", {},
          h("a", { href: `#/auditor/item/${event.evidence_id}` }, h("code", {}, event.evidence_id)),
          h("span", { class: "item-facts" }, ` · case ${event.case ?? "—"} · last: ${event.action} `, timeElement(event.time)))))
      : h("p", { class: "hint" }, "No item events among the latest entries."),
  );
}

/** The auditor's page; `evidenceId` opens that item's timeline. */
export function auditorPage(identity, config, evidenceId) {
  const logState = h("div", { class: "log-state", "aria-live": "polite" });
  const recent = h("section", { class: "panel" });
  const timeline = h("div", { class: "timeline-box" });
  const idInput = h("input", { type: "text", autocomplete: "off", spellcheck: "false", class: "mono", value: evidenceId ?? "" });
  const problems = h("div");

  const refresh = async () => {
    const pinned = pinnedKey(config);
    const checkpoint = await renderLogState(logState, pinned);
    renderRecent(recent, checkpoint?.size ?? null);
    if (evidenceId) renderTimeline(timeline, evidenceId, pinned);
  };

  const lookup = h(
    "form",
    {
      class: "inline-form",
      onsubmit: (event) => {
        event.preventDefault();
        const id = idInput.value.trim().toLowerCase();
        if (!EVIDENCE_ID.test(id)) {
          replace(problems, message("error", "An evidence id looks like 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b; check the one you typed."));
          idInput.setAttribute("aria-invalid", "true");
          idInput.focus();
          return;
        }
        location.hash = `#/auditor/item/${id}`;
      },
    },
    field("Evidence id", idInput),
    h("button", { type: "submit", class: "primary" }, "Show timeline"),
  );

  refresh();
  return h(
    "section",
    { class: "page auditor", "aria-labelledby": "auditor-title" },
    h("h2", { id: "auditor-title" }, "Custody log"),
    h("section", { class: "panel", "aria-label": "Latest checkpoint" }, h("div", { class: "panel-head" }, h("h3", {}, "Latest checkpoint"), h("button", { type: "button", onclick: refresh }, "Check again")), logState),
    h("section", { class: "panel", "aria-labelledby": "timeline-title" }, h("h3", { id: "timeline-title" }, "Custody timeline of an item"), lookup, problems, timeline),
    recent,
    keyPanel(config, refresh),
  );
}
