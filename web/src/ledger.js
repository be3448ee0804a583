// Checks of what the custody ledger returns, trusting nothing but a pinned log key.
//
// - Merkle proofs per RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), with RFC 6962
//   hashing (leaf SHA-256(0x00 ‖ leaf), node SHA-256(0x01 ‖ left ‖ right)).
// - Checkpoints as C2SP signed notes: body "ORIGIN\nSIZE\nBASE64(ROOT)\n[extensions]", a blank
//   line, then signature lines "— NAME BASE64(KEYID4 ‖ SIG)"; Ed25519 key ids are
//   SHA-256(NAME ‖ 0x0A ‖ 0x01 ‖ PUBKEY)[:4]; verifier keys read NAME+KEYIDHEX+BASE64(0x01 ‖ PUBKEY).
// - An item's custody chain, one verdict per event: its leaf included under the signed
//   checkpoint, its entry the leaf it claims to be, item_seq counting 1, 2, 3, … and each
//   prev_leaf the leaf hash of the item's entry before it.
//
// Sizes and indexes are BigInt inside the proof arithmetic: JavaScript's bit operators work
// on 32 bits only.

import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";

export const HASH_SIZE = 32;
export const EMPTY_ROOT = sha256(new Uint8Array(0));
const ED25519 = 0x01;
const SIGNATURE_PREFIX = "\u2014 ";
const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const encoder = new TextEncoder();

/** A check of the ledger failed; the message says what, for a person to read. */
export class VerificationFailed extends Error {
  constructor(message) {
    super(message);
    this.name = "VerificationFailed";
  }
}

