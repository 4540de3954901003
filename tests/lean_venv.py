"""Fresh virtual environments with virtwatch installed from this checkout: the core alone, or with extras.

pip installs from a copy of the checkout (a build in place would leave build/ and stale modules in the tree) and
keeps its cache, so libvirt-python's wheel, built once against libvirt-dev, is reused.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIP_TIMEOUT_SECONDS = 900
#: what pip prints when it cannot reach an index (any other failure of the install is a failure, not a skip)
UNREACHABLE = re.compile(r"NewConnectionError|Temporary failure in name resolution|Name or service not known|"
                         r"Network is unreachable|Connection refused|ConnectTimeoutError|ReadTimeoutError|"
                         r"Max retries exceeded")
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    ".hypothesis", "tests", "benchmarks", "var")


class IndexUnreachable(RuntimeError):
    """pip could not reach a package index to install virtwatch's dependencies."""


def source_copy(dest: Path) -> Path:
    """Copy what the distribution is built from (packages, pyproject.toml, README.md) to dest; return it."""
    shutil.copytree(ROOT, dest, ignore=NOT_COPIED)
    return dest


def install(venv_dir: Path, extras: str = "") -> Path:
    """Create a venv at venv_dir holding virtwatch (with `extras`, as in "all") from this checkout; return its bin/."""
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    bin_dir = venv_dir / "bin"
    source = source_copy(venv_dir.parent / f"{venv_dir.name}-source")
    try:
        result = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                                 f"{source}[{extras}]" if extras else str(source)],
                                capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS)
    finally:
        shutil.rmtree(source, ignore_errors=True)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if UNREACHABLE.search(output):
            raise IndexUnreachable(f"pip could not reach a package index: {output.strip().splitlines()[-1]}")
        raise RuntimeError(f"pip install of virtwatch[{extras}] failed:\n{output[-3000:]}")
    return bin_dir


def site_packages(venv_dir: Path) -> Path:
    """Return the venv's site-packages directory."""
    return venv_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def disk_mb(path: Path) -> float:
    """Return the disk space the tree under path takes, in MB (du -sk)."""
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
               .stdout.split()[0]) / 1024
