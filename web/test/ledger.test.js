// The browser's ledger checks: Merkle proofs against the published RFC 6962/9162 vectors and a
// tree built here by the RFC's own recursion; signed-note checkpoints; custody chains.

import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { ed25519 } from "@noble/curves/ed25519.js";

import {
  EMPTY_ROOT,
  VerificationFailed,
  checkChain,
  ed25519KeyId,
  fromBase64,
  leafHash,
  nodeHash,
  openCheckpoint,
  parseLogKey,
  toBase64,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from "../src/ledger.js";

const here = dirname(fileURLToPath(import.meta.url));
// shared/testdata sits beside the checkout (CI clones elsewhere with shared/ beside it).
const VECTORS = join(here, "..", "..", "..", "shared", "testdata", "merkle");

function vectorFiles(kind) {
  const out = [];
  const walk = (folder) => {
    for (const name of readdirSync(folder).sort()) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".json")) out.push(path);
    }
  };
  walk(join(VECTORS, kind));
  assert.ok(out.length > 0, `no ${kind} vectors under ${VECTORS}: the shared test data must sit beside the checkout`);
  return out;
}

const b64 = (value) => (value ? fromBase64(value, "vector") : new Uint8Array(0));
const utf8 = (text) => new TextEncoder().encode(text);

// --- a reference tree, by the literal RFC 6962 §2.1 recursion ------------------------------

function split(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function mth(hashes) {
  if (hashes.length === 0) return EMPTY_ROOT;
  if (hashes.length === 1) return hashes[0];
  const k = split(hashes.length);
  return nodeHash(mth(hashes.slice(0, k)), mth(hashes.slice(k)));
}

function path(m, hashes) {
  if (hashes.length === 1) return [];
  const k = split(hashes.length);
  if (m < k) return [...path(m, hashes.slice(0, k)), mth(hashes.slice(k))];
  return [...path(m - k, hashes.slice(k)), mth(hashes.slice(0, k))];
}

function subproof(m, hashes, whole) {
  const n = hashes.length;
  if (m === n) return whole ? [] : [mth(hashes)];
  const k = split(n);
  if (m <= k) return [...subproof(m, hashes.slice(0, k), whole), mth(hashes.slice(k))];
  return [...subproof(m - k, hashes.slice(k), false), mth(hashes.slice(0, k))];
}

const leaves = (n) => Array.from({ length: n }, (_, i) => leafHash(utf8(`leaf ${i}`)));

describe("inclusion and consistency", () => {
  test("every published inclusion vector", () => {
    for (const file of vectorFiles("inclusion")) {
      const c = JSON.parse(readFileSync(file, "utf8"));
      const run = () => verifyInclusion(b64(c.leafHash), c.leafIdx, c.treeSize, (c.proof ?? []).map(b64), b64(c.root));
      if (c.wantErr) assert.throws(run, VerificationFailed, file);
      else assert.doesNotThrow(run, file);
    }
  });

  test("every published consistency vector", () => {
    for (const file of vectorFiles("consistency")) {
      const c = JSON.parse(readFileSync(file, "utf8"));
      const run = () => verifyConsistency(c.size1, c.size2, (c.proof ?? []).map(b64), b64(c.root1), b64(c.root2));
      if (c.wantErr) assert.throws(run, VerificationFailed, file);
      else assert.doesNotThrow(run, file);
    }
  });

  test("the README's roots are what the reference tree computes", () => {
    const data = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
    const hashes = data.map((h) => leafHash(Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16))));
    assert.equal(toHex(mth(hashes)), "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
    assert.equal(toHex(mth(hashes.slice(0, 3))), "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77");
  });

  test("every leaf of every small tree is proven, and nothing else", () => {
    for (let size = 1; size <= 40; size += 1) {
      const hashes = leaves(size);
      const root = mth(hashes);
      for (let index = 0; index < size; index += 1) {
        const proof = path(index, hashes);
        verifyInclusion(hashes[index], index, size, proof, root);
        assert.throws(() => verifyInclusion(leafHash(utf8("forged")), index, size, proof, root), VerificationFailed);
        assert.throws(() => verifyInclusion(hashes[index], index, size, [...proof, root], root), VerificationFailed);
        if (size > 1) {
          assert.throws(() => verifyInclusion(hashes[index], (index + 1) % size, size, proof, root), VerificationFailed);
          assert.throws(() => verifyInclusion(hashes[index], index, size, proof.slice(0, -1), root), VerificationFailed);
        }
      }
    }
  });

  test("every prefix of every small tree is consistent, and a fork is not", () => {
    for (let size2 = 1; size2 <= 33; size2 += 1) {
      const hashes = leaves(size2);
      for (let size1 = 1; size1 <= size2; size1 += 1) {
        const proof = size1 < size2 ? subproof(size1, hashes, true) : [];
        verifyConsistency(size1, size2, proof, mth(hashes.slice(0, size1)), mth(hashes));
        if (size1 < size2) {
          assert.throws(
            () => verifyConsistency(size1, size2, proof, mth(hashes.slice(0, size1)), mth(leaves(size2 + 1))),
            VerificationFailed,
          );
          assert.throws(() => verifyConsistency(size1, size2, proof, leafHash(utf8("other")), mth(hashes)), VerificationFailed);
        }
      }
    }
  });

  test("indexes beyond 32 bits keep their meaning", () => {
    const size = 2 ** 40 + 3;
    const proof = Array.from({ length: 41 }, (_, i) => leafHash(utf8(`p${i}`)));
    // a proof for the last leaf of this tree folds to some root; it must not fold for a neighbour
    assert.throws(() => verifyInclusion(leafHash(utf8("x")), size - 1, size, proof, EMPTY_ROOT), VerificationFailed);
    assert.throws(() => verifyInclusion(leafHash(utf8("x")), size, size, proof, EMPTY_ROOT), /outside a tree/);
  });
});

