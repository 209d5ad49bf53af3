"""Terminal tables that never cut a figure: every table varcas prints goes through Table here.

Declared like rich's table (add_column, add_row, add_section), laid out when printed, at the
width it is printed at. rich alone shrinks every column of a table too wide for the console
and ends the cut cells with "…" (264,4… for 264,413 ms). Here:
  figures  cells of a figure column (the default) keep their full width: the column is never
           narrower than its widest figure, so a figure never wraps and is never cut;
  words    the title, the headers, word columns (add_column(words=True)) and word rows
           (add_row(words=True): a verdict under figures) wrap between words, and fold a word
           only when a column cannot be as wide as it;
  split    when the figures do not fit side by side with their headers' longest words, the
           columns are dealt in order into tables stacked one above the other, each repeating
           the key (leading) columns, rather than cutting anything.
Width left over goes to the columns whose words would wrap. Only a figure wider than the whole
console beside the key columns folds onto a second line: it is still never cut.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich import table as rich_table
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.measure import Measurement
from rich.text import Text

_UNBOUNDED = 1 << 20  # a console width no table reaches: measures without rich's clamping
_FOLD_FLOOR = 8  # a word column may fold its words down to this width before the table splits


@dataclass(frozen=True)
class _Column:
    header: Text
    words: bool
    justify: JustifyMethod


@dataclass(frozen=True)
class _Row:
    cells: tuple[Text, ...]
    words: bool


@dataclass(frozen=True)
class _Widths:
    """What one column needs: figure (its widest figure line, never less), word (its longest
    word, the least without folding) and full (every line on one line)."""

    figure: int
    word: int
    full: int

    @property
    def least(self) -> int:
        """The narrowest the column may be before the table is folded: figures whole, words folded."""
        return max(self.figure, min(self.word, _FOLD_FLOOR), 1)


def _text(cell: str | Text) -> Text:
    """A cell as Text: a str is taken literally (data such as "[1/2]" is not rich markup)."""
    return cell if isinstance(cell, Text) else Text(cell)


def _lines(text: Text) -> list[str]:
    return text.plain.split("\n")


def _longest_word(text: Text) -> int:
    return max((cell_len(w) for line in _lines(text) for w in line.split()), default=0)


def _widest_line(text: Text) -> int:
    return max(cell_len(line) for line in _lines(text))


class Table:
    """A rich renderable table whose figures are never cut (module docstring).

    key: how many leading columns each part repeats when the table is split. style: rich.table.Table
    keywords (box, pad_edge, collapse_padding, title_justify, ...) for every part."""

    def __init__(self, title: str = "", *, key: int = 1, **style) -> None:
        self.title = title
        self.key = key
        self.style = style
        self.columns: list[_Column] = []
        self.rows: list[_Row | None] = []  # None: a section break (a rule, in boxes that draw one)

    def add_column(self, header: str | Text = "", *, words: bool = False, justify: JustifyMethod | None = None) -> None:
        """A column of figures (right-aligned), or of words (left-aligned) that may wrap."""
        self.columns.append(_Column(_text(header), words, justify or ("left" if words else "right")))

    def add_row(self, *cells: str | Text, words: bool = False) -> None:
        """One row; missing trailing cells are empty. words: its cells may wrap in any column."""
        self.rows.append(_Row(tuple(_text(c) for c in cells), words))

    def add_section(self) -> None:
        self.rows.append(None)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.parts(console, options.max_width)

    def parts(self, console: Console, width: int) -> list[rich_table.Table]:
        """The rich tables to print one above the other at `width` columns of text."""
        if not self.columns:
            return []
        need = [self._widths(j) for j in range(len(self.columns))]
        keys = list(range(min(self.key, len(self.columns) - 1)))
        overheads = [0] + [self._overhead(console, n) for n in range(1, len(self.columns) + 1)]  # by count
        parts = []
        for n, group in enumerate(_deal(need, keys, overheads, width)):
            shown = keys + group
            widths = _allocate([need[i] for i in shown], width - overheads[len(shown)])
            title = self.title if n == 0 or not self.title else f"{self.title} (continued)"
            # A title wider than the table widens it (up to the console) rather than wrapping in a
            # narrow column: the width goes where it shows least, right of a left-aligned column.
            short = min(width, _widest_line(Text(title))) - sum(widths) - overheads[len(shown)]
            left = [k for k, i in enumerate(shown) if self.columns[i].justify == "left"]
            widths[left[-1] if left else -1] += max(short, 0)
            parts.append(self._part(title, shown, widths))
        return parts

    def _widths(self, j: int) -> _Widths:
        """Column j's needs: its figures, and its words (its header, and every cell if it is a word column)."""
        column = self.columns[j]
        texts = [(row.cells[j], column.words or row.words) for row in self.rows
                 if row is not None and j < len(row.cells)]
        words = [column.header] + [t for t, is_words in texts if is_words]
        figure = max((_widest_line(t) for t, is_words in texts if not is_words), default=0)
        return _Widths(figure, max(figure, *(_longest_word(t) for t in words)),
                       max(figure, *(_widest_line(t) for t in words)))

    def _overhead(self, console: Console, n: int) -> int:
        """The width n columns take beyond their text: borders and padding, as rich lays them out."""
        probe = rich_table.Table(**self.style)
        for _ in range(n):
            probe.add_column(width=1)
        return Measurement.get(console, console.options.update_width(_UNBOUNDED), probe).maximum - n

    def _part(self, title: str, shown: list[int], widths: list[int]) -> rich_table.Table:
        part = rich_table.Table(title=title or None, **self.style)
        for i, w in zip(shown, widths):
            column = self.columns[i]
            part.add_column(column.header, justify=column.justify, width=w, overflow="fold")
        for row in self.rows:
            if row is None:
                part.add_section()
            else:
                part.add_row(*(row.cells[i] if i < len(row.cells) else Text("") for i in shown))
        return part


