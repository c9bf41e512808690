"""The FastAPI application: inspections, history, reviews, models, health, metrics and the page.

Build it with :func:`create_app`; `defectlens serve` runs it under uvicorn. Every write
(upload, review) needs the API token when one is configured; reads are open, as the page
on the line's screen must show history without a login.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import email.message
import email.utils
import errno
import hashlib
import hmac
import html
import io
import ipaddress
import json
import logging
import math
import os
import re
import shlex
import socket
import stat
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BeforeValidator, Field, StringConstraints
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware

from defectlens import __version__
from defectlens.errors import DefectlensError, collected_warnings, out_of_resources, said_in_a_line
from defectlens.explain import DEFAULT_OBJECT
from defectlens.io import IMAGE_FORMATS, IMAGE_SUFFIXES, load_image, plain_label, png_bytes, printable_text, size_refusal
from defectlens.io.images import holds_deep_colour
from defectlens.io.names import folded_name, same_spelling
from defectlens.service import DB_FILE, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PIXELS, DEFAULT_UPLOAD_TIMEOUT, is_host_name
from defectlens.service.blobs import MAX_MARK, MIN_FREE_BYTES, BlobStore
from defectlens.service.db import UNUSABLE, sqlite_file, sqlite_url
from defectlens.service.models import REJECT_TYPE, UNKNOWN_TYPE, ModelPool
from defectlens.service.schemas import (
    TOKEN_HEADER,
    HealthOut,
    InspectionOut,
    InspectionPage,
    MissedDefect,
    ModelsOut,
    RegionReview,
    ReviewIn,
    as_utc,
    complete_document,
    inspection_out,
    picture,
    refusals,
)
from defectlens.service.store import (
    UNAVAILABLE_ERRORS,
    ClientKeyTaken,
    Filters,
    ReviewInput,
    StaleReview,
    Store,
    StoreUnavailable,
    UnusableLabelled,
)
from defectlens.taxonomy import normal_type_name, same_type_name, type_name_problem

DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024
"""Largest accepted upload in bytes (20 MB) unless configured otherwise."""
BODY_OVERHEAD = 64 * 1024
"""Bytes a request body may run over the upload limit: the multipart framing and form fields
around the image."""
NO_NUL = "^[^\\x00]*$"
"""Pattern of a text filter: anything but NUL, which no stored text holds (PostgreSQL cannot)."""
MAX_ID = MAX_MARK
"""Largest inspection id a request may name (a database integer); larger ones are refused with 422, and one beyond
the database's own range (PostgreSQL's id column is 32-bit) too, by the database's answer (:class:`DataError`)."""
CLIENT_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,200}")
"""What an upload's ``Idempotency-Key`` may be: printable ASCII without spaces or commas (a comma joins repeated headers)."""
MAX_OFFSET = 2**63 - 1
"""Largest offset a request may name (a database integer); larger ones are refused with 422."""
STATIC = Path(__file__).resolve().parent / "static"
FORMAT_EXT = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg"), "BMP": ("bmp", "image/bmp"), "TIFF": ("tif", "image/tiff"),
              "WEBP": ("webp", "image/webp"), "GIF": ("gif", "image/gif"),
              # A camera's multi-picture JPEG (its first picture is a plain JPEG): stored as ".img", it left export-reviews'
              # examples in a format inspect and calibrate do not read.
              "MPO": ("jpg", "image/jpeg")}
EXT_MEDIA = dict(FORMAT_EXT.values())
BROWSER_FORMATS = {"png", "jpg", "gif", "webp", "bmp"}
"""Stored formats a browser shows as they are (a TIFF is shown as a PNG: ``GET /inspections/{id}/view``)."""
BUSY_RETRY_SECONDS = 1
"""The Retry-After a refused upload gets (HTTP allows whole seconds only; clients may retry sooner)."""
VIEW_RETRY_SECONDS = 5
"""The Retry-After of a view that waited :data:`VIEW_WAIT_SECONDS` in vain."""
VIEW_WAIT_SECONDS = 10.0
"""How long a view of a stored TIFF waits for its share of the pixel budget before it is answered 503: waiting views held
the server's threads, and sixty of them kept /health waiting 13 s (regression probe 2026-12-06)."""
HEALTH_PROBE_SECONDS = 2.0
"""/health probes the database and the file store at most this often; calls between read its result."""
STORE_WATCH_SECONDS = 15.0
"""How often a background thread probes the store, so ``defectlens_store_up`` follows an outage
without traffic: /metrics itself never waits on the database (a scrape that probed hung for as long
as a stalled database did, and Prometheus took the whole service for down)."""
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
FRAME_BUCKETS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
"""Buckets of the images' frame distance (:attr:`~defectlens.types.Inspection.frame_units`): 1 is the normal images' 98th
percentile, so a median over 1 is :func:`~defectlens.detect.frame_check.drift_note`'s drift."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    """How a service process is set up."""

    model_dirs: tuple[Path, ...]
    db_url: str
    """SQLAlchemy URL: ``sqlite:///path`` (default, embedded) or ``postgresql+psycopg://…``."""
    data_dir: Path
    """Where uploads, overlays and masks are stored (content-addressed)."""
    token: str | None = None
    """When set, every write needs it in the ``X-API-Token`` header (or ``Authorization: Bearer``)."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    max_pixels: int = DEFAULT_MAX_PIXELS
    """Largest accepted image, read from its header before it is decoded."""
    max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT
    """Most inspections in progress at once; an upload beyond it is refused at once with 503
    and Retry-After instead of waiting in a queue, so an accepted image's verdict comes back in
    bounded time and the station decides what to do with the rest. None: no limit (queue)."""
    upload_timeout: float | None = DEFAULT_UPLOAD_TIMEOUT
    """Seconds a write's body may take to arrive; past it the request is answered 408 and its
    inspection slot freed (see :class:`UploadDeadline`). None: no limit."""
    allowed_hosts: tuple[str, ...] | None = None
    """Host names a request may address besides an IP address and this machine's own names (its Host
    header; 400 otherwise: :func:`host_is_own`), so a web page whose name an attacker points at this
    machine (DNS rebinding) cannot read or write through a visitor's browser — a rebinding page is
    reached by the attacker's name, never by an address. ``("*",)``: any name. Adding a name had
    dropped the addresses, and a health check by IP broke (regression probe 2026-12-05)."""
    folder_watch: Callable[[], object] | None = None
    """Called with the store's watch (every :data:`STORE_WATCH_SECONDS`): `serve` keeps the data folder's claim with it (the
    lock file a start on another database is refused by; see ``defectlens.cli.service``)."""


def _host_of(host_header: str) -> str:
    """The host a Host header (or an origin's netloc) names: in lower case, without its port or an IPv6 address's brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [v6]:port
        return host[1 : host.find("]")] if "]" in host else host
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def _bare_name(host: str) -> str:
    """A request's host as `serve --allowed-host` takes it: no port, brackets or final dot, in lower case."""
    return _host_of(host).rstrip(".")


VIEW_DECISIONS_KEPT = 65536
"""Stored pictures whose :func:`eight_bit` answer the service keeps (about 100 bytes each)."""


def eight_bit(path: Path) -> bool | None:
    """Whether a stored picture is shown by a browser as inspection read it: 8 bits a channel and opaque (a
    12-bit image in a 16-bit PNG showed black, where inspection had scaled it). None where its header cannot be read (a missing
    or damaged file, said by the caller)."""
    try:
        with Image.open(path) as img:
            # Transparent ones too: inspection fills their see-through pixels, and the overlay is drawn over that. So are 16-bit
            # colour ones, whose mode Pillow says "RGB" (regression probe 2026-12-07: a 12-bit one was shown near black).
            return img.mode in ("1", "L", "P", "RGB") and "transparency" not in img.info and not holds_deep_colour(img)
    except (OSError, ValueError):
        return None


def stored_pixels(path: Path, unknown: int) -> int:
    """Pixels of a stored picture, from its header alone; ``unknown`` where the header cannot be read (a damaged file is
    then charged as the largest, and said by its decoder)."""
    try:
        with Image.open(path) as img:
            return int(img.width) * int(img.height)
    except (OSError, ValueError, Image.DecompressionBombError):
        return unknown


_NOT_ONE_HOST = re.compile(r"[,\s/\\@]")
"""Characters no Host header naming one host holds (a list of two, a path, a user)."""


def host_is_own(host_header: str, own_names: Sequence[str]) -> bool:
    """Whether a request's Host header names this service without a name it was not told of: an IP
    address (any: a page can rebind a name, not an address) or one of ``own_names``. A service on
    0.0.0.0 had taken any name, and a probe's page at attacker.example reviewed a part GOOD through it."""
    if _NOT_ONE_HOST.search(host_header.strip()):
        return False  # no host: "localhost:8000, evil.example" had been read as localhost (security probe 2026-12-07)
    # Its final dot first: "127.0.0.1." is the address too (regression probe 2026-12-07: refused, and told to allow it by name).
    name = _bare_name(host_header)
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        # "*.plant.example" names every host below it, as --allowed-host had taken it.
        return any(name == n.lower() or (n.startswith("*.") and name.endswith(n[1:].lower())) for n in own_names)


class UploadDeadline:
    """ASGI middleware: the body of a POST must arrive within ``seconds`` of the request, or the
    request is answered 408. An upload takes its inspection slot before its body is read (so that
    a refusal costs nothing), and a client that stops sending would otherwise keep it for ever.
    ``on_timeout`` is called once per request that ran out of time (the metrics count them)."""

    def __init__(self, app: Any, seconds: float, on_timeout: Callable[[], object] | None = None) -> None:
        self.app, self.seconds, self.on_timeout = app, seconds, on_timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.seconds
        body_done = False

        async def timed_receive() -> Any:
            nonlocal body_done
            if body_done:  # after the body only a disconnect can come, whenever it does
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                if self.on_timeout is not None:
                    self.on_timeout()
                # An HTTPException is re-raised as it is by FastAPI's body parsing (any other error
                # becomes a 400 "error parsing the body"), and answered by its handler.
                raise HTTPException(408, f"upload not received within {self.seconds:g} s: send it again "
                                         "(a slow link: start the service with a larger --upload-timeout)") from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


class HeadAsGet:
    """ASGI middleware: a HEAD request is answered as its GET is, without the body (status, headers and length alike).
    Every route answered HEAD with 405: a load balancer's `HEAD /health` check marked the service down, and `curl -I`
    failed (integration probe 2026-12-06)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Any) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the body's chunks are dropped; the last one ends the response
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


def takes_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip: named (or ``x-gzip``) with a quality over 0, or not named and ``*`` so."""
    qualities: dict[str, float] = {}
    for part in accept_encoding.lower().split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0  # a quality no one can read taken as a refusal: sending gzip to it is the one harm
        if coding:
            qualities.setdefault("gzip" if coding == "x-gzip" else coding, quality)
    return qualities.get("gzip", qualities.get("*", 0.0)) > 0


class NegotiatedGZip(GZipMiddleware):
    """Starlette's gzip, given only to a client that takes it: Starlette looks for "gzip" in the header, and had compressed
    for ``gzip;q=0`` (a client refusing it) and not for ``*`` (any coding; regression probe 2026-12-07)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
            if takes_gzip(", ".join(v.decode("latin-1") for k, v in scope["headers"] if k == b"accept-encoding")):
                headers.append((b"accept-encoding", b"gzip"))
            scope = {**scope, "headers": headers}
        await super().__call__(scope, receive, send)


def route_path(scope: Any) -> str:
    """A request's path as the routes name it: without the root path a proxy serves the service under (`serve --root-path`), which
    the server puts in front of it — compared whole, uploads under /inspect had been neither limited, counted nor logged as
    uploads (regression probe 2026-12-08)."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", "") or "").rstrip("/")
    # Folder by folder: "/inspections" is not under "/inspect".
    return path[len(root):] or "/" if root and (path == root or path.startswith(root + "/")) else path


REQUEST_ID_HEADER = "X-Request-ID"
"""The header that names a request: taken from the client where it sends a plain one (a proxy's, a station's), else made; sent
back on every answer, and in the log line of a refused upload."""
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
REFUSAL_LOGGED = 2048
"""Bytes of a refused upload's answer read for the log line's reason."""


