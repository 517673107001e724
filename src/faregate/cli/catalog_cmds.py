"""The catalog: model prices and limits, upstreams."""

from __future__ import annotations

import datetime as dt
import enum
import sys
from typing import Annotated, Any

import typer

from faregate.catalog import model_admin, upstream_admin
from faregate.catalog.service import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    DEFAULT_MAX_TOKENS,
    ModelInfo,
    ModelPrice,
    UpstreamInfo,
    list_models,
    list_upstreams,
    parse_model_map,
)
from faregate.cli._edge import (
    JsonFlag,
    actor,
    emit_json,
    emit_record,
    emit_table,
    parse_usd,
    settings,
    transaction,
)
from faregate.kit.crypto import Cipher
from faregate.kit.money import nano_to_usd
from faregate.pricing.groups import ppm_to_text, text_to_ppm

models_app = typer.Typer(help="Models, their prices and limits.", no_args_is_help=True)
upstreams_app = typer.Typer(help="Upstream providers and the models they serve.",
                            no_args_is_help=True)

MODEL_COLUMNS = ["id", "kind", "input_usd_per_1m", "cached_input_usd_per_1m",
                 "output_usd_per_1m", "default_max_tokens", "max_output_tokens", "enabled",
                 "visibility", "min_tier"]
UPSTREAM_COLUMNS = ["id", "name", "base_url", "models", "priority", "weight", "enabled",
                    "api_key_env", "has_stored_key"]


class Kind(enum.StrEnum):
    chat = "chat"
    embedding = "embedding"


def _model_data(m: ModelInfo) -> dict[str, Any]:
    return {"id": m.id, "kind": m.kind,
            "input_usd_per_1m": nano_to_usd(m.price.input_nano_per_1m),
            "cached_input_usd_per_1m": nano_to_usd(m.price.cached_input_nano_per_1m),
            "output_usd_per_1m": nano_to_usd(m.price.output_nano_per_1m),
            "default_max_tokens": m.default_max_tokens, "max_output_tokens": m.max_output_tokens,
            "enabled": m.enabled, "visibility": m.visibility, "context_window": m.context_window,
            "min_tier": m.min_tier}


def _upstream_data(u: UpstreamInfo) -> dict[str, Any]:
    return {"id": u.id, "name": u.name, "base_url": u.base_url, "models": dict(u.models),
            "api_key_env": u.api_key_env, "has_stored_key": u.has_stored_key,
            "priority": u.priority, "weight": u.weight, "enabled": u.enabled,
            "connect_timeout_s": u.connect_timeout_ms / 1000,
            "read_timeout_s": u.read_timeout_ms / 1000}


@models_app.command("list")
def models_list(as_json: JsonFlag = False) -> None:
    """List models with prices in USD per 1M tokens."""
    with transaction() as conn:
        rows = [_model_data(m) for m in list_models(conn)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, MODEL_COLUMNS)


class Visibility(enum.StrEnum):
    public = "public"
    hidden = "hidden"


ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="The public model id.")]
UsdOpt = Annotated[str | None, typer.Option(metavar="USD_PER_1M")]


def _usd(text: str | None, param: str) -> int | None:
    return None if text is None else parse_usd(text, param)


@models_app.command("add")
def models_add(
    model: ModelArg,
    kind: Annotated[Kind, typer.Option(help="What the model is.")] = Kind.chat,
    input_usd: Annotated[str, typer.Option("--input", metavar="USD_PER_1M",
                                           help="Price of 1M input tokens.")] = "0",
    output_usd: Annotated[str, typer.Option("--output", metavar="USD_PER_1M",
                                            help="Price of 1M output tokens.")] = "0",
    cached_input_usd: Annotated[str | None, typer.Option(
        "--cached-input", metavar="USD_PER_1M",
        help="Price of 1M cached input tokens [default: the input price].")] = None,
    default_max_tokens: Annotated[int, typer.Option(
        min=1, metavar="N", help="max_tokens when a request gives none.")] = DEFAULT_MAX_TOKENS,
    max_output_tokens: Annotated[int, typer.Option(
        min=1, metavar="M", help="The most output tokens a request may ask for.")
    ] = DEFAULT_MAX_OUTPUT_TOKENS,
    visibility: Annotated[Visibility, typer.Option(
        help="hidden: callable by name, not listed in /v1/models.")] = Visibility.public,
    context_window: Annotated[int | None, typer.Option(
        min=1, metavar="TOKENS", help="Prompt + output tokens the model takes.")] = None,
    min_tier: Annotated[int, typer.Option(
        min=0, max=100, help="The lowest usage tier that may use the model.")] = 0,
    owned_by: Annotated[str, typer.Option(help="Shown in /v1/models.")] = "faregate",
    as_json: JsonFlag = False,
) -> None:
    """Add a model (an upstream must route it before clients can call it)."""
    input_nano = parse_usd(input_usd, "--input")
    cached_nano = _usd(cached_input_usd, "--cached-input")
    price = ModelPrice(input_nano, input_nano if cached_nano is None else cached_nano,
                       parse_usd(output_usd, "--output"))
    with transaction() as conn:
        info = model_admin.create_model(
            conn, model_id=model, kind=kind.value, price=price,
            default_max_tokens=default_max_tokens, max_output_tokens=max_output_tokens,
            visibility=visibility.value, context_window=context_window, min_tier=min_tier,
            owned_by=owned_by, actor=actor())
    _show_model(_model_data(info), as_json)