// --- keys and checkpoints --------------------------------------------------------------------

const ORIGIN = "custody.test/log";

function newKey() {
  const secret = ed25519.utils.randomSecretKey();
  return { secret, raw: ed25519.getPublicKey(secret) };
}

function vkey(key, origin = ORIGIN) {
  return `${origin}+${toHex(ed25519KeyId(origin, key.raw))}+${toBase64(Uint8Array.of(1, ...key.raw))}`;
}

function note(key, size, root, { origin = ORIGIN, name = origin } = {}) {
  const body = `${origin}\n${size}\n${toBase64(root)}\n`;
  const sig = ed25519.sign(utf8(body), key.secret);
  return `${body}\n\u2014 ${name} ${toBase64(Uint8Array.of(...ed25519KeyId(name, key.raw), ...sig))}\n`;
}

describe("log keys and checkpoints", () => {
  const key = newKey();

  test("a verifier key is read, and an altered one refused", () => {
    const parsed = parseLogKey(vkey(key));
    assert.equal(parsed.name, ORIGIN);
    assert.deepEqual([...parsed.publicKey], [...key.raw]);
    assert.throws(() => parseLogKey(vkey(key).replace(ORIGIN, "other.test/log")), /altered/);
    assert.throws(() => parseLogKey("not a key"), VerificationFailed);
  });

  test("a checkpoint signed by the pinned key opens", () => {
    const root = mth(leaves(5));
    const opened = openCheckpoint(note(key, 5, root), parseLogKey(vkey(key)));
    assert.equal(opened.size, 5n);
    assert.deepEqual([...opened.root], [...root]);
  });

  test("an altered checkpoint, another key or another origin is refused", () => {
    const pinned = parseLogKey(vkey(key));
    const good = note(key, 5, mth(leaves(5)));
    assert.throws(() => openCheckpoint(good.replace("\n5\n", "\n6\n"), pinned), /does not verify/);
    assert.throws(() => openCheckpoint(note(newKey(), 5, mth(leaves(5))), pinned), /not signed by the pinned/);
    assert.throws(() => openCheckpoint(note(key, 5, mth(leaves(5)), { origin: "evil/log", name: ORIGIN }), pinned), /not the pinned/);
    assert.throws(() => openCheckpoint(good.replace("\n\n", "\n"), pinned), /no signature block/);
  });
});

