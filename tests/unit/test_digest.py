"""The morning digest's rows and pages, from files only (contract §8.1 *Evaluators*)."""

from __future__ import annotations

import datetime as dt
import json
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest

from include.cc_intake import digest
from include.cc_intake.digest import (
    DigestLinks,
    DigestProvider,
    build_digest,
    parse_digest_at,
    render_digest,
    write_digest,
)
from include.cc_intake.errors import ConfigError
from include.cc_intake.overview import Count
from tests import digest_data as D

LINKS = DigestLinks(
    ui_base="http://airflow.test/",
    proof_base="http://airflow.test/cc-intake/quality/",
    overview="http://airflow.test/cc-intake/",
)


@pytest.fixture
def mixed(tmp_path: Path) -> digest.Digest:
    D.write_mixed_day(tmp_path)
    return build_digest(tmp_path, D.digest_providers(), at=D.AT, zone="Africa/Abidjan")


def _row(result: digest.Digest, provider: str) -> digest.DigestRow:
    (row,) = [r for r in result.rows if r.provider == provider]
    return row


# --- rows -----------------------------------------------------------------------------------


def test_one_row_per_provider_with_its_status(mixed: digest.Digest) -> None:
    # What needs someone comes first.
    assert [r.provider for r in mixed.rows] == [
        D.RED, D.UNREADABLE, D.BROKEN, D.AMBER, D.RUNNING, D.WAITING, D.GREEN
    ]  # fmt: skip
    assert {r.provider: r.status for r in mixed.rows} == D.EXPECTED_STATUS
    assert {r.day for r in mixed.rows} == {D.DAY}
    assert mixed.day == D.DAY
    labels = {r.provider: r.label for r in mixed.rows}
    assert labels[D.GREEN] == "vert" and labels[D.AMBER] == "orange" and labels[D.RED] == "rouge"
    assert labels[D.RUNNING] == "en cours" and labels[D.WAITING] == "en attente"
    assert labels[D.BROKEN] == "configuration invalide"


def test_counts_rejected_worklist_and_proofs(mixed: digest.Digest) -> None:
    green = _row(mixed, D.GREEN)
    assert dict(green.recordings) == {"ENTRANTS": Count(12, 12), "SORTANTS": Count(5, 5)}
    assert green.digital == Count(40, 40)
    assert (green.rejected, green.worklist) == (0, 6)
    assert green.proof_pages == (
        f"{D.GREEN}/{D.DAY}/recordings.html",
        f"{D.GREEN}/{D.DAY}/digital.html",
    )
    amber = _row(mixed, D.AMBER)
    assert (amber.rejected, amber.worklist) == (2, 0)  # an empty worklist is not "no worklist"
    red = _row(mixed, D.RED)
    assert dict(red.recordings)["ENTRANTS"] == Count(7, 9) and red.worklist is None


def test_a_running_day_shows_what_landed_so_far_and_the_earlier_verdict(
    mixed: digest.Digest,
) -> None:
    row = _row(mixed, D.RUNNING)
    assert row.status == "running" and row.previous == "green"
    # From the manifest (3 inbound so far), against what the report said last time.
    assert dict(row.recordings) == {"ENTRANTS": Count(3, 10), "SORTANTS": Count(0, 2)}
    assert row.rejected == 1
    assert row.proof_pages == (f"{D.RUNNING}/{D.DAY}/recordings.html",)  # the proof stays


def test_missing_and_broken_files_are_said_in_their_row(mixed: digest.Digest) -> None:
    waiting = _row(mixed, D.WAITING)
    assert waiting.status == "missing" and waiting.problems == () and waiting.proof_pages == ()
    unreadable = _row(mixed, D.UNREADABLE)
    assert unreadable.status == "invalid"
    assert "résumé illisible" in unreadable.problems[0] and "summary.json" in unreadable.problems[0]
    broken = _row(mixed, D.BROKEN)
    assert broken.config_broken and "configuration du prestataire invalide" in broken.problems[0]
    assert "2250707123456" not in broken.problems[0]  # phones masked


