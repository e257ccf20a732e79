"""Decontamination: no training turn may overlap a dev, test or evaluation prompt or answer.

Two steps. Candidate search: an index from the 64-bit hash of every word n-gram of the held-out
prompts and answers to the items that contain it; the n-gram hashes of a batch of training turns
(rolled from per-word hashes with numpy, no n-gram tuple built) are looked up in it, and every
held-out item sharing one is a candidate. Measure: for each candidate pair the number of distinct
n-grams both contain is counted from the index, and the similarity compared with the spec's
thresholds (`spec.data.decontamination`). Every pair that reaches a threshold is measured again
on the n-gram sets themselves (no sketch, no estimate) before a doc is removed, so a hash
collision never removes one; a value below a threshold (kept docs, the report's closest pairs)
differs from the exact one only if two distinct n-grams share a 64-bit hash (odds about 1 in
10^19 per pair):

- prompt_containment: share of a held-out prompt's n-grams found in the training turn (PaLM's
  test), so a training prompt that wraps the question ("Can anyone tell me: <question>") or a
  later turn that quotes it is caught. A prompt shorter than `ngram` words must occur whole as a
  phrase (value 1.0 or 0.0); one shorter than `min_words` must equal a training turn.
- answer_containment and answer_jaccard: a held-out answer (dev/test reference, a benchmark's
  reference) against each training turn, so a near-copy under a reworded prompt is caught.

Every user and assistant turn of a training doc is compared; a removal names the held-out item
(set, split, id, source, turn) and the measured similarity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

import numpy as np

from lima.curate.evalsets import SPLITS, LoadedSet
from lima.curate.ngrams import Gram, ngram_set, words
from lima.curate.records import Doc, Rejection, reject
from lima.curate.stats import Stats
from lima.spec.data import Decontamination

RULE = "contaminates_eval"
METRICS = ("prompt_containment", "answer_containment", "answer_jaccard")
_CODES = {name: code for code, name in enumerate(METRICS)}
BATCH = 2048
"""Training docs matched per vectorised step (bounds the memory of their word arrays)."""
DENSE_PAIRS = 1 << 22
"""Up to this many (turn, unit) cells, shared n-grams are counted in a dense array (no sort)."""
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Unit:
    """One held-out prompt or answer turn, with its normalised words."""

    set: str
    split: str
    id: str
    kind: str
    turn: int
    origin: tuple[tuple[str, str], ...]
    tokens: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "set": self.set,
            "split": self.split,
            "id": self.id,
            **dict(self.origin),
            "kind": self.kind,
            "turn": self.turn,
        }


@dataclass
class Match:
    unit: int
    metric: str
    similarity: float
    turn: int


def _units(
    config: Decontamination,
    where: dict[str, Any],
    prompts: Iterable[str],
    answers: Iterable[str | None],
) -> list[Unit]:
    origin = tuple((k, str(v)) for k, v in where.items() if k not in {"set", "split", "id"})
    base = {"set": where["set"], "split": where["split"], "id": str(where["id"]), "origin": origin}
    out = []
    for turn, text in enumerate(prompts):
        tokens = words(text)
        if tokens:  # shorter than `ngram` words: matched as a phrase
            out.append(Unit(**base, kind="prompt", turn=turn, tokens=tuple(tokens)))
    for turn, text in enumerate(answers):
        tokens = words(text or "")
        if len(tokens) >= config.ngram:  # a short reference ("4", "Paris") is no copy
            out.append(Unit(**base, kind="answer", turn=turn, tokens=tuple(tokens)))
    return out


def split_units(split: str, items: list[Doc], config: Decontamination) -> list[Unit]:
    """Units of the curated dev or test split (items carry their output `id`)."""
    out = []
    for item in items:
        where = {
            "set": split,
            "split": split,
            "id": item.id,
            "source": item.source,
            "file": item.file,
            "row": item.row,
        }
        turns = item.conversations
        out += _units(config, where, turns[0::2], turns[1::2])
    return out


def eval_units(loaded: LoadedSet, config: Decontamination) -> list[Unit]:
    out = []
    for prompt in loaded.prompts:
        where = {"set": loaded.name, "split": "eval", "id": prompt.id, "file": loaded.uri}
        out += _units(config, where, prompt.turns, prompt.references)
    return out


def gram_hashes(
    token_lists: Sequence[Sequence[str]], size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(word hashes, words per list, n-gram hashes, list index of each n-gram).

    Each word is hashed once (Python's string hash: the index and the turns are hashed in the
    same process) and the 64-bit hash of every run of `size` words is rolled from those with
    numpy, across all lists at once (`rolled`). No n-gram tuple is built.
    """
    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    hashed = np.fromiter(
        map(hash, chain.from_iterable(token_lists)), dtype=np.int64, count=int(lengths.sum())
    ).view(np.uint64)
    return hashed, lengths, *rolled(hashed, lengths, size)


