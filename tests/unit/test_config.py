from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from include.cc_intake.config import (
    load_provider,
    load_providers,
    parse_bandwidth,
    parse_duration,
    parse_provider,
    split_emails,
)
from include.cc_intake.errors import ConfigError
from tests.helpers import provider, provider_dict


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("4h", 14400), ("1h30m", 5400), ("0", 0), (45, 45)],
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "m5", "-3s", "1.5h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "bytes_per_s"), [("6Mbit", 750_000), ("750KB", 750_000), ("8Mbit", 1_000_000)]
)
def test_bandwidths(text: str, bytes_per_s: int) -> None:
    assert parse_bandwidth(text) == bytes_per_s


@pytest.mark.parametrize("text", ["6M", "6 Mbps", "fast", "6mbit"])
def test_bandwidth_needs_explicit_unit(text: str) -> None:
    with pytest.raises(ValueError, match="bit or byte unit explicit"):
        parse_bandwidth(text)


def test_product_example_is_valid() -> None:
    cfg = provider()
    assert cfg.dag_id == "ingest_acme_abidjan"
    assert cfg.recordings.group_names == ["agent", "call_id", "date", "time"]
    assert cfg.deadline_offset == dt.timedelta(hours=4, minutes=30)
    assert cfg.recordings.settle == dt.timedelta(seconds=30)
    assert cfg.recordings.max_parallel == 4


