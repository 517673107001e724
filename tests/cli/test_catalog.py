"""Model prices and limits, upstreams and their stored credentials."""

from __future__ import annotations

from pathlib import Path

from ._support import Cli

MODEL_FIELDS = {"id", "kind", "input_usd_per_1m", "cached_input_usd_per_1m",
                "output_usd_per_1m", "default_max_tokens", "max_output_tokens", "enabled",
                "visibility", "min_tier", "context_window"}
UPSTREAM_FIELDS = {"id", "name", "base_url", "models", "api_key_env", "has_stored_key",
                   "priority", "weight", "enabled", "connect_timeout_s", "read_timeout_s"}


def test_upstream_with_stdin_key_is_stored_encrypted(fresh_cli: Cli, tmp_path: Path) -> None:
    secret = "sk-upstream-PLAINTEXT-7f3c9a1e55"
    added = fresh_cli.json("upstreams", "add", "openai", "--base-url",
                           "https://api.example.com/v1/", "--models", "a,b=x",
                           "--api-key-stdin", stdin=secret + "\n")
    assert set(added) == UPSTREAM_FIELDS
    assert added["name"] == "openai"
    assert added["base_url"] == "https://api.example.com/v1"
    assert added["models"] == {"a": "a", "b": "x"}
    assert added["api_key_env"] is None
    assert added["has_stored_key"] is True

    env_added = fresh_cli.json("upstreams", "add", "local", "--base-url", "http://127.0.0.1:9",
                               "--models", "e", "--api-key-env", "LOCAL_KEY",
                               "--kind", "embedding")
    assert env_added["api_key_env"] == "LOCAL_KEY"
    assert env_added["has_stored_key"] is False

    listed = fresh_cli("upstreams", "list", "--json").stdout
    text = fresh_cli("upstreams", "list").stdout
    assert secret not in listed
    assert secret not in text
    assert fresh_cli.json("upstreams", "list") == [added, env_added]

    for path in tmp_path.glob("fg.db*"):
        assert secret.encode() not in path.read_bytes(), path

    dup = fresh_cli("upstreams", "add", "openai", "--base-url", "https://x.example", "--models",
                    "c", expect=1)
    assert "already exists" in dup.stderr
    both = fresh_cli("upstreams", "add", "z", "--base-url", "https://x.example", "--models", "c",
                     "--api-key-env", "K", "--api-key-stdin", stdin="k\n", expect=2)
    assert both.stdout == ""
    bad_url = fresh_cli("upstreams", "add", "z", "--base-url", "ftp://x", "--models", "c",
                        expect=2)
    assert "base URL" in bad_url.stderr

    # Models served by the upstreams were created with zero prices.
    models = {m["id"]: m for m in fresh_cli.json("models", "list")}
    assert set(models) == {"a", "b", "e"}
    assert all(set(m) == MODEL_FIELDS for m in models.values())
    assert models["a"]["input_usd_per_1m"] == "0"
    assert models["a"]["enabled"] is True
    assert models["e"]["kind"] == "embedding"

    # Prices round-trip exactly; cached input defaults to the input price.
    set_a = fresh_cli.json("models", "set-price", "a", "--input", "0.15", "--output", "0.6")
    assert (set_a["input_usd_per_1m"], set_a["cached_input_usd_per_1m"],
            set_a["output_usd_per_1m"]) == ("0.15", "0.15", "0.6")
    fresh_cli("models", "set-price", "b", "--input", "2.5", "--output", "10",
              "--cached-input", "1.250000001")
    fresh_cli.json("models", "set-limits", "b", "--default-max-tokens", "512",
                   "--max-output-tokens", "8192")
    models = {m["id"]: m for m in fresh_cli.json("models", "list")}
    assert models["a"] == set_a
    assert (models["b"]["input_usd_per_1m"], models["b"]["cached_input_usd_per_1m"],
            models["b"]["output_usd_per_1m"]) == ("2.5", "1.250000001", "10")
    assert (models["b"]["default_max_tokens"], models["b"]["max_output_tokens"]) == (512, 8192)
    assert "0.15" in fresh_cli("models", "list").stdout

    assert fresh_cli("models", "set-price", "nope", "--input", "1", "--output", "1",
                     expect=1).stderr.count("nope")
    fresh_cli("models", "set-price", "a", "--input", "0.0000000001", "--output", "1", expect=2)
    fresh_cli("models", "set-price", "a", "--input", "-1", "--output", "1", expect=2)
    fresh_cli("models", "set-limits", "a", "--default-max-tokens", "100",
              "--max-output-tokens", "10", expect=2)