class NoFraming:
    """ASGI middleware: no answer of this service shown inside another site's frame (``X-Frame-Options: DENY``, and
    ``frame-ancestors 'none'`` where the answer has no policy of its own). /docs and /redoc, whose "Execute" buttons write from
    this origin, had none, as the review page has (security probe 2026-12-07: clickjacking); the guard's refusals neither."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def framed(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"x-frame-options" not in names:
                    headers.append((b"x-frame-options", b"DENY"))
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", b"frame-ancestors 'none'"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, framed)


class RequestId:
    """ASGI middleware: each request named by :data:`REQUEST_ID_HEADER`, and each refused upload (``POST /inspections`` answered
    4xx or 5xx) logged with that name, its status and the reason the client was given. A failed inspection had left only the
    access log's `"POST /inspections" 422` — no reason, nothing to tell it from another, nothing at all with --no-access-log —
    and a station's own request id was neither kept nor sent back (operator probe 2026-12-08)."""

    def __init__(self, app: Any, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The first of several (a proxy's before a client's): dict() had kept the last.
        sent = next((v for k, v in scope.get("headers") or [] if k == REQUEST_ID_HEADER.lower().encode()), b"").decode("latin-1")
        request_id = sent if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex[:16]
        upload = scope["method"] == "POST" and route_path(scope) == "/inspections"
        status, answer, counted = 0, bytearray(), [False]
        counting = _REFUSAL_COUNTED.set(counted if upload else None)

        async def named(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if upload and status >= 400 and self.metrics is not None:
                    self.metrics.refused("invalid_request" if status < 500 else "server_error")
                message = {**message, "headers": [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id.encode())]}
            elif message["type"] == "http.response.body" and upload and status >= 400:
                answer.extend(message.get("body", b"")[: REFUSAL_LOGGED - len(answer)])
                if not message.get("more_body", False):
                    log.warning("upload refused with %d (request %s): %s", status, request_id, _refusal_reason(bytes(answer)))
            await send(message)

        try:
            await self.app(scope, receive, named)
        except Exception:
            if status:  # its answer begun: nothing more can be said to the client
                raise
            # The server's own "Internal Server Error" had been plain text without the request's id, and its traceback undated
            # in the log (resource probe 2026-12-07): JSON naming the request, the traceback in the service's dated log.
            log.exception("request %s (%s %s) failed", request_id, scope.get("method"), _printable(route_path(scope), 120))
            await named({"type": "http.response.start", "status": 500,
                         "headers": [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff")]})
            await named({"type": "http.response.body", "more_body": False,
                         "body": json.dumps({"detail": f"the service failed on this request (id {request_id}): its log says why"}).encode()})
        finally:
            _REFUSAL_COUNTED.reset(counting)


def _refusal_reason(answer: bytes) -> str:
    """The reason a refused request was given (its JSON's ``detail``; a list of field errors as their messages), printable."""
    try:
        detail = json.loads(answer).get("detail")
    except (ValueError, AttributeError):
        return str(_printable(answer.decode("utf-8", "replace"), 300))
    if isinstance(detail, list):
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(_printable(" ".join(str(detail).split()), 300))


def upload_limit_words(limit: int, path: str = "/inspections") -> str:
    """The one refusal of a body over ``limit`` bytes, however it was found (announced, chunked, read): the three had
    said it three ways, one with the form's framing counted in (regression probe 2026-12-06). The limit in MiB, which
    --max-upload-mb counts in (it had said "MB"); a review's body is no "upload" (integration probe 2026-12-06)."""
    what = "upload" if path == "/inspections" else "request body"
    return f"{what} is over the limit of {limit} bytes ({limit / 2**20:.3g} MiB: serve with a larger --max-upload-mb to take it)"


FORM_CLOSED = "defectlens.form_closed"
"""The request's scope key under which :class:`BodyLimit` says whether a multipart body held its closing delimiter (its
boundary, ``--BOUNDARY--``, at a line's start; None: a body that names no boundary): looked for in the whole stream, an
epilogue of any length after it (the last 8 kB had been looked into, and a longer epilogue refused; regression probe
2026-12-07)."""


class BodyLimit:
    """ASGI middleware: a POST body longer than ``limit`` bytes is answered 413 as soon as that many
    have arrived, whether or not it announced its length (a chunked body announces none, and the
    check on Content-Length alone let a 400 MB upload spool to disk and a 300 MB review into memory).
    ``on_refused`` is called once per refused request (the metrics count them)."""

    def __init__(self, app: Any, limit: int, on_refused: Callable[[], object] | None = None, said_limit: int | None = None) -> None:
        self.app, self.limit, self.on_refused = app, limit, on_refused
        self.said_limit = limit if said_limit is None else said_limit
        """The limit a refusal quotes: the upload's own, where ``limit`` allows the form's framing around it (a chunked
        upload had been told 21037056 bytes, one with a Content-Length 20971520: security probe 2026-12-06)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        received = 0
        boundary = _form_boundary(Headers(scope=scope).get("content-type", ""))
        # After a CRLF, as the form's reader ends a part: a file's bytes may hold an LF and the boundary, which it reads as data
        # (final probe 2026-12-07: taken for the form's end, a cut-off 'model' part after it went unsaid).
        closing = b"\r\n--" + boundary + b"--" if boundary else None
        carried = b"\r\n"  # the body's start is a line's start
        scope[FORM_CLOSED] = False if closing is not None else None

        async def counted_receive() -> Any:
            nonlocal received, carried
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if closing is not None and not scope[FORM_CLOSED]:
                    # Across the chunks' edges: the end of the one before carried into the next.
                    window = carried + message.get("body", b"")
                    scope[FORM_CLOSED] = closing in window
                    carried = window[-(len(closing) - 1):]
                if received > self.limit:
                    if self.on_refused is not None:
                        self.on_refused()
                    # Answered by its handler, as UploadDeadline's 408 is (see there).
                    raise HTTPException(413, upload_limit_words(self.said_limit, route_path(scope)))
            return message

        await self.app(scope, counted_receive, send)


class Admission:
    """Counts inspections in progress and refuses one over the limit (thread-safe)."""

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"max_in_flight must be at least 1 (or None for no limit), got {limit}")
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        """Take a slot; False when all are taken."""
        with self._lock:
            if self.limit is not None and self.in_flight >= self.limit:
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        """Give a slot back."""
        with self._lock:
            self.in_flight -= 1


TRIM_AFTER_PIXELS = 4_000_000
"""After an upload of this many pixels the freed heap is handed back to the system."""


def return_freed_memory() -> None:
    """Ask the C allocator to give freed heap pages back to the system. glibc keeps what a large
    inspection freed in its per-thread arenas: after one 36 M-pixel upload the process stayed
    2.4 GB larger for good. A no-op where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class BudgetTimeout(TimeoutError):
    """:meth:`PixelBudget.hold` waited its ``timeout`` for pixels that stayed held (a file read that timed out is not this)."""


class PixelBudget:
    """Bounds the pixels of the images being decoded and inspected at once (thread-safe). Memory
    grows with an image's pixels (a 36 M-pixel upload takes about a gigabyte while decoded and
    scored), and the admission limit counts requests, not pixels: sixteen uploads at the pixel
    limit would need far more memory than a line's server has. Over the budget an admitted upload
    waits its turn; one image always fits, however large (it is charged at most the budget)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the pixel budget must be at least 1, got {limit}")
        self.limit = limit
        self.held = 0
        self._turn = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int, timeout: float | None = None) -> Iterator[None]:
        """Hold ``pixels`` of the budget (waiting until they are free, at most ``timeout`` seconds: then BudgetTimeout)
        for the ``with`` block."""
        charge = max(0, min(pixels, self.limit))
        with self._turn:
            if not self._turn.wait_for(lambda: self.held + charge <= self.limit, timeout):
                raise BudgetTimeout(f"{pixels} pixels of the budget not free within {timeout} s")
            self.held += charge
        try:
            yield
        finally:
            with self._turn:
                self.held -= charge
                self._turn.notify_all()


REFUSAL_REASONS = ("busy", "cross_site", "empty", "invalid_request", "not_an_image", "out_of_resources", "server_error",
                   "store_unavailable", "timeout", "too_large", "too_many_pixels", "unauthorized")
"""The reasons ``defectlens_rejected_uploads_total`` counts refused uploads by: ``out_of_resources`` where the machine lacked
memory or open files, ``invalid_request`` and ``server_error`` every other 4xx and 5xx (a form cut off or of unknown fields, a
wrong media type, an unknown model, a failure)."""

_REFUSAL_COUNTED: ContextVar[list[bool] | None] = ContextVar("defectlens_refusal_counted", default=None)
"""Set by :class:`RequestId` for each request: for an upload, whether a refusal of it was counted under its own reason (a list,
so that a route's thread, which runs in a copy of the context, tells the middleware); None for any other request."""


class Metrics:
    """Prometheus metrics of one app (own registry: several apps may live in one test process)."""

    def __init__(self, models: Sequence[str]) -> None:
        self.registry = CollectorRegistry()
        self.inspections = Counter("defectlens_inspections", "Inspections stored, by model and verdict", ["model", "verdict"],
                                   registry=self.registry)
        self.latency = Histogram("defectlens_inspection_seconds", "Time from upload received to inspection stored", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rejected = Counter("defectlens_rejected_uploads", "Uploads refused, by reason", ["reason"], registry=self.registry)
        # A camera drifting since the fit (focus, light, position) moves every image away from the normal ones before any
        # crosses the frame check's limit, and false alarms rise first (drift probe 2026-12-06): a dashboard alerts on the median.
        self.frame_distance = Histogram("defectlens_frame_distance", "How far each image as a whole lies from the model's normal "
                                        "images (1 = their 98th percentile; a median over 1: the line has drifted since the fit)",
                                        ["model"], buckets=FRAME_BUCKETS, registry=self.registry)
        # By kind: a comment alone labels nothing, and a dashboard of how much the line corrects the machine
        # had counted those notes as reviews.
        self.reviews = Counter("defectlens_reviews", "Reviews stored, by kind (review: labels the inspection; note: a comment alone; "
                               "unusable: an image the model cannot judge, which labels nothing)", ["kind"], registry=self.registry)
        self.store_up = Gauge("defectlens_store_up", "1 when the database answered the last check", registry=self.registry)
        # Kept by the watch thread: how much is stored, and the room left for it (counters alone had shown
        # nothing of a store that grows for weeks, and /health warns only under 32 MiB free).
        self.stored = Gauge("defectlens_inspections_stored", "Inspections in the database (as of the last check)", registry=self.registry)
        self.disk_free = Gauge("defectlens_disk_free_bytes", "Free bytes on the file store's disk (as of the last check)",
                               registry=self.registry)
        for m in models:  # zero-valued series from the start, so dashboards see every model
            for v in ("good", "defective"):
                self.inspections.labels(m, v)
        for kind in ("review", "note", UNUSABLE):
            self.reviews.labels(kind)
        # Each refusal's series too: born at 1 with its first refusal, rate() and increase() read it as 0, and an alert on the
        # first outage after a restart never fired (soak probe 2026-12-07).
        for reason in REFUSAL_REASONS:
            self.rejected.labels(reason)

    def refused(self, reason: str) -> None:
        """Count a refused upload under ``reason`` (one of :data:`REFUSAL_REASONS`), once: :class:`RequestId` counts the
        refusals no check named as ``invalid_request`` or ``server_error`` (they had been counted nowhere: regression
        probe 2026-12-07)."""
        # Uploads only, each once: a review refused as cross-site or too large had been counted as a refused upload (regression
        # probe 2026-12-07).
        if (counted := _REFUSAL_COUNTED.get()) is not None and not counted[0]:
            self.rejected.labels(reason).inc()
            counted[0] = True


KNOWN_SCHEMES = frozenset({"basic", "digest", "negotiate", "ntlm", "token", "hoba", "mutual", "dpop", "gnap", "privatetoken", "scram-sha-256"})
"""HTTP authentication schemes a refusal may name back (IANA's registry and the common "Token"), in lower case."""


def _scheme_and_credentials(authorization: str) -> tuple[str, str]:
    """An ``Authorization`` header's scheme and what follows it, apart at spaces or tabs, as HTTP allows (no other space)."""
    scheme, credentials = [*re.split(r"[ \t]+", authorization.strip(" \t"), maxsplit=1), "", ""][:2]
    return scheme, credentials


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (the scheme in any case, spaces around the token let go), or
    None: "Bearer  s3cret" with two spaces had been told its right token was wrong (regression probe 2026-12-06)."""
    scheme, token = _scheme_and_credentials(authorization or "")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def token_refusal(x_api_token: str | None, authorization: str | None) -> str:
    """Why a write was refused its token: none sent, or one that is not the service's (the two had read alike, "missing or
    wrong", and an integrator could not tell a header never sent from a wrong value; integration probe 2026-12-06)."""
    bearer = bearer_token(authorization)
    if x_api_token or bearer:
        return "wrong API token: the one sent is not this service's (check the value given to serve --token)"
    if authorization:
        # Another scheme (Basic, say) had been told "no API token sent"; nothing of the header is echoed: a token sent with no
        # scheme had come back whole in the refusal, into every log (regression probes 2026-12-06).
        scheme = _scheme_and_credentials(authorization)[0]
        # A scheme of the registry is named (no secret is in it): "is Basic, not Bearer" says what to change.
        what = ("Bearer with no token" if scheme.lower() == "bearer" else f"{scheme}, not Bearer" if scheme.lower() in KNOWN_SCHEMES
                else "not 'Bearer TOKEN'")
        return f"the Authorization header is {what}: send 'Authorization: Bearer TOKEN' or the {TOKEN_HEADER} header"
    return f"no API token sent: this service takes writes with its token in the {TOKEN_HEADER} header (or Authorization: Bearer TOKEN)"

def _whole_number(value: object) -> object:
    """An id as written in a path must be digits: pydantic's lax int took '1.0' (and ' 1', '1_0') for 1,
    giving one inspection several addresses."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("an inspection id is a whole number, written in digits")
    return value


def _blank_is_none(value: object) -> object:
    """A history filter sent blank (``?verdict=``, as a form's "any" sends it) is no filter: ``type=`` and ``model=`` had
    been let go while ``verdict=``, ``review=``, a blank time and ``after_id=`` were refused (OpenAPI probe 2026-12-07)."""
    return None if isinstance(value, str) and not value.strip() else value


Blank = BeforeValidator(_blank_is_none)
"""Put before a history filter's :class:`Query`: blank is the same as not given. Its limits go on the text or number inside
(the types below): on the filter, they were applied to the None a blank became."""
VerdictText = Annotated[str, StringConstraints(max_length=20)]  # no pattern: checked in words (list_inspections)
TypeText = Annotated[str, StringConstraints(max_length=100, pattern=NO_NUL)]
ModelText = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]
ReviewText = Annotated[str, StringConstraints(max_length=20)]  # no pattern: checked in words, in any case, as the verdict
AfterId = Annotated[int, Field(ge=0, le=MAX_ID)]
PAGE_DEFAULT = 50
"""Inspections a page of the history holds where the request names no limit (or a blank one)."""
PageSize = Annotated[int, Field(ge=1, le=500)]
PageOffset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]
InspectionId = Annotated[int, PathParam(ge=0, le=MAX_ID, description="The inspection's id"), BeforeValidator(_whole_number)]
"""An inspection id in a path: digits only, and bounded, so an id too large for the database is a 422, not a 500."""
IfNoneMatch = Annotated[str | None, Header(description="An ETag this client holds: 304 when it is still the file")]
"""The conditional-request header of the picture routes (their ETag is the file's digest)."""


def _form_boundary(content_type: str) -> bytes | None:
    """The boundary a multipart form's Content-Type names, as the form's reader takes it (None: none): its last ``boundary``
    parameter, in the header's own bytes (a non-ASCII one had been let through unchecked, and of two the first compared where
    the reader had used the last; regression probe 2026-12-07)."""
    header = email.message.Message()
    header["content-type"] = content_type
    boundary = next((value for key, value in reversed(header.get_params() or []) if key.lower() == "boundary"), None)
    if not isinstance(boundary, str) or not boundary:
        return None
    try:
        return email.utils.unquote(boundary).encode("latin-1")  # Starlette's headers are the bytes read as Latin-1
    except UnicodeEncodeError:
        return None


def _unknown(names: Iterable[str], known: Iterable[str] = ()) -> list[str]:
    """The ``names`` (a request's parameters or form fields, each once, in order) that are not ``known``; a name starting with
    '_' (a cache-buster) is let go."""
    taken = set(known)
    return [name for name in dict.fromkeys(names) if name not in taken and not name.startswith("_")]


def _media_type(request: Request) -> str:
    """The media type of the request's body, as its Content-Type names it (lower case, no parameters; '' for none)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def _driver_says(exc: Exception, otherwise: str) -> str:
    """The first line of what the database driver said of ``exc`` (SQLAlchemy's wrapper adds the statement), or
    ``otherwise`` when it said nothing."""
    first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    return first[0] if first else otherwise


def _printable(value: object, limit: int = 200) -> object:
    """``value`` as it can go into a JSON answer: text cut to ``limit`` characters, with what UTF-8
    cannot encode (lone surrogates) escaped; numbers as they are."""
    if isinstance(value, int | float):
        return value
    text = str(value)
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


REVIEW_EXAMPLE = '{"reviewer": "Ana", "verdict": "good"}'
"""The review a refusal of a body that is no JSON object shows."""
STORE_RETRY_SECONDS = 5
"""The Retry-After of a 503 for a database or file store that is down: longer than a busy one's."""


def store_locations(data_dir: Path, db_url: str) -> tuple[str, ...]:
    """Where the store lives, as it may appear in an error's text: the data folder, and the
    database's host, user, password and (a SQLite file's) path. Longest first, so a path is
    hidden whole before any part of it."""
    found = {str(data_dir), str(data_dir.resolve())}
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        url = make_url(db_url)
        found |= {str(url.host or ""), str(url.username or ""), str(url.password or "")}
        if url.get_backend_name() == "sqlite" and url.database:
            found |= {url.database, str(Path(url.database).resolve())}
    return tuple(sorted((s for s in found if len(s) > 1), key=len, reverse=True))


SERVICE_SHORT_OF_FIX = {
    "memory": "serve with a lower --max-megapixels or --max-in-flight, or where more memory is free",
    "open files": "raise the service's limit of open files (ulimit -n; systemd: LimitNOFILE=4096)",
}
"""The service's fix of each shortage :func:`~defectlens.errors.out_of_resources` names (the commands' is SHORT_OF_FIX)."""
SHORT_SAID_SECONDS = 30.0
"""Seconds between two log lines of one shortage: under ``ulimit -n 40`` the log had grown 12 000 lines a second."""


def out_of_open_files(reason: str = "", database_file: str | None = None) -> bool:
    """Whether the store's failure ``reason`` is this process's limit of open files, not the store's: said so, it can open no
    more files now, or SQLite's "unable to open database file" of a ``database_file`` that is there, a file this process may
    read and write in a folder it may write (a burst's other requests close theirs before this one is answered: the first check
    alone had let 19 of 40 through as "database unavailable"; a guess by the files in use had taken a database replaced by a
    folder for it; regression probes 2026-12-07)."""
    if "Too many open files" in reason:
        return True
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    if "unable to open database file" not in reason or database_file is None:
        return False
    try:
        usable = stat.S_ISREG(os.stat(database_file).st_mode)
    except OSError:
        return False
    folder = os.path.dirname(database_file) or "."
    return usable and os.access(database_file, os.R_OK | os.W_OK) and os.access(folder, os.W_OK | os.X_OK)


class Outage:
    """The store's state as the log and the metrics tell it: one warning when it goes down (with the
    reason), one line when it answers again — the log said nothing through 321 refused uploads —
    and each refused upload counted with its reason. What a caller is told leaves out where the
    store lives (``hidden``: see :func:`store_locations`); the log keeps it for the operator."""

    def __init__(self, metrics: Metrics, hidden: tuple[str, ...] = (), database_file: str | None = None):
        self.metrics = metrics
        self.hidden = hidden
        self.database_file = database_file
        """The SQLite file the store serves on (None: a server), which tells a limit of open files from an outage."""
        self.down: str | None = None
        self.since: float | None = None
        """When (``time.monotonic``) the store went down; None while it answers."""
        self._lock = threading.Lock()
        self._short_said = -math.inf  # when the last shortage of open files was logged

    def public(self, reason: str) -> str:
        """``reason`` as a caller may read it: the store's paths, host and user replaced by "…", and the
        address and port a driver names (psycopg says the address a host name resolved to)."""
        for secret in self.hidden:
            reason = reason.replace(secret, "…")
        reason = re.sub(r'((?:server|host) at )"[^"]*"', r'\1"…"', reason)
        return re.sub(r"\bport \d+", "port …", reason)

    def began(self, reason: str) -> None:
        """The store failed: say so once."""
        self.metrics.store_up.set(0)
        with self._lock:
            first, self.down = self.down is None, reason
            if first:
                self.since = time.monotonic()
        if first:
            log.warning("store unavailable: %s; requests get 503 until it answers", reason)

    def over(self) -> None:
        """The store answered: say so once, if it had been down."""
        self.metrics.store_up.set(1)
        with self._lock:
            was, self.down, self.since = self.down, None, None
        if was is not None:
            log.warning("store answers again (it was unavailable: %s)", was)

    def refuse(self, request: Request, reason: str) -> JSONResponse:
        """The 503 for a request the store could not serve, with when to retry."""
        if out_of_open_files(reason, self.database_file):
            # No outage: at its limit of open files the process can open neither the database file nor a picture, which had been
            # said as "database unavailable" (31 of 40 uploads, /health flapping; regression probe 2026-12-07).
            self.metrics.refused("out_of_resources")
            if time.monotonic() - self._short_said > SHORT_SAID_SECONDS:
                self._short_said = time.monotonic()
                log.warning("this service ran out of open files (%s) — fix: %s", reason, SERVICE_SHORT_OF_FIX["open files"])
            return JSONResponse({"detail": "this service ran out of open files; retry shortly"}, status_code=503,
                                headers={"Retry-After": str(STORE_RETRY_SECONDS)})
        self.began(reason)
        self.metrics.refused("store_unavailable")  # of an upload (Metrics.refused counts no other request)
        return JSONResponse({"detail": self.public(reason)}, status_code=503, headers={"Retry-After": str(STORE_RETRY_SECONDS)})


def store_options(config: ServiceConfig) -> str:
    """The options of a command that reads this service's store (`export-reviews`, `prune-inspections`): its data folder,
    and ``--db URL`` where the database is not the folder's own SQLite file (its URL not written out: it may hold a
    password)."""
    # By the file, not the URL's text: "sqlite:///svc/inspections.db" is the folder's own file given relative (regression probe).
    own = config.db_url == sqlite_url(config.data_dir / DB_FILE) or (
        (file := sqlite_file(config.db_url)) is not None and Path(file).resolve() == (config.data_dir / DB_FILE).resolve())
    return f"--data-dir {shlex.quote(printable_text(str(config.data_dir)))}" + ("" if own else " --db URL")


def stored_history_notes(store: Store, pool: ModelPool, reached_by: str = "--data-dir DIR") -> list[str]:
    """A line for each model served under a name whose latest stored inspection is of another part, by its report's object: a
    mistyped ``NAME=DIR`` mixed two parts' history under one name without a word, and its reviews could then not be exported
    (plant probe 2026-12-06). And one for each whose fit has inspections stored under another name, not served: 0.3.7 named
    a folder served through a link after the link's target, and its history went on under a new name unsaid (upgrade probe).
    ``reached_by``: the options that reach this store (:func:`store_options`), in the command said."""
    said = []
    served_names = {same_spelling(n) for n in pool.models}  # an older row's decomposed "kä" is the served "kä" (regression probe)
    for name, served in pool.models.items():
        fit = served.inspector.provenance
        # Each name once, in one spelling (two spellings of "kä" had been listed as two names that look alike).
        elsewhere = list(dict.fromkeys(same_spelling(m) for m in store.models_of_fit(fit.fitted_at, fit.fingerprint)
                                       if same_spelling(m) not in served_names)) if fit is not None and fit.fitted_at else []
        if elsewhere:
            # The command whole, as it runs when pasted: with its output and store options, and the served name only where
            # something is stored under it, since export-reviews refuses a name with nothing stored (regression probe
            # 2026-12-07: it lacked -o, and named the served name first on the first start after an upgrade).
            named = ([name] if store.stored_name(name) is not None else []) + elsewhere
            models = " ".join(f"--model {shlex.quote(m)}" for m in named)
            keep = (f", and serving it as {shlex.quote(elsewhere[0] + '=DIR')} goes on with the history stored under that name"
                    if len(elsewhere) == 1 else "")
            said.append(f"model {name}: inspections of this very fit are stored under {', '.join(map(repr, elsewhere))} too (a copy "
                        "served under another name, or a folder served through a link, which 0.3.7 named after the link's target): "
                        f"`defectlens export-reviews -o REVIEWS {reached_by} {models}` exports their reviews together{keep}")
        taxonomy = served.analysis.taxonomy
        now = taxonomy.object_name if taxonomy is not None else DEFAULT_OBJECT
        latest = store.page(Filters(model=name), 1, 0)[0]
        report = latest[0].report if latest else None
        before = report.get("object") if isinstance(report, dict) else None  # a row another program wrote may hold anything
        if isinstance(before, str) and DEFAULT_OBJECT not in (before, now) and folded_name(before) != folded_name(now):
            said.append(f"model {name}: the inspections stored under this name are of {before!r} (the latest, #{latest[0].id}), the model "
                        f"served now of {now!r}: serve it under a name of its own (NAME=DIR), or their reviews are exported one part at a "
                        "time (`defectlens export-reviews --part`)")
    return said


def create_app(config: ServiceConfig, pool: ModelPool | None = None) -> FastAPI:
    """The service app. Models are loaded here, once (or passed in as ``pool``, e.g. shared by tests)."""
    owns_pool = pool is None
    store = Store(config.db_url)  # a URL it refuses, refused before the models load
    pool = pool or ModelPool.load(config.model_dirs)
    try:
        blobs = BlobStore(config.data_dir)
    except OSError as exc:
        if owns_pool:
            pool.close()  # its scoring thread and models go with the refusal (they had stayed, in a process that went on)
        raise DefectlensError(f"cannot use it as the file store ({exc.strerror or exc})", config.data_dir,
                              fix="pass a writable --data-dir") from None
    if blobs.removed_scratch:
        log.warning("removed %d scratch file(s) a stopped service left in %s", blobs.removed_scratch, config.data_dir / "tmp")
    for served in pool.models.values():
        # Said once at start, where an operator looks: they were only in GET /models.
        for note in served.notes:
            log.warning("model %s: %s", served.name, note)
    metrics = Metrics(list(pool.models))
    admission = Admission(config.max_in_flight)
    pixel_budget = PixelBudget(config.max_pixels)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # A database that is down is answered with 503 and retried on each request: the process stays up,
        # and says so once here rather than only in the first refused request.
        try:
            # A write probe too: a read-only database user answered reads and refused every record,
            # and the start-up said nothing.
            await run_in_threadpool(store.check, True)
            # A lost SQLite file comes back empty on the next connection, and a restart then runs on
            # from id 1 with every stored picture orphaned, without a word (probe 2026-12-05).
            newest = await run_in_threadpool(store.newest_id)
            if (lost := await run_in_threadpool(blobs.lost_history, newest, store.inspection_stamp)) is not None:
                # After one upload the count below passes, and a prune then took every older picture for an orphan (operator
                # probe 2026-12-08): told by the newest id the folder has seen, which the prune commands refuse by too.
                log.warning("%s; the prune commands refuse this folder until then", lost)
                said_lost[0] = True
            elif newest is None and await run_in_threadpool(blobs.holds_files):
                log.warning("the database holds no inspection, but the file store %s holds pictures of earlier ones: "
                            "was the database lost or replaced? Restore it, or the history starts again from id 1", config.data_dir)
            await run_in_threadpool(blobs.note_newest, newest, store.inspection_stamp)
        except StoreUnavailable as exc:
            log.warning("%s at start-up; requests get 503 until it answers", exc)
        stop = threading.Event()

        def watch() -> None:
            # Here, not before serving: each looks through the stored inspections (regression probe 2026-12-06: 1.3 s at
            # start-up for 300 000 of them, growing with the store).
            try:
                with contextlib.suppress(StoreUnavailable, *UNAVAILABLE_ERRORS):
                    if (damage := store.check_integrity()) is not None:
                        log.error("the database is damaged (%s): every request that reads or writes it is refused with 503 until it "
                                  "is restored or repaired and the service restarted on it", damage)
                    for note in stored_history_notes(store, pool, store_options(config)):
                        log.warning("%s", note)
            except Exception as exc:  # noqa: BLE001 - a note not said is no reason to stop watching
                log.warning("the stored history was not looked through (%s: %s); the service goes on", type(exc).__name__, exc)
            # Each check kept apart, and the thread kept alive through any error: one error had ended it for the process's
            # life, and with it the store's probe, the metrics and every word of a model folder changed or gone (regression
            # probe 2026-12-07). Said once while it lasts.
            checks: list[Callable[[], object]] = [refresh_sizes]
            failing: set[str] = set()
            while True:
                for check in checks:
                    try:
                        check()
                        failing.discard(check.__name__)
                    except Exception as exc:  # noqa: BLE001 - see above
                        if check.__name__ not in failing:
                            log.warning("the service's watch failed in %s (%s: %s); it tries again every %g s", check.__name__,
                                        type(exc).__name__, exc, STORE_WATCH_SECONDS)
                        failing.add(check.__name__)
                if stop.wait(STORE_WATCH_SECONDS):
                    return
                checks = [probe_store, refresh_sizes, note_models_changed, note_newest, *([config.folder_watch] if config.folder_watch else [])]

        threading.Thread(target=watch, name="defectlens-store-watch", daemon=True).start()
        yield
        stop.set()
        with contextlib.suppress(StoreUnavailable, *UNAVAILABLE_ERRORS):
            # The watch's last word: a run shorter than its period had recorded none.
            blobs.note_newest(store.newest_id(), store.inspection_stamp)
        store.dispose()
        if owns_pool:
            pool.close()  # a pool passed in (tests share one) stays with its owner

    # The API's version ("1"), which a client codes against; the software's is in the description and /health.
    app = FastAPIOffline(title="defectlens inspection service", version="1", lifespan=lifespan, responses=refusals(400),
                  description=f"Post images, get verdicts, outlined defects, types and reports; review them. Served by defectlens {__version__}.")
    app.state.store, app.state.pool, app.state.blobs, app.state.metrics, app.state.config = store, pool, blobs, metrics, config
    routes_document = app.openapi

    def openapi_document() -> dict[str, Any]:
        """The OpenAPI document, with the headers, token and refusal bodies the routes do not declare (made once)."""
        if app.openapi_schema is None:
            app.openapi_schema = complete_document(routes_document(), token_required=config.token is not None)
        return app.openapi_schema

    app.openapi = openapi_document  # type: ignore[method-assign]  # FastAPI's documented way to add to its document

    # Reads need no token: an error's text must not tell anyone where the data and database are.
    outage = Outage(metrics, hidden=store_locations(config.data_dir, config.db_url), database_file=sqlite_file(config.db_url))

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(req: Request, exc: StoreUnavailable) -> JSONResponse:
        return outage.refuse(req, str(exc))

    @app.exception_handler(DataError)
    async def _out_of_range(_req: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot hold is the request's, not an outage: an id above PostgreSQL's 32-bit column had been
        # answered 503 "database unavailable", retried for ever, and the store's gauge dropped (regression probe 2026-12-06).
        return JSONResponse({"detail": f"a value is out of the database's range: {_printable(_driver_says(exc, 'data error'), 200)}"},
                            status_code=422)

    @app.exception_handler(IntegrityError)
    async def _refused_record(_req: Request, exc: IntegrityError) -> JSONResponse:
        # Not an outage: an id sequence behind its table (reset, or the table restored without it) had been answered 503
        # "database unavailable" while /health said ok, retried until the sequence passed the stored ids (PostgreSQL probe
        # 2026-12-07). Said as it is, with the operator's fix in the log.
        said = _driver_says(exc, "integrity error")
        # The table whose key was taken (regions' and reviews' have sequences too: the fix had named the inspections' alone).
        table = match[1] if (match := re.search(r'"(inspections|regions|reviews)_pkey"', said)) else "inspections"
        log.error("the database refused a record: %s — where its ids run behind its table (a sequence reset, or the table restored "
                  "without it), fix on PostgreSQL: SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT max(id) FROM %s))",
                  said, table, table)
        return JSONResponse({"detail": f"the database refused the record: {_printable(said, 200)} (the service's log says the fix)"},
                            status_code=500)

    for err in UNAVAILABLE_ERRORS:
        @app.exception_handler(err)
        async def _db_down(req: Request, exc: Exception) -> JSONResponse:
            return outage.refuse(req, f"database unavailable: {_driver_says(exc, exc.__class__.__name__)}")

    def _message(error: Any) -> str:
        """pydantic's message, or for a key a review does not take the keys it does ("Extra inputs are not permitted"
        named no fix); a review's body that is no JSON object said with the one to send ("JSON decode error" had named none;
        OpenAPI probe 2026-12-07)."""
        loc = [part for part in error.get("loc", ()) if isinstance(part, str)]
        kind, where = error.get("type"), tuple(error.get("loc", ()))
        if kind == "json_invalid":
            at = f" at character {where[-1]}" if len(where) > 1 and isinstance(where[-1], int) else ""
            return f"the body is not JSON (it breaks off or goes wrong{at}): send one JSON object, {REVIEW_EXAMPLE}"
        if kind == "missing" and where == ("body",):  # an empty body: "Field required" had named neither (regression probe 2026-12-07)
            return f"the body is empty: send one JSON object, {REVIEW_EXAMPLE}"
        if kind == "model_attributes_type" and where == ("body",):
            return f"the body is JSON but no object: send one JSON object, {REVIEW_EXAMPLE}"
        if kind != "extra_forbidden" or not loc:
            return str(error.get("msg", ""))
        takes = MissedDefect if "missed" in loc[:-1] else RegionReview if "regions" in loc[:-1] else ReviewIn
        return f"no field {loc[-1]!r} here: it takes {', '.join(takes.model_fields)}"

    @app.exception_handler(StarletteHTTPException)  # what FastAPI raises for a body it cannot read (and HTTPException's base)
    async def _refused(req: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's "There was an error parsing the body" named neither what was wrong nor the fix; for a body that is not
        # UTF-8 (a review sent in Latin-1, "José") the cause is known (OpenAPI probe 2026-12-07).
        if exc.status_code == 400 and isinstance(bad := exc.__cause__, UnicodeDecodeError):
            return JSONResponse({"detail": f"the body is not UTF-8 (byte 0x{bad.object[bad.start]:02x} at {bad.start}): send the JSON "
                                           "encoded as UTF-8"}, status_code=400)
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            return JSONResponse({"detail": "the body's JSON nests too deep to be read: send one JSON object, "
                                           f"{REVIEW_EXAMPLE}"}, status_code=400)
        return await http_exception_handler(req, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes every wrong value back — a whole upload, a 300 MB comment — and
        # answers 500 for one it cannot encode (a lone surrogate in JSON): where and why only, printable.
        detail = [{"loc": [_printable(part) for part in e.get("loc", ())], "msg": _printable(_message(e)), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    # Innermost: the token guard and the upload deadline below see the request first.
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes + BODY_OVERHEAD, on_refused=lambda: metrics.refused("too_large"),
                       said_limit=config.max_upload_bytes)
    if config.upload_timeout is not None:
        # Added before the guard below, so inside it: the route's own task raises the 408 (raised
        # through the guard's task group it would arrive wrapped, and be answered 400), and the
        # guard gives the slot back when the route has answered.
        app.add_middleware(UploadDeadline, seconds=config.upload_timeout, on_timeout=lambda: metrics.refused("timeout"))

    # This machine's own names and those it was told of (--allowed-host): with an address, what a request may name (host_is_own).
    own_names = ("localhost", socket.gethostname(), socket.getfqdn(), *(config.allowed_hosts or ()))

    def is_trusted(name: str) -> bool:
        """Whether a request may name this service ``name`` (the Host check's rule)."""
        return "*" in (config.allowed_hosts or ()) or host_is_own(name, own_names)

    @app.middleware("http")
    async def _guard_uploads(request: Request, call_next: Any) -> Response:
        # A request without a Host (HTTP/1.0, a load balancer's health check) is no browser's, which DNS rebinding needs: let
        # through (proxy probe 2026-12-07: refused, with advice that could not help).
        sent_host = request.headers.get("host", "")
        if sent_host and not is_trusted(sent_host):
            named = f"host name {_printable(sent_host, 80)!s}"
            # The bare name, as --allowed-host takes it (regression probe 2026-12-07: "NAME" beside a name with its port), where it
            # takes it (regression probe 2026-12-07: "user@evil.example" had been advised, which it refuses).
            bare = _bare_name(sent_host)
            # Nor where it names two hosts: "--allowed-host localhost" had been advised for "localhost:8000, evil.example".
            one = is_host_name(bare) and not _NOT_ONE_HOST.search(sent_host.strip())
            fix = (f"start it with --allowed-host {_printable(bare, 80)} (or --allowed-host '*' for any)" if one else
                   "it is no host name --allowed-host takes (only --allowed-host '*' would let it through)")
            return JSONResponse({"detail": f"{named} is not one this service was told it is reached by: {fix}"},
                                status_code=400, headers={"X-Content-Type-Options": "nosniff"})
        # A browser posts a multipart form to any site without asking it first: a write from a page
        # of another origin is refused (probe 2026-12-05: any page on the line's network could store
        # inspections). Camera stations and scripts send no Origin; the review page sends its own.
        origin = request.headers.get("origin")
        if request.method == "POST" and origin is not None and origin_host(origin) not in own_origins(request, is_trusted):
            metrics.refused("cross_site")
            sent_from = origin_host(origin)
            if sent_from and sent_from in own_origins(request, lambda name: True):
                # Its own page behind a proxy, under a name it was not told of: said with the fix, not as another site's.
                # The bare name, as --allowed-host takes it (it refuses one with a port, which this had named).
                bare = _bare_name(sent_from)
                fix = f"start it with --allowed-host {_printable(bare, 80)}" if is_host_name(bare) else "only --allowed-host '*' takes it"
                return JSONResponse({"detail": f"write from {_printable(origin, 80)} refused: the proxy names this service "
                                               f"{_printable(sent_from, 80)}, which it was not told it is reached by — {fix}"}, status_code=403)
            return JSONResponse({"detail": f"write from another site ({_printable(origin, 80)}) refused: this service takes writes "
                                           "from its own page and from clients that send no Origin header"}, status_code=403)
        # A write without the token is refused first: before its body is read or spooled, and before
        # it takes an inspection slot (else clients without the token could hold every slot).
        if request.method == "POST" and not token_ok(request.headers.get(TOKEN_HEADER), request.headers.get("authorization")):
            metrics.refused("unauthorized")  # an upload's (a review without the token is no upload: Metrics.refused)
            return JSONResponse({"detail": token_refusal(request.headers.get(TOKEN_HEADER), request.headers.get("authorization"))}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="defectlens"', "X-Content-Type-Options": "nosniff"})
        # Refuse an announced oversize body before the multipart parser spools any of it to disk.
        length = request.headers.get("content-length")
        if request.method == "POST" and length and length.isdigit() and int(length) > config.max_upload_bytes + BODY_OVERHEAD:
            metrics.refused("too_large")
            return JSONResponse({"detail": upload_limit_words(config.max_upload_bytes, route_path(request.scope))}, status_code=413)
        # A busy service refuses an upload before its body is parsed: a refusal must cost next to
        # nothing, or stations asking again would take the cores from the inspections in progress.
        admitted = request.method == "POST" and route_path(request.scope) == "/inspections"
        if admitted and not admission.try_enter():
            metrics.refused("busy")
            return JSONResponse(
                {"detail": f"busy: {admission.limit} inspection(s) in progress, the most this service takes at once; retry shortly"},
                status_code=503,
                headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
            )
        try:
            response: Response = await call_next(request)
        finally:
            if admitted:
                admission.leave()
        # Stored uploads are served with the type their content was decoded as; never let a browser guess another.
        response.headers["X-Content-Type-Options"] = "nosniff"
        if 300 <= response.status_code < 400 and (location := urlsplit(response.headers.get("location", ""))).netloc == request.url.netloc:
            # A redirect of this service's own (/inspections/ to /inspections) as a path, which the browser takes from the address
            # it used: named by the Host the proxy passed, it had lost the proxy's port and https (proxy probe 2026-12-07).
            response.headers["location"] = urlunsplit(("", "", location.path, location.query, location.fragment))
        return response

    def token_ok(x_api_token: str | None, authorization: str | None) -> bool:
        """True when no token is configured or the request carries it (constant-time compare)."""
        if config.token is None:
            return True
        given = x_api_token or bearer_token(authorization)
        return given is not None and hmac.compare_digest(given.encode(), config.token.encode())

    def require_token(x_api_token: Annotated[str | None, Header(description="The token given to serve --token (writes need it "
                                                                            "when the service has one)")] = None,
                      authorization: Annotated[str | None, Header(description="Bearer TOKEN: the token another way")] = None) -> None:
        """Writes need the configured token (checked first by the middleware; declared here for the API schema)."""
        if not token_ok(x_api_token, authorization):
            raise _error(401, token_refusal(x_api_token, authorization))

    def files(action: Any, *args: Any) -> Any:
        """Run a file-store action; a store folder that is gone or full is the server's trouble: 503."""
        try:
            return action(*args)
        except OSError as exc:
            raise StoreUnavailable(f"file store unavailable: {exc.strerror or exc} ({config.data_dir})") from None

    def read_upload(file: UploadFile) -> bytes:
        limit = config.max_upload_bytes
        data = file.file.read(limit + 1)
        if len(data) > limit:
            metrics.refused("too_large")
            raise _error(413, upload_limit_words(limit))
        if not data:
            metrics.refused("empty")
            raise _error(422, "upload is empty (0 bytes)")
        return data

    def read_header(data: bytes, filename: str) -> tuple[str, int]:
        """The format (by content, never by name) and the pixel count from the image's header;
        an image over the service's limits is refused (422) before it is decoded."""
        try:
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as img:
                fmt, (width, height) = img.format or "", img.size
                said = f"{width}x{height} ({width * height:,} pixels)"
        except Image.DecompressionBombError as exc:
            # Past Pillow's own bound its reader gives no size, only its message: the service's limit is still the one said
            # (a 50000 x 50000 PNG had been told of the library's 64,000,000 pixels; security probe 2026-12-06).
            declared = re.search(r"\((\d+) pixels\)", str(exc))
            pixels = int(declared.group(1)) if declared else config.max_pixels + 1
            # Under this service's limit (a --max-megapixels over Pillow's bound), load_image below says the library's.
            fmt, (width, height) = "", (pixels, 1) if pixels > config.max_pixels else (0, 0)
            said = f"declared at {pixels:,} pixels" if declared else "declared larger than any limit"
        except Exception:  # noqa: BLE001 — Pillow's readers raise anything on hostile bytes
            fmt, width, height, said = "", 0, 0, ""  # load_image below says what is wrong with it
        if width * height > config.max_pixels:
            metrics.refused("too_many_pixels")
            raise _error(422, f"{filename}: image is {said}, over this service's "
                              f"limit of {config.max_pixels:,} pixels — send it downscaled (or serve with a larger --max-megapixels)")
        if refusal := size_refusal(width, height, config.max_pixels):
            # A strip too long for its overlay: scored for seconds, then a 500 when the overlay was written.
            metrics.refused("too_many_pixels")
            raise _error(422, f"{filename}: {refusal} — crop or tile it")
        return fmt, width * height

    def decode(data: bytes, filename: str, bit_depth: int | None) -> tuple[Any, list[str]]:
        """The upload's pixels (deeper than 8 bits read at the model's ``bit_depth``) and what reading them said, named by the
        client's name (logged with the inspection once stored); refusals are 422 with the reason."""
        # The scratch file keeps the upload's image suffix, so a refusal's fix reads the client's name, not ours.
        suffix = Path(filename).suffix.lower()
        scratch = files(blobs.scratch, data, suffix if suffix in IMAGE_SUFFIXES else ".upload")
        try:
            with collected_warnings() as caught:
                image = load_image(scratch, bit_depth)
        except DefectlensError as exc:
            metrics.refused("not_an_image")
            # The message names our scratch file; the client knows its upload by its own name.
            raise _error(422, str(exc).replace(str(scratch), filename)) from None
        finally:
            scratch.unlink(missing_ok=True)
        # In the stored report (a multi-page TIFF's other pages, pixels clipped to the model's depth), under the upload's name:
        # the log had named a removed scratch file, and the answer nothing (camera probe 2026-12-07).
        return image, [str(w).replace(str(scratch), filename) for w in caught]

    async def one_image_one_model(request: Request) -> None:
        """Refuse a request carrying several ``file`` parts: the last was inspected and the others
        dropped without a word (probe 2026-12-05), and an empty model name, which the form reads as
        none (a station script's unset ``model=$PART`` went to the first model). The form is the one
        already parsed for the route."""
        # A query parameter the upload does not take (``?modle=commutator``) had been ignored, the part judged by the first
        # model served (regression probe 2026-12-06); '_'-names pass as cache-busters, as in the history.
        if unknown := _unknown(request.query_params.keys(), ("model",)):
            raise _error(422, f"no parameter {_printable(unknown[0], 40)!r} on an upload: the model is named by ?model= or the form")
        if (kind := _media_type(request)) != "multipart/form-data":
            # The image's own bytes (Content-Type: image/png) had been answered "body file: Field required" (integration probe).
            # A body that says no type at all (nothing sent) is a request missing its image: 422, as before.
            raise _error(415 if kind else 422, "an upload is a multipart/form-data form with the image in a part named 'file' "
                                               f"(curl -F file=@part.png), not {_printable(kind, 60) or 'a body without a Content-Type'}")
        form = await request.form()
        # A form field the upload does not take (``modle=commutator``) had sent the part to the first model served, as the
        # URL's had before (integration probe 2026-12-06).
        if unknown := _unknown(form.keys(), ("file", "model")):
            raise _error(422, f"no form field {_printable(unknown[0], 40)!r} on an upload: it takes 'file' (the image) and 'model'")
        if "file" not in form:
            # A form cut off before its closing boundary loses its last part: said, as it is the likelier cause then (API contract
            # probe 2026-12-07: "no part named 'file'" for one that had been sent).
            raise _error(422, "no part named 'file' was read: the image goes in a part named 'file' (curl -F file=@part.png), and the "
                              "form must end with its closing boundary (--BOUNDARY--)")
        if request.scope.get(FORM_CLOSED) is False:  # BodyLimit looked for the closing delimiter of the boundary named
            # Its last part, whichever it was, is dropped by the form's reader: a cut-off 'model' part had sent the part to the
            # first model served without a word (regression probe 2026-12-07).
            raise _error(422, "the form breaks off before its closing boundary (--BOUNDARY--), and its last part was not read: send "
                              "the whole form")
        if isinstance(form.getlist("file")[0], str):
            raise _error(422, "the part 'file' holds text, not a file: send the image as a file (curl -F file=@part.png, with the @)")
        n = len(form.getlist("file"))
        if n > 1:
            raise _error(422, f"{n} files in one request: post one image per request (each gets its own inspection)")
        # In one Unicode spelling: "ä" in the form as macOS sends it and in the URL composed is one name (regression probe).
        named = [same_spelling(n) if isinstance(n, str) else n for n in (*form.getlist("model"), *request.query_params.getlist("model"))]
        if any(isinstance(name, str) and not name.strip() for name in named):
            raise _error(422, f"the model's name is empty: name one of {', '.join(pool.models)}, or leave it out for {pool.default}")
        if len(set(named)) > 1:
            # Each source keeps its last value: ?model=cookie&model=commutator had gone to commutator without a word.
            raise _error(422, f"several models are named ({', '.join(map(repr, dict.fromkeys(map(str, named))))}): name one")

    @app.post("/inspections", response_model=InspectionOut, status_code=201, dependencies=[Depends(require_token), Depends(one_image_one_model)],
              summary="Inspect one uploaded image and store the result",
              responses={200: {"model": InspectionOut, "description": "A retry with the Idempotency-Key of an upload stored before: "
                                                                     "its inspection, nothing stored again"},
                         **refusals(401, 403, 408, 409, 413, 415, 422, 500, 503)})
    def post_inspection(file: Annotated[UploadFile, File(description="The image (PNG, JPEG, BMP, TIFF, WebP)")],
                        model: Annotated[str | None, Form(max_length=200, description="Model name (default: the first served)")] = None,
                        model_in_url: Annotated[str | None, Query(alias="model", max_length=200,
                                                                  description="The model's name in the URL, as the history takes it")] = None,
                        idempotency_key: Annotated[str | None, Header(
                            alias="Idempotency-Key",
                            description="A key of the client's own for this upload (1 to 200 printable ASCII characters without spaces "
                                        "or commas): sent again with the same image, as a retry after a timeout, it is answered with "
                                        "the first upload's inspection (status 200) instead of storing the part twice")] = None,
                        response: Response = None,  # type: ignore[assignment]  # FastAPI fills it in
                        request: Request = None,  # type: ignore[assignment]  # FastAPI fills it in
                        ) -> InspectionOut:
        received = time.perf_counter()
        if idempotency_key is not None:
            idempotency_key = client_key_of(request.headers.getlist("Idempotency-Key"))
        # The history takes ?model=, so station scripts name the model there too; an upload ignored it and went to the
        # first model served, a commutator judged by the cookie model (probe 2026-12-06). Two names are refused above.
        model = model if model is not None else model_in_url
        # Before the costly part: a down database or a full disk answers 503 at once. (Whether the
        # database takes writes is probed at start-up and by /health, not on every upload's path.)
        store.check()
        files(blobs.check_space)
        try:
            loaded = pool.get(model)
        except KeyError as exc:
            raise _error(422, str(exc.args[0])) from None
        # Only a label, stored as text: a NUL (which PostgreSQL text cannot hold), a line break (which wrote a second
        # "Verdict" line into the report's Markdown), a terminal escape or a text-direction override becomes U+FFFD.
        filename = plain_label((file.filename or "upload")[:500])
        # In refusals, cut: a 500-character name was echoed whole in each.
        said = filename if len(filename) <= 80 else f"{filename[:77]}…"
        data = read_upload(file)
        if idempotency_key is not None and (first := store.by_client_key(idempotency_key)) is not None:
            # A retry (the gateway timed out while the first try was stored): its first answer, nothing stored again.
            return answered_before(first, data, loaded.name, idempotency_key, response, root_of(request))
        fmt, pixels = read_header(data, said)
        ext = FORMAT_EXT.get(fmt, ("img", "application/octet-stream"))[0]
        with pixel_budget.hold(pixels):
            try:
                image, reading_notes = decode(data, said, loaded.inspector.bit_depth)
                outcome = pool.inspect(loaded, image, filename, reading_notes)
            except DefectlensError as exc:
                # E.g. an image the model's canvas cannot take: the client's problem, said in one line.
                raise _error(422, f"{said}: not inspected — {exc}") from None
            except (MemoryError, RuntimeError, OSError) as exc:
                # The machine's shortage, not the client's fault nor the service's end: 503 with when to retry, as a busy
                # service answers (resource probe 2026-12-07: a plain-text 500 without the request's id, an undated traceback).
                if (short := out_of_resources(exc)) is None:
                    raise
                metrics.refused("out_of_resources")
                log.warning("%s: not inspected, this machine ran out of %s (%s) — fix: %s", said, short, said_in_a_line(exc),
                            SERVICE_SHORT_OF_FIX[short])
                # An image too large for this machine's memory at any time is worth sending smaller (regression probe 2026-12-07:
                # "retry shortly" alone, a station would retry it for ever).
                also = ", or send it downscaled" if short == "memory" else ""
                raise HTTPException(503, f"{said}: not inspected, this service ran out of {short}; retry shortly{also}",
                                    headers={"Retry-After": str(STORE_RETRY_SECONDS)}) from None
            del image  # the decoded pixels leave the budget with the block
        if pixels >= TRIM_AFTER_PIXELS:
            return_freed_memory()
        # Files first (atomic, by digest), then one transaction: no record ever points at a missing file.
        image_sha = files(blobs.put, data, ext)
        overlay_sha = files(blobs.put, outcome.overlay_png, "png")
        mask_sha = files(blobs.put, outcome.mask_png, "png")
        try:
            row = store.record(loaded.name, filename, image_sha, ext, overlay_sha, mask_sha, outcome, idempotency_key)
        except ClientKeyTaken as taken:  # the key's other request (a retry racing its first try) was stored first
            return answered_before(taken.first, data, loaded.name, str(idempotency_key), response, root_of(request))
        outage.over()
        # The folder's mark raised with each stored inspection, not only every 15 s: a backup's service.json, copied within 15 s
        # of its database, had carried a mark below the pictures copied with it, and the pair restored was taken as whole, the
        # newer pictures as orphans (second regression probe 2026-12-07). Best effort: the watch raises it too.
        with contextlib.suppress(StoreUnavailable, *UNAVAILABLE_ERRORS, OSError):
            blobs.note_newest(row.id, store.inspection_stamp)
        for note in reading_notes:
            # Dated and named by the inspection, as every line of the service's log is: a warning had been said once a process
            # for each name and message, undated (regression probe 2026-12-07).
            log.warning("inspection %s: %s", row.id, note)
        metrics.inspections.labels(loaded.name, row.verdict).inc()
        if outcome.inspection.frame_units is not None:
            metrics.frame_distance.labels(loaded.name).observe(outcome.inspection.frame_units)
        # The whole request once its body is in: decoding, files and the commit too (the inspection alone
        # had been timed, a third less than clients measured).
        metrics.latency.labels(loaded.name).observe(time.perf_counter() - received)
        return inspection_out(row, root_of(request))

    def client_key_of(given: list[str]) -> str:
        """The upload's ``Idempotency-Key``, refused (422) in plain words when it is not one key of printable ASCII (two
        had been taken as the first, silently; a bad one was answered with the validator's pattern). Repeated headers and
        a comma-joined one (a proxy's merge of them) read alike."""
        keys = list(dict.fromkeys(k.strip() for line in given for k in line.split(",") if k.strip())) or [""]
        if len(keys) > 1:
            raise _error(422, f"Idempotency-Key holds {len(keys)} different keys: give one key per upload")
        if not CLIENT_KEY.fullmatch(keys[0]):
            raise _error(422, "Idempotency-Key must be 1 to 200 printable ASCII characters without spaces or commas (a UUID, or "
                              "the line's own part number)")
        return keys[0]

    def answered_before(first: Any, data: bytes, model: str, key: str, response: Response, root: str) -> InspectionOut:
        """The inspection an upload with ``key`` stored, answered again (status 200) when this upload is the same image
        for the same model; refused (409) when the key was given to another."""
        if (first.image_sha, first.model) != (hashlib.sha256(data).hexdigest(), model):
            raise _error(409, f"Idempotency-Key {_printable(key, 80)!r} was given to another upload (inspection {first.id}, "
                              f"{_printable(first.filename, 80)!r} for model {first.model!r}): give each upload a key of its own")
        response.status_code = 200
        return inspection_out(first, root)

    def one_value_each(request: Request) -> None:
        """Refuse a filter given twice with two values: each kept its last, so ?model=cookie&model=commutator listed
        commutator alone without a word (regression probe 2026-12-06). And one the history does not have: a typo
        (``?sinse=``) had listed everything (integration probe 2026-12-06); a name starting with '_' (a cache-buster)
        passes."""
        known = {p.alias or p.name for p in list_params}
        if unknown := _unknown(request.query_params.keys(), known):
            raise _error(422, f"no filter {_printable(unknown[0], 40)!r} in the history: known are {', '.join(sorted(known))}")
        for key in dict.fromkeys(request.query_params.keys()):
            if len(set(request.query_params.getlist(key))) > 1:
                raise _error(422, f"{key} is given {len(request.query_params.getlist(key))} times with other values: give it once")

    @app.get("/inspections", response_model=InspectionPage, summary="The history, newest first (oldest first after_id), paged and filtered",
             description="Each filter narrows the list; one sent blank (?verdict=) is no filter. A filter the history does not "
                         "have, or one given twice with two values, is refused (422).",
             responses=refusals(422, 503),
             dependencies=[Depends(one_value_each)])
    def list_inspections(
        # In any case, as the type filter takes its names (integration probe 2026-12-06: GOOD was 422, CRACK matched).
        verdict: Annotated[VerdictText | None, Blank, Query(description=f"Final verdict: good, defective or {UNUSABLE}, in any case")] = None,
        type: Annotated[TypeText | None, Blank, Query(description="A region of this final type")] = None,
        model: Annotated[ModelText | None, Blank, Query()] = None,
        # Not for polling: an upload's time is stamped before its id is given, so two at once can commit out of time order
        # (integration probe 2026-12-06); after_id skips nothing.
        since: Annotated[datetime | None, Blank, Query(description="ISO time, inclusive (to poll for new inspections use after_id: "
                                                            "uploads at the same moment can be stored out of time order)")] = None,
        until: Annotated[datetime | None, Blank, Query(description="ISO time, exclusive")] = None,
        review: Annotated[ReviewText | None, Blank, Query(description="reviewed or unreviewed, in any case")] = None,
        reviewed_since: Annotated[datetime | None, Blank, Query(description="ISO time, inclusive: reviewed or commented on at or after "
                                                                     "it, whenever the part was inspected")] = None,
        after_id: Annotated[AfterId | None, Blank, Query(description="Only inspections of a higher id, oldest first: poll "
                                                                         "with the last id seen, nothing skipped or repeated")] = None,
        # Blank as the filters: the default (regression probe 2026-12-07: ?limit= had been refused while verdict= was no filter).
        limit: Annotated[PageSize | None, Blank, Query()] = PAGE_DEFAULT,
        offset: Annotated[PageOffset | None, Blank, Query()] = 0,
        request: Request = None,  # type: ignore[assignment]  # FastAPI fills it in (no query parameter)
    ) -> InspectionPage:
        limit, offset = PAGE_DEFAULT if limit is None else limit, 0 if offset is None else offset
        # Checked here, not by a pattern: "(?i:…)" was no pattern a JavaScript client's validator reads (regression probe
        # 2026-12-06), and a Unicode case fold ("unuſable") passed it and matched nothing.
        # Spaces around it let go, as a form pastes it; the refusal echoes what was sent, not its lower case (regression probe).
        if verdict is not None:
            sent, verdict = verdict, verdict.strip().lower()
            if verdict not in ("good", "defective", UNUSABLE):
                raise _error(422, f"verdict must be good, defective or {UNUSABLE} (any case), not {_printable(sent, 20)!r}")
        # So are the review filter (Reviewed had been refused where Good was taken) and the type and model (spaces around a
        # type had found nothing, around a model been refused; regression probe 2026-12-07).
        if review is not None:
            sent, review = review, review.strip().lower()
            if review not in ("reviewed", "unreviewed"):
                raise _error(422, f"review must be reviewed or unreviewed (any case), not {_printable(sent, 20)!r}")
        type, model = (None if v is None else v.strip() for v in (type, model))
        # Stored times are UTC; a time given without a zone is read as UTC too.
        try:
            since_utc, until_utc, reviewed_utc = as_utc(since), as_utc(until), as_utc(reviewed_since)
        except OverflowError:
            raise _error(422, "since / until / reviewed_since must be times between the years 1 and 9999 once turned to UTC") from None
        if store.engine.dialect.name == "sqlite":
            # SQLite compares the stored text, which carries no zone.
            since_utc, until_utc, reviewed_utc = (t.replace(tzinfo=None) if t else None for t in (since_utc, until_utc, reviewed_utc))
        if type:
            # Spelt as the models spell it: reviews take a type in any case and store the model's
            # spelling, so a filter in another case found nothing (probe: 'UNKNOWN' 0, 'unknown' 166).
            type = next((t for m in pool.models.values() for t in m.types if same_type_name(t, type)), type)
        if model:
            # As stored, in one Unicode spelling: rows an older defectlens stored under a decomposed "ä" too.
            asked, stored = model, store.stored_name(model)
            model = stored or same_spelling(asked)
            if stored is None and model not in pool.models:
                # An empty page had read as "nothing inspected yet" for a misspelt name an upload refuses (integration probe).
                known = ", ".join(dict.fromkeys([*pool.models, *store.models()]))
                raise _error(422, f"no model {_printable(asked, 80)!r} is served or has stored inspections; known: {known}")
        wanted = Filters(verdict, type or None, model or None, since_utc, until_utc, review, reviewed_utc, after_id)
        rows, total = store.page(wanted, limit, offset)
        return InspectionPage(items=[inspection_out(r, root_of(request)) for r in rows], total=total, limit=limit, offset=offset)

    # The history's own query parameters, as FastAPI read them from its signature (what one_value_each knows).
    list_params = next(r for r in app.routes if getattr(r, "endpoint", None) is list_inspections).dependant.query_params  # type: ignore[attr-defined]

    def fetch(inspection_id: int) -> Any:
        row = store.get(inspection_id)
        if row is None:
            raise _error(404, f"no inspection {inspection_id}")
        return row

    @app.get("/inspections/{inspection_id}", response_model=InspectionOut, summary="One inspection", responses=refusals(404, 422, 503))
    def get_inspection(inspection_id: InspectionId, request: Request) -> InspectionOut:
        return inspection_out(fetch(inspection_id), root_of(request))

    def still_held(tag: str, if_none_match: str | None) -> bool:
        """Whether ``If-None-Match`` names ``tag`` (RFC 9110: compared weakly, so ``W/"…"`` matches, and ``*``
        matches any): a weak tag or ``*`` had been answered with the whole file (integration probe 2026-12-06)."""
        held = [t.strip().removeprefix("W/") for t in (if_none_match or "").split(",")]
        return if_none_match is not None and ("*" in held or tag in held)

    def blob(sha: str, ext: str, media: str, if_none_match: str | None) -> Response:
        # Revalidated on every view, by digest: the URL names an inspection id, and ids start over
        # when a database is replaced or restored — cached for a year as "immutable", a browser
        # showed the old part's picture under the new record (probe 2026-12-05).
        tag = f'"{sha}"'
        headers = {"Cache-Control": "no-cache", "ETag": tag}
        path = blobs.path(sha, ext)  # built from the database's digest, never from the request
        if not path.is_file():  # before If-None-Match: "*" holds only what exists
            raise _error(404, "file missing from the store")
        if still_held(tag, if_none_match):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type=media, headers=headers)

    @app.get("/inspections/{inspection_id}/image", summary="The uploaded image, as received", response_class=Response,
             responses={**picture(*sorted(set(EXT_MEDIA.values()))), **refusals(404, 422, 503)})
    def get_image(inspection_id: InspectionId, if_none_match: IfNoneMatch = None) -> Response:
        row = fetch(inspection_id)
        return blob(row.image_sha, row.image_ext, EXT_MEDIA.get(row.image_ext, "application/octet-stream"), if_none_match)

    as_stored: OrderedDict[str, bool] = OrderedDict()
    as_stored_lock = threading.Lock()

    def shown_as_stored(sha: str, ext: str) -> bool:
        """:func:`eight_bit` of a stored picture, its header parsed once: its bytes never change under their digest, and a PNG of
        1.2 million small chunks before its pixels had taken 10 s to parse at each view, asked with no token (security probe
        2026-12-07)."""
        with as_stored_lock:
            if (known := as_stored.get(sha)) is not None:
                as_stored.move_to_end(sha)
                return known
        read = files(eight_bit, blobs.path(sha, ext))
        if read is None:
            return True  # sent as stored, its trouble said by its answer; not kept: a file put back may be deep (regression probe)
        with as_stored_lock:
            as_stored[sha] = read
            while len(as_stored) > VIEW_DECISIONS_KEPT:
                as_stored.popitem(last=False)
        return read

    def read_depth(row: Any) -> int | None:
        """The sensor depth an inspection read its image at: its model's, where the fit that inspected it is served (a 16-bit
        picture shown at its own depth had not been the picture judged and outlined; camera probe 2026-12-07); else its own."""
        loaded = pool.models.get(row.model)
        fitted = loaded.inspector.provenance.fitted_at if loaded is not None and loaded.inspector.provenance is not None else None
        return loaded.inspector.bit_depth if loaded is not None and fitted == row.model_fitted_at else None

    @app.get("/inspections/{inspection_id}/view", summary="The uploaded image in a format browsers show: as received, or a PNG of a TIFF",
             response_class=Response, responses={**picture(*sorted({EXT_MEDIA[e] for e in BROWSER_FORMATS if e in EXT_MEDIA} | {"image/png"})),
                                                 **refusals(404, 422, 500, 503)})
    def get_view(inspection_id: InspectionId, if_none_match: IfNoneMatch = None) -> Response:
        # The page shows this one: browsers show no TIFF, and a reviewer had no original to draw a missed defect on.
        row = fetch(inspection_id)
        if row.image_ext in BROWSER_FORMATS and shown_as_stored(row.image_sha, row.image_ext):
            return blob(row.image_sha, row.image_ext, EXT_MEDIA[row.image_ext], if_none_match)
        tag = f'"{row.image_sha}.png"'
        headers = {"Cache-Control": "no-cache", "ETag": tag}
        path = blobs.path(row.image_sha, row.image_ext)
        if not path.is_file():
            raise _error(404, "file missing from the store")
        if still_held(tag, if_none_match):
            return Response(status_code=304, headers=headers)
        # Decoded as inspection decodes it (16-bit scaled, EXIF turned): the picture the overlay was drawn over. Under the
        # pixel budget, as an upload's decoding is: twelve views of a 16 M-pixel TIFF at once, asked with no token, had
        # taken 3.7 GB (security probe 2026-12-06).
        pixels = stored_pixels(path, pixel_budget.limit)
        try:
            with pixel_budget.hold(pixels, VIEW_WAIT_SECONDS):
                try:
                    with collected_warnings():  # said when it was inspected; its stored file's name means nothing in the log
                        shown = files(load_image, path, read_depth(row))
                except DefectlensError as exc:  # a damaged file in the store: the server's, said (it had been a bare 500)
                    raise _error(500, f"the stored image cannot be shown, its file in the store is damaged: {_printable(exc.message, 200)}") from None
                data = png_bytes(shown)
                del shown
        except BudgetTimeout:
            # Not the upload's one second: the budget has been full for ten already (regression probe 2026-12-06). The budget's
            # own wait only: a read of the file that timed out is no "busy" (regression probe).
            raise HTTPException(503, "busy decoding other images; retry shortly", headers={"Retry-After": str(VIEW_RETRY_SECONDS)}) from None
        if pixels >= TRIM_AFTER_PIXELS:
            return_freed_memory()
        return Response(data, media_type="image/png", headers=headers)

    @app.get("/inspections/{inspection_id}/overlay.png", summary="Heat map and outlined regions over the image", response_class=Response,
             responses={**picture("image/png"), **refusals(404, 422, 503)})
    def get_overlay(inspection_id: InspectionId, if_none_match: IfNoneMatch = None) -> Response:
        return blob(fetch(inspection_id).overlay_sha, "png", "image/png", if_none_match)

    @app.get("/inspections/{inspection_id}/mask.png", summary="Region mask: pixel value = region index (0 = none)", response_class=Response,
             responses={**picture("image/png"), **refusals(404, 422, 503)})
    def get_mask(inspection_id: InspectionId, if_none_match: IfNoneMatch = None) -> Response:
        return blob(fetch(inspection_id).mask_sha, "png", "image/png", if_none_match)

    def fields_in_the_body(request: Request) -> None:
        """Refuse a query parameter on a review, whose fields are the JSON body's: ``?verdict=good`` had been ignored and the
        machine's verdict stored as a person's label (API contract probe 2026-12-07). '_'-names pass as cache-busters."""
        if unknown := _unknown(request.query_params.keys()):
            raise _error(422, f"no parameter {_printable(unknown[0], 40)!r} on a review: its fields go in the JSON body "
                              f"({', '.join(ReviewIn.model_fields)})")
        # Sent as a form (curl -d without a JSON type) it had been 422 "Input should be a valid dictionary" (API contract probe
        # 2026-12-07), where an upload sent otherwise is 415 with the form to send.
        # None too: its body is not read as JSON (requests' data=json.dumps(...); third probe).
        if (kind := _media_type(request)) != "application/json":
            raise _error(415, f"a review is a JSON body (Content-Type: application/json; curl -H 'Content-Type: application/json' -d "
                              f"'{{\"reviewer\": ...}}'), not {_printable(kind, 60) or 'a body without a Content-Type'}")

    @app.post("/inspections/{inspection_id}/review", response_model=InspectionOut,
              dependencies=[Depends(require_token), Depends(fields_in_the_body)],
              summary="Confirm or correct the verdict and the region types; add missed defects",
              responses=refusals(401, 403, 404, 408, 409, 413, 415, 422, 500, 503))
    def post_review(inspection_id: InspectionId, body: ReviewIn, request: Request) -> InspectionOut:
        row = fetch(inspection_id)
        # A model no longer served cannot say its types: a review may use only the types this inspection
        # already has (a made-up type had been accepted and exported as an examples folder).
        # A type this inspection already carries stays a choice, served or not: the page sends each region's current type back,
        # and one the served model no longer offers had refused every review of it (regression probe 2026-12-07).
        carried = [t for r in row.regions for t in (r.defect_type, r.reviewed_type) if t]
        served = pool.models[row.model].types if row.model in pool.models else (REJECT_TYPE,)
        allowed = tuple(dict.fromkeys([*served, *(t for t in carried if not any(same_type_name(t, s) for s in served))]))
        known = {r.index for r in row.regions if not r.missed}

        def check_type(name: str) -> str:
            if allowed is not None:
                same = next((a for a in allowed if same_type_name(a, name)), None)
                if same is None:
                    raise _error(422, f"unknown defect type {_printable(name, 80)!r} for model {row.model!r}; known: {', '.join(allowed)}")
                name = same
            problem = type_name_problem(name)
            if problem:
                raise _error(422, f"defect type {name!r} is not a valid name: it {problem}")
            return normal_type_name(name)

        types: dict[int, str] = {}
        for r in body.regions:
            if r.index not in known:
                raise _error(422, f"inspection {inspection_id} has no region {r.index} (regions: {sorted(known) or 'none'})")
            types[r.index] = check_type(r.type)
        missed: list[tuple[str, tuple[int, int, int, int]]] = []
        for m in body.missed or []:
            box = tuple(m.bbox) if m.bbox else (0, 0, row.width, row.height)
            x0, y0, x1, y1 = box
            if not (x0 < x1 and y0 < y1):
                raise _error(422, f"missed-defect box {list(box)} is empty: give it as x0,y0,x1,y1 with x0 < x1 and y0 < y1")
            if not (x0 >= 0 and y0 >= 0 and x1 <= row.width and y1 <= row.height):
                raise _error(422, f"missed-defect box {list(box)} is not inside the {row.width}×{row.height} image")
            if same_type_name(m.type, REJECT_TYPE) or same_type_name(m.type, UNKNOWN_TYPE):
                # 'unknown' was taken, and then left out of export-reviews without a word.
                raise _error(422, f"a missed defect needs its defect type, not {_printable(m.type, 80)!r} "
                                 f"('{REJECT_TYPE}' rejects a region the machine found)")
            missed.append((check_type(m.type), (x0, y0, x1, y1)))
        if body.verdict == "good":
            # A part reviewed good has no defect: every region the machine found is rejected, whatever
            # type the page still had selected (kept as confirmed, they went to export-reviews as
            # examples of a defect on a good part), and a missed defect contradicts the verdict.
            if missed:
                raise _error(422, "a part reviewed good has no missed defect: review it defective, or drop the missed defect")
            types = {r.index: REJECT_TYPE for r in row.regions if not r.missed}
        # No verdict: defective when it names a defect, else the one that stands — a person's, once
        # reviewed (a comment-only review by a script turned an inspector's "good" back into the
        # machine's "defective", all its regions with it).
        names_a_defect = bool(missed) or any(t != REJECT_TYPE for t in types.values())
        note = body.is_note()
        # Said in what is stored: a comment alone labelled the inspection before the rule.
        payload = body.model_dump(mode="json") | ({"note": True} if note else {})
        # The history keeps the types applied, not those sent: a part reviewed good with a region still
        # typed "scratch" on the page was stored rejected while its history entry said scratch.
        payload["regions"] = [{"index": i, "type": t} for i, t in sorted(types.items())] if not note else []
        # The verdict, when none is sent and none is named by a defect, is the one that stands — a person's, once reviewed
        # (a comment-only review by a script turned an inspector's "good" back into the machine's "defective") — and the
        # store reads it under the row's lock, where concurrent reviews take turns.
        review = ReviewInput(body.reviewer, body.verdict, types, missed, body.comment, payload, keep_missed=body.missed is None,
                             labels=bool(body.regions or body.missed), names_a_defect=names_a_defect, seen_reviews=body.seen_reviews,
                             note_only=note)
        try:
            updated = store.review(inspection_id, review)
        except UnusableLabelled:
            # Sent with the verdict, or without one on an image reviewed unusable (regression probe: a re-type kept as
            # "unusable", then undone by the next confirm without a word).
            raise _error(422, "an unusable image is not labelled: send the verdict alone (a comment may say why), without region "
                              "types or missed defects; to type its regions, review it good or defective") from None
        except StaleReview as stale:
            if (body.seen_reviews or 0) > stale.stored:
                # No review came meanwhile: the count is wrong ("reviewed meanwhile by Ana" had been said of none; probe 2026-12-06).
                raise _error(422, f"seen_reviews is {body.seen_reviews}, but inspection {inspection_id} has {stale.stored} review(s): "
                                  "send the number of reviews in the view you reviewed from") from None
            by = f" by {_printable(stale.latest_reviewer, 80)}" if stale.latest_reviewer else ""
            raise _error(409, f"inspection {inspection_id} was reviewed or commented on meanwhile{by}: look at its review first, "
                              "then send yours again") from None
        if updated is None:
            raise _error(404, f"no inspection {inspection_id}")
        metrics.reviews.labels("note" if note else UNUSABLE if updated.reviewed_verdict == UNUSABLE else "review").inc()
        return inspection_out(updated, root_of(request))

    @app.get("/models", response_model=ModelsOut, responses=refusals(503),
             summary="The models served, with settings, types and card; and the names of every model with stored inspections")
    def get_models() -> dict[str, Any]:
        stored: list[str] | None = None
        with contextlib.suppress(StoreUnavailable, *UNAVAILABLE_ERRORS):
            # The history's filter offers these: a model no longer served (a part's folder renamed at a recalibration)
            # had no entry there, and its rows could be found only through the API.
            stored = store.models()
        return {"default": pool.default, "models": [m.summary() for m in pool.models.values()], "stored": stored}

    probe_lock = threading.Lock()
    probed: list[float | bool] = [-math.inf, False]  # when /health last probed, and what it found

    def probe_store() -> bool:
        """Whether the database and the file store take a write now (the outage logged and the
        ``store_up`` gauge set either way). A write probe, not only a read: a read-only database
        answered reads while refusing every record. At most once per HEALTH_PROBE_SECONDS: each probe
        takes the database's write lock and writes and syncs 64 kB, and unauthenticated callers in a
        loop doubled uploads' p95."""
        with probe_lock:
            now = time.monotonic()
            # A probe from before the store went down says nothing of it now: it had logged "store answers again" and set
            # store_up while PostgreSQL was stopped (PostgreSQL probe 2026-12-07).
            since = outage.since
            if now - probed[0] >= HEALTH_PROBE_SECONDS or (since is not None and probed[0] <= since):
                probed[:] = [now, store.ping(writable=True) and blobs_writable()]
            up = bool(probed[1])
        if up:
            outage.over()
        else:
            outage.began(str(store.last_error))
        return up

    said_changed: dict[str, str | None] = {}

    def note_models_changed() -> None:
        """Log once each model folder written again since it was loaded (on the watch thread): only /models and /health had
        said so, and an operator reading the log saw nothing of a refit or a calibration the service was not using (probe)."""
        for name, loaded in pool.models.items():
            # Each change of the folder's state once, as it changes: gone, put back, gone again is said twice (regression
            # probe 2026-12-06: the second removal went unlogged).
            if (change := loaded.disk_change()) != said_changed.get(name):
                if change is not None:
                    log.warning("model %s: %s", name, change)
                elif said_changed.get(name) is not None:  # the last line said must not stand (third regression probe)
                    log.warning("model %s: %s is back as this service loaded it", name, loaded.path)
                said_changed[name] = change

    def refresh_sizes() -> None:
        """The gauges of what is stored and the disk's room (on the watch thread: /metrics never waits on them)."""
        with contextlib.suppress(OSError):
            metrics.disk_free.set(blobs.free_bytes())
        with contextlib.suppress(StoreUnavailable, *UNAVAILABLE_ERRORS):
            metrics.stored.set(store.count())

    said_lost = [False]

    def note_newest() -> None:
        """Raise the newest inspection id recorded in the data folder (on the watch thread), by which a database lost or
        restored from an older backup is told later (:meth:`BlobStore.lost_history`); one that lacks the folder's history is
        said once, as the start says it: one that came back so after a start it was down for had been said nowhere
        (PostgreSQL probe 2026-12-07)."""
        with contextlib.suppress(StoreUnavailable, *UNAVAILABLE_ERRORS):
            newest = store.newest_id()
            lost = blobs.lost_history(newest, store.inspection_stamp)
            if lost is not None and not said_lost[0]:
                log.warning("%s; the prune commands refuse this folder until then", lost)
            said_lost[0] = lost is not None
            blobs.note_newest(newest, store.inspection_stamp)

    @app.get("/health", summary="Liveness, and whether the database and the file store answer",
             responses={200: {"model": HealthOut}, 503: {"model": HealthOut, "description": "The database or the file store does not "
                                                                                           "answer: try again after Retry-After seconds"}})
    def health() -> JSONResponse:
        up = probe_store()
        body: dict[str, Any] = {"status": "ok" if up else "degraded", "store": "up" if up else f"down ({outage.public(str(store.last_error))})",
                                "models": list(pool.models), "version": __version__}
        if up and (free := blobs.low_space()) is not None:
            # Said, not a 503: uploads still go in (a watchdog on /health restarted a service that worked).
            body["warnings"] = [f"the file store's disk has {free // 2**20} MiB free (under {MIN_FREE_BYTES // 2**20}): free space soon"]
        if changed := [name for name, m in pool.models.items() if m.changed_on_disk()]:
            # Still serving what it loaded: said, so an operator knows a restart is due.
            body["models_changed_on_disk"] = changed
        # Retry-After on this 503 too, as on every other (integration probe 2026-12-06: a balancer's check had none).
        return JSONResponse(body, status_code=200 if up else 503, headers=None if up else {"Retry-After": str(STORE_RETRY_SECONDS)})

    def blobs_writable() -> bool:
        try:
            files(blobs.check)
            return True
        except StoreUnavailable as exc:
            store.last_error = str(exc)
            return False

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    def get_metrics() -> Response:
        # The store's gauge is kept by the watch thread (STORE_WATCH_SECONDS): never waited on here.
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    page_html = (STATIC / "index.html").read_bytes()
    csp = page_policy(page_html.decode("utf-8"))

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        # Where it is mounted (serve --root-path), for the page's calls and pictures; none: the page's own folder is taken.
        served = page_html.replace(b'<meta name="defectlens-root" content="">',
                                   f'<meta name="defectlens-root" content="{html.escape(root_of(request))}">'.encode(), 1)
        # Defence in depth beside the page's own escaping: only the page's own script may run.
        return Response(served, media_type="text/html", headers={"Cache-Control": "no-cache", "Content-Security-Policy": csp})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        # No icon, said without an error: browsers ask for one on every page load.
        return Response(status_code=204, headers={"Cache-Control": "max-age=86400"})

    app.add_middleware(RequestId, metrics=metrics)  # every answer named, the guard's refusals too (their bodies read before they are compressed)
    # The JSON and the page compressed for a client that takes gzip, pictures not (a PNG or JPEG gains nothing, and a
    # TIFF is served as received, its ETag its digest). A page of the history had been 80 kB where 7 kB carries it: 1.4 to 3 s
    # a page on a tablet's slow network (tablet probe 2026-12-07).
    app.add_middleware(NegotiatedGZip, minimum_size=1024, compresslevel=6, exclude_content_types=("image/*",))
    app.add_middleware(NoFraming)  # every answer, the guard's refusals and RequestId's own 500 too
    # Outermost: every check and route sees the GET a HEAD stands for, and a HEAD gets the GET's headers, its
    # Content-Encoding and length too (inside the gzip, a HEAD's empty body had been sent uncompressed).
    app.add_middleware(HeadAsGet)
    return app


def origin_host(origin: str) -> str:
    """The ``host[:port]`` an Origin header names, in lower case; "" for one that does not parse ("http://[" had been a 500:
    regression probe 2026-12-07), which no page of this service sends."""
    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:
        return ""


def own_origins(request: Request, trusted: Callable[[str], bool]) -> set[str]:
    """The ``host[:port]`` names the page of this very service is loaded from: the request's Host, and behind a proxy the
    X-Forwarded-Host it passes on (nginx's ``Host $host`` drops the port, its default sends its upstream's name), each only
    where ``trusted`` takes the name (this machine's own, or --allowed-host): a rebound page's own name in that header had
    passed its writes (regression probe 2026-12-07). A page of another site cannot add the header to a form (proxy probe
    2026-12-07: the service's own page behind a proxy was refused as "another site")."""
    names = {request.headers.get("host", "").lower()}
    for forwarded in request.headers.getlist("x-forwarded-host"):
        names.update(name for name in (part.strip().lower() for part in forwarded.split(",")) if name and trusted(name))
    return names - {""}


def root_of(request: Request) -> str:
    """The path the service is mounted at behind a proxy (`defectlens serve --root-path`, uvicorn's ``root_path``): "" at a
    host's root. The API's URLs and the page's calls go under it (proxy probe 2026-12-07: under /inspect/ they went to the
    host's root, and the page's every call was 404)."""
    return str(request.scope.get("root_path") or "").rstrip("/")


def page_policy(html: str) -> str:
    """Content-Security-Policy of the page: its inline script by hash, everything else from this origin."""
    match = re.search(r"<script>(.*?)</script>", html, re.S)
    digest = base64.b64encode(hashlib.sha256(match.group(1).encode("utf-8")).digest()).decode() if match else ""
    return (f"default-src 'self'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src 'self'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def config_from_env() -> ServiceConfig:
    """Configuration from DEFECTLENS_* environment variables (used by ``uvicorn --factory``)."""
    models = tuple(Path(p) for p in os.environ["DEFECTLENS_MODELS"].split(os.pathsep) if p)
    data = Path(os.environ.get("DEFECTLENS_DATA_DIR", "defectlens_service"))
    url = os.environ.get("DEFECTLENS_DB") or sqlite_url(data / DB_FILE)
    limit = int(os.environ.get("DEFECTLENS_MAX_UPLOAD", str(DEFAULT_MAX_UPLOAD)))
    pixels = int(os.environ.get("DEFECTLENS_MAX_PIXELS", str(DEFAULT_MAX_PIXELS)))
    return ServiceConfig(models, url, data, os.environ.get("DEFECTLENS_TOKEN") or None, limit, pixels)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory defectlens.service.app:app_from_env``."""
    return create_app(config_from_env())


__all__ = ["DEFAULT_MAX_UPLOAD", "TOKEN_HEADER", "Metrics", "ServiceConfig", "app_from_env", "config_from_env", "create_app"]
