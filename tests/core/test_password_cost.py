"""Passwords are stored as argon2id at the library's default cost. The test suite hashes at the
cheapest cost (tests/conftest.py): this looks at the code as it runs outside the suite."""

from __future__ import annotations

import subprocess
import sys

from argon2 import PasswordHasher, extract_parameters


def test_passwords_are_argon2id_at_the_default_cost() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from qunyun.auth.passwords import hash_password, verify_password; h = hash_password('pw');"
            " assert verify_password(h, 'pw') and not verify_password(h, 'wrong'); print(h)",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    stored = done.stdout.strip()
    assert stored.startswith("$argon2id$")
    assert extract_parameters(stored) == extract_parameters(PasswordHasher().hash("pw"))
