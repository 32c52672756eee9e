"""Progress display shared by the command line and long-running steps.

``step`` shows a spinner with the elapsed time while a step runs and one line when it ends;
``bar`` gives a callback that advances a progress bar with a rate and an ETA. Both draw on
standard error and stay silent (apart from the closing line of a step) when it is not a terminal.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.cells import cell_len
from rich.console import Console as RichConsole
from rich.console import RenderableType
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

#: Results go to standard output; progress goes to standard error.


class Console(RichConsole):
    """rich's Console, except that output to a closed pipe (``| head``) raises
    BrokenPipeError, which the CLI ends quietly with status 141, instead of exiting with 1.

    Examples
    --------
    >>> import io
    >>> Console(file=io.StringIO()).is_terminal
    False
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


#: Results print the data's own text (ids, titles, queries) as written: no rich markup, so
#: a title such as "[refurbished]" stays whole and "[/]" cannot break the output.
console = Console(highlight=False, markup=False)
status_console = Console(stderr=True, highlight=False)

__all__ = ["Console", "bar", "console", "fit_table", "print_table", "status_console", "step"]

#: The widest line :func:`print_table` writes to a file or a pipe.
WIDEST = 400
#: Width :func:`fit_table` leaves at least to a text column (or its longest word if shorter).
TEXT_FLOOR = 8
#: Cells :func:`fit_table` keeps whole on a narrow terminal: numbers (signed, with thousands
#: separators, a unit or a percent sign) and dates, which may wrap only at a space.
NUMBER = re.compile(
    r"[+\-−]?[\d,]*\.?\d+(e[+\-]?\d+)?\s?(%|s|ms|MiB|GiB)?"
    r"|\d{4}-\d\d-\d\d( \d\d:\d\d(:\d\d)?)?"
)


