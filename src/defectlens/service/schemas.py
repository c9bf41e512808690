"""Request and response bodies of the HTTP API (pydantic), and the row → JSON mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from defectlens.io import has_unshowable
from defectlens.locate import weaker_region_indices
from defectlens.service.db import InspectionRow, RegionRow
from defectlens.taxonomy import MAX_NAME_LENGTH


class RegionOut(BaseModel):
    """A region as the API shows it."""

    index: int
    type: str
    """The final type: the reviewer's when reviewed, else the classifier's."""
    machine_type: str
    confidence: float
    method: str
    bbox: list[int]
    area_px: int
    area_fraction: float
    peak_score: float
    reviewed_type: str | None
    missed: bool
    weaker: bool = False
    """Its peak is not over the inspection's image threshold while another region's is: a weaker
    indication, listed apart in the report; exported as an example only when a reviewer re-typed it."""
    only_type: bool = False
    """The classifier knew one type only: ``confidence`` says how like its examples the region is, not
    how sure it is a defect, and the page and report say "only type known" instead."""


class ReviewOut(BaseModel):
    """The latest review of an inspection."""

    state: Literal["unreviewed", "reviewed"]
    verdict: str | None
    by: str | None
    at: datetime | None
    comment: str | None


class ReviewEntry(BaseModel):
    """One review in an inspection's history (oldest first)."""

    by: str
    at: datetime
    verdict: str
    regions: list[dict[str, Any]]
    missed: list[dict[str, Any]] | None
    """The missed defects it marked, as stored (type as the model names it, box in pixels); None: it
    named none and kept those marked before (``[]`` removed them)."""
    comment: str | None
    note: bool = False
    """A comment alone: it labelled nothing (``verdict`` is the one that stood)."""


class InspectionUrls(BaseModel):
    """Where an inspection and its pictures are (paths on this service); listed key by key in the OpenAPI document (it had
    been a free-form object; integration probe 2026-12-06)."""

    self: str
    """The inspection itself (``GET``), and its review (``POST …/review``)."""
    image: str
    """The uploaded image, as received."""
    view: str
    """The image as a browser shows it (a TIFF as PNG)."""
    overlay: str
    """Heat map and outlined regions over the image (PNG)."""
    mask: str
    """Region mask, pixel value = region index (PNG)."""
    page: str
    """The review page opened on it."""


class InspectionOut(BaseModel):
    """One stored inspection with the URLs of its pictures."""

    id: int
    created_at: datetime
    model: str
    filename: str
    width: int
    height: int
    score: float
    threshold: float
    verdict: Literal["good", "defective"]
    """The machine's verdict."""
    final_verdict: Literal["good", "defective", "unusable"]
    """The reviewer's verdict when reviewed ('good', 'defective' or 'unusable': :data:`~defectlens.service.db.UNUSABLE`), else the machine's."""
    seconds: float
    hot_spot: list[int] | None = None
    """[x, y] in image pixels where the map of a part judged good still peaks above the image
    threshold: look there before the part passes (the report says it in words, the overlay rings it)."""
    regions: list[RegionOut]
    report: dict[str, Any]
    report_text: str
    defectlens_version: str | None = None
    """The defectlens that inspected it (None: stored before it was recorded, 2026-12-05)."""
    model_fitted_at: str | None = None
    """When the model was fitted: a model refitted under the same name has another time."""
    model_fingerprint: str | None = None
    """sha256 of the model's training images, as its card gives it."""
    client_key: str | None = None
    """The ``Idempotency-Key`` the upload was sent with, or None."""
    review: ReviewOut
    reviews: list[ReviewEntry]
    """Every review given, oldest first (the latest is ``review``)."""
    urls: InspectionUrls


class InspectionPage(BaseModel):
    """A page of the history, newest first (oldest first when asked for the inspections after an id)."""

    items: list[InspectionOut]
    total: int
    limit: int
    offset: int


