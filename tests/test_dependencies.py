"""pyproject.toml declares exactly what chatkit/ imports: no third-party import without a declared distribution
(it would work here only by accident of what else is installed), no declared distribution that nothing imports."""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Extras for the developer's tools and tests, not for chatkit/ at run time.
TOOL_EXTRAS = {"dev"}
# Declared distributions that chatkit/ needs without an import statement, each with the reason.
NEEDED_WITHOUT_IMPORT = {
    "accelerate": "transformers' Trainer (under TRL's SFTTrainer) refuses to train without it",
}
# Import names of declared distributions that may not be installed here (optional extras that compile or
# need a GPU), so packages_distributions() cannot map them.
NOT_INSTALLED_IMPORTS = {"llama_cpp": "llama-cpp-python", "bitsandbytes": "bitsandbytes"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra, reqs in project.get("optional-dependencies", {}).items():
        if extra not in TOOL_EXTRAS:
            requirements += reqs
    return {canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r.strip()).group(0)) for r in requirements}  # type: ignore[union-attr]


def imported_modules(package: Path) -> dict[str, list[str]]:
    """Top-level third-party module names imported anywhere in the package, with where."""
    found: dict[str, list[str]] = {}
    for file in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != package.name and top not in sys.stdlib_module_names:
                    found.setdefault(top, []).append(f"{file.relative_to(package.parent)}:{node.lineno}")
    return found


@functools.cache
def installed_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    names = installed_distributions().get(module, [])
    if not names and module in NOT_INSTALLED_IMPORTS:
        names = [NOT_INSTALLED_IMPORTS[module]]
    return {canonical(n) for n in names}


def test_every_third_party_import_is_declared() -> None:
    declared = declared_distributions()
    problems = []
    for module, where in sorted(imported_modules(ROOT / "chatkit").items()):
        provided_by = distributions_of(module)
        if not provided_by:
            problems.append(f"{module} ({where[0]}): no installed distribution provides it")
        elif not provided_by & declared:
            problems.append(f"{module} ({where[0]}): provided by {sorted(provided_by)}, none declared in pyproject.toml")
    assert not problems, "undeclared imports:\n" + "\n".join(problems)


def test_every_declared_distribution_is_imported() -> None:
    used = set().union(*(distributions_of(m) for m in imported_modules(ROOT / "chatkit")))
    unused = declared_distributions() - used - {canonical(n) for n in NEEDED_WITHOUT_IMPORT}
    assert not unused, f"declared in pyproject.toml but never imported by chatkit/: {sorted(unused)}"
    stale = {canonical(n) for n in NEEDED_WITHOUT_IMPORT} & used
    assert not stale, f"imported after all, drop them from NEEDED_WITHOUT_IMPORT: {sorted(stale)}"


def test_the_import_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(
        "import os\nfrom pkg import sibling\n\ndef lazy():\n    import numpy.linalg\n    from scipy import sparse\n")
    assert set(imported_modules(package)) == {"numpy", "scipy"}
