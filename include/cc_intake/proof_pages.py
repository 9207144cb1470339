"""The proof pages: one self-contained HTML page, in French, per validation result.

Pure rendering, no I/O beyond reading the templates: :func:`include.cc_intake.proof.write_proof`
passes the JSON-able result of ``validate_recordings`` / ``validate_digital`` and its status
and writes the page. The pages are Jinja2 templates (``templates/proof_*.html.j2``) with
autoescaping on; every value they print goes through :func:`page_text` first (phone numbers
masked, control and bidi-override characters shown as ``\\xNN``), then is escaped. The
operators' network may be offline, so no CDN and no link out: the CSS is inline.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, Undefined
from markupsafe import Markup

from include.cc_intake.manifest import REASON_FR
from include.cc_intake.naming import escape_unsafe
from include.cc_intake.redact import mask_phone
from include.cc_intake.status import Status

TEMPLATES = Path(__file__).with_name("templates")
NAMES_IN_PAGE = 500  # the JSON keeps everything; the page shows enough to act on


# The pages carry no script and load nothing: inline CSS only. The overview plugin serves them
# with this policy (plus ``frame-ancestors``, which a <meta> cannot carry); the page repeats it
# for a copy opened from the file share.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'none'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

_KIND_FR = {"summary": "rapport de synthèse", "detail": "rapport détaillé, appel par appel"}
_STATUS_FR: dict[Status, str] = {
    "green": "CONFORME",
    "amber": "CONFORME AVEC RÉSERVES",
    "red": "NON CONFORME",
}


def page_text(value: Any) -> Any:
    """What a proof page prints for ``value``: masked phone numbers, control and bidi-override
    characters shown as \\xNN / \\uNNNN, nothing for None. Markup (our own) passes as is;
    autoescaping then escapes the text."""
    if isinstance(value, Markup):
        return value
    if value is None or isinstance(value, Undefined):
        return ""
    return escape_unsafe(mask_phone(str(value)))


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=page_text,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["names_in_page"] = NAMES_IN_PAGE
    return env


def _render(
    template: str, title: str, result: Mapping[str, Any], status: Status, **extra: Any
) -> str:
    return (
        _environment()
        .get_template(template)
        .render(
            title=title,
            result=result,
            status=status,
            status_label=_STATUS_FR[status],
            csp=Markup(CONTENT_SECURITY_POLICY),  # our constant, written as is
            **extra,
        )
    )


def render_recordings_page(result: Mapping[str, Any], status: Status) -> str:
    """The recordings proof page: verdict, per-direction counts, then every list."""
    directions = (result.get("reconciliation") or {}).get("directions") or {}
    return _render(
        "proof_recordings.html.j2",
        f"Enregistrements — {result.get('provider')} — {result.get('day')}",
        result,
        status,
        report_kinds=_KIND_FR,
        reasons=REASON_FR,
        missing=[
            (call_id, name) for name, d in directions.items() for call_id in d.get("missing", [])
        ],
        extra=[e for d in directions.values() for e in d.get("extra", [])],
    )


def render_digital_page(result: Mapping[str, Any], status: Status) -> str:
    """The digital proof page: verdict, expected vs got, then every list."""
    return _render(
        "proof_digital.html.j2",
        f"Interactions numériques — {result.get('provider')} — {result.get('day')}",
        result,
        status,
    )