class ProblemItem(BaseModel):
    """One thing wrong with a request's fields (a 422 from the request's shape)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every refusal's body: ``detail`` is one line saying what is wrong and the fix, or, for a request whose fields do
    not have the shape the API takes (422), one item per field."""

    detail: str | list[ProblemItem]


class HealthOut(BaseModel):
    """`GET /health`: 200 when the database and the file store answer, 503 (with ``Retry-After``) when one does not."""

    status: Literal["ok", "degraded"]
    store: str
    """'up', or 'down (why)'."""
    models: list[str]
    version: str
    """The defectlens version serving (an operator checking an upgrade had no way to ask it; packaging probe 2026-12-06)."""
    warnings: list[str] = []
    """What is to be done soon, though the service works (a file store's disk nearly full)."""
    models_changed_on_disk: list[str] = []
    """Models written again since the service loaded them: a restart takes them."""


class ModelOut(BaseModel):
    """One model served (`GET /models`): what detects, how it was fitted, its thresholds, types and card."""

    name: str
    detector: str
    """The detector's kind ('memory-bank', 'fused', ...)."""
    runtime: str
    """What runs the encoder ('torch', or the runtime of an exported model), as each inspection JSON says."""
    fitted_at: str | None
    """When the model was fitted, as each stored inspection's ``model_fitted_at`` says (None: a model with no provenance)."""
    fingerprint: str | None
    """sha256 of the training images, as each stored inspection's ``model_fingerprint`` says."""
    settings: dict[str, Any] | None
    """The fit's settings, as ``defectlens info`` lists them."""
    thresholds: dict[str, Any] | None
    """The image and pixel thresholds and how they were set."""
    fit_summary: dict[str, Any] | None
    """What the fit saw: images, patches kept, held-out normal scores."""
    types: list[str]
    """The defect types a region may be given (the taxonomy's, then the kinds every model has)."""
    classifier: bool
    """Whether regions are typed by labelled examples."""
    examples: dict[str, int] | None
    """How many labelled examples of each type the classifier learnt from (None: no classifier)."""
    card: str
    """The model card (Markdown)."""
    notes: list[str]
    """What the service noticed of this model when loading it or since (a folder written again: a restart takes it)."""


class ModelsOut(BaseModel):
    """`GET /models`: the models served and the names of every model with stored inspections."""

    default: str
    """The model an upload naming none goes to."""
    models: list[ModelOut]
    stored: list[str] | None
    """Every model name with stored inspections (None: the database does not answer now)."""


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": what} for code, what in (
        (400, "A request the service will not read (a Host not its own, a body that is not UTF-8, a form that breaks off)"),
        (401, "No token, or a wrong one, on a route that needs it"),
        (403, "A write from a page of another origin"),
        (404, "No such inspection, or its file is missing from the store"),
        (408, "An upload's body did not arrive in time"),
        (409, "A review sent from a view another review changed, or an Idempotency-Key given to another upload"),
        (413, "A body over the upload limit"),
        (415, "An upload that is not a multipart/form-data form, or a review that is not JSON"),
        (422, "A request that cannot be taken as it is, a review that is no JSON object among them (the detail says why and "
              "the fix)"),
        (500, "A file in the store is damaged, or the database refused a record (its log says the fix)"),
        (503, "The database or the file store is unavailable, or the service is busy: try again after Retry-After seconds"),
    )
}
"""The refusals the service answers, each with the one body they all have; it had listed 422 alone, with a body of another
shape than half the 422s had (integration probe 2026-12-06)."""


