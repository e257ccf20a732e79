"""`report.html` from the collected numbers and the drawn figures (jinja2, autoescaped)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ci(bounds: Any) -> str:
    if not bounds or bounds[0] is None:
        return "n/a"
    return f"[{bounds[0]:.1%}, {bounds[1]:.1%}]"


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value: Any) -> Any:
    """Model output shown as text: control characters (a random model emits NUL) become U+FFFD,
    so the page stays valid text for browsers and tools."""
    return _CONTROL.sub("\ufffd", value) if isinstance(value, str) else value


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("lima.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update({"pct": _pct, "num": _num, "ci": _ci, "printable": _printable})
    return env


def render(data: dict[str, Any], figures: dict[str, str], out: Path) -> Path:
    html = environment().get_template("report.html.j2").render(d=data, fig=figures)
    path = out / "report.html"
    path.write_text(html, encoding="utf-8")
    return path
