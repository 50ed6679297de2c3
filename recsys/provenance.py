"""What code made an artefact: written into feature-set manifests and MLflow runs alike."""

from __future__ import annotations

import importlib.metadata
import subprocess

from recsys import config

PACKAGE = "engagement-recsys"


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments],
        cwd=config.PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.strip()


def code_version() -> dict[str, str | None]:
    """The project's git commit (`+dirty` when tracked files are modified; None outside a
    checkout) and the installed package version (None when not installed)."""
    try:
        commit = _git("rev-parse", "HEAD") or None
        if commit and _git("status", "--porcelain", "--untracked-files=no"):
            commit += "+dirty"
    except (OSError, subprocess.SubprocessError):
        commit = None
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"git_commit": commit, "package_version": version}


def code_label() -> str:
    """One string for the code version: the commit, else the package version."""
    version = code_version()
    return version["git_commit"] or version["package_version"] or "unknown"
