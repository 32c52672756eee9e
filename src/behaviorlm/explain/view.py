"""The terminal view of an explanation (``behaviorlm explain``, the demo).

Each event the model reads is a row with its time, action, item and title and a signed bar
(red to the left for events that lower the target's probability, green to the right for
events that raise it); a second table gives the feature groups by ablation and by the
method's attributions (the events' summed by kind; Shapley values give location and device
their own).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from behaviorlm.progress import figure, print_table

#: Positions of set-aside events listed below the timeline (the latest ones).
SHOWN_ASIDE = 10
#: Terminals narrower than this get half-width influence bars.
NARROW = 100


def _bar(value: float | None, scale: float, width: int = 8) -> Text:
    """A signed bar: red to the left of the centre for negative values, green to the right."""
    if value is None or scale <= 0:
        return Text(" " * (2 * width + 1))
    n = min(width, round(abs(value) / scale * width))
    left = ("█" * n if value < 0 else "").rjust(width)
    right = ("█" * n if value > 0 else "").ljust(width)
    # the axis is dashed: a solid one reads as the table's own column separator
    return Text(left, style="red") + Text("┆", style="dim") + Text(right, style="green")


def _when(timestamp: int) -> str:
    """Seconds since 1970 as a UTC time; small numbers (positions, not times) as they are."""
    if timestamp < 100_000_000:
        return str(timestamp)
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _action(e: dict[str, Any]) -> str:
    """The action of an explained event, with who did it for a followee's event, and where a
    view came from (a followee's share, a search result)."""
    name = str(e["action_name"])
    if e.get("followee_id"):
        return f"{name} by {e['followee_id']}"
    if e["kind"] == "social":
        return f"{name} (social)"
    if e["kind"] == "search" and e.get("item_id") and name != "search":  # a search says it
        return f"{name} (search)"
    return name


def print_explanation(con: Console, user: str, data: dict[str, Any]) -> None:
    """Print a labelled explanation: the timeline with signed influence bars, then the groups.

    ``data`` is :func:`behaviorlm.explain.labelled_explanation`'s dict (the JSON of
    ``behaviorlm explain --json``).
    """
    target = data["target"]
    name = (
        f"item {target.get('item_id')} {target.get('title') or ''}".strip()
        if target["kind"] == "item"
        else f"action {target.get('action_name', target['id'])}"
    )
    attention = data["method"] == "attention"
    key = "attention" if attention else "probability"
    values = [e[key] for e in data["events"] if e[key] is not None]
    scale = max((abs(v) for v in values), default=0.0)
    # a bar's width on each side of the centre: half of it on a narrow terminal (a file or a
    # pipe gets the table at its natural width)
    half = 4 if con.is_terminal and con.width < NARROW else 8
    aside = len(data["set_aside"])
    without = f", without the user's {aside} own events on it" if aside else ""
    table = Table(  # the data's own text is printed as written, never read as rich markup
        title=Text(
            f"{data['method']} of {name} for user {user}{without} "
            f"(p = {figure(data['probability'], data['probability'])}, "
            f"logit {data['logit']:.3f})"
        ),
        title_justify="left",
    )
    for column in ("#", "time", "action", "item", "title"):
        table.add_column(column, justify="right" if column == "#" else "left")
    table.add_column(  # left: every bar has the same width, so the axis stays in one column
        "attention" if attention else "influence on p" if half == 8 else "influence",
        justify="left",
        no_wrap=True,
        min_width=2 * half + 1,
    )
    table.add_column("weight" if attention else "Δp", justify="right")
    if not attention:
        table.add_column("Δlogit", justify="right")
    for e in data["events"]:
        cells: list[str | Text] = [
            str(e["index"]),
            _when(e["timestamp"]),
            Text(_action(e)),
            Text(str(e["item_id"] or "")),
            Text(str(e["title"] or (f"search: {e['query']}" if e.get("query") else ""))),
            _bar(e[key], scale, half),
            figure(e[key], scale, sign=True),
        ]
        if not attention:
            cells.append(f"{e['logit']:+.3f}")
        table.add_row(*cells)
    print_table(con, table)
    if data.get("steps") is not None and data.get("baseline_logit") is not None:
        total = sum(e["logit"] for e in data["events"])
        prob = sum(e["probability"] for e in data["events"])
        gain = data["probability"] - data["baseline_probability"]
        con.print(
            f"(completeness: the events sum to {total:+.4f}, logit - baseline "
            f"{data['logit'] - data['baseline_logit']:+.4f}; in probability "
            f"{figure(prob, abs(gain), sign=True)} and {figure(gain, abs(gain), sign=True)}; "
            f"{data['steps']} points)",
            soft_wrap=True,
        )
    if data["unread"]:
        con.print(f"({data['unread']} older events lie beyond the model's window)", markup=False)
    if aside:
        shown = ", ".join(f"#{e['index']}" for e in data["set_aside"][-SHOWN_ASIDE:])
        more = f"{aside - SHOWN_ASIDE} more and " if aside > SHOWN_ASIDE else ""
        con.print(
            f"(set aside: the user's own events on the target item, {more}{shown})", markup=False
        )
    groups = Table(title="feature groups", title_justify="left")
    groups.add_column("group")
    groups.add_column("ablation Δp", justify="right")
    groups.add_column("ablation Δlogit", justify="right")
    groups.add_column("attributed Δp", justify="right")
    groups.add_column("attributed Δlogit", justify="right")

    # each probability column in significant digits where its largest value is small
    scales = {
        key: max((abs(g[key]) for g in data["groups"] if g[key] is not None), default=0.0)
        for key in ("ablation_probability", "attributed_probability")
    }

    def probability(g: dict[str, Any], key: str) -> str:
        return "" if g[key] is None else figure(g[key], scales[key], sign=True)

    def logit(value: float | None) -> str:
        return "" if value is None else f"{value:+.3f}"

    for g in data["groups"]:
        groups.add_row(
            g["group"],
            probability(g, "ablation_probability"),
            logit(g["ablation_logit"]),
            probability(g, "attributed_probability"),
            logit(g["attributed_logit"]),
        )
    print_table(con, groups)
    constant = [g["group"] for g in data["groups"] if g.get("single_value")]
    if constant:
        con.print(
            f"({', '.join(constant)}: one value in the training data, the same on every "
            "event; the ablation removes a learned constant, not information)",
            markup=False,
        )
    if data["note"]:
        con.print(f"note: {data['note']}", markup=False)
