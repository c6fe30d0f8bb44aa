import sys

from vanilla_async.cli import run_app

from . import config, configure

configure()  # JSON lines on stderr; the CLI's basicConfig then leaves the root logger alone
sys.exit(run_app(config, prog="python -m examples.logging"))
