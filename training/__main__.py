"""``python -m training``: train one config, e.g. under torchrun for DistributedDataParallel.

    torchrun --nproc-per-node 2 -m training --config run.yaml --out runs [--set schedule.cycles=4 ...]

``--set key=value`` overrides a dotted config key (the value is parsed as YAML). Prints the run
folder. Exit codes: 0 ok, 2 bad input, 3 diverged. (``landscape train --ddp N`` wraps this.)
"""

from __future__ import annotations

import argparse
import sys

import yaml

from training.config import TrainConfig, load_yaml, replace_dotted
from training.errors import ConfigError, LandscapeError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train, and return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m training", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="YAML config (default: all defaults)")
    parser.add_argument("--out", default="runs", help="parent folder of run folders")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        cfg = load_yaml(args.config) if args.config else TrainConfig()
        changes = {}
        for item in args.overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
            changes[key] = yaml.safe_load(value)
        cfg = replace_dotted(cfg, changes)
        from training.distributed import Distributed
        from training.run import train

        result = train(cfg, args.out, quiet=args.quiet)
        import torch.distributed as tdist

        if not tdist.is_initialized() or Distributed(tdist.get_rank(), tdist.get_world_size()).main:
            print(result.run_dir)
        if tdist.is_initialized():
            tdist.destroy_process_group()
        return 0
    except KeyError as exc:
        print(f"error: unknown config key {exc}", file=sys.stderr)
        return 2
    except LandscapeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
