"""The repository stands on its own: a clone with nothing beside it has every document its tests read.

DESIGN.md rule 9. The OpenAPI documents live in ``tests/data/openapi`` (``INDEX.md`` and
``large/SOURCES.md`` say where each came from); nothing tracked may reach outside the repository
for them, whether as ``../shared`` or as a path built from the repository's parent.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from support import documents
from support.documents import IN_REPO, REPO

# What reaching outside the clone looks like: a relative path up to a sibling folder, or a path
# built from the repository's parent.
OUTSIDE = [
    re.compile(r"\.\./shared"),
    re.compile(r"""(\.parent\b|parents\[\d+\])[^\n]*["']shared["']"""),
    re.compile(r"""["']\.\.["']\s*,\s*["']shared["']"""),
]
SKIPPED_DIRS = {".git", ".venv", ".cache", "node_modules", "__pycache__", ".pytest_cache", "build"}


def _tracked_files() -> list[Path]:
    """Files git tracks (or, outside a git checkout, every file but caches and environments)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        return [REPO / name for name in listed.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in REPO.rglob("*") if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(REPO).parts)]


def _reaching_outside(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if any(pattern.search(line) for pattern in OUTSIDE)]


def test_no_tracked_file_refers_to_a_folder_beside_the_repository() -> None:
    found = {}
    for path in _tracked_files():
        if IN_REPO in path.parents or not path.is_file():
            continue  # the documents are third parties' text, quoted as published
        if path == Path(__file__).resolve():
            continue  # this file spells out what it looks for
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if lines := _reaching_outside(text):
            found[str(path.relative_to(REPO))] = lines
    assert found == {}


@pytest.mark.parametrize("line", [
    'SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs"',
    'SPECS_DIR = REPO.parent / "shared" / "specs"',
    "SPECS_DIR = Path(__file__).resolve().parents[2].parent / 'shared' / 'specs'",
    'document: ../shared/specs/cin7-core-v2-subset.yaml',
    'os.path.join(ROOT, "..", "shared", "specs")',
])
def test_the_check_sees_each_way_of_reaching_outside(line: str) -> None:
    assert _reaching_outside(line) == [line]


def test_a_folder_named_shared_inside_a_temporary_directory_is_not_outside() -> None:
    assert _reaching_outside('(tmp_path / "shared").mkdir()') == []


def _listed(index: Path) -> set[str]:
    names = set()
    for line in index.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and re.fullmatch(r"[\w.-]+\.(ya?ml|json)", cells[0]):
            names.add(cells[0])
    return names


def _documents(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.suffix in {".yaml", ".yml", ".json"}}


def test_every_document_is_in_the_repository_and_listed_with_its_source() -> None:
    assert _listed(IN_REPO / "INDEX.md") == _documents(IN_REPO)
    assert _listed(IN_REPO / "large" / "SOURCES.md") == _documents(IN_REPO / "large")
    assert len(_documents(IN_REPO)) >= 18 and len(_documents(IN_REPO / "large")) >= 5


def test_tests_read_the_documents_in_the_repository_unless_told_otherwise(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(documents.OVERRIDE, raising=False)
    assert documents.specs_dir() == IN_REPO

    (tmp_path / "INDEX.md").write_text("| file |\n")
    monkeypatch.setenv(documents.OVERRIDE, str(tmp_path))
    assert documents.specs_dir() == tmp_path

    # A wrong override fails loudly rather than falling back or skipping.
    monkeypatch.setenv(documents.OVERRIDE, str(tmp_path / "missing"))
    with pytest.raises(RuntimeError, match="SWITCHBOARD_SHARED_SPECS=.*missing"):
        documents.specs_dir()