// --- custody chains ----------------------------------------------------------------------------

function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

/** A log of `others` unrelated entries and the item's events interleaved, and its chain answer. */
function chainOf(key, evidenceId, actions) {
  const log = [];
  const mine = [];
  let prev = null;
  actions.forEach((action, i) => {
    log.push(utf8(canonical({ event: { action: "key_announced" }, item_seq: null, logged_at: "t", prev_leaf: null })));
    const entry = { event: { action, evidence_id: evidenceId }, item_seq: i + 1, logged_at: `2024-05-0${i + 1}T00:00:00Z`, prev_leaf: prev };
    const leaf = utf8(canonical(entry));
    prev = toHex(leafHash(leaf));
    mine.push({ index: log.length, leaf, entry });
    log.push(leaf);
  });
  const hashes = log.map(leafHash);
  const answer = {
    checkpoint: note(key, log.length, mth(hashes)),
    events: mine.map(({ index, leaf, entry }) => ({
      index,
      leaf: toBase64(leaf),
      entry,
      inclusion: path(index, hashes).map(toBase64),
    })),
  };
  return answer;
}

describe("custody chains", () => {
  const key = newKey();
  const pinned = parseLogKey(vkey(key));
  const item = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

  test("an untouched chain is green throughout", () => {
    const result = checkChain(chainOf(key, item, ["submitted", "received", "sealed", "accessed"]), pinned, item);
    assert.equal(result.checkpointError, null);
    assert.deepEqual(result.events.map((e) => e.ok), [true, true, true, true]);
  });

  test("an altered stored leaf turns its own mark red, with the reason", () => {
    const answer = chainOf(key, item, ["submitted", "received", "sealed"]);
    const altered = JSON.parse(atob(answer.events[1].leaf));
    altered.logged_at = "2024-05-09T00:00:00Z";
    answer.events[1].leaf = toBase64(utf8(canonical(altered)));
    answer.events[1].entry = altered;
    const result = checkChain(answer, pinned, item);
    assert.deepEqual(result.events.map((e) => e.ok), [true, false, true]);
    assert.match(result.events[1].problem, /not in the signed log/);
    assert.match(result.events[2].caveat, /cannot be checked/);
  });

  test("a broken link between two logged events is red", () => {
    const answer = chainOf(key, item, ["submitted", "received", "sealed"]);
    answer.events.splice(1, 1); // a logged event left out of the answer
    const result = checkChain(answer, pinned, item);
    assert.deepEqual(result.events.map((e) => e.ok), [true, false]);
    assert.match(result.events[1].problem, /an event is missing/);
    assert.match(result.events[1].problem, /does not link/);
  });

  test("an entry shown differently from its leaf, or a missing event, is red", () => {
    const answer = chainOf(key, item, ["submitted", "received", "sealed"]);
    answer.events[0].entry = { ...answer.events[0].entry, logged_at: "changed" };
    answer.events.splice(1, 1);
    const result = checkChain(answer, pinned, item);
    assert.match(result.events[0].problem, /differs from the leaf/);
    assert.match(result.events[1].problem, /an event is missing/);
  });

  test("a checkpoint by another key fails every event", () => {
    const result = checkChain(chainOf(newKey(), item, ["submitted", "received"]), pinned, item);
    assert.match(result.checkpointError, /not signed by the pinned log key/);
    assert.deepEqual(result.events.map((e) => e.ok), [false, false]);
  });
});
