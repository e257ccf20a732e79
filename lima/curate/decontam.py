"""Decontamination: no training turn may overlap a dev, test or evaluation prompt or answer.

Two steps. Candidate search: an index from every word n-gram of the held-out prompts and answers
to the items that contain it; a training turn's n-grams are looked up in it, and every held-out
item sharing one is a candidate. Exact check: for each candidate pair the size of the
intersection of the two full n-gram sets is counted from the index (no sketch, no estimate) and
the similarity compared with the spec's thresholds (`spec.data.decontamination`):

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
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lima.curate.evalsets import SPLITS, LoadedSet
from lima.curate.ngrams import Gram, contains_phrase, ngram_set, words
from lima.curate.records import Item, reject
from lima.curate.stats import Stats
from lima.spec.data import Decontamination

RULE = "contaminates_eval"
METRICS = ("prompt_containment", "answer_containment", "answer_jaccard")


@dataclass(frozen=True)
class Unit:
    """One held-out prompt or answer turn, with its n-grams."""

    set: str
    split: str
    id: str
    kind: str
    turn: int
    origin: tuple[tuple[str, str], ...]
    grams: frozenset[Gram] = frozenset()
    phrase: tuple[str, ...] = ()

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
        if len(tokens) >= config.ngram:
            out.append(
                Unit(
                    **base,
                    kind="prompt",
                    turn=turn,
                    grams=frozenset(ngram_set(tokens, config.ngram)),
                )
            )
        elif tokens:
            out.append(Unit(**base, kind="prompt", turn=turn, phrase=tuple(tokens)))
    for turn, text in enumerate(answers):
        tokens = words(text or "")
        if len(tokens) >= config.ngram:  # a short reference ("4", "Paris") is no copy
            out.append(
                Unit(
                    **base,
                    kind="answer",
                    turn=turn,
                    grams=frozenset(ngram_set(tokens, config.ngram)),
                )
            )
    return out


def split_units(split: str, items: list[Item], config: Decontamination) -> list[Unit]:
    """Units of the curated dev or test split (items carry their output `id`)."""
    out = []
    for item in items:
        where = {
            "set": split,
            "split": split,
            "id": item["id"],
            "source": item["source"],
            "file": item["file"],
            "row": item["row"],
        }
        turns = item["conversations"]
        out += _units(config, where, turns[0::2], turns[1::2])
    return out


def eval_units(loaded: LoadedSet, config: Decontamination) -> list[Unit]:
    out = []
    for prompt in loaded.prompts:
        where = {"set": loaded.name, "split": "eval", "id": prompt.id, "file": loaded.uri}
        out += _units(config, where, prompt.turns, prompt.references)
    return out


class Index:
    """Candidate search over the held-out units, then the exact measure of each candidate."""

    def __init__(self, units: list[Unit], config: Decontamination) -> None:
        self.units, self.config = units, config
        # Postings: the first unit of each n-gram, and the full list for the few n-grams that
        # several units share (filled with C-level set and dict operations: a Python loop over
        # every n-gram of 1,000+ held-out items was most of the build time).
        self.first: dict[Gram, int] = {}
        self.more: dict[Gram, list[int]] = {}
        self.anchors: dict[str, list[int]] = {}
        self.equal: dict[tuple[str, ...], list[int]] = {}
        for index, unit in enumerate(units):
            seen = unit.grams & self.first.keys()
            for gram in seen:
                self.more.setdefault(gram, [self.first[gram]]).append(index)
            self.first.update(dict.fromkeys(unit.grams - seen, index))
            if unit.phrase and len(unit.phrase) >= config.min_words:
                # A short prompt is a candidate when its longest (likely rarest) word is in the
                # turn; building every turn's n-grams of each short length would cost more.
                self.anchors.setdefault(max(unit.phrase, key=len), []).append(index)
            elif unit.phrase:
                self.equal.setdefault(unit.phrase, []).append(index)
        self.keys = frozenset(self.first)
        self.shared_keys = frozenset(self.more)
        self.anchor_words = frozenset(self.anchors)
        self.sizes = [len(unit.grams) for unit in units]
        self.answers = [unit.kind == "answer" for unit in units]

    def matches(self, conversation: list[str]) -> list[Match]:
        """The strongest similarity per (held-out unit, metric) over every turn (on a tie the
        earliest turn), in (unit, metric) order."""
        contained: dict[int, tuple[float, int]] = {}  # prompt or answer containment per unit
        overlap: dict[int, tuple[float, int]] = {}  # answer Jaccard per unit
        sizes, answers = self.sizes, self.answers
        for turn, text in enumerate(conversation):
            tokens = words(text)
            grams = ngram_set(tokens, self.config.ngram)
            # Candidates: the units sharing an n-gram with the turn. Exact check: both sides are
            # sets and a unit appears once in an n-gram's postings, so counting the postings the
            # turn's n-grams hit is |unit n-grams & turn n-grams| (no sketch, no estimate).
            common = grams & self.keys
            hits = [self.first[gram] for gram in common]
            for gram in common & self.shared_keys:
                hits += self.more[gram][1:]
            for index, shared in Counter(hits).items():
                value = shared / sizes[index]
                found = contained.get(index)
                if found is None or value > found[0]:
                    contained[index] = (value, turn)
                if answers[index]:
                    value = shared / (sizes[index] + len(grams) - shared)
                    found = overlap.get(index)
                    if found is None or value > found[0]:
                        overlap[index] = (value, turn)
            for index in self._phrase_hits(tokens):
                if contained.get(index, (0.0,))[0] < 1.0:
                    contained[index] = (1.0, turn)
        out = [
            Match(i, "answer_containment" if answers[i] else "prompt_containment", *value)
            for i, value in contained.items()
        ]
        out += [Match(i, "answer_jaccard", *value) for i, value in overlap.items()]
        return sorted(out, key=lambda m: (m.unit, m.metric))

    def _phrase_hits(self, tokens: list[str]) -> list[int]:
        hits = list(self.equal.get(tuple(tokens), []))
        if self.anchors and len(tokens) >= self.config.min_words:
            found = self.anchor_words.intersection(tokens)
            candidates = sorted({i for word in found for i in self.anchors[word]})
            hits += [i for i in candidates if contains_phrase(tokens, list(self.units[i].phrase))]
        return hits


def is_hit(match: Match, config: Decontamination) -> bool:
    if match.metric == "answer_jaccard":
        return match.similarity >= config.answer_jaccard
    return match.similarity >= config.containment


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

    def __call__(self, docs: Iterable[Item], stats: Stats) -> Iterator[Item]:
        """Docs kept and rejections, in doc order."""
        for item in docs:
            self.checked += 1
            matches = self.index.matches(item["conversations"])
            hits = [m for m in matches if is_hit(m, self.config)]
            if not hits:
                item["_nearest"] = self._nearest_per_set(matches)
                yield item
                continue
            self.removed += 1
            for name in {self.units[m.unit].set for m in hits}:
                self.sets[name].removed += 1
            stats.count_drop(item["source"], RULE)
            yield self._rejection(item, hits)

    def _nearest_per_set(self, found: list[Match]) -> list[Match]:
        """Only what the report needs: the closest unit per (set, metric) of this doc."""
        nearest: dict[tuple[str, str], Match] = {}
        for match in found:
            key = (self.units[match.unit].set, match.metric)
            if key not in nearest or match.similarity > nearest[key].similarity:
                nearest[key] = match
        return list(nearest.values())

    def _rejection(self, item: Item, hits: list[Match]) -> Item:
        strongest = max(hits, key=lambda m: (m.similarity, -m.unit))
        unit = self.units[strongest.unit]
        detail = (
            f"turn {strongest.turn} overlaps {unit.split} {unit.set} item {unit.id} {unit.kind} "
            f"turn {unit.turn}: {strongest.metric} {strongest.similarity:.3f}"
        )
        return {
            **reject(
                item["source"], item["file"], item["row"], RULE, detail, item["conversations"][0]
            ),
            "collided_with": unit.describe(),
            "train_turn": strongest.turn,
            "similarity": {"metric": strongest.metric, "value": round(strongest.similarity, 4)},
            "held_out_items_hit": len({m.unit for m in hits}),
        }

    def report(self, train: list[Item]) -> dict[str, Any]:
        """stats.json's `contamination`: per set, removals and the closest pair left in train."""
        closest: dict[str, dict[str, tuple[float, Item, Match]]] = {n: {} for n in self.sets}
        for item in train:
            for match in item.get("_nearest", []):
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

    def _pair(self, similarity: float, item: Item, match: Match) -> dict[str, Any]:
        return {
            # Rounded down: a pair just below a threshold must not read as reaching it.
            "similarity": math.floor(similarity * 10_000) / 10_000,
            "train": {"id": item.get("id"), "turn": match.turn},
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