def test_a_broken_manifest_or_worklist_never_costs_the_other_rows(tmp_path: Path) -> None:
    D.write_mixed_day(tmp_path)
    (tmp_path / "manifests" / D.RUNNING / f"{D.DAY}.csv").write_bytes(b"\xff\xfe\x00garbage")
    worklist = tmp_path / "worklists" / D.GREEN / f"{D.DAY}.csv"
    worklist.write_bytes(b"\xff\xfe not utf-8")
    result = build_digest(tmp_path, D.digest_providers(), at=D.AT)
    running = _row(result, D.RUNNING)
    assert running.status == "running" and "manifeste illisible" in running.problems[0]
    green = _row(result, D.GREEN)
    assert green.status == "green" and green.worklist is None
    assert "liste d'écoute illisible" in green.problems[0]
    assert {r.provider: r.status for r in result.rows} == D.EXPECTED_STATUS


def test_a_summary_that_cannot_be_read_at_all_is_one_row(tmp_path: Path) -> None:
    D.write_mixed_day(tmp_path)
    summary = tmp_path / "quality" / D.RED / str(D.DAY) / "summary.json"
    summary.write_text(json.dumps(["not", "an", "object"]), encoding="utf-8")
    result = build_digest(tmp_path, D.digest_providers(), at=D.AT)
    assert _row(result, D.RED).status == "invalid"
    assert _row(result, D.GREEN).status == "green"


def test_yesterday_is_each_providers_processed_day_in_its_own_zone(tmp_path: Path) -> None:
    at = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)  # 22:00 on the 25th in Pago Pago
    providers = [
        DigestProvider("abidjan", "A", "Africa/Abidjan"),
        DigestProvider("pago", "P", "Pacific/Pago_Pago"),
        DigestProvider("kiritimati", "K", "Pacific/Kiritimati"),  # 23:00 on the 26th
    ]
    for pid, day in (("abidjan", "2026-11-25"), ("pago", "2026-11-24")):
        folder = tmp_path / "quality" / pid / day
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text('{"status": "green"}', encoding="utf-8")
    result = build_digest(tmp_path, providers, at=at, zone="Africa/Abidjan")
    days = {r.provider: (r.day, r.status) for r in result.rows}
    assert days == {
        "abidjan": (dt.date(2026, 11, 25), "green"),
        "pago": (dt.date(2026, 11, 24), "green"),
        "kiritimati": (dt.date(2026, 11, 25), "missing"),
    }
    assert result.day == dt.date(2026, 11, 25)
    # The digest's own day follows its zone too.
    late = build_digest(tmp_path, providers, at=at, zone="Pacific/Kiritimati")
    assert late.day == dt.date(2026, 11, 25) and late.rows == result.rows
    early = build_digest(tmp_path, providers, at=at, zone="Pacific/Pago_Pago")
    assert early.day == dt.date(2026, 11, 24)


def test_a_provider_found_on_disk_but_not_configured_still_shows(tmp_path: Path) -> None:
    D.write_mixed_day(tmp_path)
    result = build_digest(tmp_path, [], at=D.AT)
    assert {r.provider for r in result.rows} == set(D.ZONES) - {D.WAITING}
    assert build_digest(tmp_path, [], at=D.AT, discover=False).rows == ()


def test_an_unusable_zone_is_said_in_the_row(tmp_path: Path) -> None:
    result = build_digest(tmp_path, [DigestProvider("odd", "Odd", "Mars/Olympus")], at=D.AT)
    (row,) = result.rows
    assert row.status == "invalid" and row.day is None and "Mars/Olympus" in row.problems[0]
    page = render_digest(result, LINKS)
    assert 'data-provider="odd"' in page.html and "Mars/Olympus" in page.text


# --- the pages --------------------------------------------------------------------------------


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}
        self.tags: set[str] = set()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = dict(attrs)
        if tag == "tr" and found.get("data-provider"):
            self.rows[str(found["data-provider"])] = str(found.get("data-status"))
        for name in ("href", "src"):
            if found.get(name):
                self.urls.append(str(found[name]))


