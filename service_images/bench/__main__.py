"""`python -m service_images.bench` (what `nox -s bench` runs)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from service_images.bench.run import BenchOptions, parse_variants, run_bench
from service_images.cli import set_up, user_errors
from service_images.variants import DEFAULT_BASE_IMAGE, ROOT, VARIANTS


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m service_images.bench",
        description="Build each variant and its pre-project reference; measure and compare them.",
    )
    parser.add_argument(
        "--variant", choices=[*VARIANTS, "all"], default="all", help="what to measure (all)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the images and build cache")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "reports", help="where the results go (reports/)"
    )
    parser.add_argument(
        "--base-image", default=DEFAULT_BASE_IMAGE, help=f"base image ({DEFAULT_BASE_IMAGE})"
    )
    parser.add_argument(
        "--ca-bundle", help="CA bundle for the builds (default: SSL_CERT_FILE and friends)"
    )
    args = parser.parse_args(argv)
    set_up()
    with user_errors():
        run_bench(
            BenchOptions(
                parse_variants(args.variant),
                args.keep,
                args.output,
                args.base_image,
                args.ca_bundle,
            )
        )


if __name__ == "__main__":
    main()
