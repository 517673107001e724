"""``python -m faregate.devmodel --host 127.0.0.1 --port 9100 --token-latency-ms 0``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from faregate.devmodel.server import run


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m faregate.devmodel",
        description="Deterministic OpenAI-compatible development model (no ML).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument(
        "--token-latency-ms", type=float, default=0.0, help="delay per emitted token"
    )
    args = parser.parse_args(argv)
    run(args.host, args.port, args.token_latency_ms)


if __name__ == "__main__":
    main()