def test_model_is_frozen() -> None:
    cfg = provider()
    with pytest.raises(Exception, match="frozen"):
        cfg.id = "other"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"id": "ACME-1"}, "id", "must match"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"schedule": "*/5 * * * *"}, "schedule", "daily cron"),
        ({"deadline": "01:00"}, "(top level)", "must be after the schedule time"),
        ({"deadline": "7h"}, "deadline", "HH:MM"),
        ({"alert_emails": []}, "alert_emails", "at least 1"),
        ({"surprise": 1}, "surprise", "Extra inputs"),
    ],
)
def test_errors_name_the_file_and_the_field(change: dict, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_provider(provider_dict(**change), source=Path("include/providers/acme.yaml"))
    message = str(info.value)
    assert "include/providers/acme.yaml" in message
    assert f"{field}:" in message
    assert words in message


def test_pattern_needs_date_and_call_id() -> None:
    data = provider_dict()
    data["recordings"]["filename_pattern"] = r"^(?P<date>\d{8})_.*\.wav$"
    with pytest.raises(ConfigError, match=r"recordings.filename_pattern: .*call_id"):
        parse_provider(data, source=Path("x.yaml"))


def test_folder_template_fields_are_checked() -> None:
    data = provider_dict()
    data["recordings"]["directions"]["ENTRANTS"] = "/in/{day:%Y}"
    with pytest.raises(ConfigError, match=r"recordings.directions: .*only \['date'\]"):
        parse_provider(data, source=Path("x.yaml"))


def test_unknown_direction_is_refused() -> None:
    data = provider_dict()
    data["recordings"]["directions"]["INTERNES"] = "/in"
    with pytest.raises(ConfigError, match=r"recordings\.directions\.INTERNES"):
        parse_provider(data, source=Path("x.yaml"))


@pytest.mark.parametrize(
    ("tolerance", "expected", "gap"), [(0, 400, 0), (3, 400, 3), ("2%", 400, 8)]
)
def test_tolerance(tolerance: object, expected: int, gap: int) -> None:
    data = provider_dict()
    data["daily_report"]["tolerance"] = tolerance
    cfg = parse_provider(data, source=Path("x.yaml"))
    assert cfg.daily_report.allowed_gap(expected) == gap


def test_detail_report_needs_call_id_column() -> None:
    data = provider_dict()
    data["daily_report"]["kind"] = "detail"
    with pytest.raises(ConfigError, match="call_id_column"):
        parse_provider(data, source=Path("x.yaml"))


def test_load_providers_keeps_the_good_ones(tmp_path: Path) -> None:
    (tmp_path / "acme_abidjan.yaml").write_text(yaml.safe_dump(provider_dict()))
    broken = provider_dict(id="bad_one")
    broken["recordings"]["max_parallel"] = "lots"
    (tmp_path / "bad_one.yaml").write_text(yaml.safe_dump(broken))
    (tmp_path / "not_yaml.yaml").write_text("id: [unclosed\n")
    good, bad = load_providers(tmp_path)
    assert [cfg.id for cfg in good] == ["acme_abidjan"]
    assert [b.key for b in bad] == ["bad_one", "not_yaml"]
    assert "recordings.max_parallel" in bad[0].error
    assert "not valid YAML" in bad[1].error


def test_item13_broken_file_keeps_its_readable_schedule_zone_and_recipients(
    tmp_path: Path,
) -> None:
    data = provider_dict(id="bad_one", name="Bad One", schedule="15 3 * * *")
    data["timezone"] = "Africa/Douala"
    data["alert_emails"] = ["lead@example.com", "not an address", "qa@example.com"]
    data["deadline"] = "25:00"  # the field that breaks the file
    (tmp_path / "bad_one.yaml").write_text(yaml.safe_dump(data))

    _, (bad,) = load_providers(tmp_path)

    assert "deadline" in bad.error
    assert bad.dag_id == "ingest_bad_one"
    assert bad.name == "Bad One"
    assert (bad.schedule, bad.timezone) == ("15 3 * * *", "Africa/Douala")
    # Each field is checked on its own: a bad address does not lose the good ones.
    assert bad.alert_emails == ("lead@example.com", "qa@example.com")


@pytest.mark.parametrize(
    ("changes", "schedule", "timezone", "emails"),
    [
        # A bad zone does not lose the schedule, and the other way round.
        ({"timezone": "Mars/Olympus"}, "30 2 * * *", "UTC", ("ops@example.com",)),
        ({"schedule": "@hourly"}, "0 6 * * *", "Africa/Abidjan", ("ops@example.com",)),
        ({"schedule": 230, "timezone": 1}, "0 6 * * *", "UTC", ("ops@example.com",)),
        # One address written as a string still counts; no valid address means none.
        (
            {"alert_emails": "lead@example.com"},
            "30 2 * * *",
            "Africa/Abidjan",
            ("lead@example.com",),
        ),
        ({"alert_emails": ["nobody"]}, "30 2 * * *", "Africa/Abidjan", ()),
        ({"alert_emails": None}, "30 2 * * *", "Africa/Abidjan", ()),
    ],
)
def test_item13_each_salvaged_field_is_validated_on_its_own(
    tmp_path: Path, changes: dict, schedule: str, timezone: str, emails: tuple
) -> None:
    data = provider_dict(id="bad_one", **changes)
    (tmp_path / "bad_one.yaml").write_text(yaml.safe_dump(data))

    _, (bad,) = load_providers(tmp_path)

    assert (bad.schedule, bad.timezone, bad.alert_emails) == (schedule, timezone, emails)


@pytest.mark.parametrize(
    "content",
    [b"id: [unclosed\n", b"- just\n- a list\n", b"", b"id: caf\xe9\n"],
    ids=["not-yaml", "not-a-mapping", "empty", "not-utf8"],
)
def test_item13_unreadable_file_gets_daily_0600_utc_and_no_recipients(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "Weird-Name.yaml").write_bytes(content)

    good, (bad,) = load_providers(tmp_path)

    assert good == []
    assert bad.dag_id == "ingest_weird_name"  # the file's stem when no id can be read
    assert (bad.schedule, bad.timezone, bad.alert_emails, bad.name) == (
        "0 6 * * *",
        "UTC",
        (),
        None,
    )


def test_item13_split_emails() -> None:
    assert split_emails(" a@example.com, ,b@example.com;a@example.com , nope ") == (
        ["a@example.com", "b@example.com"],
        ["nope"],
    )
    assert split_emails("") == ([], [])


def test_id_must_match_file_name(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(provider_dict()))
    with pytest.raises(ConfigError, match="must equal the file name"):
        load_provider(path)


def test_poll_interval_defaults_to_two_minutes_and_refuses_zero() -> None:
    assert provider().recordings.poll_interval == dt.timedelta(minutes=2)
    data = provider_dict()
    data["recordings"]["poll_interval"] = "15s"
    assert parse_provider(data, source=Path("x.yaml")).recordings.poll_interval == dt.timedelta(
        seconds=15
    )
    data["recordings"]["poll_interval"] = "0"
    with pytest.raises(ConfigError, match=r"recordings.poll_interval: poll_interval must be"):
        parse_provider(data, source=Path("x.yaml"))


# --- items 5, 7 (issue #10: the YAML cannot make the proof lie)


@pytest.mark.parametrize("group", ["direction", "status", "sha256", "audio_ok", "endpoint"])
def test_item5_pattern_group_named_like_a_manifest_column_is_refused(group: str) -> None:
    data = provider_dict()
    data["recordings"]["filename_pattern"] = (
        rf"^(?P<date>\d{{8}})_(?P<{group}>[A-Za-z0-9]+)_(?P<call_id>[^_.]+)\.wav$"
    )
    with pytest.raises(ConfigError) as info:
        parse_provider(data, source=Path("include/providers/acme.yaml"))
    message = str(info.value)
    assert "include/providers/acme.yaml" in message
    assert "recordings.filename_pattern:" in message
    assert f"'{group}'" in message
    # The reserved names are listed, so the fix is obvious from the e-mail or the DAG's doc.
    for reserved in ("direction", "file_name", "status", "reason", "codec", "endpoint"):
        assert reserved in message


def test_item5_reserved_names_are_every_manifest_column() -> None:
    from include.cc_intake.constants import MANIFEST_ADDED_COLUMNS, RESERVED_GROUP_NAMES
    from include.cc_intake.manifest import LEADING_COLUMNS

    assert set(RESERVED_GROUP_NAMES) == {*LEADING_COLUMNS, *MANIFEST_ADDED_COLUMNS}
    assert MANIFEST_ADDED_COLUMNS == ("codec", "duration_s", "audio_ok", "endpoint")
    # The pattern's own columns stay free: date and call_id are required groups.
    assert not {"date", "call_id", "agent", "time"} & set(RESERVED_GROUP_NAMES)


def test_item7_report_path_without_the_day_needs_a_date_column() -> None:
    data = provider_dict()
    data["daily_report"]["path"] = "/exports/reports/calls.csv"
    with pytest.raises(ConfigError) as info:
        parse_provider(data, source=Path("include/providers/acme.yaml"))
    message = str(info.value)
    assert "include/providers/acme.yaml" in message
    assert "daily_report:" in message
    assert "'/exports/reports/calls.csv' has no {date…}" in message
    assert "date_column" in message

    data["daily_report"]["date_column"] = "jour"
    cfg = parse_provider(data, source=Path("include/providers/acme.yaml"))
    assert cfg.daily_report.date_column == "jour"


def test_item7_detail_report_without_the_day_is_refused_too() -> None:
    data = provider_dict()
    data["daily_report"].update(
        path="/RAPPORTS/rapport.csv", kind="detail", count_column=None, call_id_column="id"
    )
    with pytest.raises(ConfigError, match=r"daily_report: .*no date_column"):
        parse_provider(data, source=Path("x.yaml"))


def _recordings(**changes: object) -> dict:
    data = provider_dict()
    data["recordings"] = {**data["recordings"], **changes}
    return data


def test_one_connection_or_an_ordered_list_of_endpoints() -> None:
    assert provider().recordings.conn_ids == ("sftp_acme",)
    data = _recordings(sftp_conn_id=None, sftp_conn_ids=["primary", "backup"])
    cfg = parse_provider(data, source=Path("acme.yaml"))
    assert cfg.recordings.conn_ids == ("primary", "backup")
    assert cfg.recordings.conn_id == "primary"
    ftps = _recordings(protocol="ftps", sftp_conn_id=None, ftp_conn_id="ftps_acme")
    assert parse_provider(ftps, source=Path("a.yaml")).recordings.conn_ids == ("ftps_acme",)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"sftp_conn_ids": ["b"]}, "exactly one of sftp_conn_id"),
        ({"sftp_conn_id": None}, "exactly one of sftp_conn_id"),
        ({"sftp_conn_id": None, "sftp_conn_ids": ["a", "a"]}, "twice"),
        ({"protocol": "ftps"}, "takes ftp_conn_id or ftp_conn_ids"),
        ({"protocol": "scp"}, "protocol"),
        ({"done_folder": "../out"}, "one folder name"),
        ({"connections": 0}, "connections"),
        ({"on_complete": "delete"}, "on_complete"),
    ],
)
def test_transport_keys_are_checked(changes: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_provider(_recordings(**changes), source=Path("acme.yaml"))


def test_retention_and_sampling_keys() -> None:
    data = provider_dict(
        retention={"recordings": "90d", "digital": 30},
        sampling={"recordings": "10%", "digital": 5, "strata": ["direction", "agent"]},
    )
    cfg = parse_provider(data, source=Path("acme.yaml"))
    assert (cfg.retention.recordings, cfg.retention.digital) == (90, 30)
    assert cfg.sampling is not None and cfg.sampling.recordings == "10%"
    assert provider().retention.recordings is None and provider().sampling is None
    with pytest.raises(ConfigError, match="at least 1d"):
        parse_provider(provider_dict(retention={"recordings": "0d"}), source=Path("a.yaml"))
    with pytest.raises(ConfigError, match=r"sampling.strata: \['site'\] unknown"):
        parse_provider(provider_dict(sampling={"strata": ["site"]}), source=Path("a.yaml"))
    with pytest.raises(ConfigError, match="percentage up to 100%"):
        parse_provider(provider_dict(sampling={"recordings": "150%"}), source=Path("a.yaml"))
