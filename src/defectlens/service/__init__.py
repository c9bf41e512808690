"""The inspection service: an HTTP API, a web page and a review loop around the Inspector.

Install with the ``service`` extra; run with ``defectlens serve MODEL_DIR…``. The service
only uses the library's public surface (:class:`~defectlens.inspector.Inspector`, the
classifiers and the report builder), and stores inspections in a database (SQLite by
default, PostgreSQL by URL) with the images on disk under their sha256.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from defectlens.service.app import ServiceConfig, create_app

DEFAULT_MAX_IN_FLIGHT = 16
"""Inspections a service process takes at once unless configured otherwise (here, not in the
app module, so the CLI can show it without importing FastAPI); the next upload is refused at
once (503, Retry-After) instead of queueing. A bound, not a throttle: on 2 cores 16 waiting
inspections already mean about a second of wait, and a queue without one grows without end when
stations post faster than the service inspects. A lower limit shortens an accepted upload's wait
but not the station's: the load test's table in the README measures 1, 2, 4 and none."""

DEFAULT_MAX_PIXELS = 36_000_000
"""Largest image a service process accepts unless configured otherwise (e.g. 6000 x 6000; here
for the CLI, as above). Below the library's own decoding limit because a service takes many
uploads at once: a small, well-compressed file of 64 M pixels decodes to 192 MB, and its
full-resolution maps and overlay take a few GB while it is inspected."""

DB_FILE = "inspections.db"
"""The SQLite file a service keeps in its data folder unless given a database URL (here for the CLI, as above)."""

def is_host_name(name: str) -> bool:
    """Whether ``name`` is a host name as `serve --allowed-host` takes it (here for the CLI, as above): bare, in lower case, a
    leading ``*.`` for every name below one. Underscores too: Docker Compose names services so (``defect_lens``), and the
    Host check's advice had named one the option then refused (regression probe 2026-12-07)."""
    # Label by label: "a..b" names no host (regression probe 2026-12-08: taken, it could match no request). Not one whose last
    # label is a number, which browsers read as an IPv4 address ("127.1"): the Host check's advice had named one the option
    # refuses (regression probe 2026-12-07).
    return (re.fullmatch(r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*", name) is not None
            and not ends_in_number(name))


def ends_in_number(name: str) -> bool:
    """Whether the host name ``name``'s last label (past a final dot) is a number as the URL standard reads one — digits, or
    ``0x`` and hex digits —, which browsers take for an IPv4 address ("999.1.1.1", "example.0x1f"): no name a browser sends
    (regression probes 2026-12-07 and -08)."""
    return re.fullmatch(r"[0-9]+|0x[0-9a-f]*", name.rstrip(".").rsplit(".", 1)[-1], re.IGNORECASE) is not None


DEFAULT_UPLOAD_TIMEOUT = 60.0
"""Seconds an upload's body may take to arrive unless configured otherwise (here for the CLI, as
above). An accepted upload holds an inspection slot while its body arrives, so a station that
announces an image and stops sending would hold it for ever; past this it is answered 408 and the
slot is freed. A 20 MB upload needs about 3 Mbit/s to arrive in time."""

__all__ = ["DB_FILE", "DEFAULT_MAX_IN_FLIGHT", "DEFAULT_MAX_PIXELS", "DEFAULT_UPLOAD_TIMEOUT", "ServiceConfig", "create_app", "ends_in_number",
           "is_host_name"]


def __getattr__(name: str) -> Any:
    # Lazy: `import defectlens.service` must not need FastAPI until the app is built.
    if name in ("ServiceConfig", "create_app"):
        from defectlens.service import app

        return getattr(app, name)
    raise AttributeError(name)
