"""`recsys convert movielens100k|interactions SOURCE OUT_DIR`: public benchmark data into a
dataset folder of canonical tables (mapping in `recsys.generic`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from recsys import generic

app = typer.Typer(no_args_is_help=True)


class Format(StrEnum):
    """Layouts `convert` reads."""

    movielens100k = "movielens100k"
    interactions = "interactions"


@app.command("convert")
def convert(
    layout: Annotated[
        Format,
        typer.Argument(
            metavar="FORMAT",
            help="movielens100k (a folder with u.data, u.item, u.user) or interactions (a CSV).",
        ),
    ],
    source: Annotated[Path, typer.Argument(help="MovieLens folder or interactions CSV.")],
    out_dir: Annotated[Path, typer.Argument(help="Dataset folder to write (created).")],
    users: Annotated[
        Path | None, typer.Option("--users", help="interactions: CSV of user ids (+ features).")
    ] = None,
    items: Annotated[
        Path | None,
        typer.Option("--items", help="interactions: CSV of item ids, title, categorical columns."),
    ] = None,
    min_weight: Annotated[
        float | None,
        typer.Option(
            "--min-weight",
            help="Weights (MovieLens: ratings) at or above it are applies, lower ones clicks. "
            "Default: 4 for MovieLens, every row an apply for interactions.",
        ),
    ] = None,
    user_col: Annotated[str, typer.Option(help="interactions: user id column.")] = "user",
    item_col: Annotated[str, typer.Option(help="interactions: item id column.")] = "item",
    weight_col: Annotated[
        str, typer.Option(help="interactions: weight column; '' for implicit data.")
    ] = "weight",
    time_col: Annotated[
        str, typer.Option(help="interactions: time column (epoch seconds or ISO 8601).")
    ] = "timestamp",
) -> None:
    """Convert MovieLens 100k or an interactions CSV into offers, events and profiles tables."""
    try:
        if layout is Format.movielens100k:
            given = [name for name, value in (("--users", users), ("--items", items)) if value]
            if given:
                raise ValueError(f"{' and '.join(given)} only apply to the interactions format")
            counts = generic.convert_movielens100k(
                source,
                out_dir,
                min_rating=generic.MOVIELENS_MIN_RATING if min_weight is None else min_weight,
            )
        else:
            counts = generic.convert_interactions(
                source,
                out_dir,
                user_col=user_col,
                item_col=item_col,
                weight_col=weight_col or None,
                time_col=time_col,
                users_csv=users,
                items_csv=items,
                min_weight=min_weight,
            )
    except (ValueError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    summary = ", ".join(f"{count} {name}" for name, count in counts.items())
    typer.echo(f"{layout} {source} → {out_dir}: {summary}")