def test_the_html_page_has_every_row_and_nothing_external(mixed: digest.Digest) -> None:
    page = render_digest(mixed, LINKS, digest_at="09:00 Africa/Abidjan")
    parsed = _Rows()
    parsed.feed(page.html)
    assert parsed.rows == D.EXPECTED_STATUS
    assert not parsed.tags & {"script", "link", "img", "iframe", "style"}
    assert all(url.startswith("http://airflow.test/") for url in parsed.urls), parsed.urls
    assert f"http://airflow.test/cc-intake/quality/{D.GREEN}/{D.DAY}/recordings.html" in parsed.urls
    assert "http://airflow.test/cc-intake/" in parsed.urls
    run = f"http://airflow.test/dags/ingest_{D.GREEN}/runs/scheduled__2026-11-26T02%3A30%3A00%2B00%3A00"
    assert run in parsed.urls
    assert "en cours (verdict précédent : vert)" in page.html
    assert "6 éléments" in page.html and "pas de liste" in page.html
    assert D.PHONE not in page.html and "2250707123456" not in page.html
    assert page.subject == (
        "[intake] synthèse du 25/11/2026 : 1 vert, 1 orange, 1 rouge, 1 en cours, "
        "1 en attente, 1 configuration invalide, 1 résumé illisible"
    )


def test_the_text_part_says_the_same(mixed: digest.Digest) -> None:
    text = render_digest(mixed, LINKS).text
    assert "&" not in text.replace("&run_after", "")  # text, not HTML entities
    for pid in D.ZONES:
        assert f"({pid})" in text
    block = text.split(f"({D.GREEN})", 1)[1].split("\n\n", 1)[0]
    assert "VERT" in block
    assert "Appels entrants : 12 reçus / 12 attendus" in block
    assert "Digital : 40 exportées / 40 annoncées" in block
    assert "Liste d'écoute : 6 éléments" in block
    assert f"/cc-intake/quality/{D.GREEN}/{D.DAY}/recordings.html" in block
    running = text.split(f"({D.RUNNING})", 1)[1].split("\n\n", 1)[0]
    assert "EN COURS (VERDICT PRÉCÉDENT : VERT)" in running
    assert "Appels entrants : 3 reçus / 10 attendus" in running
    assert "Vue d'ensemble : http://airflow.test/cc-intake/" in text
    assert D.PHONE not in text


def test_the_page_is_written_atomically_and_found_as_the_latest(
    mixed: digest.Digest, tmp_path: Path
) -> None:
    root = tmp_path / "out"
    assert digest.latest_digest(root) is None
    html = render_digest(mixed, LINKS).html
    path = write_digest(root, mixed.day, html)
    assert path == root / "digests" / "2026-11-25.html"
    assert path.read_text(encoding="utf-8") == html
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    write_digest(root, dt.date(2026, 11, 24), "older")
    assert sorted(p.name for p in path.parent.iterdir()) == ["2026-11-24.html", "2026-11-25.html"]
    assert digest.latest_digest(root) == mixed.day


# --- the setting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cron", "zone"),
    [(None, "0 9 * * *", "Africa/Abidjan"), ("", "0 9 * * *", "Africa/Abidjan"),
     ("07:45 Africa/Douala", "45 7 * * *", "Africa/Douala"), (" 6:05  UTC ", "5 6 * * *", "UTC")],
)  # fmt: skip
def test_the_digest_time(value: str | None, cron: str, zone: str) -> None:
    at = parse_digest_at(value)
    assert (at.cron, at.timezone) == (cron, zone)


@pytest.mark.parametrize("value", ["9h Abidjan", "25:00 UTC", "09:00", "09:00 Mars/Olympus"])
def test_a_bad_digest_time_says_what_is_expected(value: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("CC_INTAKE_DIGEST_AT")):
        parse_digest_at(value)