def _deal(need: list[_Widths], keys: list[int], overheads: list[int], width: int) -> list[list[int]]:
    """The columns after the keys, in order, in as few parts as fit every word whole beside the
    keys (one column a part at least), the parts as even in width as that number allows."""
    rest = range(len(keys), len(need))
    key_width = sum(need[i].word for i in keys)

    def pack(cap: int) -> list[list[int]]:
        groups: list[list[int]] = [[]]
        for j in rest:
            wanted = len(keys) + len(groups[-1]) + 1
            taken = key_width + sum(need[i].word for i in groups[-1]) + need[j].word + overheads[wanted]
            if groups[-1] and taken > cap:
                groups.append([])
            groups[-1].append(j)
        return groups

    fewest = len(pack(width))
    lo, hi = 0, width  # the narrowest cap that still packs into `fewest` parts: the most even
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if len(pack(mid)) <= fewest else (mid + 1, hi)
    return pack(hi)


def _allocate(need: list[_Widths], room: int) -> list[int]:
    """Column widths within room: every word whole and the spare width to the columns that would
    wrap (_grow), else words folded down to _FOLD_FLOOR; figures never below their width (only when
    even that cannot fit does the widest column give way, folding)."""
    for low, high in (("word", "full"), ("least", "word")):
        base = [getattr(n, low) for n in need]
        if sum(base) <= room:
            return _grow(base, [getattr(n, high) for n in need], room - sum(base))
    widths = [n.least for n in need]
    while sum(widths) > room and max(widths) > 1:
        widths[widths.index(max(widths))] -= 1
    return widths


def _grow(widths: list[int], target: list[int], spare: int) -> list[int]:
    """widths widened toward target by spare columns in all, the nearest first: as many columns
    as possible reach their target (a header on one line), the last one given what is left."""
    widths = list(widths)
    for i in sorted(range(len(widths)), key=lambda i: target[i] - widths[i]):
        step = min(max(target[i] - widths[i], 0), spare)
        widths[i] += step
        spare -= step
    return widths
