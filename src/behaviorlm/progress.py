"""Progress display shared by the command line and long-running steps.

``step`` shows a spinner with the elapsed time while a step runs and one line when it ends;
``bar`` gives a callback that advances a progress bar with a rate and an ETA. Both draw on
standard error and stay silent (apart from the closing line of a step) when it is not a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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

#: Results go to standard output; progress goes to standard error.
console = Console(highlight=False)
status_console = Console(stderr=True, highlight=False)

__all__ = ["Console", "bar", "console", "print_table", "status_console", "step"]

#: The widest line :func:`print_table` writes to a file or a pipe.
WIDEST = 400


def print_table(con: Console, table: RenderableType) -> None:
    """Print ``table``; to a file or a pipe at its natural width, so that nothing is cut.

    Writing to a file or a pipe, a console is usually 80 columns wide (``COLUMNS`` aside),
    also where colour is forced, and a table wider than that would have its numbers cut
    short ("+0.51…"). A terminal keeps its own width.

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
