"""Start times of two or more checkouts' sandbox kernels (and ipykernel's), taken in turn so
that a change in the host's speed moves all of them:

    .venv/bin/python -m bench.ab_start /path/to/checkout-a /path/to/checkout-b --rounds 9

Each checkout needs its own virtualenv with the kernelspec installed (``make kernelspec``);
each gets a cache folder of its own (its snapshots differ when its guest code does), and all
share ``SANDBOX_KERNEL_IMAGES_DIR``'s images, if set."""

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench import kernels as k


def _start(checkout: Path | None, caches: Path) -> float:
    if checkout is None:
        return k.time_to_first_result(k.IPYKERNEL)
    os.environ["JUPYTER_PATH"] = str(checkout / ".venv/share/jupyter")  # its kernelspec first
    try:
        return k.time_to_first_result(k.SANDBOX, {
            "SANDBOX_KERNEL_CACHE_DIR": str(caches / checkout.name)},
            timeout=k.FIRST_START_TIMEOUT)
    finally:
        del os.environ["JUPYTER_PATH"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab_start", description=__doc__)
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    variants: list[Path | None] = [c.resolve() for c in args.checkouts] + [None]
    with tempfile.TemporaryDirectory() as caches, tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)  # the kernels share an empty folder, as a new notebook's
        for checkout in variants[:-1]:  # each takes its snapshot first
            _start(checkout, Path(caches))
        times: dict[Path | None, list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for variant in variants:
                times[variant].append(_start(variant, Path(caches)))
    for variant, values in times.items():
        print(f"{variant or 'ipykernel'}: median {statistics.median(values):.3f} s, "
              f"min {min(values):.3f} s")


if __name__ == "__main__":
    main()
