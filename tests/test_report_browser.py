"""The report in a real browser (headless Chromium): the page is not blank, the Figure-1 chart
is drawn (its stacked win | tie | loss bars found by pixel colour), the stand-in banner and the
per-prompt section are visible, and the lineage table fits a 1280 px page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from browser import dom, screenshot
from PIL import Image
from test_report_render import data

from lima.report.figures import COLOURS, draw_all
from lima.report.render import render

BANNER = (0xF8, 0xD7, 0xDA)  # .standin background
TURN = (0xF3, 0xF8, 0xFC)  # .turn background (per-prompt section)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def _runs(row: np.ndarray, colour: tuple[int, int, int], tolerance: int = 6) -> list[tuple]:
    """(start, end) of horizontal runs of `colour` in one pixel row."""
    hit = np.all(np.abs(row.astype(int) - colour) <= tolerance, axis=1)
    edges = np.diff(np.concatenate([[0], hit.astype(int), [0]]))
    return list(zip(np.where(edges == 1)[0], np.where(edges == -1)[0], strict=True))


def stacked_bar_rows(pixels: np.ndarray, min_run: int = 30) -> int:
    """Pixel rows holding a win run, then a tie run, then a loss run, left to right: the
    signature of LIMA Figure 1's horizontal stacked bars (no other figure draws it)."""
    colours = [_rgb(COLOURS[k]) for k in ("win", "tie", "loss")]
    found = 0
    for row in pixels:
        runs = [[r for r in _runs(row, c) if r[1] - r[0] >= min_run] for c in colours]
        if all(runs) and runs[0][0][1] <= runs[1][0][0] and runs[1][0][1] <= runs[2][-1][0]:
            found += 1
    return found


def area(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(np.abs(pixels.astype(int) - colour) <= 2, axis=2).sum())


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    report = data()
    return render(report, draw_all(report, out), out)


def test_screenshot_shows_figure_1_banner_and_per_prompt_section(page: Path, tmp_path: Path):
    shot = screenshot(page, tmp_path / "report.png", height=9000)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[1] == 1280
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # not blank
    assert stacked_bar_rows(pixels) >= 20  # two bars (two baselines), each many pixels tall
    assert area(pixels, BANNER) > 20_000  # the stand-in banner is drawn
    assert area(pixels, TURN) > 20_000  # per-prompt boxes are drawn


def test_the_browser_parses_the_sections_and_the_lineage_fits(page: Path) -> None:
    html = dom(page)
    for expected in ('id="stand-in-banner"', 'id="per-prompt"', "How do I brew coffee?"):
        assert expected in html
    assert "B is clearer." in html  # the judge's reasoning is on the page


def test_a_blank_page_has_no_chart(tmp_path: Path) -> None:
    # the detector must be able to fail: a page without the pairwise figure has no such rows
    empty = tmp_path / "empty.html"
    empty.write_text("<html><body><p>nothing</p></body></html>")
    pixels = np.asarray(
        Image.open(screenshot(empty, tmp_path / "e.png", height=600)).convert("RGB")
    )
    assert stacked_bar_rows(pixels) == 0 and area(pixels, TURN) == 0
