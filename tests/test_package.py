"""The wheel is a real package: installed (not editable) into a fresh venv, ``rag`` works from any
directory, with its prompts and trained judge inside the package.

The wheel is built offline from a copy of the sources (so nothing is written into the repository)
and installed with ``--no-deps``. The fresh venv sees the dependencies already installed in the
project's venv through one ``.pth`` file that lists its site-packages as a plain path: that adds
the directory but runs none of the ``.pth`` files in it, so the project's own editable install
(a ``.pth`` hook there) stays out, and ``rag`` can only come from the wheel. Nothing is
downloaded. About a minute on 2 cores, most of it loading the real models in `ingest` and `ask`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SEED = next((REPO / "corpus").glob("*.md"))
QUESTION = "On what date did the European Commission publish its international digital strategy?"

pytestmark = [pytest.mark.integration, pytest.mark.package]


def _run(
    argv: list[str | Path], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A new venv with the wheel installed, and the environment to run it in."""
    tmp = tmp_path_factory.mktemp("package")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PIP_NO_INDEX="1")
    env.update(ANONYMIZED_TELEMETRY="False", GRADIO_ANALYTICS_ENABLED="False")

    # What the build reads: pyproject.toml names README.md, the `rag` package and `app`.
    source = tmp / "source"
    shutil.copytree(REPO / "rag", source / "rag", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "app.py"):
        shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    wheels = tmp / "wheels"
    build = [*pip, "wheel", "--no-index", "--no-deps", "--no-build-isolation", "-w", wheels, source]
    _run(build, tmp, env)
    (wheel,) = wheels.glob("newsroom_rag-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, env)
    python = venv / "bin" / "python"
    _run([*pip, "--python", python, "install", "--no-index", "--no-deps", wheel], tmp, env)
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([python, "-c", query], tmp, env).stdout.strip())
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (site / "zz_project_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return venv, env


def test_the_installed_package_carries_its_code_prompts_and_judge(
    fresh_venv: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = fresh_venv
    probe = (
        "import json, app, rag, rag.judge, rag.prompts as p\n"
        "print(json.dumps({'rag': rag.__file__, 'app': app.__file__, 'prompts': str(p.PROMPTS_DIR),"
        " 'judge': str(rag.judge.PACKAGED_JUDGE_DIR / 'judge.json'),"
        " 'system': p.render_prompt('system', not_found='NOT FOUND', max_sentences=3)}))"
    )
    found = json.loads(_run([venv / "bin" / "python", "-c", probe], tmp_path, env).stdout)
    for name in ("rag", "app", "prompts", "judge"):
        assert Path(found[name]).is_relative_to(venv), f"{name} comes from {found[name]}"
    assert Path(found["judge"]).is_file()
    assert "NOT FOUND" in found["system"] and "[1]" in found["system"]


def test_rag_ingests_and_answers_from_any_directory(
    fresh_venv: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = fresh_venv
    rag = venv / "bin" / "rag"
    articles, index, elsewhere = tmp_path / "articles", tmp_path / "index", tmp_path / "elsewhere"
    articles.mkdir()
    elsewhere.mkdir()
    shutil.copy2(SEED, articles / SEED.name)

    _run([rag, "ingest", "--quiet", "--data-dir", index, articles], elsewhere, env)
    answer = json.loads(
        _run([rag, "ask", "--json", "--data-dir", index, QUESTION], elsewhere, env).stdout
    )
    assert answer["refused"] is False
    assert "June 5" in answer["answer"] and "[1]" in answer["answer"]
    assert answer["citations"][0]["n"] == 1

    # No paths and no corpus/ here: one clear line, no traceback, and no index created.
    missing = subprocess.run(
        [str(rag), "ingest", "--data-dir", str(tmp_path / "unused")],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ") and "corpus" in missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp_path / "unused").exists()
    assert list(elsewhere.iterdir()) == []  # nothing written into the working directory
