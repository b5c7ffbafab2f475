"""The wheel is a complete chatkit: built from the sources, installed (not editable) into a fresh venv outside
the repository, it indexes the default collections from its installed data and answers, and `doctor` passes.

The venv reuses this environment's third-party packages through a .pth line (no downloads, seconds instead
of minutes); a .pth-added folder's own .pth files are not run, so the editable chatkit stays out of sight."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

DEFAULT_COLLECTIONS = ("curriculum", "handbook")
DATA = "share/chatkit/corpora"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the sources, so no build/ or egg-info lands in the checkout."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "chatkit", src / "chatkit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in DEFAULT_COLLECTIONS:
        shutil.copytree(ROOT / "corpora" / name, src / "corpora" / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src), "-w", str(out)],
                   check=True, capture_output=True, text=True, timeout=600)
    (built,) = out.glob("chatkit-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=600)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "reuse-test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run_installed(venv: Path, *args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATKIT_", "PYTHON"))}
    env.update(CHATKIT_HOME=str(home), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return subprocess.run([*args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_wheel_carries_the_default_collections_and_the_shipped_adapter(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for collection in DEFAULT_COLLECTIONS:
        shipped = sorted(n.rsplit("/", 1)[-1] for n in names if f"{DATA}/{collection}/" in n)
        assert shipped == sorted(p.name for p in (ROOT / "corpora" / collection).glob("*.md")), collection
    assert not [n for n in names if "corpora/qa/" in n or "corpora/conversations/" in n]
    for adapter_file in ("adapter_config.json", "adapter_model.safetensors", "chatkit-adapter.json"):
        assert f"chatkit/adapters/tutor/{adapter_file}" in names


def test_installed_wheel_answers_and_passes_doctor_outside_the_repo(venv: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    converted = ROOT / ".test-home" / "models"  # the packaged model converted once per clone (conftest real_home)
    if converted.is_dir():
        (home / "models").symlink_to(converted, target_is_directory=True)

    where = run_installed(venv, "python", "-c", "import chatkit, chatkit.corpora as c; print(chatkit.__file__); print(c.corpora_root())",
                          home=home, cwd=cwd)
    package_file, corpora = where.stdout.split()
    assert Path(package_file).is_relative_to(venv) and Path(corpora) == venv / DATA, where.stdout + where.stderr

    doctor = run_installed(venv, "chatkit", "doctor", home=home, cwd=cwd)
    assert doctor.returncode == 0, doctor.stdout[-3000:] + doctor.stderr[-3000:]

    ask = run_installed(venv, "chatkit", "ask", "What is LoRA?", "--style", "extractive", home=home, cwd=cwd)
    assert ask.returncode == 0, ask.stdout[-3000:] + ask.stderr[-3000:]
    assert "LoRA" in ask.stdout
    assert f"{venv / DATA}/curriculum" in ask.stderr, ask.stderr[-3000:]  # indexed from the installed data
    assert (home / "collections" / "curriculum").is_dir() and (home / "collections" / "handbook").is_dir()
