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
from rich.console import Console, RenderableType
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
console = Console(highlight=False)
status_console = Console(stderr=True, highlight=False)

__all__ = ["Console", "bar", "console", "fit_table", "print_table", "status_console", "step"]

#: The widest line :func:`print_table` writes to a file or a pipe.
WIDEST = 400
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
    those that may not wrap) keep their width (a date may wrap at its space), and the other
    columns share what is left: narrow ones keep their width, wide ones (titles, names) get
    equal parts and wrap. Where even the numbers do not fit, the table is left as it is.

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
    natural = [
        max([cell_len(line) for c in [str(col.header), *text] for line in c.splitlines()] or [0])
        for col, text in zip(columns, texts, strict=True)
    ]
    total = Measurement.get(Console(width=WIDEST), Console(width=WIDEST).options, table).maximum
    overhead = total - sum(natural)
    if total <= width:
        return
    kept = [
        col.no_wrap or (bool(text) and all(NUMBER.fullmatch(c.strip()) for c in text))
        for col, text in zip(columns, texts, strict=True)
    ]
    floors = [
        max(
            col.min_width or 0,
            nat if col.no_wrap else 0,
            *(cell_len(w) for c in t for w in c.split()),
        )
        for col, t, nat in zip(columns, texts, natural, strict=True)
    ]
    free = [i for i, keep in enumerate(kept) if not keep]
    room = width - overhead - sum(f for f, keep in zip(floors, kept, strict=True) if keep)
    if room < len(free):
        return
    for i in sorted(free, key=lambda i: natural[i]):  # narrow columns first, whole
        share = max(1, min(natural[i], room // len(free)))
        columns[i].max_width, room = share, room - share
        free = free[1:]
    for i, keep in enumerate(kept):
        if keep:
            columns[i].min_width = floors[i]
            columns[i].no_wrap = columns[i].no_wrap or not any(" " in c for c in texts[i])


def print_table(con: Console, table: RenderableType) -> None:
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
    Console(file=con.file, width=max(con.width, natural), highlight=False).print(table)


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
