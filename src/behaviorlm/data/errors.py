"""Data errors and the row accounting that every data step reports.

Nothing disappears silently: every step records rows in, rows out and the rows it dropped
by reason. With ``on_error="raise"`` the first reason with bad rows raises a
:class:`DataError`; with ``"drop"`` bad rows are removed and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

OnError = Literal["raise", "drop"]


class DataError(Exception):
    """Bad input: says what is wrong, where, and how to fix it, in one line.

    Examples
    --------
    >>> error = DataError("no user_id column", where="events.csv", how="pass --map user_id=COL")
    >>> str(error)
    'no user_id column (in events.csv); fix: pass --map user_id=COL'
    """

    def __init__(self, what: str, *, where: str | None = None, how: str | None = None) -> None:
        self.what = what
        self.where = where
        self.how = how
        super().__init__(self.line())

    def line(self) -> str:
        """The one-line message the CLI prints."""
        text = self.what
        if self.where:
            text += f" (in {self.where})"
        if self.how:
            text += f"; fix: {self.how}"
        return text


@dataclass
class StepReport:
    """Rows in and out of one step, and the rows dropped by reason."""

    step: str
    rows_in: int
    rows_out: int
    dropped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "dropped": dict(self.dropped),
        }


@dataclass
class Report:
    """The data-quality report: one StepReport per step, in order."""

    steps: list[StepReport] = field(default_factory=list)

    def add(
        self, step: str, rows_in: int, rows_out: int, dropped: dict[str, int] | None = None
    ) -> None:
        """Record a step; the dropped counts must explain every missing row."""
        dropped = {k: v for k, v in (dropped or {}).items() if v}
        self.steps.append(StepReport(step, rows_in, rows_out, dropped))

    def to_dict(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.steps]

    def lines(self) -> list[str]:
        """Human-readable lines, one per step."""
        out = []
        for s in self.steps:
            why = ", ".join(f"{k}: {v:,}" for k, v in s.dropped.items())
            out.append(
                f"{s.step}: {s.rows_in:,} -> {s.rows_out:,} rows"
                + (f" (dropped {why})" if why else "")
            )
        return out


def check_bad_rows(
    counts: dict[str, int],
    on_error: OnError,
    *,
    where: str,
    how: str,
    first_row: int | None = None,
) -> None:
    """Raise a DataError for the first reason with bad rows when ``on_error == "raise"``,
    naming the data row of the first such row where it is known (``first_row``: 1 = the
    first row after a header, a JSON Lines file's first object).

    Examples
    --------
    >>> try:
    ...     check_bad_rows({"empty user_id": 2}, "raise", where="e.csv", how="fill it in",
    ...                    first_row=7)
    ... except DataError as error:
    ...     print(error.what.split(" (")[0])
    2 bad row(s): empty user_id, the first on data row 7
    """
    if on_error not in ("raise", "drop"):
        raise ValueError(f"on_error must be 'raise' or 'drop', got {on_error!r}")
    if on_error == "drop":
        return
    at = "" if first_row is None else f", the first on data row {first_row:,}"
    for reason, n in counts.items():
        if n:
            raise DataError(
                f"{n:,} bad row(s): {reason}{at} (the first problem found; rows may have others)",
                where=where,
                how=f"{how}, or pass on_error='drop' (--on-error drop) to drop and count every "
                "bad row by reason",
            )
