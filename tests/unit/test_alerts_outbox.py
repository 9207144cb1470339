"""The undelivered-alerts outbox: file names, the .eml round trip, listing (no Airflow)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from pathlib import Path

from include.cc_intake import alerts_outbox

AT = dt.datetime(2026, 11, 26, 7, 0, 3, 123456, tzinfo=dt.UTC)


def _write(root: Path, **changes) -> Path:
    fields = {
        "to": ["ops@example.com", "qualite@example.com"],
        "subject": "[intake][acme_abidjan][2026-11-25] délai de livraison dépassé",
        "body_html": "<p>La journée est en retard — « voir le run ».</p>",
        "sender": "intake@example.com",
        "dag_id": "ingest_acme_abidjan",
        "day": dt.date(2026, 11, 25),
        "at": AT,
        **changes,
    }
    return alerts_outbox.write_undelivered(root, **fields)


def test_item14_eml_name_is_timestamp_dag_day_and_one_safe_segment() -> None:
    assert alerts_outbox.eml_name(at=AT, dag_id="ingest_acme", day=dt.date(2026, 11, 25)) == (
        "20261126T070003.123456Z_ingest_acme_2026-11-25.eml"
    )
    # A raw, hostile target_date cannot make a path or a second line.
    name = alerts_outbox.eml_name(at=AT, dag_id="ingest_acme", day="../../x\r\nBcc: a@b.c")
    assert "/" not in name and "\r" not in name and "\n" not in name and " " not in name
    assert name.startswith("20261126T070003.123456Z_ingest_acme_") and name.endswith(".eml")


def test_item14_kept_email_is_an_rfc5322_message_that_reads_back(tmp_path: Path) -> None:
    path = _write(tmp_path, subject="[intake][acme][bad\r\nday] configuration invalide")

    assert path.parent == tmp_path / "alerts" / "undelivered"
    assert path.stat().st_mode & 0o777 == 0o640
    raw = path.read_bytes()
    assert raw.count(b"\r\n") > 5 and b"\n" not in raw.replace(b"\r\n", b"")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for header in ("From", "To", "Subject", "Date", "Message-ID"):
        assert message[header], header
    assert message["Subject"] == "[intake][acme][bad day] configuration invalide"
    assert message.get_content_type() == "text/html"

    queued = alerts_outbox.parse_eml(raw)
    assert queued.to == ("ops@example.com", "qualite@example.com")
    assert queued.sender == "intake@example.com"
    assert queued.date == AT.replace(microsecond=0)  # an RFC 5322 Date has whole seconds
    assert queued.body_html.strip() == "<p>La journée est en retard — « voir le run ».</p>"


def test_item14_pending_lists_oldest_first_and_skips_temporary_files(tmp_path: Path) -> None:
    assert alerts_outbox.pending(tmp_path) == [] and alerts_outbox.count_pending(tmp_path) == 0
    later = _write(tmp_path, at=AT + dt.timedelta(minutes=1))
    first = _write(tmp_path)
    folder = alerts_outbox.outbox_dir(tmp_path)
    (folder / f".{later.name}.abc.part").write_bytes(b"half")  # a write in progress

    assert alerts_outbox.pending(tmp_path) == [first, later]
    assert alerts_outbox.count_pending(tmp_path) == 2


def test_item14_a_kept_email_keeps_both_parts_and_reads_back_whole(tmp_path: Path) -> None:
    # What is kept is what would have been sent: text + HTML (issue #14, defect 3).
    text = "Journée en retard.\nVoir le run : https://airflow.example.com/r"
    path = _write(tmp_path, body_text=text)

    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    queued = alerts_outbox.parse_eml(path.read_bytes())
    assert queued.body_text == text
    assert queued.body_html == "<p>La journée est en retard — « voir le run ».</p>"
    assert queued.email.body_text == text and queued.email.subject == queued.subject
