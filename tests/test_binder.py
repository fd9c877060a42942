"""binder/ launches the repository on mybinder.org: its requirements must agree with
pyproject.toml (runtime and notebook dependencies) and pin the Makefile's CPU torch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def binder_requirements() -> dict[str, Requirement]:
    reqs = {}
    for line in (BINDER / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            reqs[canonicalize_name(req.name)] = req
    return reqs


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = project["dependencies"] + project["optional-dependencies"]["notebooks"]
    return [Requirement(r) for r in names]


def makefile_torch_pin() -> str:
    match = re.search(
        r"^TORCH \?= torch==(\S+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M
    )
    if match is None:
        pytest.fail("Makefile: no `TORCH ?= torch==<version>` line to compare binder with")
    return match.group(1)


def pinned(req: Requirement) -> str | None:
    pins = [s.version for s in req.specifier if s.operator == "=="]
    return pins[0] if pins else None


def test_every_dependency_is_in_binder_with_a_compatible_specifier():
    binder = binder_requirements()
    for req in pyproject_requirements():
        name = canonicalize_name(req.name)
        assert name in binder, f"binder/requirements.txt lacks {req} (from pyproject.toml)"
        theirs = binder[name]
        version = pinned(theirs)
        if version is not None:
            assert req.specifier.contains(version, prereleases=True), (
                f"binder pins {theirs}, outside pyproject's {req}"
            )
        else:
            missing = {str(s) for s in req.specifier} - {str(s) for s in theirs.specifier}
            assert not missing, f"binder has {theirs}; pyproject asks {req}: add {missing}"


def test_binder_pins_the_makefiles_cpu_torch():
    torch = binder_requirements().get("torch")
    assert torch is not None, "binder/requirements.txt must pin torch"
    assert pinned(torch) == makefile_torch_pin(), (
        f"binder has {torch}; the Makefile pins torch=={makefile_torch_pin()}"
    )
    text = (BINDER / "requirements.txt").read_text(encoding="utf-8")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text, (
        "binder must take torch from the CPU wheel index (no multi-GB CUDA build on Binder)"
    )


def test_binder_lists_nothing_pyproject_does_not_know():
    known = {canonicalize_name(r.name) for r in pyproject_requirements()}
    extra = set(binder_requirements()) - known
    assert not extra, f"binder/requirements.txt has {sorted(extra)}; add them to pyproject.toml"


def test_post_build_installs_the_package_and_makes_the_synthetic_set():
    post_build = BINDER / "postBuild"
    text = post_build.read_text(encoding="utf-8")
    assert post_build.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert re.search(r"pip install --no-deps -e \.", text), "postBuild installs the package"
    assert "nodulekit synth nodulekit-data/synthetic" in text, "postBuild makes the synthetic set"
