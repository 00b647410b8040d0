"""examples/quickstart.py, as the README tells a new user to run it: it builds, checks, times,
exports and reloads one layer."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_runs_and_its_kernel_matches_the_reference(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    error = float(re.search(r"max error against the float64 reference: ([\d.e+-]+)", done.stdout).group(1))
    assert error < 1e-5  # float32, 128-channel reductions: about 5e-7
    assert re.search(r"median [\d.]+ ms per call, [\d.]+ GFLOP/s", done.stdout)
    assert (tmp_path / "block3.so").is_file()
    assert "same output: True" in done.stdout
