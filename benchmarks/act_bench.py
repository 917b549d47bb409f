"""ACT benchmark (issue 6): does ACT reach full-human quality at a fraction of the human budget?

Runs the harness of ``act_plugin.bench`` with a TOML config and prints Markdown tables to stdout
(progress goes to stderr):

    python benchmarks/act_bench.py                                  # benchmarks/act_bench.toml
    python benchmarks/act_bench.py --config my.toml --json result.json --png gaps.png
    python benchmarks/act_bench.py --config endpoint.toml --env     # OPENAI_* / ACT_* settings

Per data set and seed: annotate → criticize → review (the true labels answer as the human) →
train a logistic regression on the ACT loss → test it on a held-out split. See
docs/benchmarks.md for the figures and what they say about the paper's claims.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from act_plugin.bench import format_result, load_config, run_benchmark

DEFAULT_CONFIG = Path(__file__).resolve().parent / "act_bench.toml"


def _secret(key: str) -> bool:
    return any(word in key.lower() for word in ("key", "password", "token", "secret"))


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):  # endpoint overrides may hold credentials: never write them
        return {str(k): "***" if _secret(str(k)) else _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML config")
    parser.add_argument("--json", type=Path, help="also write every record to this JSON file")
    parser.add_argument(
        "--png", type=Path, help="also draw the gap to full human against the budget (PNG)"
    )
    parser.add_argument(
        "--env",
        action="store_true",
        help="build the endpoint's backend settings from the environment (OPENAI_*, ACT_*)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = None
    if args.env and config.uses_endpoint:
        from act_backend.settings import load_settings

        endpoint = config.endpoint
        settings = load_settings(
            endpoint.settings_file if endpoint else None,
            env=os.environ,
            overrides=dict(endpoint.overrides) if endpoint else None,
        )
    started = time.perf_counter()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:7.1f}s] {message}", file=sys.stderr)

    result = run_benchmark(config, on_progress=progress, settings=settings)
    print(format_result(result), end="")
    if args.json:
        args.json.write_text(json.dumps(_jsonable(result), indent=1, allow_nan=True) + "\n")
    if args.png:
        from act_plugin.bench.figure import gap_figure

        gap_figure(result, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
