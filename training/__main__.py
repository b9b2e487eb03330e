"""``python -m training``: train one config, e.g. under torchrun for DistributedDataParallel.

    torchrun --nproc-per-node 2 -m training --config run.yaml --out runs [--set schedule.cycles=4 ...]

``--set key=value`` overrides a dotted config key (the value is parsed as YAML). Prints the run
folder. Exit codes: 0 ok, 1 internal error (a bug: ``--debug`` shows the traceback), 2 bad input,
3 diverged. (``landscape train --ddp N`` wraps this.)
"""

from __future__ import annotations

import argparse
import sys

from training.config import TrainConfig, load_yaml, parse_overrides, replace_dotted
from training.errors import LandscapeError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train, and return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m training", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="YAML config (default: all defaults)")
    parser.add_argument("--out", default="runs", help="parent folder of run folders")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    args = parser.parse_args(argv)
    try:
        cfg = load_yaml(args.config) if args.config else TrainConfig()
        cfg = replace_dotted(cfg, parse_overrides(args.overrides))
        from training.distributed import Distributed
        from training.run import train

        result = train(cfg, args.out, quiet=args.quiet)
        import torch.distributed as tdist

        if not tdist.is_initialized() or Distributed(tdist.get_rank(), tdist.get_world_size()).main:
            print(result.run_dir)
        if tdist.is_initialized():
            tdist.destroy_process_group()
        return 0
    except LandscapeError as exc:  # bad input (2) or a diverged run (3): one line, no traceback
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # anything else is a bug, never reported as bad input
        if args.debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
