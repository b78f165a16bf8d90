"""The ``graphopt`` command line: optimize, check, extract, inspect, plan, list-passes.

Every user mistake ends in one line on stderr and a documented exit code (see README and ``--help``);
outputs are written atomically, so an interrupted or failed run never leaves a partial file.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Sequence

from graphopt.cli_args import build_parser
from graphopt.errors import GraphoptError

EXIT_INTERNAL = 70
EXIT_OUT_OF_MEMORY = 7
__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="graphopt: %(message)s")
    # the application decides, not the library; reset each call (main() also runs in-process in tests)
    verbose = getattr(args, "verbose", False)
    logging.getLogger("graphopt").setLevel(logging.INFO if verbose else logging.NOTSET)
    try:
        return _command(args.command)(args)
    except GraphoptError as exc:
        print(f"graphopt: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `graphopt list-passes | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("graphopt: interrupted; no output was written", file=sys.stderr)
        return 130
    except MemoryError:
        print("graphopt: error: out of memory; no output was written (try --check off, smaller "
              "--input-shape dims, or a machine with more memory)", file=sys.stderr)
        return EXIT_OUT_OF_MEMORY
    except Exception as exc:
        if args.debug:
            raise
        print(f"graphopt: internal error: {type(exc).__name__}: {exc} "
              "(please report it; --debug shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _command(name: str):  # type: ignore[no-untyped-def]
    """The function running subcommand ``name`` (imported on use: ``--help`` stays fast)."""
    if name == "optimize":
        from graphopt.cli_optimize import cmd_optimize
        return cmd_optimize
    if name == "check":
        from graphopt.cli_check import cmd_check
        return cmd_check
    if name == "plan":
        from graphopt.cli_plan import cmd_plan
        return cmd_plan
    if name == "extract":
        from graphopt.cli_extract import cmd_extract
        return cmd_extract
    if name == "inspect":
        from graphopt.cli_inspect import cmd_inspect
        return cmd_inspect
    from graphopt.cli_check import cmd_list_passes
    return cmd_list_passes
