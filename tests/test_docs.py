"""The documents the code cites exist, and docs/security.md names only tests that exist."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A document path as cited in code, comments and docs: `docs/security.md`, `qr_templates/README.md`.
CITED = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.md)\b")
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def tracked_files() -> list[Path]:
    """The repository's files (git's list when there is one, else every file under the root)."""
    try:
        listed = subprocess.run(  # noqa: S603 - a fixed command on our own repository
            ["git", "ls-files"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return [ROOT / name for name in listed if (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]


def missing_citations(files: list[Path]) -> list[str]:
    names = {path.name for path in files}
    missing = []
    for path in files:
        if path == Path(__file__).resolve():
            continue  # its own examples of a bad citation
        if path.suffix not in (".py", ".md", ".html", ".toml", ".txt", ".cfg", ".ini", ".yml", ".yaml", ""):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for cited in CITED.findall(line):
                found = (ROOT / cited).is_file() or (path.parent / cited).is_file()
                if not found and "/" not in cited:
                    found = cited in names  # a bare name: some file of the repository has it
                if not found:
                    missing.append(f"{path.relative_to(ROOT)}:{number} cites {cited}")
    return missing


def test_every_cited_document_is_in_the_repository():
    assert missing_citations(tracked_files()) == []


def test_a_citation_of_a_missing_document_is_found(tmp_path, monkeypatch):
    cites = ROOT / "app" / "__init__.py"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: "see SECURITY.md and docs/deploy.md")
    assert missing_citations([cites]) == ["app/__init__.py:1 cites SECURITY.md"]


def test_security_page_names_only_tests_that_exist():
    page = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    named = TEST_REF.findall(page)
    assert len(named) > 40
    missing = []
    for file, name in named:
        path = ROOT / file
        functions = (
            {
                node.name
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.FunctionDef)
            }
            if path.is_file()
            else set()
        )
        if name not in functions:
            missing.append(f"{file}::{name}")
    assert missing == []
