"""Bandit over the product code, against the findings accepted in pyproject.toml
([tool.vidfarm.bandit]: each with its reason). Fails on a finding not accepted there, and on
an accepted one that no longer occurs (so the list stays true). ``python -m tests.bandit_check``."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from tests.conftest import repo_root


def findings(paths: list[str]) -> set[tuple[str, str]]:
    run = subprocess.run([sys.executable, "-m", "bandit", "-r", *paths, "-f", "json", "-q"],
                         cwd=repo_root(), capture_output=True, text=True)
    if run.returncode not in (0, 1):     # 1: findings; anything else: bandit itself failed
        raise SystemExit(f"bandit failed: {run.stderr.strip()}")
    return {(r["test_id"], r["filename"]) for r in json.loads(run.stdout)["results"]}


def main() -> int:
    config = tomllib.loads((repo_root() / "pyproject.toml").read_text())["tool"]["vidfarm"]["bandit"]
    accepted = {(entry["test"], entry["file"]) for entry in config["accepted"] if entry.get("reason")}
    found = findings(config["paths"])
    new, stale = sorted(found - accepted), sorted(accepted - found)
    for test, file in new:
        print(f"bandit: {test} in {file} is not accepted in pyproject.toml [tool.vidfarm.bandit]")
    for test, file in stale:
        print(f"bandit: accepted {test} in {file} no longer occurs: remove it from pyproject.toml")
    if not new and not stale:
        print(f"bandit: {len(found)} findings, each accepted with a reason in pyproject.toml")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main())
