"""What a new user installs: scripts/check-wheel builds the wheel and sdist, installs the wheel into a
clean venv without extras, checks the core imports and that pg/trio/testing name their extra, then
installs each extra and imports its module (see the script). Slow (~15-60 s): it builds and installs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installs_clean_and_optional_modules_name_their_extra() -> None:
    proc = subprocess.run([str(ROOT / "scripts" / "check-wheel"), sys.executable], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    for extra in ("pg", "trio", "testing"):
        assert f"pip install 'vanilla-async[{extra}]'" in output, output[-4000:]
    assert proc.stdout.rstrip().endswith("== ok"), output[-4000:]