def refusals(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The :data:`ERROR_RESPONSES` of ``codes``: what one route may answer, as the OpenAPI document lists it for that
    route (every route had listed every refusal, a GET 401 and 413 too)."""
    return {code: ERROR_RESPONSES[code] for code in codes}


def picture(*media_types: str) -> dict[int | str, dict[str, Any]]:
    """What a route that answers with a stored picture lists in the OpenAPI document: the picture's media types (they had
    been listed as JSON, and a generated client parsed the PNG as JSON; integration probe 2026-12-06), and 304 for an
    ``If-None-Match`` naming the ETag it had."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {200: {"description": "The picture (ETag: its content's digest)", "content": {media: binary for media in media_types},
                  "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}},
            304: {"description": "Unchanged since the ETag sent in If-None-Match", "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}}}


RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {"description": "The request's name, on every answer: the client's own X-Request-ID where it sent a plain one "
                                    "(1 to 128 letters, digits, '.', '_', ':' or '-'), else one made for it; a refused upload's log "
                                    "line names it", "schema": {"type": "string"}},
    "Retry-After": {"description": "Whole seconds to wait before trying again", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "The scheme a write takes: Bearer", "schema": {"type": "string"}},
    "ETag": {"description": "The picture's digest: sent back in If-None-Match, it is answered 304 while the file is unchanged",
             "schema": {"type": "string"}},
}
"""The headers the service answers with, as the OpenAPI document declares them (:func:`complete_document`)."""
TOKEN_HEADER = "X-API-Token"
"""The header a write's token is sent in (or ``Authorization: Bearer TOKEN``)."""
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiToken": {"type": "apiKey", "in": "header", "name": TOKEN_HEADER, "description": "The token given to serve --token"},
    "bearer": {"type": "http", "scheme": "bearer", "description": "The token given to serve --token, as Authorization: Bearer TOKEN"},
}
"""The two ways a write may carry the service's token (either one)."""