def rolled(hashed: np.ndarray, lengths: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, list index) of every run of `size` words that lies inside one list."""
    positions = len(hashed) - size + 1
    if positions <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    grams = hashed[:positions].copy()
    for offset in range(1, size):
        grams *= _MULTIPLIER
        grams += hashed[offset : offset + positions]
    owner = np.repeat(np.arange(len(lengths)), lengths)[:positions]
    inside = np.arange(size, positions + size) <= np.cumsum(lengths)[owner]
    return grams[inside], owner[inside]


class _Filter:
    """Sorted distinct hashes with a bitmap in front: most lookups miss and stop at the bitmap."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        bits = max(16, min(26, (64 * max(1, len(keys))).bit_length()))
        self.mask = np.uint64((1 << bits) - 1)
        self.bitmap = np.zeros(1 << bits, dtype=bool)
        self.bitmap[(keys & self.mask).astype(np.intp)] = True

    def lookup(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `values` found in the keys, their index in the keys)."""
        if not len(self.keys):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        where = np.flatnonzero(self.bitmap[(values & self.mask).astype(np.intp)])
        at = np.minimum(np.searchsorted(self.keys, values[where]), len(self.keys) - 1)
        found = self.keys[at] == values[where]
        return where[found], at[found]


class Index:
    """Candidate search over the held-out units, then the measure of each candidate pair.

    Postings: the distinct n-gram hashes of every unit (sorted) and, per hash, the units that
    contain it. A batch of training turns is hashed the same way; the turn n-grams found in the
    postings give, per (turn, unit), the number of distinct n-grams they share, and from it the
    containment and Jaccard values. Pairs that reach a threshold are measured again on the n-gram
    sets themselves before anything is removed (`exact`), so a 64-bit hash collision never
    removes a doc.
    """

    def __init__(self, units: list[Unit], config: Decontamination) -> None:
        self.units, self.config = units, config
        n = config.ngram
        self.answers = np.array([unit.kind == "answer" for unit in units], dtype=bool)
        self.codes = np.where(self.answers, _CODES["answer_containment"], 0)
        sets = {name: i for i, name in enumerate(dict.fromkeys(unit.set for unit in units))}
        self.set_names = list(sets)
        self.set_of = np.array([sets[unit.set] for unit in units], dtype=np.int64)
        long = [i for i, unit in enumerate(units) if len(unit.tokens) >= n]
        _, _, grams, owner = gram_hashes([units[i].tokens for i in long], n)
        owner = np.asarray(long, dtype=np.int64)[owner]
        order = np.lexsort((owner, grams))
        grams, owner = grams[order], owner[order]
        distinct = np.ones(len(grams), dtype=bool)
        distinct[1:] = (grams[1:] != grams[:-1]) | (owner[1:] != owner[:-1])
        grams, self.postings = grams[distinct], owner[distinct]
        self.sizes = np.bincount(self.postings, minlength=len(units)).astype(np.float64)
        keys, first = np.unique(grams, return_index=True)
        self.starts = np.append(first, len(grams))
        self.grams = _Filter(keys)
        # A short prompt is a candidate where a turn has a run of as many words with the same
        # hash (then compared as text); one shorter than `min_words` only where a turn equals it.
        self.phrases: dict[int, tuple[_Filter, list[list[int]]]] = {}
        self.equal: dict[str, list[int]] = {}
        by_size: dict[int, list[int]] = {}
        for index, unit in enumerate(units):
            if unit.kind != "prompt" or len(unit.tokens) >= n:
                continue
            if len(unit.tokens) >= config.min_words:
                by_size.setdefault(len(unit.tokens), []).append(index)
            else:
                self.equal.setdefault(" ".join(unit.tokens), []).append(index)
        for size, members in by_size.items():
            _, _, hashes, _ = gram_hashes([units[i].tokens for i in members], size)
            table: dict[int, list[int]] = {}
            for value, index in zip(hashes.tolist(), members, strict=True):
                table.setdefault(value, []).append(index)
            keys = np.unique(hashes)
            self.phrases[size] = (_Filter(keys), [table[k] for k in keys.tolist()])
        self._exact_grams: dict[int, frozenset[Gram]] = {}

    def decide(self, conversations: list[list[str]]) -> list[tuple[list[Match], list[Match]]]:
        """Per conversation: its matches at a threshold (per held-out unit and metric the
        strongest turn, on a tie the earliest; exact similarities), and its closest match per
        (set, metric) (on a tie the lowest unit), measured for all conversations at once."""
        doc, unit, code, value, turn, tokens, turn_no = self._measure(conversations)
        out: list[tuple[list[Match], list[Match]]] = [([], []) for _ in conversations]
        limits = self._limits(code)
        hit = np.flatnonzero(value >= limits)
        turn_grams: dict[int, set[Gram]] = {}
        for row in hit.tolist():  # measured again on the n-gram sets, no hash
            at = int(turn[row])
            if at not in turn_grams:
                turn_grams[at] = ngram_set(tokens[at], self.config.ngram)
            value[row] = self.exact(int(unit[row]), int(code[row]), turn_grams[at])
        hit = hit[value[hit] >= limits[hit]]
        d, u, c, v, t = (a[hit] for a in (doc, unit, code, value, turn))
        order = np.lexsort((t, -v, c, u, d))
        d, u, c, v, t = (a[order] for a in (d, u, c, v, t))
        first = np.ones(len(d), dtype=bool)
        first[1:] = (d[1:] != d[:-1]) | (u[1:] != u[:-1]) | (c[1:] != c[:-1])
        rows = (a[first].tolist() for a in (d, u, c, v, turn_no[t]))
        for d_, u_, c_, v_, t_ in zip(*rows, strict=True):
            out[d_][0].append(Match(u_, METRICS[c_], v_, t_))
        # Closest per (doc, set, metric): the rows at their group's highest value, then the
        # lowest unit and the earliest turn among them.
        group = (doc * len(self.set_names) + self.set_of[unit]) * len(METRICS) + code
        top = np.full(len(conversations) * len(self.set_names) * len(METRICS), -1.0)
        np.maximum.at(top, group, value)
        at_top = np.flatnonzero(value == top[group])
        g, d, u, c, v, t = (a[at_top] for a in (group, doc, unit, code, value, turn))
        order = np.lexsort((t, u, g))
        g, d, u, c, v, t = (a[order] for a in (g, d, u, c, v, t))
        first = np.ones(len(g), dtype=bool)
        first[1:] = g[1:] != g[:-1]
        rows = (a[first].tolist() for a in (d, u, c, v, turn_no[t]))
        for d_, u_, c_, v_, t_ in zip(*rows, strict=True):
            out[d_][1].append(Match(u_, METRICS[c_], v_, t_))
        return out

    def _measure(self, conversations: list[list[str]]) -> tuple[Any, ...]:
        """(doc, unit, metric code, similarity, turn) arrays of every candidate pair and metric
        (turn: an index into the batch's turns), the turns' words, and each turn's number in
        its doc."""
        n = self.config.ngram
        tokens = [words(text) for text in chain.from_iterable(conversations)]
        counts = np.fromiter(map(len, conversations), dtype=np.int64, count=len(conversations))
        turn_doc = np.repeat(np.arange(len(conversations)), counts)
        turn_no = np.arange(len(tokens)) - np.repeat(np.cumsum(counts) - counts, counts)
        hashed, lengths, grams, owner = gram_hashes(tokens, n)
        # Candidates: (turn, unit) pairs sharing an n-gram; counting the distinct shared hashes
        # gives |unit n-grams & turn n-grams|.
        turn, unit, shared = self._shared(grams, owner, len(tokens))
        value = shared / self.sizes[unit]
        code = self.codes[unit]
        # Answer Jaccard needs each candidate turn's number of distinct n-grams: its n-grams
        # sorted by hash (stable, so by turn within a hash), repeats within a turn subtracted.
        answer = self.answers[unit]
        wanted = np.zeros(len(tokens), dtype=bool)
        wanted[turn[answer]] = True
        mine = wanted[owner]
        own, own_grams = owner[mine], grams[mine]
        order = np.argsort(own_grams, kind="stable")
        by_hash, own_grams = own[order], own_grams[order]
        repeat = (own_grams[1:] == own_grams[:-1]) & (by_hash[1:] == by_hash[:-1])
        turn_sizes = np.bincount(own, minlength=len(tokens)) - np.bincount(
            by_hash[1:][repeat], minlength=len(tokens)
        )
        jt, ju, js = turn[answer], unit[answer], shared[answer]
        jaccard = js / (self.sizes[ju] + turn_sizes[jt] - js)
        phrase_turn, phrase_unit = self._phrase_hits(tokens, hashed, lengths)
        turn = np.concatenate([turn, jt, phrase_turn])
        unit = np.concatenate([unit, ju, phrase_unit])
        code = np.concatenate(
            [code, np.full(len(jt), _CODES["answer_jaccard"]), np.zeros(len(phrase_unit), int)]
        )
        value = np.concatenate([value, jaccard, np.ones(len(phrase_unit))])
        return turn_doc[turn], unit, code, value, turn, tokens, turn_no

    def _limits(self, code: np.ndarray) -> np.ndarray:
        jaccard = code == _CODES["answer_jaccard"]
        return np.where(jaccard, self.config.answer_jaccard, self.config.containment)

    def _shared(
        self, grams: np.ndarray, owner: np.ndarray, turns: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(turn, unit, number of distinct n-grams they share) of every candidate pair."""
        at, key = self.grams.lookup(grams)
        keys, units = max(1, len(self.grams.keys)), max(1, len(self.units))
        turn, key = np.divmod(np.unique(owner[at] * keys + key), keys)  # each n-gram once a turn
        # Every posting of every hit n-gram, as turn * units + unit, counted per pair.
        width = self.starts[key + 1] - self.starts[key]
        offsets = np.repeat(self.starts[key] - (np.cumsum(width) - width), width)
        flat = np.repeat(turn * units, width) + self.postings[np.arange(len(offsets)) + offsets]
        if turns * units <= min(DENSE_PAIRS, 8 * len(flat)):
            counts = np.bincount(flat, minlength=turns * units)
            pairs = np.flatnonzero(counts)
            shared = counts[pairs]
        else:
            pairs, shared = np.unique(flat, return_counts=True)
        turn, unit = np.divmod(pairs, units)
        return turn, unit, shared

    def exact(self, unit: int, code: int, turn: set[Gram]) -> float:
        """A pair's similarity measured on the n-gram sets themselves (no hash)."""
        if len(self.units[unit].tokens) < self.config.ngram:
            return 1.0  # a phrase unit: found as a whole phrase or equal
        held = self._exact_grams.get(unit)
        if held is None:
            held = self._exact_grams[unit] = frozenset(
                ngram_set(list(self.units[unit].tokens), self.config.ngram)
            )
        shared = len(held & turn)
        if code == _CODES["answer_jaccard"]:
            return shared / (len(held) + len(turn) - shared)
        return shared / len(held)

    def _phrase_hits(
        self, tokens: list[list[str]], hashed: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(turn, unit) of the short prompts found whole in a turn (or equal to it)."""
        hits: set[tuple[int, int]] = set()
        if self.equal:
            for turn in np.flatnonzero(lengths < self.config.min_words).tolist():
                hits.update((turn, i) for i in self.equal.get(" ".join(tokens[turn]), ()))
        padded: dict[int, str] = {}
        for size, (phrases, members) in self.phrases.items():
            grams, owner = rolled(hashed, lengths, size)
            at, key = phrases.lookup(grams)
            for turn, index in set(zip(owner[at].tolist(), key.tolist(), strict=True)):
                if turn not in padded:
                    padded[turn] = f" {' '.join(tokens[turn])} "
                for unit in members[index]:
                    if f" {' '.join(self.units[unit].tokens)} " in padded[turn]:
                        hits.add((turn, unit))
        if not hits:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        turn, unit = np.array(sorted(hits), dtype=np.int64).T
        return turn, unit


@dataclass
class SetReport:
    split: str
    uri: str
    prompts: int = 0
    answers: int = 0
    removed: int = 0


class Decontaminator:
    """Drops training docs that overlap a held-out unit; remembers the nearest misses."""

    def __init__(self, units: list[Unit], config: Decontamination, uris: dict[str, str]) -> None:
        self.units, self.config = units, config
        self.checked = self.removed = 0
        self.sets: dict[str, SetReport] = {}
        for name, uri in uris.items():
            self.sets[name] = SetReport(name if name in SPLITS else "eval", uri)
        for unit in units:
            report = self.sets[unit.set]
            if unit.kind == "prompt":
                report.prompts += 1
            else:
                report.answers += 1
        self.index = Index(units, config)

    def __call__(self, docs: Iterable[Doc], stats: Stats) -> Iterator[Doc | Rejection]:
        """Docs kept and rejections, in doc order."""
        pending = iter(docs)
        # Batches whose (turn, unit) cells fit the dense count (about two turns a doc).
        size = max(64, min(BATCH, DENSE_PAIRS // (2 * max(1, len(self.units)))))
        while batch := list(islice(pending, size)):
            found = self.index.decide([item.conversations for item in batch])
            for item, (hits, nearest) in zip(batch, found, strict=True):
                self.checked += 1
                if not hits:
                    item.nearest = nearest
                    yield item
                    continue
                self.removed += 1
                for name in {self.units[m.unit].set for m in hits}:
                    self.sets[name].removed += 1
                stats.count_drop(item.source, RULE)
                yield self._rejection(item, hits)

    def _rejection(self, item: Doc, hits: list[Match]) -> Rejection:
        strongest = max(hits, key=lambda m: (m.similarity, -m.unit))
        unit = self.units[strongest.unit]
        detail = (
            f"turn {strongest.turn} overlaps {unit.split} {unit.set} item {unit.id} {unit.kind} "
            f"turn {unit.turn}: {strongest.metric} {strongest.similarity:.3f}"
        )
        return reject(
            item.source,
            item.file,
            item.row,
            RULE,
            detail,
            item.conversations[0],
            collided_with=unit.describe(),
            train_turn=strongest.turn,
            similarity={"metric": strongest.metric, "value": round(strongest.similarity, 4)},
            held_out_items_hit=len({m.unit for m in hits}),
        )

    def report(self, train: list[Doc]) -> dict[str, Any]:
        """stats.json's `contamination`: per set, removals and the closest pair left in train."""
        closest: dict[str, dict[str, tuple[float, Doc, Match]]] = {n: {} for n in self.sets}
        for item in train:
            for match in item.nearest or []:
                unit = self.units[match.unit]
                best = closest[unit.set].get(match.metric)
                if best is None or match.similarity > best[0]:
                    closest[unit.set][match.metric] = (match.similarity, item, match)
        config = self.config
        return {
            "enabled": True,
            "thresholds": {
                "ngram": config.ngram,
                "containment": config.containment,
                "answer_jaccard": config.answer_jaccard,
                "min_words": config.min_words,
            },
            "checked": self.checked,
            "removed": self.removed,
            "sets": {
                name: {
                    "split": report.split,
                    "uri": report.uri,
                    "prompts": report.prompts,
                    "answers": report.answers,
                    "removed": report.removed,
                    "closest_remaining": {
                        metric: self._pair(*closest[name][metric])
                        for metric in METRICS
                        if metric in closest[name]
                    },
                }
                for name, report in self.sets.items()
            },
        }

    def _pair(self, similarity: float, item: Doc, match: Match) -> dict[str, Any]:
        return {
            # Rounded down: a pair just below a threshold must not read as reaching it.
            "similarity": math.floor(similarity * 10_000) / 10_000,
            "train": {"id": item.id, "turn": match.turn},
            "held_out": self.units[match.unit].describe(),
        }


@contextmanager
def paused_gc() -> Iterator[None]:
    """Building the index and the turns' n-gram sets allocates millions of small tuples; each
    burst would trigger a full garbage collection over every doc in memory (measured: most of
    the index build time), and collecting once at the end still cost a second. So automatic
    collection waits, and what existed before is frozen out of the next collections (nothing
    here creates reference cycles)."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()