@models_app.command("set")
def models_set(
    model: ModelArg,
    input_usd: Annotated[str | None, typer.Option(
        "--input", metavar="USD_PER_1M", help="Price of 1M input tokens.")] = None,
    cached_input_usd: Annotated[str | None, typer.Option(
        "--cached-input", metavar="USD_PER_1M", help="Price of 1M cached input tokens.")
    ] = None,
    output_usd: Annotated[str | None, typer.Option(
        "--output", metavar="USD_PER_1M", help="Price of 1M output tokens.")] = None,
    default_max_tokens: Annotated[int | None, typer.Option(min=1, metavar="N")] = None,
    max_output_tokens: Annotated[int | None, typer.Option(min=1, metavar="M")] = None,
    visibility: Annotated[Visibility | None, typer.Option()] = None,
    context_window: Annotated[int | None, typer.Option(
        min=0, metavar="TOKENS", help="0 removes the window.")] = None,
    min_tier: Annotated[int | None, typer.Option(min=0, max=100)] = None,
    owned_by: Annotated[str | None, typer.Option()] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change any of a model's fields; the rest stay. Prices apply to requests that start
    after this (a running request keeps the price it started with)."""
    change = model_admin.ModelChange(
        input_nano_per_1m=_usd(input_usd, "--input"),
        cached_input_nano_per_1m=_usd(cached_input_usd, "--cached-input"),
        output_nano_per_1m=_usd(output_usd, "--output"),
        default_max_tokens=default_max_tokens, max_output_tokens=max_output_tokens,
        visibility=None if visibility is None else visibility.value,
        context_window=context_window or None, clear_context_window=context_window == 0,
        min_tier=min_tier, owned_by=owned_by, enabled=enabled)
    with transaction() as conn:
        info = model_admin.update_model(conn, model, change, actor=actor())
    _show_model(_model_data(info), as_json)


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
    change = model_admin.ModelChange(
        input_nano_per_1m=input_nano,
        cached_input_nano_per_1m=(parse_usd(cached_input_usd, "--cached-input")
                                  if cached_input_usd is not None else input_nano),
        output_nano_per_1m=parse_usd(output_usd, "--output"))
    with transaction() as conn:
        info = model_admin.update_model(conn, model, change, actor=actor())
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
    change = model_admin.ModelChange(default_max_tokens=default_max_tokens,
                                     max_output_tokens=max_output_tokens)
    with transaction() as conn:
        info = model_admin.update_model(conn, model, change, actor=actor())
    _show_model(_model_data(info), as_json)


alias_app = typer.Typer(help="Other public names for a model.", no_args_is_help=True)
models_app.add_typer(alias_app, name="alias")


@alias_app.command("add")
def alias_add(
    alias: Annotated[str, typer.Argument(metavar="ALIAS", help="The other name.")],
    model: ModelArg,
) -> None:
    """Let clients call MODEL as ALIAS (they see ALIAS in responses)."""
    with transaction() as conn:
        model_admin.add_alias(conn, alias, model, actor=actor())
    typer.echo(f"{alias} -> {model}")


@alias_app.command("remove")
def alias_remove(alias: Annotated[str, typer.Argument(metavar="ALIAS")]) -> None:
    """Remove an alias."""
    with transaction() as conn:
        model_admin.remove_alias(conn, alias, actor=actor())
    typer.echo(f"removed alias {alias}")


@models_app.command("set-group-multiplier")
def models_set_group_multiplier(
    model: ModelArg,
    group: Annotated[str, typer.Argument(metavar="GROUP", help="A price group.")],
    multiplier: Annotated[str | None, typer.Argument(
        metavar="MULTIPLIER", help='A decimal, e.g. "1.25"; omit with --clear.')] = None,
    clear: Annotated[bool, typer.Option(
        "--clear", help="Remove the model's own multiplier (the group's applies).")] = False,
) -> None:
    """Set the model's own price multiplier for a price group; it wins over the group's."""
    if (multiplier is None) == (not clear):
        raise typer.BadParameter("give a MULTIPLIER or --clear", param_hint="MULTIPLIER")
    ppm = None if clear else parse_multiplier(multiplier or "")
    with transaction() as conn:
        model_admin.set_model_multiplier(conn, model, group, ppm, actor=actor())
    typer.echo(f"{model} in {group}: " + ("the group's multiplier" if ppm is None else
                                         f"x{ppm_to_text(ppm)}"))


def parse_multiplier(text: str) -> int:
    """A decimal multiplier to parts per million; a usage error (exit 2) when malformed."""
    try:
        return text_to_ppm(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="MULTIPLIER") from None


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
    priority: Annotated[int, typer.Option(
        min=0, max=upstream_admin.MAX_PRIORITY,
        help="Lower numbers are tried first.")] = 0,
    weight: Annotated[int, typer.Option(
        min=1, max=upstream_admin.MAX_WEIGHT,
        help="Share of the load among upstreams of the same priority.")] = 1,
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
        info = upstream_admin.create_upstream(
            conn, name=name, base_url=base_url, model_map=model_map, api_key=api_key,
            api_key_env=api_key_env, cipher=cipher, actor=actor(), priority=priority,
            weight=weight, connect_timeout_ms=round(connect_timeout_s * 1000),
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


@upstreams_app.command("set")
def upstreams_set(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The upstream's name.")],
    priority: Annotated[int | None, typer.Option(
        min=0, max=upstream_admin.MAX_PRIORITY, help="Lower numbers are tried first.")] = None,
    weight: Annotated[int | None, typer.Option(
        min=1, max=upstream_admin.MAX_WEIGHT,
        help="Share of the load among upstreams of the same priority.")] = None,
    enabled: Annotated[bool | None, typer.Option(
        "--enable/--disable", help="Route to it, or not.")] = None,
    connect_timeout_s: Annotated[float | None, typer.Option(min=0.001, max=3600)] = None,
    read_timeout_s: Annotated[float | None, typer.Option(min=0.001, max=86400)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an upstream's routing, timeouts or enablement (audited; servers route with it
    within a second or two)."""
    change = upstream_admin.UpstreamChange(
        priority=priority, weight=weight, enabled=enabled,
        connect_timeout_ms=round(connect_timeout_s * 1000) if connect_timeout_s else None,
        read_timeout_ms=round(read_timeout_s * 1000) if read_timeout_s else None)
    with transaction() as conn:
        found = upstream_admin.find_upstream(conn, name)
        info = upstream_admin.change_upstream(conn, found.id, change, actor=actor())
    data = _upstream_data(info)
    if as_json:
        emit_json(data)
    else:
        emit_record(data)


UPSTREAM_STATS_COLUMNS = ["name", "enabled", "priority", "weight", "requests", "failures",
                          "error_rate", "mean_latency_ms", "failovers", "breaker", "health",
                          "last_error"]


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat()


@upstreams_app.command("stats")
def upstreams_stats(as_json: JsonFlag = False) -> None:
    """Each upstream's figures, summed over the running servers: requests, failures, mean
    latency to the response head, failovers, breaker state and health."""
    live_s = max(3 * settings().upstream_stats_flush_s, 15.0)
    with transaction() as conn:
        figures = upstream_admin.upstream_figures(conn, live_s)
    rows = [{"name": f.upstream.name, "enabled": f.upstream.enabled,
             "priority": f.upstream.priority, "weight": f.upstream.weight,
             "requests": f.requests, "failures": f.failures,
             "error_rate": None if f.error_rate is None else round(f.error_rate, 4),
             "mean_latency_ms": None if f.mean_latency_ms is None else
             round(f.mean_latency_ms, 1),
             "failovers": f.failovers, "breaker": f.breaker,
             "breaker_open_until": _iso(f.breaker_open_until), "health": f.health,
             "last_error": f.last_error, "last_error_at": _iso(f.last_error_at),
             "instances": f.instances} for f in figures]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, UPSTREAM_STATS_COLUMNS)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.add_typer(upstreams_app, name="upstreams")
