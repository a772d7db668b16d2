"""Every product package ships: the installed `vidfarm` command imports it from anywhere, the
images copy it, and the security check reads it. (A new top-level package once missed all
three: the tests, run from the checkout, found it on the path anyway.)"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_PRODUCT = {"tests", "bench"}


def product_packages() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in NOT_PRODUCT)


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_is_installed_scanned_and_copied_into_the_images():
    packages = product_packages()
    assert {"core", "services", "tasks", "web", "workers"} <= set(packages)
    include = project()["tool"]["setuptools"]["packages"]["find"]["include"]
    scanned = project()["tool"]["vidfarm"]["bandit"]["paths"]
    for package in packages:
        assert any(fnmatch.fnmatch(package, pattern) for pattern in include), f"{package} is not installed"
        assert package in scanned, f"{package} is not in the bandit paths"
        for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
            assert f"COPY {package} {package}\n" in (ROOT / dockerfile).read_text(), f"{dockerfile} misses {package}"


def test_the_installed_command_runs_outside_the_checkout(tmp_path):
    command = Path(sys.executable).parent / "vidfarm"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDFARM_") and k not in ("PYTHONPATH",
                                                                                          "DATABASE_URL")}
    env["VIDFARM_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run([str(command), "db", "current"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
