"""The proof pages, rendered from their templates with autoescaping on."""

from __future__ import annotations

from markupsafe import escape

from include.cc_intake.proof_pages import page_text, render_digital_page, render_recordings_page


def _recordings(file_name: str) -> dict:
    entry = {"direction": "SORTANTS", "file_name": file_name, "reason": "pattern_mismatch"}
    return {
        "provider": "acme_abidjan",
        "day": "2026-11-20",
        "success": True,
        "warnings": [],
        "reconciliation": {"report": {"kind": "summary"}, "directions": {}, "rejected": [entry]},
    }


def test_pages_show_control_characters_escaped() -> None:
    # What every printed value becomes: page_text, then the template's autoescaping.
    assert str(escape(page_text("C1\x1b[2K.wav <b>"))) == "C1\\x1b[2K.wav &lt;b&gt;"
    page = render_recordings_page(_recordings("C1\x1b[2K.wav <b>"), "amber")
    assert "<code>C1\\x1b[2K.wav &lt;b&gt;</code> (SORTANTS) — nom non conforme au motif" in page
    assert "\x1b" not in page and "<b>" not in page


def test_every_printed_value_has_its_phone_numbers_masked() -> None:
    page = render_recordings_page(_recordings("20261120_101500_0707123456_S1.wav"), "amber")
    assert "0707123456" not in page and "20261120_101500_******56_S1.wav" in page
    digital = {
        "provider": "acme_abidjan",
        "day": "2026-11-20",
        "success": False,
        "failure": "digital export: 1 without id (+22507123456)",
        "checks": {"records": 1, "conflicting_ids": 1, "conflicting_examples": ["+22507123456"]},
    }
    page = render_digital_page(digital, "red")
    assert "22507123456" not in page
    assert 'data-status="red"' in page and "NON CONFORME" in page


def test_pages_are_self_contained_without_script() -> None:
    page = render_recordings_page(_recordings("x.wav"), "green")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body></html>\n")
    assert "<script" not in page and "<link" not in page and "//" not in page
    assert "script-src 'none'" in page  # the CSP meta, written as is
