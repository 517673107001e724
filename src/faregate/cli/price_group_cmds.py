"""Price groups: an organization in a group pays the model prices times the group's multiplier
(docs/operators.md#models-and-prices)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from faregate.catalog import model_admin
from faregate.cli._edge import JsonFlag, actor, emit_json, emit_record, emit_table, transaction
from faregate.cli.catalog_cmds import parse_multiplier
from faregate.pricing.groups import ppm_to_text

price_groups_app = typer.Typer(help="Price groups and their multipliers.", no_args_is_help=True)

COLUMNS = ["name", "multiplier", "multiplier_ppm", "description"]


def _data(g: model_admin.PriceGroup) -> dict[str, Any]:
    return {"name": g.name, "multiplier": ppm_to_text(g.multiplier_ppm),
            "multiplier_ppm": g.multiplier_ppm, "description": g.description}


@price_groups_app.command("list")
def price_groups_list(as_json: JsonFlag = False) -> None:
    """List price groups."""
    with transaction() as conn:
        rows = [_data(g) for g in model_admin.list_price_groups(conn)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, COLUMNS)


@price_groups_app.command("set")
def price_groups_set(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The group's name.")],
    multiplier: Annotated[str, typer.Argument(
        metavar="MULTIPLIER", help='A decimal, e.g. "0.8" for 80 % of list prices.')],
    description: Annotated[str | None, typer.Option(help="What the group is for.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a price group or change its multiplier; servers apply it within a second."""
    ppm = parse_multiplier(multiplier)
    with transaction() as conn:
        group = model_admin.set_price_group(conn, name, ppm, description=description,
                                            actor=actor())
    if as_json:
        emit_json(_data(group))
    else:
        emit_record(_data(group))


def register(app: typer.Typer) -> None:
    app.add_typer(price_groups_app, name="price-groups")
