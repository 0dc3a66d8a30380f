"""The client ships in the wheel for programs that are no part of Chancery: it imports
`chancery` only, never the services."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def test_importing_the_client_imports_no_service() -> None:
    probe = (
        "import sys, chancery.client; "
        "print(sorted(m for m in sys.modules if m == 'services' or m.startswith('services.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
