"""varcas.termtable: at any width, in any box style, with any number of columns, no printed line
is wider than the console, nothing is cut ("…"), every figure is printed whole on one line and
every word of a label whole; a table too wide is split into stacked tables that repeat the key
columns (hypothesis), and a figure wider than the console folds rather than being cut."""
from __future__ import annotations

import io
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from rich import box
from rich.console import Console
from rich.text import Text

from varcas.termtable import Table

STYLES = (
    {},  # rich's default: heavy head, edges, padding 1
    {"box": box.SIMPLE_HEAD, "collapse_padding": True, "pad_edge": False},  # varcas analyze's
    {"box": None, "pad_edge": False},  # the live progress view's
)
FIGURE_CHARS = "0123456789,.%-+()/"
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz'", min_size=1, max_size=8)
BORDER = r"\s\u2500-\u257f"  # whitespace and box-drawing characters: what separates cells


def printed(table: Table, width: int) -> str:
    out = io.StringIO()
    Console(width=width, file=out, color_system=None).print(table)
    return out.getvalue()


def whole(token: str, text: str) -> bool:
    """token appears between cell separators, not as a piece of something longer."""
    return re.search(rf"(?<![^{BORDER}]){re.escape(token)}(?![^{BORDER}])", text) is not None


@st.composite
def tables(draw):
    """(table, width, its figures, its words): a key of 0-2 columns, 1-12 columns in all, word
    and figure columns, a words row and sections; figures and words short enough that the key and
    one more column fit side by side (else folding is all that is left: see the test below)."""
    width = draw(st.integers(40, 200))  # three columns of 8-letter words and their borders fit
    style = draw(st.sampled_from(STYLES))
    ncols = draw(st.integers(1, 12))
    key = draw(st.integers(0, 2))
    words_col = [draw(st.booleans()) for _ in range(ncols)]
    longest = max(1, (width - 16) // 4)  # three such figures and their borders fit any width
    title = " ".join(draw(st.lists(WORD, max_size=12)))
    table = Table(title, key=key, **style)
    figures, words = [], []
    for c in range(ncols):
        header = " ".join(draw(st.lists(WORD, max_size=4)))
        table.add_column(header, words=words_col[c])
        words += header.split()
    for r in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            table.add_section()
        cells = []
        for c in range(ncols):
            if words_col[c]:
                text = " ".join(draw(st.lists(WORD, min_size=1, max_size=6)))
                words += text.split()
            else:  # a unique prefix: finding it whole proves this very cell was printed whole
                text = f"{r}{c:02d}" + draw(st.text(alphabet=FIGURE_CHARS, max_size=max(0, longest - 3)))
                figures.append(text)
            cells.append(text)
        table.add_row(*cells)
    note = " ".join(draw(st.lists(WORD, min_size=1, max_size=10)))
    table.add_row(Text(note, style="italic"), words=True)
    words += note.split()
    return table, width, figures, words


@settings(max_examples=300, deadline=None)
@given(tables())
def test_nothing_is_cut_and_every_figure_is_whole(drawn):
    table, width, figures, words = drawn
    text = printed(table, width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    assert [f for f in figures if not whole(f, text)] == []
    assert [w for w in words if not whole(w, text)] == []


def _wide_table(ncols: int) -> Table:
    table = Table("wide", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    table.add_column("", words=True)
    for c in range(ncols):
        table.add_column(f"p{c}")
    table.add_row("TTFT", *(f"{264_413 + c:,}" for c in range(ncols)))
    return table


def test_a_table_too_wide_is_split_and_repeats_its_key():
    text = printed(_wide_table(12), 60)
    assert text.count("TTFT") == 2 and text.count("wide (continued)") == 1  # 6 figures of 7 and their gaps a part
    assert all(whole(f"{264_413 + c:,}", text) for c in range(12))
    assert printed(_wide_table(3), 60).count("TTFT") == 1  # what fits stays one table


def test_parts_are_even_rather_than_one_column_left_over():
    parts = _wide_table(9).parts(Console(width=80, file=io.StringIO()), 80)
    assert [len(p.columns) for p in parts] == [1 + 5, 1 + 4]  # not 8 then 1


def test_a_figure_wider_than_the_console_folds_but_is_not_cut():
    table = Table(key=1)
    table.add_column("key", words=True)
    table.add_column("figure")
    figure = "1234567890" * 5
    table.add_row("k", figure)
    text = printed(table, 30)
    assert max(len(line) for line in text.splitlines()) <= 30 and "…" not in text
    assert figure in re.sub(f"[{BORDER}]", "", text)


def test_a_string_cell_is_data_not_markup():
    table = Table()
    table.add_column("name", words=True)
    table.add_column("n")
    table.add_row("[bold]x[/bold]", "[1/2]")
    text = printed(table, 80)
    assert "[bold]x[/bold]" in text and "[1/2]" in text
