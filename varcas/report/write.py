"""write_report(DIR): gather DIR's data once, render the HTML page and REPORT.md, write both.

Defaults: DIR/report.html and DIR/REPORT.md. A path that cannot be written is a one-line
VarcasError; each file is written whole (temporary file, then rename) so a reader never sees
half a report.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..errors import VarcasError
from . import html, markdown
from .load import load

HTML_FILE = "report.html"
MD_FILE = "REPORT.md"


def write_report(path, *, out_html=None, out_md=None, baseline: str | None = None) -> tuple[Path, Path]:
    """Write the report of a run, sweep or pipeline directory; returns (HTML path, Markdown path)."""
    report = load(path, baseline)
    out_html = Path(out_html) if out_html else report.path / HTML_FILE
    out_md = Path(out_md) if out_md else report.path / MD_FILE
    outputs = {out_html.resolve(), out_md.resolve()}
    report.artifacts = [(name, size) for name, size in report.artifacts
                        if (report.path / name).resolve() not in outputs]
    page, _ = html.page(report)
    _write(out_html, page)
    _write(out_md, markdown.text(report))
    return out_html, out_md


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise VarcasError(f"cannot write {path}: {exc.strerror or exc}") from None
