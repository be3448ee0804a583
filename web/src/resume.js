// What the browser keeps to resume uploads and follow submissions after a reload: upload URLs,
// sizes and evidence ids only. No filename, title, case or other metadata is ever stored; an
// upload is found again by a fingerprint that is a hash, from which none of them can be read.

import { sha256 } from "@noble/hashes/sha2.js";

import { toHex } from "./ledger.js";

const RESUME_PREFIX = "custody.resume::";
const SUBMISSIONS_PREFIX = "custody.submissions::";
const KEEP_SUBMISSIONS = 50;

function readJson(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key) ?? "null") ?? fallback;
  } catch {
    return fallback;
  }
}

/** How much of a file's beginning tells it apart, with its size and modification time. */
const HEAD_BYTES = 1024 * 1024;

/**
 * The key of one upload in the resume storage: a SHA-256 over who uploads where, the file (its
 * size, modification time and first MiB, so it need not be read whole first) and what was
 * declared with it (so changed metadata starts a new upload).
 */
export async function resumeFingerprint({ sub, endpoint, file, metadata }) {
  const declared = Object.keys(metadata)
    .sort()
    .map((k) => [k, metadata[k]]);
  const head = toHex(sha256(new Uint8Array(await file.slice(0, HEAD_BYTES).arrayBuffer())));
  const text = JSON.stringify(["custody-resume/v2", sub, endpoint, file.size, file.lastModified, head, declared]);
  return toHex(sha256(new TextEncoder().encode(text)));
}

/** tus-js-client's URL storage interface over localStorage, keeping only URL, size and time. */
export class ResumeStorage {
  _entries(prefix) {
    const found = [];
    for (let i = 0; i < localStorage.length; i += 1) {
      const key = localStorage.key(i);
      if (!key?.startsWith(prefix)) continue;
      const entry = readJson(key, null);
      if (entry?.uploadUrl) found.push({ ...entry, urlStorageKey: key });
    }
    return found;
  }

  /** Every upload this browser may resume. */
  findAllUploads() {
    return Promise.resolve(this._entries(RESUME_PREFIX));
  }

  /** Uploads of one fingerprint. */
  findUploadsByFingerprint(fingerprint) {
    return Promise.resolve(this._entries(`${RESUME_PREFIX}${fingerprint}::`));
  }

  /** Forgets one upload. */
  removeUpload(urlStorageKey) {
    localStorage.removeItem(urlStorageKey);
    return Promise.resolve();
  }

  /** Remembers an upload's URL and size, and nothing else tus hands over (its metadata). */
  addUpload(fingerprint, upload) {
    const key = `${RESUME_PREFIX}${fingerprint}::${crypto.getRandomValues(new Uint32Array(1))[0]}`;
    const kept = { uploadUrl: upload.uploadUrl, size: upload.size, creationTime: upload.creationTime };
    localStorage.setItem(key, JSON.stringify(kept));
    return Promise.resolve(key);
  }
}

/** Evidence ids this browser submitted for `sub`, newest first: [{id, at}]. */
export function rememberedSubmissions(sub) {
  return readJson(`${SUBMISSIONS_PREFIX}${sub}`, []);
}

/** Adds a submission to follow after a reload. */
export function rememberSubmission(sub, id) {
  const kept = rememberedSubmissions(sub).filter((s) => s.id !== id);
  kept.unshift({ id, at: new Date().toISOString() });
  localStorage.setItem(`${SUBMISSIONS_PREFIX}${sub}`, JSON.stringify(kept.slice(0, KEEP_SUBMISSIONS)));
}

/** Forgets the submissions of `sub` (the items themselves are untouched). */
export function forgetSubmissions(sub) {
  localStorage.removeItem(`${SUBMISSIONS_PREFIX}${sub}`);
}
