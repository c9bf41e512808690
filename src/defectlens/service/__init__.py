"""The inspection service: an HTTP API, a web page and a review loop around the Inspector.

Install with the ``service`` extra; run with ``defectlens serve MODEL_DIR…``. The service
only uses the library's public surface (:class:`~defectlens.inspector.Inspector`, the
classifiers and the report builder), and stores inspections in a database (SQLite by
default, PostgreSQL by URL) with the images on disk under their sha256.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from defectlens.service.app import ServiceConfig, create_app

__all__ = ["ServiceConfig", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: `import defectlens.service` must not need FastAPI until the app is built.
    if name in __all__:
        from defectlens.service import app

        return getattr(app, name)
    raise AttributeError(name)
