// The prosecutor's pages: the items of their cases with search by title, date and hash; an
// item with its metadata, verification status and custody timeline; download with a purpose.

import { createSHA256 } from "hash-wasm";

import { ApiError, asSentence, baseUrl, call, sentenceOf } from "./api.js";
import { bytes, field, h, message, replace, timeElement } from "./dom.js";
import { fromBase64, toHex } from "./ledger.js";
import { keyPanel, pinnedKey } from "./logkey.js";
import { renderTimeline } from "./timeline.js";

const PAGE = 1000;
const DETAIL_LOOKUPS = 4;
const PURPOSE_MAX = 500;
const DOWNLOADS_PATH = "/v1/evidence/{evidence_id}/downloads";

const details = new Map();
let downloadsOffered = null;

async function allItems(caseName) {
  const items = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ case: caseName, limit: String(PAGE) });
    if (cursor) query.set("cursor", cursor);
    const page = await call("evidence", `/v1/evidence?${query}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

async function detailOf(id) {
  if (!details.has(id)) details.set(id, call("evidence", `/v1/evidence/${encodeURIComponent(id)}`).catch((err) => { details.delete(id); throw err; }));
  return details.get(id);
}

/** Whether the evidence service offers single-use download URLs (its OpenAPI document says). */
async function offersDownloads() {
  if (downloadsOffered === null) {
    downloadsOffered = call("evidence", "/openapi.json", { anonymous: true })
      .then((document) => Boolean(document?.paths?.[DOWNLOADS_PATH]?.post))
      .catch(() => false);
  }
  return downloadsOffered;
}

function statusBadge(status) {
  const labels = { sealed: "Sealed", rejected: "Rejected", damaged: "Damaged" };
  return h("span", { class: `badge ${status}` }, labels[status] ?? status);
}

function titleOf(item, detail) {
  return detail?.metadata?.title || detail?.metadata?.filename || (detail ? "Untitled" : "…");
}

function matches(item, detail, search) {
  if (search.text) {
    const haystack = `${detail?.metadata?.title ?? ""} ${detail?.metadata?.filename ?? ""}`.toLowerCase();
    if (!haystack.includes(search.text)) return false;
  }
  if (search.hash && !(item.sha256 ?? "").startsWith(search.hash) && !item.declared_sha256.startsWith(search.hash)) return false;
  if (search.from || search.to) {
    const moment = new Date(detail?.metadata?.captured_at ?? item.created_at).getTime();
    if (search.from && moment < search.from) return false;
    if (search.to && moment >= search.to) return false;
  }
  return true;
}

/** The prosecutor's list of a case's items, for the person `identity`. */
export function prosecutorPage(identity) {
  const cases = identity.cases.filter((c) => c !== "*");
  const caseInput = h("select", {}, cases.map((c) => h("option", { value: c }, c)));
  const text = h("input", { type: "search", autocomplete: "off" });
  const from = h("input", { type: "date" });
  const to = h("input", { type: "date" });
  const hash = h("input", { type: "search", autocomplete: "off", spellcheck: "false", class: "mono" });
  const results = h("div", { class: "results", "aria-live": "polite" });
  const state = { items: [], loaded: new Map() };

  const search = () => ({
    text: text.value.trim().toLowerCase(),
    hash: hash.value.trim().toLowerCase(),
    from: from.value ? new Date(`${from.value}T00:00:00`).getTime() : null,
    to: to.value ? new Date(`${to.value}T00:00:00`).getTime() + 86400000 : null,
  });

  const render = () => {
    const wanted = search();
    const shown = state.items.filter((item) => matches(item, state.loaded.get(item.evidence_id), wanted));
    const pendingTitles = state.items.filter((item) => !state.loaded.has(item.evidence_id)).length;
    replace(
      results,
      h("p", { class: "count", role: "status" }, `${shown.length} of ${state.items.length} item${state.items.length === 1 ? "" : "s"}`, pendingTitles && wanted.text ? ` (still reading ${pendingTitles} titles)` : ""),
      h("ul", { class: "items" }, shown.map((item) => {
        const detail = state.loaded.get(item.evidence_id);
        return h("li", { dataset: { evidenceId: item.evidence_id } },
          h("a", { href: `#/prosecutor/item/${item.evidence_id}` }, h("span", { class: "item-title" }, titleOf(item, detail))),
          " ", statusBadge(item.status),
          h("p", { class: "item-facts" },
            detail?.metadata?.captured_at ? ["captured ", timeElement(detail.metadata.captured_at), " · "] : null,
            "received ", timeElement(item.created_at), ` · ${bytes(item.size)} · SHA-256 `, h("code", {}, (item.sha256 ?? item.declared_sha256).slice(0, 16)), "…"),
        );
      })),
    );
  };

  const load = async () => {
    if (!caseInput.value) {
      replace(results, message("info", "You are not assigned any case as a prosecutor; ask an administrator to assign you one."));
      return;
    }
    replace(results, message("info", "Reading the case's items…"));
    try {
      state.items = (await allItems(caseInput.value)).reverse();
      state.loaded = new Map();
    } catch (err) {
      replace(results, message("error", sentenceOf(err)));
      return;
    }
    render();
    // Titles are personal data, kept only in each item's sealed metadata: read them one by one.
    const queue = [...state.items];
    const worker = async () => {
      while (queue.length) {
        const item = queue.shift();
        try {
          state.loaded.set(item.evidence_id, await detailOf(item.evidence_id));
        } catch {
          state.loaded.set(item.evidence_id, null);
        }
        render();
      }
    };
    await Promise.all(Array.from({ length: DETAIL_LOOKUPS }, worker));
  };

  for (const input of [text, from, to, hash]) input.addEventListener("input", render);
  caseInput.addEventListener("change", load);
  const form = h(
    "form",
    { class: "search", role: "search", onsubmit: (event) => { event.preventDefault(); render(); } },
    field("Case", caseInput),
    field("Title or file name contains", text),
    field("Date from", from),
    field("Date until", to),
    field("SHA-256 begins with", hash),
    h("p", { class: "hint search-hint" }, "Dates are when an item was captured or, where that is unknown, when it was received."),
  );
  load();
  return h("section", { class: "page prosecutor", "aria-labelledby": "prosecutor-title" }, h("h2", { id: "prosecutor-title" }, "Evidence of your cases"), form, results);
}

