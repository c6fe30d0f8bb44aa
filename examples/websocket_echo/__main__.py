import sys

from vanilla_async.cli import run_app

from . import config

sys.exit(run_app(config, prog="python -m examples.websocket_echo"))
