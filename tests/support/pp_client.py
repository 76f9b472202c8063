"""The original platform's Python client, ``performanceplatform-client`` 0.11.5, as a user would
get it today: its ``setup.py`` no longer installs (``pytz==2013d`` is not a valid requirement
for current setuptools), so the sdist is fetched from PyPI (pinned by its SHA-256), its modules
are put on ``PYTHONPATH``, and its dependencies (requests, backoff, pytz) come from our dev
extras. Two Python 3 shims are applied by the driver, as a user would have to:
``basestring`` (a NameError on Python 3) and ``get_version`` (needs the egg metadata).

Scripts run in a subprocess, so the shims never touch the test process.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

SDIST = "performanceplatform-client-0.11.5.tar.gz"
SHA256 = "002aa7c2014e2827003cfa5384c445ffa01abb291888a8b9de4126ddfa708398"
INDEX = "https://pypi.org/simple/performanceplatform-client/"

PRELUDE = textwrap.dedent(
    """
    import builtins, json, sys
    builtins.basestring = str  # the client is Python 2 code
    from performanceplatform.client import base
    base.BaseClient.get_version = lambda self: "0.11.5"
    from performanceplatform.client import DataSet
    """
)


def fetch_client(cache: Path) -> Path:
    """Directory holding ``performanceplatform/client`` (downloaded once per cache dir)."""
    root = cache / "performanceplatform-client-0.11.5"
    if (root / "performanceplatform" / "client" / "data_set.py").exists():
        return root
    html = urllib.request.urlopen(INDEX, timeout=30).read().decode()
    match = re.search(r'href="([^"#]+/' + re.escape(SDIST) + r')[^"]*"', html)
    if match is None:
        raise RuntimeError(f"{SDIST} not found on {INDEX}")
    data = urllib.request.urlopen(match.group(1), timeout=60).read()
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise RuntimeError(f"{SDIST} does not have the expected SHA-256")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [m for m in tar.getmembers() if "/performanceplatform/" in m.name and m.isfile()]
        tar.extractall(cache, members=members, filter="data")
    return root


def run_client(client_dir: Path, script: str, timeout_s: float = 60) -> Any:
    """Run ``script`` (after the prelude) with the client importable; it must print one JSON
    document on its last line, which is returned."""
    env = dict(os.environ, PYTHONPATH=str(client_dir))
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"client script failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
