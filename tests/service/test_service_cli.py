"""The service commands' own messages."""

from __future__ import annotations

import pytest

from defectlens.cli.service import _need_extra


def test_a_missing_extra_and_a_broken_module_are_told_apart(capsys: pytest.CaptureFixture[str]) -> None:
    # Environment probe 2026-12-06: Python's own _ssl failing to load (a copied interpreter) was said as "the service needs
    # its extra (_ssl missing)", whose fix (installing the extra) changes nothing.
    assert _need_extra(ModuleNotFoundError("No module named 'fastapi'", name="fastapi")).exit_code == 2
    missing = " ".join(capsys.readouterr().err.split())
    assert "needs its extra (fastapi missing)" in missing
    assert _need_extra(ImportError("undefined symbol: SSL_foo", name="_ssl")).exit_code == 2
    broken = " ".join(capsys.readouterr().err.split())
    assert "could not load _ssl: undefined symbol: SSL_foo" in broken and "needs its extra" not in broken
