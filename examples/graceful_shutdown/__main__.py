"""``python -m examples.graceful_shutdown [--grace SECONDS] [--port P] [--workers N] ...``.

``--grace`` (seconds in-flight requests get after SIGTERM; default 5) is this example's own
option; everything else is the usual CLI (`vanilla_async.cli.run_app`).
"""

import argparse
import sys

from vanilla_async.cli import run_app

from . import config

PROG = "python -m examples.graceful_shutdown"

parser = argparse.ArgumentParser(prog=PROG, add_help=False)  # -h falls through to run_app's help
parser.add_argument("--grace", type=float, default=config.grace)
ours, rest = parser.parse_known_args()
if not ours.grace >= 0:
    parser.error(f"--grace must be >= 0 seconds, got {ours.grace}")
sys.exit(run_app(config.with_(grace=ours.grace), rest, prog=PROG))
