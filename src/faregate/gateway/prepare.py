"""Before the upstream call: find the route, reserve the worst case, set the output limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from faregate.api_keys.service import Principal
from faregate.catalog.service import ModelInfo, Route
from faregate.errors import InsufficientQuota, InvalidRequest, ModelNotFound
from faregate.gateway.limits import budget_reached, limit_reached
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
    route: Route  # the upstream being tried (the relay moves it on failover)
    reservation: Reservation
    upstream_body: bytes  # for `route`
    lowered_to: int | None  # the output limit, when lowered to what the balance covers
    routes: list[Route]  # every candidate, lowest priority number first
    raw_body: bytes
    body_changed: bool

    def use(self, route: Route) -> None:
        """Send the call to `route` instead (failover): its own name for the model."""
        self.route = route
        if not self.body_changed and route.upstream_model == self.call.model:
            self.upstream_body = self.raw_body
            return
        self.call.body["model"] = route.upstream_model
        self.upstream_body = orjson.dumps(self.call.body)


def _no_such_model(name: str) -> ModelNotFound:
    return ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.",
                         param="model")


def find_model(gw: GatewayState, call: Call, principal: Principal
               ) -> tuple[ModelInfo, list[Route]]:
    """The model `call` names (directly or by an alias) and its routes. A model above the
    organization's tier is answered as OpenAI answers a model you may not use: 404, as if it
    did not exist. The client keeps seeing the name it asked for (the relay renames the
    upstream's name back to `call.model`); `ModelInfo.id` is the canonical id."""
    snapshot = gw.catalog.snapshot
    model_id = snapshot.resolve(call.model)
    model = snapshot.models.get(model_id)
    routes = snapshot.routes.get(model_id)
    if model is None or not routes or model.kind != _KIND_OF_ENDPOINT[call.endpoint] \
            or model.min_tier > principal.tier:
        raise _no_such_model(call.model)
    return model, routes


def context_length_exceeded(window: int, asked: int) -> InvalidRequest:
    return InvalidRequest(
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{asked} tokens for the completion alone. Please reduce the length of the messages "
        "or completion.", param="messages", code="context_length_exceeded")


def _set_limit(body: dict[str, Any], call: Call, limit: int) -> None:
    assert call.limit_field is not None
    body[call.limit_field] = limit
    if call.endpoint == "chat":  # a client may send both fields; lower both
        other = "max_tokens" if call.limit_field == "max_completion_tokens" else \
            "max_completion_tokens"
        if isinstance(body.get(other), int):
            body[other] = min(body[other], limit)


async def _reserve(gw: GatewayState, principal: Principal, want: int, need: int
                   ) -> tuple[Reservation, Callable[[int], InsufficientQuota]]:
    """Reserve from the balance and, in the same step, from the key's spend limit and the
    project's budget when they have one. Also returns how to refuse when account `i` (in the
    order reserved; 0 = the balance) ran short."""
    if principal.spend_limit_nano is None and principal.project_budget_nano is None:
        res = await gw.credits.reserve(principal.acct_id, want, need)
        if res is None:
            raise InsufficientQuota()
        return res, _no_quota
    accts = [principal.acct_id]
    windows: list[LimitWindow | None] = [None]
    if principal.spend_limit_nano is not None:
        acct, period = await gw.limits.account_for(principal)
        accts.append(acct)
        windows.append(period)
    budget_at = 0
    if principal.project_budget_nano is not None and principal.project_id is not None:
        acct, month = await gw.limits.budget_account_for(principal)
        budget_at = len(accts)
        accts.append(acct)
        windows.append(month)

    def refuse(index: int) -> InsufficientQuota:
        w = windows[index]
        if w is None:
            return InsufficientQuota()
        return budget_reached(principal, w) if index == budget_at else \
            limit_reached(principal, w)

    got = await gw.credits.reserve_joint(tuple(accts), want, need)
    if isinstance(got, Shortfall):
        raise refuse(got.index)
    return got, refuse


def _no_quota(index: int) -> InsufficientQuota:
    return InsufficientQuota()


BILLING_NOT_ACTIVE = (
    "Billing for your organization is not active: payments on your card failed. Add a working "
    "card or pay on the billing page to reactivate it.")


async def prepare(gw: GatewayState, call: Call, principal: Principal,
                  raw_body: bytes) -> Prepared:
    if principal.billing_suspended:
        raise InsufficientQuota(BILLING_NOT_ACTIVE, code="billing_not_active")
    model, routes = find_model(gw, call, principal)
    price = gw.catalog.snapshot.price_for(model, principal.price_group)
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
        window = model.context_window
        # The prompt's size is known here only as a byte count (an upper bound, not tokens),
        # so the window refuses only a completion limit that alone exceeds it, and keeps the
        # default limit inside it; the upstream judges prompt + completion.
        if window is not None and limit > window:
            if call.max_tokens is not None:
                raise context_length_exceeded(window, call.max_tokens)
            limit = window
        want, need = reservation(price, prompt_bound, limit, call.n, margin)
    else:
        want = need = cost(price, prompt_bound, 0, 0)
    res, refuse = await _reserve(gw, principal, want, need)
    lowered: int | None = None
    changed = False
    if call.has_output:
        if res.amount_nano < want:
            fits = max_tokens_within(price, res.amount_nano, prompt_bound, call.n, margin, limit)
            if fits < 1:
                gw.credits.release(res)
                raise refuse(res.limited_by)
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
    prep = Prepared(call, model, price, route, res, raw_body, lowered, routes, raw_body, changed)
    if changed or route.upstream_model != call.model:
        prep.use(route)
    return prep
