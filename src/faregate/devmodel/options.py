"""Model names and the behaviour options encoded in them.

A model name is ``<base>[:<option>,<option>...]`` where ``<base>`` starts with
``faregate-dev`` and each option is one of:

* ``overshoot=N``          – when a max-token limit applies, emit N pieces beyond it
                             (usage reports them honestly, finish_reason "length")
* ``die_after=K``          – streams drop the connection after K content chunks, no [DONE]
* ``no_usage``             – streams never carry usage (chat/completions: no usage chunk
                             even when asked; responses: ``usage: null``)
* ``no_done``              – streams end cleanly without the ``data: [DONE]`` marker
* ``fail=STATUS``          – answer HTTP STATUS (400-599) with an OpenAI error object
* ``slow_first_byte_ms=M`` – wait M milliseconds before sending anything
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from faregate.devmodel.errors import DevModelError, invalid_value, model_not_found

MODEL_PREFIX = "faregate-dev"
CHAT_MODEL = "faregate-dev"
EMBED_MODEL = "faregate-dev-embed"
SERVED_MODELS = (CHAT_MODEL, EMBED_MODEL)

_INT_OPTIONS = ("overshoot", "die_after", "fail", "slow_first_byte_ms")


@dataclass(frozen=True, slots=True)
class ModelOptions:
    overshoot: int = 0
    die_after: int | None = None
    no_usage: bool = False
    no_done: bool = False
    fail: int | None = None
    slow_first_byte_ms: int = 0


def is_dev_model(model: str) -> bool:
    return model.partition(":")[0].startswith(MODEL_PREFIX)


@lru_cache(maxsize=1024)
def parse_model(model: str) -> ModelOptions:
    """Validate a requested model name and return its options (404/400 otherwise)."""
    base, _, spec = model.partition(":")
    if not base.startswith(MODEL_PREFIX):
        raise model_not_found(model)
    values: dict[str, int] = {}
    flags = {"no_usage": False, "no_done": False}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, eq, raw = item.partition("=")
        if name in flags and not eq:
            flags[name] = True
            continue
        if name not in _INT_OPTIONS or not eq:
            raise _bad_option(f"unknown model option {item!r}.")
        if not raw.isdigit():
            raise _bad_option(f"option {name!r} needs a non-negative integer, got {raw!r}.")
        values[name] = int(raw)
    fail = values.get("fail")
    if fail is not None and not 400 <= fail <= 599:
        raise _bad_option("option 'fail' must be an HTTP status between 400 and 599.")
    return ModelOptions(
        overshoot=values.get("overshoot", 0),
        die_after=values.get("die_after"),
        no_usage=flags["no_usage"],
        no_done=flags["no_done"],
        fail=fail,
        slow_first_byte_ms=values.get("slow_first_byte_ms", 0),
    )


def _bad_option(message: str) -> DevModelError:
    return invalid_value("model", message)
