"""The log-leak plugin fails a session whose logs hold a phone or a code (and only then)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.plugins.log_leak import find_leaks

ROOT = Path(__file__).resolve().parents[2]


def run_session(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.plugins.log_leak",
            "-p",
            "no:cacheprovider",
            "-q",
            "test_sample.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


LEAKY = """
import logging
def test_leaky():
    logging.getLogger("app.web.join").debug("sending to 138 0013 8000")
"""
REDACTED = """
import logging
from app.logs import install_redaction
def test_redacted():
    install_redaction("INFO")
    logging.getLogger("app.web.join").debug("sending to 13800138000")
    try:
        raise ValueError("bad number +8613800138000")
    except ValueError:
        logging.getLogger("app").exception("failed")
"""
CODE = """
import logging
from app.services import verification
def test_code():
    code = verification.new_code()
    logging.getLogger("app.services.sms").info("text: your code is %s", code)
"""


def test_a_logged_phone_fails_the_session(tmp_path):
    result = run_session(tmp_path, LEAKY)
    assert result.returncode == 1, result.stdout
    assert "LEAK app.web.join" in result.stdout


def test_a_logged_code_fails_the_session(tmp_path):
    result = run_session(tmp_path, CODE)
    assert result.returncode == 1 and "LEAK app.services.sms" in result.stdout


def test_redacted_logs_pass(tmp_path):
    result = run_session(tmp_path, REDACTED)
    assert result.returncode == 0, result.stdout
    assert "0 leaks" in result.stdout


def test_find_leaks_matches_numbers_in_any_spacing_but_not_ids():
    lines = [
        ("a", "to +86 138-0013-8000"),
        ("b", "to 8613800138000"),
        ("c", "id 9f13800138000e"),
        ("d", "at 2026-11-29 03:01:52"),
        ("e", "code 482913"),
        ("f", "member 1234567"),
    ]
    assert [leak.split(":")[0] for leak in find_leaks(lines, {"482913"})] == ["a", "b", "e"]
