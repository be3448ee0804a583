// The investigator's page: pick files, declare the case and what is known about them, and
// submit each with the tus protocol, hashing it here while it goes up (and each chunk as it is
// sent); follow each until sealed.

import { createSHA256 } from "hash-wasm";
import * as tus from "tus-js-client";

import { ApiError, baseUrl, call, currentToken, describeFailure, sentenceOf } from "./api.js";
import { ChunkSizes, ChunkedHttpStack } from "./chunks.js";
import { bytes, field, h, message, replace } from "./dom.js";
import { ResumeStorage, forgetSubmissions, rememberSubmission, rememberedSubmissions, resumeFingerprint } from "./resume.js";

const HASH_SLICE = 8 * 1024 * 1024;
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 15000, 30000, 30000, 30000];
const CASE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const UPLOADS_PATH = "/v1/uploads";
const FINAL = new Set(["sealed", "rejected", "damaged", "terminated", "expired"]);

const storage = new ResumeStorage();

/**
 * The SHA-256 (hex) of `file`, read a slice at a time so that memory stays at one slice
 * whatever the file's size.
 */
export async function sha256OfFile(file) {
  const hasher = await createSHA256();
  hasher.init();
  for (let offset = 0; offset < file.size; offset += HASH_SLICE) {
    const slice = file.slice(offset, Math.min(offset + HASH_SLICE, file.size));
    hasher.update(new Uint8Array(await slice.arrayBuffer()));
  }
  return hasher.digest("hex");
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function evidenceIdOf(uploadUrl) {
  return String(uploadUrl ?? "").replace(/\/+$/, "").split("/").pop();
}

/** A sentence for a failed tus request. */
function tusFailure(err) {
  const response = err?.originalResponse;
  if (!response) return describeFailure("intake", 0);
  return describeFailure("intake", response.getStatus(), response.getBody(), response.getHeader("X-Request-ID"));
}

/** Allows at most `limit` tasks at once. */
function limiter(limit) {
  let running = 0;
  const waiting = [];
  return async (task) => {
    while (running >= limit) await new Promise((resolve) => waiting.push(resolve));
    running += 1;
    try {
      return await task();
    } finally {
      running -= 1;
      waiting.shift()?.();
    }
  };
}

/**
 * Where a submission stands, followed until it ends: `onStatus(state, sentence)` each time it
 * changes, while `alive()`. Intake knows it until every byte arrived; then the vault seals or
 * rejects it.
 */
async function followSubmission(id, onStatus, alive) {
  let delay = 1000;
  let last = "";
  const report = (state, sentence) => {
    if (state + sentence !== last) onStatus(state, sentence);
    last = state + sentence;
  };
  while (alive()) {
    try {
      const atIntake = await call("intake", `/v1/submissions/${encodeURIComponent(id)}`);
      if (atIntake.status === "uploading") {
        report("unfinished", `Not all of it has arrived yet (${bytes(atIntake.offset)} of ${bytes(atIntake.size)}). Pick the same file again, with the same details, to finish it.`);
        return "unfinished";
      }
      if (atIntake.status === "terminated" || atIntake.status === "expired") {
        report(atIntake.status, atIntake.status === "expired"
          ? "The upload expired before every byte arrived; submit the file again."
          : "The upload was cancelled; nothing was kept.");
        return atIntake.status;
      }
      try {
        const inVault = await call("evidence", `/v1/evidence/${encodeURIComponent(id)}/status`);
        const sentences = {
          sealed: "Sealed: the vault read it back, its SHA-256 matched the one computed here, and it is locked.",
          rejected: "Rejected: what the vault stored did not match the SHA-256 computed here. Submit the file again.",
          damaged: "Sealed, but its stored copy is now damaged; your administrator has been told by the system. Keep your original.",
        };
        report(inVault.status, sentences[inVault.status] ?? `The vault reports it as ${inVault.status}.`);
        if (FINAL.has(inVault.status)) return inVault.status;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
        report("received", "Received in full; the vault is checking and sealing it.");
      }
    } catch (err) {
      if (!navigator.onLine) report("waiting", "This device is offline; its status is asked again when the network is back.");
      else report("waiting", `${sentenceOf(err)} Its status is asked again shortly.`);
    }
    await sleep(delay);
    delay = Math.min(delay * 1.5, 5000);
  }
  return "gone";
}

/** One file being submitted: its row on the page and its life from upload to seal. */
class Submission {
  constructor(file) {
    this.file = file;
    this.title = h("input", { type: "text", maxlength: 500, autocomplete: "off" });
    this.progress = h("progress", { max: 100, value: 0 });
    this.percent = h("span", { class: "percent", "aria-hidden": "true" }, "");
    this.status = h("p", { class: "status", role: "status", "aria-live": "polite" }, "Ready to upload.");
    this.problem = h("div", { class: "problem" });
    this.identity = h("p", { class: "identity" });
    this.row = h(
      "li",
      { class: "submission", dataset: { state: "ready" } },
      h("div", { class: "submission-head" }, h("strong", { class: "filename" }, file.name), " ", h("span", { class: "size" }, bytes(file.size))),
      field("Title (optional)", this.title),
      h("div", { class: "progress-line" }, this.progress, this.percent),
      this.status,
      this.problem,
      this.identity,
    );
    this.progress.setAttribute("aria-label", `Progress of ${file.name}`);
    this.started = false;
  }

  setState(state, sentence) {
    this.row.dataset.state = state;
    replace(this.status, sentence);
  }

  setProgress(done, total) {
    const value = total > 0 ? Math.floor((done / total) * 100) : 100;
    this.progress.value = value;
    this.progress.setAttribute("aria-valuetext", `${value}%`);
    replace(this.percent, `${value}%`);
  }

  fail(sentence, retry) {
    this.row.dataset.state = "failed";
    replace(this.problem, message("error", sentence), retry ? h("button", { type: "button", onclick: retry }, "Try again") : null);
  }

  clearProblem() {
    replace(this.problem);
  }

  /** Uploads (resuming an earlier upload of the same file) while hashing it, then follows the seal. */
  async run({ identity, metadata, uploading }) {
    this.started = true;
    const title = this.title.value.trim();
    this.title.closest(".field").replaceWith(h("p", { class: "declared-title" }, title ? ["Title: ", title] : "No title given."));
    const declared = { ...metadata, filename: this.file.name };
    if (title) declared.title = title;
    this.setState("queued", "Waiting to upload…");
    await uploading(() => this.upload(identity, declared));
  }

  /** The evidence id and SHA-256, as far as they are known. */
  showIdentity() {
    replace(
      this.identity,
      this.evidenceId ? ["Evidence id ", h("code", {}, this.evidenceId), " · "] : null,
      "SHA-256 ",
      this.sha256 ? h("code", {}, this.sha256) : "being computed in this browser…",
    );
  }

  async upload(identity, declared) {
    const endpoint = `${baseUrl("intake")}${UPLOADS_PATH}`;
    // Read apart from the chunks being sent: a read gone wrong on either side makes the vault
    // reject the item instead of sealing what this device does not hold.
    const digest = sha256OfFile(this.file);
    digest.then(
      (hex) => { this.sha256 = hex; this.showIdentity(); },
      (err) => { this.unreadable = `This browser could not read the file to its end (${err?.message ?? err}); nothing was sealed. Pick it again and retry.`; },
    );
    let fingerprint;
    try {
      // An empty file has no PATCH to state its SHA-256: it is declared at creation.
      if (this.file.size === 0) declared = { ...declared, sha256: await digest };
      fingerprint = await resumeFingerprint({ sub: identity.sub, endpoint, file: this.file, metadata: declared });
    } catch (err) {
      this.fail(`This browser could not read the file (${err?.message ?? err}). Pick it again and retry.`);
      return;
    }
    this.showIdentity();
    return new Promise((resolve) => {
      let done = false;
      const sizes = new ChunkSizes();
      const upload = new tus.Upload(this.file, {
        endpoint,
        chunkSize: sizes.size,
        // tus-js-client reads chunkSize anew for every PATCH
        httpStack: new ChunkedHttpStack(
          (sent, seconds) => { upload.options.chunkSize = sizes.after(sent, seconds); },
          undefined,
          { size: this.file.size, sha256: () => digest },
        ),
        retryDelays: RETRY_DELAYS,
        metadata: declared,
        fingerprint: () => Promise.resolve(fingerprint),
        urlStorage: storage,
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        addRequestId: true,
        onBeforeRequest: (req) => {
          req.setHeader("Authorization", `Bearer ${currentToken()}`);
        },
        onShouldRetry: (err) => {
          if (this.unreadable) return false;
          if (!navigator.onLine) return false; // waits for the "online" event instead
          const status = err?.originalResponse?.getStatus() ?? 0;
          // 460: intake refused a chunk damaged on the way and kept none of it: send it again
          return status === 0 || status === 409 || status === 423 || status === 429 || status === 460 || status >= 500;
        },
        onUploadUrlAvailable: () => {
          this.evidenceId = evidenceIdOf(upload.url);
          this.row.dataset.evidenceId = this.evidenceId;
          rememberSubmission(identity.sub, this.evidenceId);
          this.showIdentity();
        },
        onProgress: (sent, total) => {
          this.setProgress(sent, total);
          if (this.row.dataset.state !== "uploading") {
            this.clearProblem();
            this.setState("uploading", "Uploading…");
          }
        },
        onSuccess: () => {
          done = true;
          this.setProgress(this.file.size, this.file.size);
          this.setState("uploaded", "Uploaded; waiting for intake to confirm every byte arrived.");
          resolve();
          this.follow(evidenceIdOf(upload.url));
        },
        onError: (err) => {
          if (done) return;
          if (this.unreadable) {
            this.fail(this.unreadable);
            resolve();
            return;
          }
          if (!navigator.onLine) {
            this.setState("offline", `The connection was lost at ${this.progress.value}%. The upload resumes by itself when the network is back; keep this page open.`);
            window.addEventListener("online", () => {
              this.setState("uploading", "The network is back; resuming the upload…");
              upload.start();
            }, { once: true });
            return;
          }
          this.fail(tusFailure(err), () => {
            this.clearProblem();
            this.setState("uploading", "Resuming the upload…");
            upload.start();
          });
          resolve();
        },
      });
      upload.findPreviousUploads().then((previous) => {
        if (previous.length) {
          upload.resumeFromPreviousUpload(previous[0]);
          this.setState("uploading", "Resuming an earlier upload of this file from where it stopped…");
        } else {
          this.setState("uploading", "Uploading…");
        }
        upload.start();
      });
    });
  }

  async follow(id) {
    const outcome = await followSubmission(id, (state, sentence) => this.setState(state, sentence), () => this.row.isConnected);
    if (outcome === "sealed") this.progress.classList.add("complete");
  }
}

function validateMetadata(form) {
  const problems = [];
  const metadata = {};
  const caseName = form.caseInput.value.trim();
  if (!CASE_PATTERN.test(caseName)) problems.push([form.caseInput, "Choose the case these files belong to."]);
  metadata.case = caseName;
  if (form.captured.value) {
    const moment = new Date(form.captured.value);
    if (Number.isNaN(moment.getTime())) problems.push([form.captured, "Give the capture time as a date and a time."]);
    else if (moment.getTime() > Date.now()) problems.push([form.captured, "The capture time is in the future; check the date."]);
    else metadata.captured_at = moment.toISOString();
  }
  for (const [input, name, limit] of [[form.lat, "lat", 90], [form.lon, "lon", 180]]) {
    const text = input.value.trim();
    if (!text) continue;
    const value = Number(text);
    if (!Number.isFinite(value) || Math.abs(value) > limit) {
      problems.push([input, `${name === "lat" ? "Latitude" : "Longitude"} must be a number of degrees between -${limit} and ${limit}, e.g. 47.1.`]);
    } else {
      metadata[name] = String(value);
    }
  }
  const notes = form.notes.value.trim();
  if (notes.length > 10000) problems.push([form.notes, "Notes may hold at most 10,000 characters; shorten them."]);
  if (notes) metadata.notes = notes;
  return { metadata, problems };
}

async function renderEarlier(section, identity) {
  const entries = await storage.findAllUploads();
  const remembered = rememberedSubmissions(identity.sub);
  const unfinished = entries.map((entry) => ({ ...entry, id: evidenceIdOf(entry.uploadUrl) }));
  const list = h("ul", { class: "earlier" });
  const rows = [];
  for (const { id } of remembered) {
    const status = h("span", { class: "status", role: "status" }, "Asking…");
    const row = h("li", { dataset: { evidenceId: id } }, h("code", {}, id), " ", status);
    rows.push([row, status, id]);
    list.append(row);
  }
  replace(
    section,
    h("h3", {}, "Earlier submissions from this browser"),
    unfinished.length
      ? message("info", `${unfinished.length} upload${unfinished.length > 1 ? "s were" : " was"} interrupted in this browser. Pick the same file again, with the same case and details, and it resumes where it stopped.`)
      : null,
    remembered.length
      ? [list, h("button", { type: "button", class: "quiet", onclick: () => { forgetSubmissions(identity.sub); renderEarlier(section, identity); } }, "Forget this list")]
      : h("p", { class: "hint" }, "None yet. Only evidence ids are kept here, never file names or details."),
  );
  for (const [row, status, id] of rows) {
    followSubmission(id, (state, sentence) => {
      row.dataset.state = state;
      replace(status, sentence);
    }, () => row.isConnected);
  }
}

/** The investigator's page, for the person `identity` ({sub, roles, cases}). */
export function investigatorPage(identity) {
  const cases = identity.cases.filter((c) => c !== "*");
  const caseInput = h("select", { required: true }, cases.length > 1 ? h("option", { value: "" }, "Choose a case…") : null, cases.map((c) => h("option", { value: c }, c)));
  const files = h("input", { type: "file", multiple: true });
  const captured = h("input", { type: "datetime-local", step: 1 });
  const lat = h("input", { type: "text", inputmode: "decimal", autocomplete: "off" });
  const lon = h("input", { type: "text", inputmode: "decimal", autocomplete: "off" });
  const notes = h("textarea", { rows: 3, maxlength: 10000 });
  const problems = h("div", { class: "form-problems" });
  const submissions = h("ol", { class: "submissions", "aria-label": "Files to submit" });
  const submit = h("button", { type: "submit", class: "primary" }, "Upload");
  const earlier = h("section", { class: "earlier-section", "aria-label": "Earlier submissions" });
  const pending = [];
  const uploading = limiter(2);

  const countLabel = () => {
    const waiting = pending.filter((s) => !s.started).length;
    submit.textContent = waiting > 1 ? `Upload ${waiting} files` : "Upload";
  };

  files.addEventListener("change", () => {
    for (const file of files.files) {
      const submission = new Submission(file);
      pending.push(submission);
      submissions.append(submission.row);
    }
    files.value = "";
    countLabel();
  });

  const form = h(
    "form",
    { class: "stack", novalidate: true },
    field("Case", caseInput, cases.length ? null : "You are not assigned any case; ask an administrator to assign you one."),
    field("Files", files, "Pick one or several. Each is hashed here while it is sent, and sealed only if what the vault stored hashes the same."),
    submissions,
    h(
      "fieldset",
      {},
      h("legend", {}, "What is known about them (optional)"),
      field("Captured at", captured, "In your local time; leave empty if unknown."),
      h("div", { class: "pair" }, field("Latitude", lat, "Degrees, e.g. 47.1"), field("Longitude", lon, "Degrees, e.g. 37.5")),
      field("Notes", notes),
    ),
    problems,
    submit,
  );
  const inputs = { caseInput, captured, lat, lon, notes };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const { metadata, problems: found } = validateMetadata(inputs);
    const waiting = pending.filter((s) => !s.started);
    if (!waiting.length) found.push([files, "Pick at least one file to upload."]);
    for (const s of waiting) {
      if (s.title.value.trim().length > 500) found.push([s.title, `The title of ${s.file.name} is longer than 500 characters; shorten it.`]);
    }
    replace(problems, found.length ? message("error", found.map(([, text]) => text).join(" ")) : null);
    for (const input of Object.values(inputs)) input.removeAttribute("aria-invalid");
    for (const [input] of found) input.setAttribute("aria-invalid", "true");
    if (found.length) {
      found[0][0].focus();
      return;
    }
    const { case: caseName, ...rest } = metadata;
    for (const s of waiting) {
      s.run({ identity, metadata: { case: caseName, ...rest }, uploading });
    }
    countLabel();
  });
  countLabel();
  renderEarlier(earlier, identity);
  return h("section", { class: "page investigator", "aria-labelledby": "investigator-title" }, h("h2", { id: "investigator-title" }, "Submit evidence"), form, earlier);
}
