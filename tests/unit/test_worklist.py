"""The evaluators' worklist: stratified sample, exclusions, reproducibility, top-up (#13).

Property-style: many random populations (seeded, so a failure names its case) through the same
functions the task calls, on manifests and exports written by the production writers.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import random
from pathlib import Path

import pytest

from include.cc_intake import worklist as W
from include.cc_intake.errors import ManifestError
from include.cc_intake.layout import DayLayout
from include.cc_intake.manifest import ManifestRow, write_manifest
from include.cc_intake.worklist_page import CONTENT_SECURITY_POLICY, NOT_PLAYABLE
from tests.helpers import provider, provider_dict

DAY = dt.date(2026, 11, 25)
NOW = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=5)
AGENTS = ("AG01", "AG02", "AG03", "AG04", "AG05", "AG06", "AG07")
DIGITAL = {
    "http_conn_id": "crm",
    "endpoint": "/x",
    "id_field": "id",
    "timestamp_field": "created_at",
    "content_field": "messages",
}


def config(sampling: dict, *, digital: bool = True):
    extra = {"digital": DIGITAL} if digital else {}
    return provider(sampling=sampling, **extra)


def row(direction: str, name: str, status: str = "copied", **extra: str) -> ManifestRow:
    date, time, agent, call = name.rsplit(".", 1)[0].split("_")
    return ManifestRow(
        direction=direction,
        file_name=name,
        remote_path=f"/exports/{direction}/{name}",
        size_bytes=1000,
        remote_mtime="2026-11-25T12:00:00Z",
        sha256="ab" * 32 if status != "rejected" else "",
        copied_at="2026-11-26T02:31:00Z",
        status=status,  # type: ignore[arg-type]
        reason="pattern_mismatch" if status == "rejected" else "",
        groups={"date": date, "time": time, "agent": agent, "call_id": call},
        extra={"codec": "pcm_s16le", "duration_s": extra.get("duration_s", "95.0"),
               "audio_ok": extra.get("audio_ok", "true")},
    )  # fmt: skip


def call_name(rng: random.Random, index: int, agent: str | None = None) -> str:
    hour, minute = rng.randrange(7, 20), rng.randrange(60)
    return f"20261125_{hour:02d}{minute:02d}00_{agent or rng.choice(AGENTS)}_C{index:05d}.wav"


def write_day(root: Path, rows: list[ManifestRow], interactions: list[dict] | None = None) -> None:
    layout = DayLayout(root, "acme_abidjan", DAY)
    write_manifest(
        layout.manifest,
        rows,
        group_names=["date", "time", "agent", "call_id"],
        token="t",
        root=root,
    )
    if interactions is not None:
        layout.digital_dir.mkdir(parents=True, exist_ok=True)
        (layout.digital_dir / "interactions.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in interactions), encoding="utf-8"
        )


def interaction(index: int, channel: str) -> dict:
    return {
        "id": f"CRM-{index:05d}",
        "channel": channel,
        "created_at": f"2026-11-25T{8 + index % 10:02d}:00:00+00:00",
        "agent": {"id": f"AG{index % 5:03d}", "name": "Awa"},
        "messages": [
            {"from": "client", "at": "2026-11-25T08:00:00+00:00",
             "text": "Mon numéro est le 07 12 34 56 78"},
            {"from": "agent", "at": "2026-11-25T08:01:00+00:00", "text": "Merci, je regarde."},
        ],
    }  # fmt: skip


def build(root: Path, cfg, now: dt.datetime = NOW) -> W.Worklist:
    return W.build_worklist(cfg, DAY, root, now=now, token="run1")


# --------------------------------------------------------------------------- allocation


@pytest.mark.parametrize("case", range(300))
def test_allocation_over_random_populations(case: int) -> None:
    rng = random.Random(case)
    sizes = {
        f"s{i}": rng.choice((0, 1, 1, 2, 3, 5, 8, 20, 50, 200)) for i in range(rng.randrange(1, 12))
    }
    population = sum(sizes.values())
    total = rng.randrange(0, population + 5)
    got = W.allocate(sizes, min(total, population), order_key=str(case))
    strata = [name for name, size in sizes.items() if size]
    assert sum(got.values()) == min(total, population), (sizes, total, got)
    for name, size in sizes.items():
        assert 0 <= got[name] <= size
    if min(total, population) >= len(strata):  # every non-empty stratum is represented
        assert all(got[name] >= 1 for name in strata), (sizes, total, got)
    else:  # budget below the strata: one each to the largest, none twice
        assert all(got[name] <= 1 for name in strata)
        chosen = [sizes[n] for n in strata if got[n]]
        skipped = [sizes[n] for n in strata if not got[n]]
        assert not chosen or not skipped or min(chosen) >= max(skipped)
    # Proportional: beyond its guaranteed item, no stratum gets more than its share.
    for name in strata:
        share = min(total, population) * sizes[name] / population
        assert got[name] == 1 or got[name] < share + 1, (name, sizes, total, got)


def test_budget_counts_and_percentages() -> None:
    assert W.budget(40, 1000) == 40
    assert W.budget(40, 12) == 12
    assert W.budget("10%", 1000) == 100
    assert W.budget("10%", 15) == 2  # rounded up
    assert W.budget("100%", 7) == 7
    assert W.budget("5%", 0) == 0
    assert W.budget(0, 50) == 0


# --------------------------------------------------------------------------- the sample


@pytest.mark.parametrize("case", range(60))
def test_random_days_sample_sizes_strata_and_exclusions(tmp_path: Path, case: int) -> None:
    rng = random.Random(1000 + case)
    rows, excluded = [], set()
    for index in range(rng.randrange(0, 120)):
        name = call_name(rng, index)
        direction = rng.choice(("ENTRANTS", "SORTANTS"))
        kind = rng.choices(("ok", "rejected", "failed", "bad_audio", "short", "kept"),
                           weights=(70, 5, 5, 5, 10, 5))[0]  # fmt: skip
        if kind == "rejected":
            rows.append(row(direction, name, "rejected"))
        elif kind == "failed":
            rows.append(row(direction, name, "failed"))
        elif kind == "bad_audio":
            rows.append(row(direction, name, audio_ok="false"))
        elif kind == "short":
            rows.append(row(direction, name, duration_s=str(rng.randrange(0, 30))))
        else:
            rows.append(row(direction, name, "kept" if kind == "kept" else "copied"))
            continue
        excluded.add(f"{direction}/{name}")
    channels = ("chat", "email", "social", "whatsapp")[: rng.randrange(1, 5)]
    records = [interaction(i, rng.choice(channels)) for i in range(rng.randrange(0, 60))]
    write_day(tmp_path, rows, records)
    share = rng.choice((5, 12, 40, 500, "10%", "50%"))
    strata = rng.choice((["direction"], ["direction", "agent"], ["hour"], [], ["agent", "hour"]))
    cfg = config({"recordings": share, "digital": rng.choice((3, "20%", 100)),
                  "strata": strata, "min_duration": "30s"})  # fmt: skip

    result = build(tmp_path, cfg)

    eligible = [r for r in rows if f"{r.direction}/{r.file_name}" not in excluded]
    recordings = [i for i in result.items if i.kind == "recording"]
    assert len(recordings) == W.budget(share, len(eligible))
    assert not {i.item_id for i in recordings} & excluded
    assert len({i.item_id for i in recordings}) == len(recordings)
    population = W.recording_candidates(cfg, cfg.sampling, DAY, tmp_path, rows)
    strata_seen = {i.stratum for i in population}
    if len(recordings) >= len(strata_seen):
        assert {i.stratum for i in recordings} == strata_seen
    digital = [i for i in result.items if i.kind == "digital"]
    assert len(digital) == W.budget(cfg.sampling.digital, len(records))
    if len(digital) >= len({r["channel"] for r in records}):
        assert {i.stratum for i in digital} == {f"channel={r['channel']}" for r in records}
    for item in recordings:  # paths are relative to the data root and point at the file
        assert item.path.startswith(f"recordings/acme_abidjan/{DAY}/{item.direction}/")
        assert int(item.started_at[11:13]) in range(7, 20)
        assert item.added_at == "2026-11-26T03:00:00Z"


def test_same_population_same_sample_and_seed_changes_it(tmp_path: Path) -> None:
    rng = random.Random(7)
    rows = [row("ENTRANTS", call_name(rng, i)) for i in range(200)]
    sampling = {"recordings": 20, "strata": ["agent"]}
    samples = []
    for run, seed in enumerate((None, None, "autre")):
        root = tmp_path / str(run)
        write_day(root, rows)
        samples.append([i.item_id for i in build(root, config({**sampling, "seed": seed})).items])
    assert samples[0] == samples[1]
    assert samples[0] != samples[2]
    # Another provider or another day draws otherwise (seeded from provider and day).
    other = tmp_path / "other"
    write_day(other, rows)
    moved = W.build_worklist(
        config(sampling), DAY + dt.timedelta(days=1), other, now=NOW, token="x"
    )
    assert moved.items == ()  # that day has no manifest: an empty day
    assert W.seed_base("a", DAY, None) != W.seed_base("b", DAY, None)


def test_rerun_without_new_files_changes_nothing(tmp_path: Path) -> None:
    rng = random.Random(3)
    write_day(tmp_path, [row("ENTRANTS", call_name(rng, i)) for i in range(50)])
    cfg = config({"recordings": 10, "strata": ["direction"]})
    first = build(tmp_path, cfg)
    before = first.csv_path.read_bytes()
    again = build(tmp_path, cfg, now=LATER)
    assert again.added == 0
    assert first.csv_path.read_bytes() == before


def test_late_files_only_top_up_and_keep_every_given_item(tmp_path: Path) -> None:
    rng = random.Random(11)
    early = [row("ENTRANTS", call_name(rng, i, AGENTS[i % 3])) for i in range(60)]
    write_day(tmp_path, early)
    cfg = config({"recordings": "10%", "strata": ["direction", "agent"]})
    first = build(tmp_path, cfg)
    assert len(first.items) == 6
    # Late files: a new direction and new agents arrive; one early file now failed.
    late = [row("SORTANTS", call_name(rng, 100 + i, AGENTS[3 + i % 4])) for i in range(40)]
    broken = next(r for r in early if f"{r.direction}/{r.file_name}" == first.items[0].item_id)
    changed = [r for r in early if r is not broken] + [row("ENTRANTS", broken.file_name, "failed")]
    write_day(tmp_path, changed + late)

    second = build(tmp_path, cfg, now=LATER)

    assert second.items[: len(first.items)] == first.items  # append-only, added_at kept
    assert len(second.items) == 10  # 10 % of the 99 eligible, rounded up
    added = second.items[len(first.items) :]
    assert all(i.added_at == "2026-11-26T08:00:00Z" for i in added)
    assert {i.stratum.split(" | ")[0] for i in added} == {"direction=SORTANTS"}
    with first.csv_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == W.COLUMNS
        assert [r["item_id"] for r in reader] == [i.item_id for i in second.items]


def test_empty_day_writes_an_empty_worklist_and_a_page(tmp_path: Path) -> None:
    result = build(tmp_path, config({"recordings": 10, "digital": 5}))
    assert result.items == ()
    assert result.csv_path == tmp_path / "worklists" / "acme_abidjan" / f"{DAY}.csv"
    assert result.csv_path.read_text(encoding="utf-8") == ",".join(W.COLUMNS) + "\n"
    page = result.html_path.read_text(encoding="utf-8")
    assert "Aucun enregistrement à évaluer" in page and "Aucune conversation" in page


def test_budget_larger_than_the_population_takes_everything_eligible(tmp_path: Path) -> None:
    rng = random.Random(5)
    rows = [row("ENTRANTS", call_name(rng, i)) for i in range(8)]
    rows.append(row("SORTANTS", call_name(rng, 99), duration_s="12.5"))
    write_day(tmp_path, rows, [interaction(i, "chat") for i in range(3)])
    cfg = config({"recordings": 500, "digital": "100%", "min_duration": "30s"})
    result = build(tmp_path, cfg)
    assert sorted(i.item_id for i in result.items if i.kind == "recording") == sorted(
        f"ENTRANTS/{r.file_name}" for r in rows[:8]
    )
    assert result.count("digital") == 3


def test_unknown_duration_is_not_a_short_call(tmp_path: Path) -> None:
    rng = random.Random(2)
    write_day(tmp_path, [row("ENTRANTS", call_name(rng, 1), duration_s="")])
    assert len(build(tmp_path, config({"recordings": 5, "min_duration": "30s"})).items) == 1


def test_page_masks_phones_plays_wav_and_offers_gsm_as_download(tmp_path: Path) -> None:
    rng = random.Random(9)
    gsm = dataclasses.replace(
        row("ENTRANTS", "20261125_101010_AG01_0712345678.gsm"),
        extra={"codec": "gsm", "duration_s": "60", "audio_ok": "true"},
    )
    write_day(tmp_path, [row("ENTRANTS", call_name(rng, 1)), gsm], [interaction(1, "chat")])
    result = build(tmp_path, config({"recordings": 10, "digital": 10}))
    page = result.html_path.read_text(encoding="utf-8")
    assert f'content="{CONTENT_SECURITY_POLICY}"' in page and "media-src 'self'" in page
    assert "0712345678" not in page and "07 12 34 56 78" not in page
    assert "******78" in page
    assert page.count("<audio") == 1
    assert NOT_PLAYABLE in page and "?download=1" in page
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    # Messages in order, who and when.
    messages = page.split('<ol class="messages">')[1]
    assert messages.index('"who">Client') < messages.index('"who">Conseiller')
    assert messages.index("******78") < messages.index("Merci, je regarde.")


def test_a_broken_worklist_is_an_error_naming_it(tmp_path: Path) -> None:
    write_day(tmp_path, [])
    csv_path, _ = W.worklist_paths(tmp_path, "acme_abidjan", DAY)
    csv_path.parent.mkdir(parents=True)
    csv_path.write_text("item_id,kind\nx,recording\n", encoding="utf-8")
    with pytest.raises(
        ManifestError, match=r"acme_abidjan 2026-11-25: the worklist .* cannot be read"
    ):
        build(tmp_path, config({"recordings": 1}))
    assert csv_path.read_text(encoding="utf-8") == "item_id,kind\nx,recording\n"


def test_sampling_config_comes_from_yaml() -> None:
    data = provider_dict(sampling={"recordings": "5%", "strata": ["direction", "call_id"]})
    assert data["sampling"]["strata"] == ["direction", "call_id"]
    cfg = provider(sampling={"recordings": "5%", "strata": ["direction", "call_id"]})
    assert cfg.sampling is not None and cfg.sampling.recordings == "5%"


def test_the_overview_links_a_day_to_its_worklist(tmp_path: Path) -> None:
    from include.cc_intake import overview
    from include.cc_intake.airflow.links import WORKLIST_ROUTE, WORKLIST_URL_PREFIX

    served_at = f"..{WORKLIST_URL_PREFIX}/{WORKLIST_ROUTE}/"
    assert served_at == overview.WORKLIST_BASE
    build(tmp_path, config({"recordings": 1}))
    grid = overview.build_overview(tmp_path, end_day=DAY, days=2, providers=["acme_abidjan"])
    cells = {cell.day: cell for cell in grid.rows[0].cells}
    assert cells[DAY].worklist == f"acme_abidjan/{DAY}.html"
    assert cells[DAY - dt.timedelta(days=1)].worklist is None
    page = overview.render_overview(grid)
    href = f'href="../cc-intake-worklists/worklists/acme_abidjan/{DAY}.html"'
    assert page.count(href) == 1 and page.count('class="worklist"') == 1


def test_item_file_serves_only_listed_recordings_inside_their_folder(tmp_path: Path) -> None:
    from include.cc_intake.errors import UnsafePathError

    rng = random.Random(4)
    name = call_name(rng, 1)
    write_day(tmp_path, [row("ENTRANTS", name)], [interaction(1, "chat")])
    landed = DayLayout(tmp_path, "acme_abidjan", DAY).recording("ENTRANTS", name)
    landed.parent.mkdir(parents=True)
    landed.write_bytes(b"RIFF")
    result = build(tmp_path, config({"recordings": 5, "digital": 5}))
    rows = {item.kind: n for n, item in enumerate(result.items, 1)}
    item, path = W.item_file(tmp_path, "acme_abidjan", DAY, rows["recording"])
    assert path == landed.resolve() and item.sha256 == "ab" * 32
    for bad_row in (0, len(result.items) + 1, rows["digital"]):
        with pytest.raises(LookupError):
            W.item_file(tmp_path, "acme_abidjan", DAY, bad_row)
    # A worklist row naming a path out of the day's folder (a tampered CSV) is refused.
    for bad_path in (
        "manifests/acme_abidjan/2026-11-25.csv",
        f"recordings/acme_abidjan/{DAY}/../../x",
        "/etc/passwd",
        f"recordings/acme_abidjan/{DAY}/ENTRANTS/.hidden",
    ):
        tampered = [dataclasses.replace(result.items[0], path=bad_path), *result.items[1:]]
        W.write_worklist_csv(result.csv_path, tampered, token="t", root=tmp_path)
        with pytest.raises(UnsafePathError):
            W.item_file(tmp_path, "acme_abidjan", DAY, 1)
    # A landed file that is a symlink out of the folder is refused.
    W.write_worklist_csv(result.csv_path, result.items, token="t", root=tmp_path)
    outside = tmp_path / "outside.wav"
    outside.write_bytes(b"secret")
    landed.unlink()
    landed.symlink_to(outside)
    with pytest.raises(UnsafePathError, match="resolves outside"):
        W.item_file(tmp_path, "acme_abidjan", DAY, rows["recording"])


def test_playable_formats() -> None:
    from include.cc_intake.worklist_page import playable

    assert playable("a/b.wav", "pcm_s16le") and playable("a/b.wav", "pcm_alaw")
    assert playable("a/b.mp3", "mp3") and playable("a/b.wav", "")
    assert not playable("a/b.gsm", "gsm") and not playable("a/b.wav", "gsm_ms")
    assert not playable("a/b.wav", "adpcm_ms") and not playable("a/b.mp3", "mp2")


def test_unreadable_inputs_name_their_file(tmp_path: Path) -> None:
    """The task tells its inputs' errors (reported by their validation) from its own CSV's."""
    layout = DayLayout(tmp_path, "acme_abidjan", DAY)
    layout.manifest.parent.mkdir(parents=True)
    layout.manifest.write_bytes(b"\xff\xfe not a manifest")
    with pytest.raises(ManifestError) as caught:
        build(tmp_path, config({"recordings": 1}))
    assert caught.value.path == str(layout.manifest) and caught.value.retryable is False
    write_day(tmp_path, [])
    (layout.digital_dir / "interactions.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (layout.digital_dir / "interactions.jsonl").write_text('{"id": 1}\n{broken\n', "utf-8")
    with pytest.raises(ManifestError, match="line 2 is not JSON") as caught:
        build(tmp_path, config({"digital": 1}))
    assert caught.value.path == str(layout.digital_dir / "interactions.jsonl")
    assert not W.worklist_paths(tmp_path, "acme_abidjan", DAY)[0].exists()
