"""The catalog: model prices and limits, upstreams."""

from __future__ import annotations

import enum
import sys
from typing import Annotated, Any

import typer

from faregate.catalog.service import (
    ModelInfo,
    ModelPrice,
    UpstreamInfo,
    add_upstream,
    list_models,
    list_upstreams,
    parse_model_map,
    set_limits,
    set_price,
)
from faregate.cli._edge import (
    JsonFlag,
    emit_json,
    emit_record,
    emit_table,
    parse_usd,
    settings,
    transaction,
)
from faregate.errors import NotFound
from faregate.kit.crypto import Cipher
from faregate.kit.money import nano_to_usd

models_app = typer.Typer(help="Models, their prices and limits.", no_args_is_help=True)
upstreams_app = typer.Typer(help="Upstream providers and the models they serve.",
                            no_args_is_help=True)

MODEL_COLUMNS = ["id", "kind", "input_usd_per_1m", "cached_input_usd_per_1m",
                 "output_usd_per_1m", "default_max_tokens", "max_output_tokens", "enabled"]
UPSTREAM_COLUMNS = ["id", "name", "base_url", "models", "api_key_env", "has_stored_key"]


class Kind(enum.StrEnum):
    chat = "chat"
    embedding = "embedding"


def _model_data(m: ModelInfo) -> dict[str, Any]:
    return {"id": m.id, "kind": m.kind,
            "input_usd_per_1m": nano_to_usd(m.price.input_nano_per_1m),
            "cached_input_usd_per_1m": nano_to_usd(m.price.cached_input_nano_per_1m),
            "output_usd_per_1m": nano_to_usd(m.price.output_nano_per_1m),
            "default_max_tokens": m.default_max_tokens, "max_output_tokens": m.max_output_tokens,
            "enabled": m.enabled}


def _upstream_data(u: UpstreamInfo) -> dict[str, Any]:
    return {"id": u.id, "name": u.name, "base_url": u.base_url, "models": dict(u.models),
            "api_key_env": u.api_key_env, "has_stored_key": u.has_stored_key}


@models_app.command("list")
def models_list(as_json: JsonFlag = False) -> None:
    """List models with prices in USD per 1M tokens."""
    with transaction() as conn:
        rows = [_model_data(m) for m in list_models(conn)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, MODEL_COLUMNS)


@models_app.command("set-price")
def models_set_price(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The public model id.")],
    input_usd: Annotated[str, typer.Option("--input", metavar="USD_PER_1M",
                                           help="Price of 1M input tokens.")],
    output_usd: Annotated[str, typer.Option("--output", metavar="USD_PER_1M",
                                            help="Price of 1M output tokens.")],
    cached_input_usd: Annotated[str | None, typer.Option(
        "--cached-input", metavar="USD_PER_1M",
        help="Price of 1M cached input tokens [default: the input price].")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a model's prices (exact: stored as integer nano-USD per 1M tokens)."""
    input_nano = parse_usd(input_usd, "--input")
    price = ModelPrice(
        input_nano_per_1m=input_nano,
        cached_input_nano_per_1m=(parse_usd(cached_input_usd, "--cached-input")
                                  if cached_input_usd is not None else input_nano),
        output_nano_per_1m=parse_usd(output_usd, "--output"))
    with transaction() as conn:
        info = set_price(conn, model, price)
    _show_model(_model_data(info), as_json)


@models_app.command("set-limits")
def models_set_limits(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The public model id.")],
    default_max_tokens: Annotated[int, typer.Option(
        metavar="N", help="max_tokens when a request gives none.")],
    max_output_tokens: Annotated[int, typer.Option(
        metavar="M", help="The most output tokens a request may ask for.")],
    as_json: JsonFlag = False,
) -> None:
    """Set a model's output-token limits."""
    with transaction() as conn:
        set_limits(conn, model, default_max_tokens=default_max_tokens,
                   max_output_tokens=max_output_tokens)
        found = [m for m in list_models(conn) if m.id == model]
        if not found:
            raise NotFound(f"no model {model!r}")
    _show_model(_model_data(found[0]), as_json)


def _show_model(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(data)
    else:
        emit_record(data)


@upstreams_app.command("add")
def upstreams_add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A unique name for the upstream.")],
    base_url: Annotated[str, typer.Option(help="OpenAI-compatible base URL, e.g. .../v1.")],
    models: Annotated[str, typer.Option(
        metavar="A[,B=upstream-name...]",
        help="Public model ids it serves; NAME=UPSTREAM_NAME when the upstream calls it "
             "differently.")],
    api_key_env: Annotated[str | None, typer.Option(
        metavar="VAR", help="Environment variable holding the API key at run time.")] = None,
    api_key_stdin: Annotated[bool, typer.Option(
        "--api-key-stdin",
        help="Read the API key from standard input and store it encrypted.")] = False,
    connect_timeout_s: Annotated[float, typer.Option(min=0.001, max=3600)] = 10,
    read_timeout_s: Annotated[float, typer.Option(min=0.001, max=86400)] = 600,
    kind: Annotated[Kind, typer.Option(help="What the models are.")] = Kind.chat,
    as_json: JsonFlag = False,
) -> None:
    """Add an upstream; its models are created (price 0) if they do not exist yet."""
    if api_key_env is not None and api_key_stdin:
        raise typer.BadParameter("give either --api-key-env or --api-key-stdin, not both",
                                 param_hint="--api-key-stdin")
    model_map = parse_model_map(models)
    api_key: str | None = None
    if api_key_stdin:
        api_key = sys.stdin.read().strip()
        if not api_key:
            raise typer.BadParameter("no API key on standard input", param_hint="--api-key-stdin")
    cipher = Cipher(settings().secret("encryption_key"))
    with transaction() as conn:
        info = add_upstream(conn, name=name, base_url=base_url, model_map=model_map,
                            api_key=api_key, api_key_env=api_key_env, cipher=cipher,
                            connect_timeout_ms=round(connect_timeout_s * 1000),
                            read_timeout_ms=round(read_timeout_s * 1000), kind=kind.value)
    data = _upstream_data(info)
    if as_json:
        emit_json(data)
    else:
        emit_record(data)


@upstreams_app.command("list")
def upstreams_list(as_json: JsonFlag = False) -> None:
    """List upstreams (credentials are never shown)."""
    with transaction() as conn:
        rows = [_upstream_data(u) for u in list_upstreams(conn)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, UPSTREAM_COLUMNS)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.add_typer(upstreams_app, name="upstreams")
