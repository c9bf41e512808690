"""explain: turn an inspection and its region types into a report people can act on.

- :func:`build_report`: verdict plus one :class:`~defectlens.types.Finding` per region (type,
  confidence, location and size in words, severity, impact, action) and a short text written
  by the deterministic template (default) or the offline language model (verified, with a
  flagged fallback to the template).
- :func:`write_report_files`: ``<stem>.report.json`` and ``<stem>.report.md``, atomically.
- :func:`render_markdown`, :func:`describe_location`, :func:`verify_text`: the pieces; :func:`shown_type`: a region's type
  as the overlay and gallery show it ('break?' when guessed from words).
"""

from defectlens.explain.llm import LMConfig, LMWriter, verify_text
from defectlens.explain.location import describe_location, describe_size
from defectlens.explain.report import DEFAULT_OBJECT, build_findings, build_report, render_markdown, write_report_files
from defectlens.explain.template import shown_type, template_text

__all__ = [
    "DEFAULT_OBJECT",
    "LMConfig",
    "LMWriter",
    "build_findings",
    "build_report",
    "describe_location",
    "describe_size",
    "render_markdown",
    "shown_type",
    "template_text",
    "verify_text",
    "write_report_files",
]
