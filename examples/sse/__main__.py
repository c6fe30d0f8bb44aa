import os
import sys

from vanilla_async.cli import run_app

from . import BUSES, config

# ``--bus host|postgres|worker`` is ours, not the server's: it reaches the workers through the environment.
argv = sys.argv[1:]
if "--bus" in argv:
    at = argv.index("--bus")
    if at + 1 >= len(argv) or argv[at + 1] not in BUSES:
        sys.exit(f"python -m examples.sse: --bus takes one of {', '.join(BUSES)}")
    os.environ["SSE_BUS"] = argv[at + 1]
    del argv[at:at + 2]
sys.exit(run_app(config, argv, prog="python -m examples.sse"))