/** Standard padded base64 to bytes; VerificationFailed names `what` when it is not base64. */
export function fromBase64(text, what) {
  if (typeof text !== "string" || !BASE64.test(text)) {
    throw new VerificationFailed(`${what} is not base64`);
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Bytes to standard padded base64. */
export function toBase64(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Bytes to lowercase hex. */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new VerificationFailed("not lowercase hex");
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Constant-time comparison of two byte strings. */
export function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** RFC 6962 leaf hash: SHA-256(0x00 ‖ leaf). */
export function leafHash(leaf) {
  return sha256(concat(Uint8Array.of(0), leaf));
}

/** RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

function checkHashes(what, ...hashes) {
  for (const h of hashes) {
    if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
      throw new VerificationFailed(`${what}: a hash has ${h?.length ?? 0} bytes instead of ${HASH_SIZE}`);
    }
  }
}

function big(value, what) {
  if (typeof value === "bigint") return value;
  if (!Number.isSafeInteger(value)) throw new VerificationFailed(`${what} is not a whole number`);
  return BigInt(value);
}

/** The root that `proof` yields for leaf hash `leaf` at `index` of a tree of `size` leaves. */
export function rootFromInclusion(leaf, index, size, proof) {
  let fn = big(index, "leaf index");
  let sn = big(size, "tree size") - 1n;
  if (fn < 0n || fn > sn) {
    throw new VerificationFailed(`inclusion proof: leaf index ${index} is outside a tree of size ${size}`);
  }
  checkHashes("inclusion proof", leaf, ...proof);
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new VerificationFailed("inclusion proof is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerificationFailed("inclusion proof is shorter than the tree is deep");
  return r;
}

/** Throws VerificationFailed unless `proof` shows leaf hash `leaf` at `index` under `root`. */
export function verifyInclusion(leaf, index, size, proof, root) {
  checkHashes("inclusion proof", root);
  if (!sameBytes(rootFromInclusion(leaf, index, size, proof), root)) {
    throw new VerificationFailed(`inclusion proof of leaf ${index} does not lead to the root of the tree of size ${size}`);
  }
}

/** Throws VerificationFailed unless the tree (size1, root1) is a prefix of (size2, root2). */
export function verifyConsistency(size1, size2, proof, root1, root2) {
  const s1 = big(size1, "first size");
  const s2 = big(size2, "second size");
  if (s1 < 0n || s1 > s2) throw new VerificationFailed(`consistency proof: size ${size1} cannot grow into size ${size2}`);
  if (s1 === s2) {
    if (proof.length) throw new VerificationFailed("consistency proof between equal sizes must be empty");
    if (s1 === 0n) {
      checkHashes("consistency proof", root1, root2);
      if (!(sameBytes(root1, EMPTY_ROOT) && sameBytes(root2, EMPTY_ROOT))) {
        throw new VerificationFailed("the empty tree has a different root");
      }
    } else if (!sameBytes(root1, root2)) {
      throw new VerificationFailed(`two checkpoints of size ${size1} have different roots: the log forked`);
    }
    return;
  }
  if (s1 === 0n) {
    checkHashes("consistency proof", root1, root2);
    if (proof.length) throw new VerificationFailed("consistency proof from the empty tree must be empty");
    if (!sameBytes(root1, EMPTY_ROOT)) throw new VerificationFailed("the empty tree has a different root");
    return;
  }
  if (!proof.length) throw new VerificationFailed("consistency proof is empty");
  checkHashes("consistency proof", root1, root2, ...proof);
  const path = [...proof];
  if ((s1 & (s1 - 1n)) === 0n) path.unshift(root1);
  let fn = s1 - 1n;
  let sn = s2 - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new VerificationFailed("consistency proof is longer than the trees are deep");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerificationFailed("consistency proof is shorter than the trees are deep");
  if (!sameBytes(fr, root1)) throw new VerificationFailed(`consistency proof does not lead to the root of size ${size1}`);
  if (!sameBytes(sr, root2)) {
    throw new VerificationFailed(`consistency proof does not lead to the root of size ${size2}: the log forked`);
  }
}

// --- signed notes and checkpoints ---------------------------------------------------------

/** The C2SP key id of an Ed25519 note key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]. */
export function ed25519KeyId(name, publicKey) {
  return sha256(concat(encoder.encode(name), Uint8Array.of(0x0a, ED25519), publicKey)).slice(0, 4);
}

/** A pinned verifier key of the custody log, read from NAME+KEYIDHEX+BASE64(0x01 ‖ PUBKEY). */
export function parseLogKey(text) {
  const trimmed = String(text ?? "").trim();
  const first = trimmed.indexOf("+");
  const second = first < 0 ? -1 : trimmed.indexOf("+", first + 1);
  if (first <= 0 || second < 0) {
    throw new VerificationFailed("the log key must read ORIGIN+KEYID+BASE64, as the audit service's /v1/log/key gives it");
  }
  const name = trimmed.slice(0, first);
  const keyIdHex = trimmed.slice(first + 1, second);
  const encoded = trimmed.slice(second + 1);
  if (/[\s+]/.test(name)) throw new VerificationFailed("the log key's name must not contain spaces or '+'");
  if (!/^[0-9a-f]{8}$/.test(keyIdHex)) throw new VerificationFailed("the log key's id must be 8 lowercase hex digits");
  const raw = fromBase64(encoded, "the log key");
  if (raw.length !== 33 || raw[0] !== ED25519) throw new VerificationFailed("the log key is not an Ed25519 note key");
  const publicKey = raw.slice(1);
  const keyId = fromHex(keyIdHex);
  if (!sameBytes(ed25519KeyId(name, publicKey), keyId)) {
    throw new VerificationFailed("the log key's id does not match its name and key: it was altered");
  }
  return { name, keyId, publicKey, text: trimmed };
}

/**
 * The checkpoint in signed note `note`, after checking it is signed by `key` and names
 * `key`'s origin: {origin, size (BigInt), root (bytes), extensions}.
 */
export function openCheckpoint(note, key) {
  if (typeof note !== "string") throw new VerificationFailed("there is no checkpoint");
  if ([...note].some((c) => c.charCodeAt(0) < 0x20 && c !== "\n")) {
    throw new VerificationFailed("the checkpoint holds control characters");
  }
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new VerificationFailed("the checkpoint has no signature block (no blank line)");
  const body = note.slice(0, split) + "\n";
  const signatures = note.slice(split + 2).split("\n");
  if (signatures.length && signatures[signatures.length - 1] === "") signatures.pop();
  if (!signatures.length) throw new VerificationFailed("the checkpoint has no signature lines");
  let found = false;
  for (const line of signatures) {
    if (!line.startsWith(SIGNATURE_PREFIX)) {
      throw new VerificationFailed(`the checkpoint has a malformed signature line: ${JSON.stringify(line.slice(0, 60))}`);
    }
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(" ");
    const name = space < 0 ? rest : rest.slice(0, space);
    const blob = fromBase64(space < 0 ? "" : rest.slice(space + 1), "a checkpoint signature");
    if (blob.length < 5) throw new VerificationFailed("a checkpoint signature is too short to hold a key id");
    if (name !== key.name || !sameBytes(blob.slice(0, 4), key.keyId)) continue; // a cosigner: not ours to judge
    let valid = false;
    try {
      valid = ed25519.verify(blob.slice(4), encoder.encode(body), key.publicKey);
    } catch {
      valid = false;
    }
    if (!valid) throw new VerificationFailed(`the checkpoint's signature by ${key.name} does not verify: the checkpoint was altered`);
    found = true;
  }
  if (!found) throw new VerificationFailed(`the checkpoint is not signed by the pinned log key ${key.name}`);
  const lines = body.split("\n").slice(0, -1);
  if (lines.length < 3) throw new VerificationFailed("the checkpoint body needs origin, size and root lines");
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin !== key.name) {
    throw new VerificationFailed(`the checkpoint is for log ${JSON.stringify(origin)}, not the pinned ${JSON.stringify(key.name)}`);
  }
  if (!DECIMAL.test(sizeText)) throw new VerificationFailed(`the checkpoint size ${JSON.stringify(sizeText)} is not a decimal number`);
  const root = fromBase64(rootText, "the checkpoint root");
  checkHashes("the checkpoint root", root);
  return { origin, size: BigInt(sizeText), root, extensions };
}

// --- custody chains -------------------------------------------------------------------------

const decoder = new TextDecoder("utf-8", { fatal: true });

function sameJson(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && sameJson(a[k], b[k]));
}

/**
 * One verdict per event of a custody chain as `GET /v1/custody/{id}` returns it, checked
 * against the pinned log `key`: {checkpoint, checkpointError, events: [{index, entry, ok,
 * problem, caveat, leafHash}]}. A checkpoint that does not verify fails every event; otherwise
 * each event stands or falls on its own inclusion proof and its link to the previous event,
 * so an altered event is the one marked, not every event after it.
 */
export function checkChain(custody, key, evidenceId) {
  let checkpoint = null;
  let checkpointError = null;
  try {
    checkpoint = openCheckpoint(custody?.checkpoint, key);
  } catch (err) {
    if (!(err instanceof VerificationFailed)) throw err;
    checkpointError = err.message;
  }
  const events = Array.isArray(custody?.events) ? custody.events : [];
  let previousLeaf = null;
  let previousIndex = -1n;
  let previousAltered = false;
  const verdicts = events.map((event, position) => {
    const problems = [];
    let caveat = "";
    let included = false;
    let hashed = null;
    let entry = event?.entry ?? null;
    const index = Number.isSafeInteger(event?.index) ? BigInt(event.index) : null;
    try {
      if (index === null) throw new VerificationFailed("the event has no log index");
      const leaf = fromBase64(event.leaf, "the leaf");
      hashed = leafHash(leaf);
      if (checkpointError) {
        problems.push(`the checkpoint did not verify (${checkpointError})`);
      } else {
        const proof = (Array.isArray(event.inclusion) ? event.inclusion : null)?.map((p) => fromBase64(p, "the inclusion proof"));
        if (!proof) throw new VerificationFailed("the event has no inclusion proof");
        try {
          verifyInclusion(hashed, index, checkpoint.size, proof, checkpoint.root);
          included = true;
        } catch (err) {
          if (!(err instanceof VerificationFailed)) throw err;
          problems.push(`its leaf is not in the signed log: ${err.message}; the log or this answer was altered`);
        }
      }
      let fromLeaf;
      try {
        fromLeaf = JSON.parse(decoder.decode(leaf));
      } catch {
        throw new VerificationFailed("the leaf is not JSON text");
      }
      if (!sameJson(fromLeaf, event.entry)) problems.push("the entry shown differs from the leaf in the log");
      entry = fromLeaf;
      if (typeof entry !== "object" || entry === null || typeof entry.event !== "object" || entry.event === null) {
        throw new VerificationFailed("the leaf holds no custody event");
      }
      if (entry.event.evidence_id !== evidenceId) {
        problems.push(`it is about item ${entry.event.evidence_id}, not ${evidenceId}`);
      }
      if (index <= previousIndex) problems.push(`it is out of log order (after index ${previousIndex})`);
      if (entry.item_seq !== position + 1) {
        problems.push(`it has item_seq ${JSON.stringify(entry.item_seq)} where ${position + 1} was due: an event is missing`);
      }
      const expectedPrev = previousLeaf === null ? null : toHex(previousLeaf);
      if (entry.prev_leaf !== expectedPrev) {
        // Behind a previous event that is not the logged one, the link cannot be judged from
        // this answer: that event's own mark is red already.
        if (previousAltered) caveat = `its link to event ${position} cannot be checked, because that event as shown is not the one logged`;
        else problems.push("it does not link to the item's previous event: the chain is broken");
      }
    } catch (err) {
      if (!(err instanceof VerificationFailed)) throw err;
      problems.push(err.message);
    }
    previousLeaf = hashed;
    previousAltered = !included && !checkpointError;
    if (index !== null) previousIndex = index;
    return {
      index: event?.index ?? null,
      entry,
      ok: problems.length === 0,
      problem: problems.join("; "),
      caveat,
      leafHash: hashed ? toHex(hashed) : null,
    };
  });
  return { checkpoint, checkpointError, events: verdicts };
}

/** The entry a log leaf (base64) holds, or null if it is not JSON. */
export function decodeLeaf(leafBase64) {
  try {
    return JSON.parse(decoder.decode(fromBase64(leafBase64, "the leaf")));
  } catch {
    return null;
  }
}
