#!/usr/bin/env python3
"""Write the embedded mode's `.env` (DEBUG=true and a generated SECRET_KEY) on the first run.

`make run` calls this before anything else, so every documented `manage.py` command works in the
same folder afterwards without exporting anything. It uses only the standard library (it runs
before `.venv` exists) and never touches a `.env` that is already there: that one is the
developer's. Production never runs it: there settings refuse to start without SECRET_KEY.

    python3 rolloutdesk/write_env.py [PROJECT_DIR]     # default: the folder above this script
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from pathlib import Path

HEADER = """\
# Written by `make run` (rolloutdesk/write_env.py) for the embedded mode on this machine; kept
# out of git. Edit freely: it is never overwritten. Real environment variables win over it.
# See .env.example for everything else you can set here (PostgreSQL, Redis, SMTP, ...).
"""


def contents() -> str:
    """The file's text: debug mode on and a fresh random key, so no two checkouts share one."""
    return f"{HEADER}DEBUG=true\nSECRET_KEY={secrets.token_urlsafe(50)}\n"


def sets_either(text: str) -> bool:
    """Whether an existing .env sets DEBUG or SECRET_KEY (uncommented), as settings read it."""
    return re.search(r"^\s*(?:export\s+)?(?:DEBUG|SECRET_KEY)\s*=", text, re.M) is not None


def write_env(project_dir: Path) -> bool:
    """Create project_dir/.env unless it exists; True if it was written now."""
    path = project_dir / ".env"
    try:
        # "x": fails if the file exists, even if it appeared a moment ago (two runs at once).
        # 0o600: the file holds a secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if not sets_either(path.read_text(errors="replace")):
            print(
                f"{path} sets neither DEBUG nor SECRET_KEY: `make run` still works, but "
                "`manage.py` commands run on their own will ask for one of them.",
                file=sys.stderr,
            )
        return False
    with os.fdopen(fd, "w") as out:
        out.write(contents())
    print(f"Wrote {path} (DEBUG=true and a generated SECRET_KEY) for the embedded mode.")
    return True


def main(argv: list[str]) -> int:
    project_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    write_env(project_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