function verification(item) {
  if (item.status === "sealed") {
    const same = item.sha256 === item.declared_sha256;
    return message(same ? "ok" : "error",
      h("strong", {}, same ? "✓ Sealed" : "✗ Sealed with a different hash"),
      " on ", timeElement(item.sealed_at), ": ",
      same
        ? "the bytes read back at seal matched the SHA-256 the investigator's device declared, and they are locked against change. "
        : "the SHA-256 read back differs from the declared one. ",
      item.verified_at ? ["Last fixity check: ", timeElement(item.verified_at), "."] : "No fixity check since the seal yet.",
    );
  }
  if (item.status === "rejected") {
    return message("error", h("strong", {}, "✗ Rejected"), `: ${asSentence(item.reason ?? "it did not match its declaration")} It is kept under legal hold and is never served.`);
  }
  return message("error", h("strong", {}, "✗ Damaged"), `: ${asSentence(item.reason ?? "its stored bytes no longer match the seal")} It is never served until restored and verified.`);
}

function metadataList(item) {
  const m = item.metadata ?? {};
  const rows = [
    ["Evidence id", h("code", { class: "wrap" }, item.evidence_id)],
    ["Case", item.case],
    ["File name", m.filename ?? "(cannot be decrypted)"],
    ["Title", m.title ?? "—"],
    ["Captured at", m.captured_at ? timeElement(m.captured_at) : "—"],
    ["Location", m.lat !== null && m.lat !== undefined ? `${m.lat}, ${m.lon}` : "—"],
    ["Notes", m.notes ?? "—"],
    ["Submitted by", item.submitter],
    ["Received", timeElement(item.received_at)],
    ["Size", `${bytes(item.size)} (${item.size} bytes)`],
    ["SHA-256 at seal", h("code", { class: "wrap" }, item.sha256 ?? "—")],
    ["SHA-256 declared", h("code", { class: "wrap" }, item.declared_sha256)],
    ["Locked until", item.retain_until ? timeElement(item.retain_until) : "—"],
    ["Legal hold", item.legal_hold ? "Yes" : "No"],
  ];
  return h("dl", { class: "facts" }, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
}

function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, class: "hidden" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function filenameOf(disposition, fallback) {
  const encoded = /filename\*=UTF-8''([^;]+)/i.exec(disposition ?? "");
  if (encoded) {
    try {
      return decodeURIComponent(encoded[1]);
    } catch {
      // a malformed name: fall back
    }
  }
  return fallback;
}

/**
 * Reads the item's bytes with the bearer token, hashing them as they arrive, and saves them
 * only if they match the seal (what the page does while evidence offers no download URLs).
 */
async function fetchVerified(item, purpose, onProgress) {
  const response = await call("evidence", `/v1/evidence/${encodeURIComponent(item.evidence_id)}/content?${new URLSearchParams({ purpose })}`, { raw: true });
  const digestHeader = /sha-256=:([A-Za-z0-9+/=]+):/.exec(response.headers.get("Repr-Digest") ?? "");
  const hasher = await createSHA256();
  hasher.init();
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    let step;
    try {
      step = await reader.read();
    } catch {
      throw new ApiError("The download broke off before the whole file arrived; nothing was saved. Try again.");
    }
    if (step.done) break;
    hasher.update(step.value);
    chunks.push(step.value);
    received += step.value.length;
    onProgress(received, item.size);
  }
  const digest = hasher.digest("hex");
  if (received !== item.size || digest !== item.sha256 || (digestHeader && toHex(fromBase64(digestHeader[1], "Repr-Digest")) !== digest)) {
    throw new ApiError("The file received does not match its seal (its SHA-256 differs); it was not saved. Try again, and report it if it happens again.");
  }
  saveBlob(new Blob(chunks, { type: "application/octet-stream" }), filenameOf(response.headers.get("Content-Disposition"), item.metadata?.filename ?? item.evidence_id));
  return digest;
}