def complete_document(document: dict[str, Any], token_required: bool) -> dict[str, Any]:
    """``document`` (FastAPI's OpenAPI document of the service) with what FastAPI does not write from the routes: the
    headers each answer carries (:data:`RESPONSE_HEADERS`: X-Request-ID on every one, Retry-After on a 503, WWW-Authenticate
    on a 401), the token the writes need where the service has one (:data:`SECURITY_SCHEMES`; the routes that may answer
    401 are the writes), and every refusal's body as the JSON it is on a route that answers text (/metrics' 400 was
    declared text/plain). A generated client had read none of these headers, and sent no token (OpenAPI probe 2026-12-07)."""
    components = document.setdefault("components", {})
    components["headers"] = {name: dict(header) for name, header in RESPONSE_HEADERS.items()}
    if token_required:
        components["securitySchemes"] = {name: dict(scheme) for name, scheme in SECURITY_SCHEMES.items()}
    error_body = {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            for code, response in responses.items():
                headers = response.setdefault("headers", {})
                headers["X-Request-ID"] = {"$ref": "#/components/headers/X-Request-ID"}
                if code == "503":
                    headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
                if code == "401":
                    headers["WWW-Authenticate"] = {"$ref": "#/components/headers/WWW-Authenticate"}
                if code[:1] in ("4", "5") and error_body in response.get("content", {}).values():
                    response["content"] = {"application/json": error_body}
            if token_required and "401" in responses:
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
    return document


class RegionReview(BaseModel):
    """The reviewer's type for one of the machine's regions. A region as ``GET`` gives it (:class:`RegionOut`) may be sent
    back with its type changed: the keys only the service sets are let go."""

    model_config = ConfigDict(extra="forbid")  # as ReviewIn: a misspelt key is refused, not dropped

    index: int = Field(ge=1)
    type: str = Field(max_length=MAX_NAME_LENGTH)

    @model_validator(mode="before")
    @classmethod
    def _as_read(cls, data: Any) -> Any:
        # An integrator's regions edited from the inspection they read had each been refused eleven times over, "no field
        # 'machine_type' here" (regression probe 2026-12-06). What the service itself set is no typo.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k in ("index", "type") or k not in RegionOut.model_fields}
        return data


class MissedDefect(BaseModel):
    """A defect the machine did not find; ``bbox`` (x0, y0, x1, y1) omitted means the whole image."""

    model_config = ConfigDict(extra="forbid")  # as ReviewIn: a misspelt key is refused, not dropped

    type: str = Field(max_length=MAX_NAME_LENGTH)
    bbox: list[int] | None = Field(default=None, min_length=4, max_length=4)


MAX_REVIEWER_LENGTH = 200
MAX_COMMENT_LENGTH = 2000
"""Longest reviewer name and comment a review takes; the page's fields stop typing there (a 5,000-character comment
had been typed in full and refused on sending)."""


class ReviewIn(BaseModel):
    """`POST /inspections/{id}/review`: confirm or correct the machine."""

    # A key it does not know is refused (422 naming it): ignored, {"verdikt": "good"} confirmed the machine's "defective"
    # as a person's label, a "coment" was lost, and a missed defect's "box" left it covering the whole image, each
    # answered 200 and exported as training data (integration probe 2026-12-06).
    model_config = ConfigDict(extra="forbid")

    reviewer: str = Field(min_length=1, max_length=MAX_REVIEWER_LENGTH)
    verdict: Literal["good", "defective", "unusable"] | None = None
    """None keeps the verdict that stands: an earlier reviewer's, else the machine's (defective when
    a missed defect is given). 'unusable' (:data:`~defectlens.service.db.UNUSABLE`): not an image this model can judge; sent alone (a comment
    may say why), it takes back the region types and missed defects reviews gave it."""
    regions: list[RegionReview] = Field(default_factory=list, max_length=1000)
    """Regions not named keep the type they have: an earlier reviewer's, else the machine's."""
    missed: list[MissedDefect] | None = Field(default=None, max_length=100)
    """None (left out) keeps the missed defects marked before, unless the part is reviewed good; a
    list, an empty one included, replaces them. A script's "agree" review (a verdict alone) had
    deleted another person's missed crack."""
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_LENGTH)
    """With nothing else (no verdict, no region, ``missed`` left out): a note, kept in the history,
    that labels nothing — see :meth:`is_note`."""
    seen_reviews: int | None = Field(default=None, ge=0)
    """How many reviews the sender saw on the inspection: one made meanwhile refuses this review
    (409), rather than a page open for minutes overturning it without a word. None: not checked."""

    def is_note(self) -> bool:
        """A comment and nothing else: it leaves the verdict, the types and the review state as they
        are, so an inspection nobody judged is not exported as a person's label. A review naming
        nothing, not even a comment, still confirms the verdict that stands."""
        return bool(self.comment) and self.verdict is None and not self.regions and self.missed is None

    @field_validator("comment")
    @classmethod
    def _no_blank_comment(cls, v: str | None) -> str | None:
        # A blank comment is none: stored as "   ", it showed as a quote of nothing in the history.
        return v if v is None or v.strip() else None

    @field_validator("reviewer")
    @classmethod
    def _strip(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("reviewer must name a person")
        return v

    @field_validator("regions")
    @classmethod
    def _each_region_once(cls, v: list[RegionReview]) -> list[RegionReview]:
        # Named twice, one correction would silently win over the other.
        seen: set[int] = set()
        for r in v:
            if r.index in seen:
                raise ValueError(f"region {r.index} is named twice")
            seen.add(r.index)
        return v

    @field_validator("reviewer", "comment")
    @classmethod
    def _no_nul(cls, v: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL (the driver's error would read as "database unavailable").
        if v is not None and "\x00" in v:
            raise ValueError("text must not contain NUL characters")
        return v

    @field_validator("reviewer")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        # A name is shown beside a date and in messages: a right-to-left override mirrored the date after it,
        # and terminal escapes came back in a 409's text (security probe 2026-12-05).
        if has_unshowable(v):
            raise ValueError("reviewer must be plain text: no control, line-break or text-direction characters")
        return v

    @field_validator("comment")
    @classmethod
    def _plain_comment(cls, v: str | None) -> str | None:
        # Line breaks, tabs, and the zero-width characters text pasted from a web page or a chat carries: a comment is
        # shown as text, never a name (refusing them had lost whole reviews: regression probe).
        if v is not None and has_unshowable(v, allow="\n\r\t\u200b\u2060\ufeff"):
            raise ValueError("comment must be plain text (line breaks and tabs allowed): no control or text-direction characters")
        return v


def as_utc(dt: datetime | None) -> datetime | None:
    """``dt`` as an aware UTC time: SQLite hands back the stored UTC times without their zone."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def weaker_regions(row: InspectionRow) -> set[int]:
    """The machine's weaker regions of a stored inspection (:func:`~defectlens.locate.weaker_region_indices`), as its
    report has them (:func:`~defectlens.locate.weaker_regions`)."""
    return weaker_region_indices(((r.index, r.peak_score) for r in row.regions if not r.missed), row.threshold)


def only_type_regions(row: InspectionRow) -> set[int]:
    """The regions whose type the stored report calls the only one known (:attr:`~defectlens.types.Finding.only_type`)."""
    findings = row.report.get("findings") if isinstance(row.report, dict) else None
    return {int(f["region_index"]) for f in findings or [] if isinstance(f, dict) and f.get("only_type") and "region_index" in f}


def region_out(r: RegionRow, weaker: bool = False, only_type: bool = False) -> RegionOut:
    """API form of a region row."""
    return RegionOut(
        index=r.index, type=r.reviewed_type or r.defect_type, machine_type=r.defect_type, confidence=r.confidence, method=r.method,
        bbox=[r.x0, r.y0, r.x1, r.y1], area_px=r.area_px, area_fraction=r.area_fraction, peak_score=r.peak_score,
        reviewed_type=r.reviewed_type, missed=r.missed, weaker=weaker, only_type=only_type and not r.missed,
    )


def inspection_out(row: InspectionRow, base: str = "") -> InspectionOut:
    """API form of an inspection row; URLs are relative to ``base`` (the app's root path)."""
    me = f"{base}/inspections/{row.id}"
    weaker, only_type = weaker_regions(row), only_type_regions(row)
    return InspectionOut(
        id=row.id, created_at=as_utc(row.created_at) or row.created_at, model=row.model, filename=row.filename, width=row.width, height=row.height,
        score=row.score, threshold=row.threshold,
        verdict=row.verdict,  # type: ignore[arg-type]  # the column holds the machine's two verdicts only
        final_verdict=row.reviewed_verdict or row.verdict,  # type: ignore[arg-type]  # and a review's three
        seconds=row.seconds, hot_spot=row.hot_spot, regions=[region_out(r, r.index in weaker, r.index in only_type) for r in row.regions],
        report=row.report, report_text=row.report_text, defectlens_version=row.defectlens_version, model_fitted_at=row.model_fitted_at,
        model_fingerprint=row.model_fingerprint, client_key=row.client_key,
        review=ReviewOut(state=row.review_state, verdict=row.reviewed_verdict, by=row.reviewed_by, at=as_utc(row.reviewed_at),  # type: ignore[arg-type]  # state is one of ReviewOut's literals in the column
                         comment=row.review_comment),
        reviews=[
            ReviewEntry(by=r.reviewer, at=as_utc(r.created_at) or r.created_at, verdict=r.verdict, regions=list(r.payload.get("regions") or []),
                        missed=None if r.payload.get("missed") is None else list(r.payload["missed"]), comment=r.payload.get("comment"),
                        note=bool(r.payload.get("note")))
            for r in row.reviews
        ],
        urls=InspectionUrls(self=me, image=f"{me}/image", view=f"{me}/view", overlay=f"{me}/overlay.png", mask=f"{me}/mask.png",
                            page=f"{base}/#/inspections/{row.id}"),
    )


__all__ = [
    "ERROR_RESPONSES",
    "ErrorOut",
    "HealthOut",
    "InspectionOut",
    "InspectionPage",
    "InspectionUrls",
    "MissedDefect",
    "RegionOut",
    "RegionReview",
    "ReviewEntry",
    "ReviewIn",
    "ReviewOut",
    "as_utc",
    "inspection_out",
    "refusals",
    "region_out",
]