def fit_table(table: Table, width: int) -> None:
    """Narrow ``table`` to ``width`` columns by its text, keeping its numbers whole.

    Left to itself, a table too wide for a terminal shrinks every column alike and cuts
    what does not fit, numbers too ("-0.00…"). Here the columns of numbers and dates (and
    those that may not wrap) keep the width of their longest value and header word (a date
    may wrap at its space, a header at its spaces; where the header words do not fit, only
    the values are kept whole), and the other columns share what is
    left: each gets at least a few characters (:data:`TEXT_FLOOR`, or its longest word if
    shorter), narrow ones keep their width, wide ones (titles, names) get equal parts and
    wrap. Where even that does not fit, the table is left as it is. It sets the columns'
    widths: a table is narrowed for the one terminal it is printed on.

    Examples
    --------
    >>> import io
    >>> table = Table()
    >>> table.add_column("title")
    >>> table.add_column("score")
    >>> table.add_row("a rather long title " * 3, "-0.00123")
    >>> fit_table(table, 20)
    >>> out = Console(file=io.StringIO(), width=20)
    >>> out.print(table)
    >>> "-0.00123" in out.file.getvalue()
    True
    """
    columns = table.columns
    cells = [[c.plain if isinstance(c, Text) else c for c in col.cells] for col in columns]
    if not all(isinstance(c, str) for col in cells for c in col):
        return
    texts: list[list[str]] = [[str(c) for c in col] for col in cells]
    heads = [
        str(col.header.plain if isinstance(col.header, Text) else col.header) for col in columns
    ]

    def words(values: list[str]) -> int:
        return max([cell_len(w) for v in values for w in v.split()] or [0])

    natural = [
        max([cell_len(line) for c in [head, *text] for line in c.splitlines()] or [0])
        for head, text in zip(heads, texts, strict=True)
    ]
    wide = Console(width=WIDEST)
    total = Measurement.get(wide, wide.options, table).maximum
    if total <= width:
        return
    overhead = total - sum(natural)
    kept = [
        col.no_wrap or (bool(text) and all(NUMBER.fullmatch(c.strip()) for c in text))
        for col, text in zip(columns, texts, strict=True)
    ]

    def floors_of(headers: bool, text: int) -> list[int]:
        """Each column's least width: for numbers, their longest value (and header word);
        for text, ``text`` characters (or its longest word if shorter)."""
        return [
            max(col.min_width or 0, nat if col.no_wrap else words([*head, *values]))
            if keep
            else min(nat, max(col.min_width or 0, min(text, words([*head, *values]))))
            for col, head, values, nat, keep in zip(
                columns, [[h] if headers else [] for h in heads], texts, natural, kept, strict=True
            )
        ]

    # header words whole where they fit, else only the values (a header may be cut); text
    # columns keep a few characters where they fit, else one
    for floors in (floors_of(True, TEXT_FLOOR), floors_of(False, TEXT_FLOOR), floors_of(False, 1)):
        room = width - overhead - sum(floors)
        if room >= 0:
            break
    else:
        return
    shares = list(floors)
    free = [i for i, keep in enumerate(kept) if not keep]
    for group in (free, [i for i, keep in enumerate(kept) if keep]):  # text first, then numbers
        for n, i in enumerate(sorted(group, key=lambda i: natural[i])):  # narrow ones whole
            extra = max(0, min(natural[i] - floors[i], room // (len(group) - n)))
            shares[i], room = floors[i] + extra, room - extra
    for col, share in zip(columns, shares, strict=True):
        col.width = share  # every width decided here: the sum fits


def figure(value: float, scale: float, sign: bool = False) -> str:
    """A number for a table: four decimals, or three significant digits where the largest
    value of its column (``scale``) is too small for decimals to show; ``sign`` adds a +.

    Examples
    --------
    >>> figure(0.01234, 0.05, sign=True), figure(-0.0000123, 0.00004, sign=True)
    ('+0.0123', '-1.23e-05')
    >>> figure(3.1e-8, 4.2e-8), figure(0.0, 4.2e-8)
    ('3.10e-08', '0.0000')
    """
    plus = "+" if sign else ""
    if abs(scale) >= 1e-3 or value == 0:
        return f"{value:{plus}.4f}"
    return f"{value:{plus}.2e}"


def print_table(con: RichConsole, table: RenderableType) -> None:
    """Print ``table``; to a file or a pipe at its natural width, so that nothing is cut.

    Writing to a file or a pipe, a console is usually 80 columns wide (``COLUMNS`` aside),
    also where colour is forced, and a table wider than that would have its numbers cut
    short ("+0.51…"). A terminal keeps its own width, and the columns of numbers keep
    theirs in it (:func:`fit_table`).

    Examples
    --------
    >>> import io
    >>> from rich.table import Table
    >>> table = Table()
    >>> table.add_column("value")
    >>> table.add_row("x" * 100)
    >>> out = Console(file=io.StringIO(), width=80)
    >>> print_table(out, table)
    >>> "x" * 100 in out.file.getvalue()
    True
    """
    isatty = getattr(con.file, "isatty", None)
    if con.is_terminal and callable(isatty) and isatty():
        if isinstance(table, Table):
            fit_table(table, con.width)
        con.print(table)
        return
    natural = Measurement.get(con, con.options.update_width(WIDEST), table).maximum
    # as wide as the table, and reading its text as ``con`` does (markup or not)
    wide = Console(
        file=con.file, width=max(con.width, natural), highlight=False, markup=con._markup
    )
    wide.print(table)


@contextmanager
def step(description: str) -> Iterator[None]:
    """Show a spinner while the block runs, then ``done: description (seconds)``.

    Examples
    --------
    >>> with step("counting"):
    ...     total = sum(range(10))
    """
    start = time.perf_counter()
    if not status_console.is_terminal:
        yield
    else:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=status_console,
            transient=True,
        ) as progress:
            progress.add_task(description, total=None)
            yield
    status_console.print(f"[green]done[/green]: {description} ({time.perf_counter() - start:.1f}s)")


@contextmanager
def bar(description: str, total: int, unit: str = "items") -> Iterator[Callable[[int], None]]:
    """A progress bar with count, rate and ETA; yields ``advance(n)``.

    Examples
    --------
    >>> with bar("scoring", total=3, unit="batches") as advance:
    ...     for _ in range(3):
    ...         advance(1)
    """
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=status_console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int) -> None:
            progress.advance(task, n)

        yield advance
