"""``python -m attribution_api``: serve the example API (and deliver its webhooks) with uvicorn."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from attribution_webhooks import Webhooks

from .app import create_app
from .domain import AttributionService


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m attribution_api")
    parser.add_argument("--database-url", default="sqlite:///attribution.sqlite3")
    parser.add_argument("--mode", default="development", choices=("development", "production"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    try:
        hooks = Webhooks(args.database_url, mode=args.mode)
    except (ValueError, OSError) as error:
        print(f"attribution_api: {error}", file=sys.stderr)
        return 2
    with hooks:
        uvicorn.run(
            create_app(AttributionService(hooks)), host=args.host, port=args.port, log_level="warning"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