/**
 * Asks evidence for a single-use URL valid for a minute (the access and its purpose are
 * recorded then) and lets the browser download from it directly, streaming to disk.
 */
async function downloadByLink(item, purpose) {
  const link = await call("evidence", `/v1/evidence/${encodeURIComponent(item.evidence_id)}/downloads`, { method: "POST", json: { purpose } });
  const anchor = h("a", { href: new URL(link.url, baseUrl("evidence")).toString(), download: item.metadata?.filename ?? "", class: "hidden" });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
}

function downloadDialog(item) {
  const purpose = h("textarea", { rows: 3, maxlength: PURPOSE_MAX, required: true });
  const problems = h("div");
  const progress = h("progress", { max: 100, value: 0, class: "hidden", "aria-label": "Download progress" });
  const outcome = h("div", { "aria-live": "polite" });
  const confirm = h("button", { type: "submit", class: "primary" }, "Download");
  const dialog = h("dialog", { class: "download-dialog", "aria-labelledby": "download-title" });
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  const form = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const stated = purpose.value.trim();
        if (!stated) {
          replace(problems, message("error", "State why you need this file; the purpose is recorded, sealed, with this access in the custody log."));
          purpose.setAttribute("aria-invalid", "true");
          purpose.focus();
          return;
        }
        purpose.removeAttribute("aria-invalid");
        replace(problems);
        confirm.disabled = true;
        try {
          if (await offersDownloads()) {
            await downloadByLink(item, stated);
            replace(outcome, message("ok", "The download has started. The vault checks every byte against the seal as it sends it; to check the saved file yourself, its SHA-256 must be ", h("code", { class: "wrap" }, item.sha256), ". Your access and its purpose are recorded in the custody log."));
          } else {
            progress.classList.remove("hidden");
            const digest = await fetchVerified(item, stated, (done, total) => {
              progress.value = total ? Math.floor((done / total) * 100) : 100;
            });
            replace(outcome, message("ok", "Downloaded and checked here: its SHA-256 ", h("code", { class: "wrap", dataset: { downloadedSha256: digest } }, digest), " matches the seal. Your access and its purpose are recorded in the custody log."));
          }
        } catch (err) {
          replace(outcome, message("error", sentenceOf(err)));
        } finally {
          confirm.disabled = false;
        }
      },
    },
    h("h3", { id: "download-title" }, "Download ", item.metadata?.filename ?? item.evidence_id),
    field("Purpose of this download", purpose, `Required, at most ${PURPOSE_MAX} characters, e.g. "prepare hearing 2024-117". It is sealed with this access in the custody log.`),
    problems,
    progress,
    outcome,
    h("div", { class: "buttons" }, confirm, h("button", { type: "button", onclick: close }, "Close")),
  );
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    close();
  });
  dialog.append(form);
  return dialog;
}

/** The prosecutor's page of one item. */
export function itemPage(identity, config, evidenceId) {
  const page = h("section", { class: "page item", "aria-labelledby": "item-title" }, h("p", {}, h("a", { href: "#/prosecutor" }, "← All items")), message("info", "Reading the item…"));
  const timeline = h("div", { class: "timeline-box" });
  const showTimeline = () => renderTimeline(timeline, evidenceId, pinnedKey(config));
  detailOf(evidenceId).then(
    (item) => {
      const download = item.status === "sealed"
        ? h("button", {
            type: "button",
            class: "primary",
            onclick: () => {
              const dialog = downloadDialog(item);
              document.body.append(dialog);
              dialog.showModal();
            },
          }, "Download…")
        : null;
      replace(
        page,
        h("p", {}, h("a", { href: "#/prosecutor" }, "← All items")),
        h("h2", { id: "item-title" }, item.metadata?.title || item.metadata?.filename || item.evidence_id),
        h("div", { class: "verification", dataset: { status: item.status } }, verification(item)),
        download ? h("div", { class: "buttons" }, download) : null,
        h("h3", {}, "What was declared and stored"),
        metadataList(item),
        h("h3", {}, "Custody timeline"),
        timeline,
        pinnedKey(config) ? null : keyPanel(config, showTimeline),
      );
      showTimeline();
    },
    (err) => replace(page, h("p", {}, h("a", { href: "#/prosecutor" }, "← All items")), message("error", sentenceOf(err))),
  );
  return page;
}
