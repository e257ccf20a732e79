"""The report's PNG figures (matplotlib with the non-interactive Agg backend).

Every function takes plain data (from `collect`) and a path; returns the path or None when there
is nothing to draw, so a report of a partial experiment still renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen first

COLOURS = {"win": "#3b75af", "tie": "#c9c9c9", "loss": "#e07b39"}
RATING_COLOURS = {"fail": "#d9534f", "pass": "#f0ad4e", "excellent": "#5cb85c"}


def _save(fig: Any, path: Path, bottom: float = 0.0) -> Path:
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _merged_legend(ax: Any, other: Any | None) -> None:
    """One legend for a plot with a twin axis, inside the axes where it cannot hide a title."""
    handles, labels = ax.get_legend_handles_labels()
    if other is not None:
        more = other.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    (other or ax).legend(handles, labels, loc="best", fontsize=8)  # the twin is drawn on top


def win_tie_loss(pairwise: dict[str, Any], system: str, title: str, path: Path) -> Path | None:
    """LIMA Figure 1: one horizontal stacked bar per baseline (system wins | tie | baseline wins),
    with the bootstrap 95% CIs of the win and loss shares as error bars."""
    rows = [(b, r) for b, r in pairwise.items() if r.get("n")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.7 * len(rows) + 1.4))
    for y, (_, r) in enumerate(rows):
        left = 0.0
        for label in ("win", "tie", "loss"):
            ax.barh(y, r[label], left=left, color=COLOURS[label], label=label if y == 0 else None)
            ax.text(left + r[label] / 2, y, f"{r[label]:.0%}", ha="center", va="center", fontsize=8)
            left += r[label]
        win_lo, win_hi = r["ci"]["win"]
        ax.errorbar(
            r["win"],
            y - 0.25,
            xerr=[[r["win"] - win_lo], [win_hi - r["win"]]],
            fmt="none",
            ecolor="black",
            capsize=3,
        )
        loss_lo, loss_hi = r["ci"]["loss"]
        edge = 1 - r["loss"]
        ax.errorbar(
            edge,
            y - 0.25,
            xerr=[[loss_hi - r["loss"]], [r["loss"] - loss_lo]],
            fmt="none",
            ecolor="black",
            capsize=3,
        )
    ax.set_yticks(range(len(rows)), [f"{system} vs {b}" for b, _ in rows])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of judged turns")
    ax.set_title(title)
    fig.legend(
        handles=[plt.Rectangle((0, 0), 1, 1, color=COLOURS[k]) for k in COLOURS],
        labels=[f"{system} wins", "tie", "baseline wins"],
        loc="lower center",
        ncol=3,
        fontsize=8,
    )
    return _save(fig, path, bottom=0.1)


def absolute(ratings: dict[str, Any], title: str, path: Path) -> Path | None:
    """LIMA Figure 3: Fail / Pass / Excellent shares per system."""
    rows = [(s, r) for s, r in ratings.items() if r.get("n")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.2))
    for y, (_, r) in enumerate(rows):
        left = 0.0
        for label in ("fail", "pass", "excellent"):
            share = r["shares"][label] or 0.0
            ax.barh(
                y, share, left=left, color=RATING_COLOURS[label], label=label if y == 0 else None
            )
            left += share
    ax.set_yticks(range(len(rows)), [s for s, _ in rows])
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def likert(ratings: dict[str, Any], title: str, path: Path) -> Path | None:
    """Helpfulness 1-6 (the paper's ablation scale): distribution per system."""
    rows = [(s, r) for s, r in ratings.items() if r.get("n")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(rows)
    for k, (system, r) in enumerate(rows):
        xs = [v + (k - (len(rows) - 1) / 2) * width for v in range(1, 7)]
        ax.bar(
            xs,
            [r["shares"][str(v)] or 0.0 for v in range(1, 7)],
            width=width,
            label=f"{system} (mean {r.get('mean') or 0:.2f})",
        )
    ax.set_xticks(range(1, 7))
    ax.set_xlabel("helpfulness (1-6)")
    ax.set_ylabel("share")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def training(curves: dict[str, list[Any]], path: Path) -> Path | None:
    """Training loss per step with the learning rate on a second axis."""
    if not curves["step"]:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(curves["step"], curves["loss"], color="#3b75af", label="loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    other = ax.twinx()
    other.plot(curves["step"], curves["lr"], color="#e07b39", label="learning rate")
    other.set_ylabel("learning rate")
    ax.set_title("Training loss and learning rate")
    _merged_legend(ax, other)
    return _save(fig, path)


def perplexity_vs_quality(epochs: list[dict[str, Any]], path: Path) -> Path | None:
    """LIMA Appendix B: dev perplexity vs judged quality of each eligible epoch."""
    rows = [e for e in epochs if e.get("score") is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    xs = [e["epoch"] for e in rows]
    ax.plot(xs, [e["score"] for e in rows], "o-", color="#3b75af", label="judged score")
    ax.set_xlabel("epoch")
    ax.set_ylabel("win rate vs reference (ties half)")
    ax.set_ylim(0, 1)
    with_ppl = [e for e in rows if e.get("dev_perplexity") is not None]
    other = None
    if with_ppl:
        other = ax.twinx()
        other.plot(
            [e["epoch"] for e in with_ppl],
            [e["dev_perplexity"] for e in with_ppl],
            "s--",
            color="#e07b39",
            label="dev perplexity",
        )
        other.set_ylabel("dev perplexity")
    ax.set_xticks(xs)
    ax.set_title("Perplexity vs judged quality over epochs")
    _merged_legend(ax, other)
    return _save(fig, path)


def data_mix(mix: list[dict[str, Any]], path: Path) -> Path | None:
    """Training examples per source vs the source's quota (LIMA Table 1)."""
    if not mix:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    xs = range(len(mix))
    ax.bar([x - 0.2 for x in xs], [m["train"] for m in mix], width=0.4, label="selected (train)")
    ax.bar(
        [x + 0.2 for x in xs],
        [m["quota"] or 0 for m in mix],
        width=0.4,
        label="quota",
        color="#c9c9c9",
    )
    ax.set_xticks(list(xs), [m["source"] for m in mix], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("examples")
    ax.set_title("Data mix per source vs quota")
    ax.legend(fontsize=8)
    return _save(fig, path)


def draw_all(data: dict[str, Any], out: Path) -> dict[str, str]:
    """Every figure of the report; returns {figure id: file name} of those drawn."""
    out.mkdir(parents=True, exist_ok=True)
    results, system = data["results"], data["results"]["system"]
    drawn: dict[str, Path | None] = {
        "training": training(data["training"], out / "training.png"),
        "perplexity_vs_quality": perplexity_vs_quality(
            data["selection"]["epochs"], out / "perplexity_vs_quality.png"
        ),
        "data_mix": data_mix(data["mix"], out / "data_mix.png"),
    }
    for name, result in results["sets"].items():
        drawn[f"wtl-{name}"] = win_tie_loss(
            result.get("pairwise", {}),
            system,
            f"Pairwise preference ({name})",
            out / f"wtl-{name}.png",
        )
        drawn[f"absolute-{name}"] = absolute(
            result.get("absolute", {}),
            f"Fail / Pass / Excellent ({name})",
            out / f"absolute-{name}.png",
        )
        drawn[f"likert-{name}"] = likert(
            result.get("likert", {}), f"Helpfulness 1-6 ({name})", out / f"likert-{name}.png"
        )
    return {k: p.name for k, p in drawn.items() if p is not None}
