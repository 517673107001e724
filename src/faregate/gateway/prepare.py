"""Before the upstream call: find the route, reserve the worst case, set the output limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from faregate.api_keys.service import Principal
from faregate.catalog.service import ModelInfo, Route
from faregate.errors import InsufficientQuota, InvalidRequest, ModelNotFound
from faregate.gateway.limits import limit_reached
from faregate.gateway.parse import Call
from faregate.gateway.state import GatewayState
from faregate.ledger.leasing import Reservation, Shortfall
from faregate.ledger.limits import LimitWindow
from faregate.pricing.cost import Price, cost, max_tokens_within, reservation

_KIND_OF_ENDPOINT = {"chat": "chat", "completions": "chat", "responses": "chat",
                     "embeddings": "embedding"}


@dataclass(slots=True)
class Prepared:
    call: Call
    model: ModelInfo
    price: Price
    route: Route
    reservation: Reservation
    upstream_body: bytes
    lowered_to: int | None  # the output limit, when lowered to what the balance covers


def find_model(gw: GatewayState, call: Call) -> tuple[ModelInfo, list[Route]]:
    snapshot = gw.catalog.snapshot
    model = snapshot.models.get(call.model)
    routes = snapshot.routes.get(call.model)
    if model is None or not routes or model.kind != _KIND_OF_ENDPOINT[call.endpoint]:
        raise ModelNotFound(f"The model `{call.model}` does not exist or you do not have access "
                            "to it.", param="model")
    return model, routes


def _set_limit(body: dict[str, Any], call: Call, limit: int) -> None:
    assert call.limit_field is not None
    body[call.limit_field] = limit
    if call.endpoint == "chat":  # a client may send both fields; lower both
        other = "max_tokens" if call.limit_field == "max_completion_tokens" else \
            "max_completion_tokens"
        if isinstance(body.get(other), int):
            body[other] = min(body[other], limit)


BILLING_NOT_ACTIVE = (
    "Billing for your organization is not active: payments on your card failed. Add a working "
    "card or pay on the billing page to reactivate it.")


async def prepare(gw: GatewayState, call: Call, principal: Principal,
                  raw_body: bytes) -> Prepared:
    if principal.billing_suspended:
        raise InsufficientQuota(BILLING_NOT_ACTIVE, code="billing_not_active")
    model, routes = find_model(gw, call)
    price = model.price
    # Upper bound of the prompt, with no tokenizer on the hot path: one token per byte of the
    # request body (every token is at least one byte of the text it encodes).
    prompt_bound = len(raw_body)
    margin = gw.settings.overshoot_margin_pct
    body = call.body
    limit = 0
    if call.has_output:
        if call.max_tokens is not None and call.max_tokens > model.max_output_tokens:
            raise InvalidRequest(
                f"{call.limit_field} is too large: {call.max_tokens}. This model supports at "
                f"most {model.max_output_tokens} completion tokens, whereas you provided "
                f"{call.max_tokens}.", param=call.limit_field, code="invalid_value")
        limit = call.max_tokens or model.default_max_tokens
        want, need = reservation(price, prompt_bound, limit, call.n, margin)
    else:
        want = need = cost(price, prompt_bound, 0, 0)
    period: LimitWindow | None = None
    if principal.spend_limit_nano is None:
        res = await gw.credits.reserve(principal.acct_id, want, need)
        if res is None:
            raise InsufficientQuota()
    else:
        limit_acct, period = await gw.limits.account_for(principal)
        got = await gw.credits.reserve_joint((principal.acct_id, limit_acct), want, need)
        if isinstance(got, Shortfall):
            raise InsufficientQuota() if got.index == 0 else limit_reached(principal, period)
        res = got
    lowered: int | None = None
    changed = False
    if call.has_output:
        if res.amount_nano < want:
            fits = max_tokens_within(price, res.amount_nano, prompt_bound, call.n, margin, limit)
            if fits < 1:
                gw.credits.release(res)
                if period is not None and res.limited_by > 0:
                    raise limit_reached(principal, period)
                raise InsufficientQuota()
            lowered = limit = fits
        if limit != call.max_tokens:
            _set_limit(body, call, limit)
            changed = True
    if call.stream and call.endpoint in ("chat", "completions") and not call.client_wants_usage:
        changed = True
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                  "include_usage": True}
    route = routes[0]
    if route.upstream_model != call.model:
        body["model"] = route.upstream_model
        changed = True
    upstream_body = orjson.dumps(body) if changed else raw_body
    return Prepared(call, model, price, route, res, upstream_body, lowered)
