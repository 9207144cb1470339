"""The overview grid, from summary files written in a temporary data root."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from include.cc_intake import overview
from include.cc_intake.errors import UnsafePathError

END = dt.date(2026, 11, 25)


def write_summary(root: Path, provider: str, day: dt.date, **fields) -> Path:
    folder = root / "quality" / provider / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        "provider": provider,
        "day": day.isoformat(),
        "status": "green",
        "recordings": {
            "SORTANTS": {"expected": 80, "got": 80},
            "ENTRANTS": {"expected": 120, "got": 120},
        },
        "digital": {"expected": 340, "got": 340},
        "rejected": 0,
        "updated_at": "2026-11-26T03:10:00Z",
    }
    summary.update(fields)
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (folder / "recordings.html").write_text("<html>proof</html>", encoding="utf-8")
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_summary(tmp_path, "acme", END)
    write_summary(
        tmp_path,
        "acme",
        END - dt.timedelta(days=1),
        status="amber",
        recordings={
            "ENTRANTS": {"expected": 120, "got": 119},
            "SORTANTS": {"expected": 80, "got": 80},
        },
        run_id="manual__2026-11-26T08:00:00+00:00",
    )
    write_summary(
        tmp_path,
        "globex",
        END,
        status="red",
        recordings={"ENTRANTS": {"expected": 50, "got": 12}, "SORTANTS": {"expected": 9, "got": 9}},
        digital=None,
        rejected=3,
        timezone="Asia/Tokyo",
    )
    bad = tmp_path / "quality" / "globex" / (END - dt.timedelta(days=2)).isoformat()
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "quality" / "Not-A-Provider").mkdir()
    return tmp_path


class Cells(HTMLParser):
    """Collects each cell's provider, day, status and links from the rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.provider: str | None = None
        self.cells: dict[tuple[str, str], dict] = {}
        self.current: dict | None = None
        self.dag_links: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attr = dict(attrs)
        if tag == "tr" and "data-provider" in attr:
            self.provider = attr["data-provider"]
        elif tag == "td" and "data-day" in attr:
            assert self.provider is not None
            self.current = {"status": attr["data-status"], "class": attr["class"], "links": {}}
            self.cells[(self.provider, attr["data-day"])] = self.current
        elif tag == "a" and self.current is not None:
            self.current["links"][attr["class"]] = attr["href"]
            if attr["class"] == "proof":
                self.current["title"] = attr["title"]
        elif tag == "a" and self.provider and "data-airflow" in attr:
            self.dag_links[self.provider] = attr["href"]

    def handle_endtag(self, tag):
        if tag == "td":
            self.current = None


def parse(page: str) -> Cells:
    parser = Cells()
    parser.feed(page)
    return parser


def test_grid_has_one_row_per_provider_and_thirty_days_newest_first(root):
    grid = overview.build_overview(root, end_day=END)
    assert [row.provider for row in grid.rows] == ["acme", "globex"]  # odd folder ignored
    assert len(grid.days) == 30
    assert grid.days[0] == END and grid.days[-1] == END - dt.timedelta(days=29)
    assert all(len(row.cells) == 30 for row in grid.rows)


def test_cells_carry_status_and_counts(root):
    grid = overview.build_overview(root, end_day=END)
    acme, globex = grid.rows
    assert acme.cells[0].status == "green"
    assert acme.cells[1].status == "amber"
    assert dict(acme.cells[1].recordings)["ENTRANTS"] == overview.Count(119, 120)
    # Directions in the operators' order whatever the JSON order.
    assert [name for name, _ in acme.cells[0].recordings] == ["ENTRANTS", "SORTANTS"]
    assert acme.cells[0].digital == overview.Count(340, 340)
    assert globex.cells[0].status == "red" and globex.cells[0].digital is None
    assert globex.cells[0].rejected == 3
    assert globex.cells[1].status == "missing"
    assert globex.cells[2].status == "invalid"
    assert globex.cells[2].problem is not None and "not JSON" in globex.cells[2].problem
    assert (grid.count("green"), grid.count("amber"), grid.count("red")) == (1, 1, 1)


def test_unknown_status_is_invalid_not_green(root):
    write_summary(root, "acme", END - dt.timedelta(days=3), status="ok")
    cell = overview.read_day(root, "acme", END - dt.timedelta(days=3))
    assert cell.status == "invalid"
    assert cell.problem is not None and "'ok'" in cell.problem


def test_configured_provider_without_summaries_is_a_grey_row(root):
    grid = overview.build_overview(root, end_day=END, providers=["initech", "Bad Name"])
    assert [row.provider for row in grid.rows] == ["acme", "globex", "initech"]
    assert {cell.status for cell in grid.rows[2].cells} == {"missing"}


def test_without_discovery_only_the_given_providers_are_rows(root):
    grid = overview.build_overview(root, end_day=END, providers=["globex"], discover=False)
    assert [row.provider for row in grid.rows] == ["globex"]


def test_rendered_page_colours_and_links(root):
    page = overview.render_overview(overview.build_overview(root, end_day=END))
    cells = parse(page)
    day0, day1, day2 = (END - dt.timedelta(days=n) for n in range(3))
    green = cells.cells[("acme", day0.isoformat())]
    assert green["class"] == "cell green"
    assert green["links"]["proof"] == f"quality/acme/{day0}/recordings.html"
    assert "E 120/120" in page and "S 80/80" in page and "D 340/340" in page
    amber = cells.cells[("acme", day1.isoformat())]
    assert amber["status"] == "amber"
    # A run id in the summary links straight to that run.
    assert amber["links"]["run"] == (
        "../dags/ingest_acme/runs/manual__2026-11-26T08%3A00%3A00%2B00%3A00"
    )
    red = cells.cells[("globex", day0.isoformat())]
    assert red["status"] == "red" and "Fichiers rejetés : 3" in red["title"]
    # Without a run id: the runs whose run_after falls on the local day after the day.
    assert red["links"]["run"] == (
        "../dags/ingest_globex/runs?run_after_gte=2026-11-25T15%3A00%3A00Z"
        "&run_after_lte=2026-11-26T14%3A59%3A59Z"
    )
    missing = cells.cells[("globex", day1.isoformat())]
    assert missing["status"] == "missing" and "proof" not in missing["links"]
    assert missing["links"]["run"].startswith("../dags/ingest_globex/runs?")
    assert cells.cells[("globex", day2.isoformat())]["status"] == "invalid"
    assert cells.dag_links == {"acme": "../dags/ingest_acme", "globex": "../dags/ingest_globex"}


def test_links_follow_the_given_bases(root):
    page = overview.render_overview(
        overview.build_overview(root, end_day=END), ui_base="/airflow/", proof_base="/p/"
    )
    assert 'href="/airflow/dags/ingest_acme"' in page
    assert f'href="/p/acme/{END}/recordings.html"' in page


def test_page_is_self_contained_and_its_script_matches_the_csp(root):
    page = overview.render_overview(overview.build_overview(root, end_day=END))
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from elsewhere
    assert "<link" not in page
    found = re.search(r"<script>(.*?)</script>", page, re.S)
    assert found is not None
    script = found.group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in overview.CONTENT_SECURITY_POLICY


def test_only_counts_and_states_reach_the_page(root):
    write_summary(root, "acme", END - dt.timedelta(days=4), agent="Jean Dupont +22507123456")
    page = overview.render_overview(overview.build_overview(root, end_day=END))
    assert "Dupont" not in page and "22507123456" not in page


def test_values_are_escaped(root):
    write_summary(root, "acme", END - dt.timedelta(days=5), run_id='x"><script>alert(1)</script>')
    page = overview.render_overview(overview.build_overview(root, end_day=END))
    assert "<script>alert" not in page


def test_empty_data_root_says_so(tmp_path):
    page = overview.render_overview(overview.build_overview(tmp_path, end_day=END))
    assert "Aucun prestataire" in page


def test_latest_day(root):
    assert overview.latest_day(root, ["acme", "globex", "nobody"]) == END
    assert overview.latest_day(root, []) is None


def test_resolve_quality_file_accepts_proof_files(root):
    path = overview.resolve_quality_file(root, f"acme/{END}/recordings.html")
    assert path == (root / "quality" / "acme" / END.isoformat() / "recordings.html").resolve()


@pytest.mark.parametrize(
    "rel",
    [
        "../../etc/passwd",
        f"acme/{END}/../../../secret.json",
        f"acme/{END}",
        f"acme/{END}/sub/x.html",
        f"acme/{END}/.summary.json.abc.part",
        f"acme/{END}/manifest.csv",
        f"ACME/{END}/summary.json",
        "acme/2026-13-45/summary.json",
        f"/acme/{END}/summary.json",
        f"acme//{END}/summary.json",
        f"acme/{END}/x\x00.json",
    ],
)
def test_resolve_quality_file_refuses_anything_else(root, rel):
    with pytest.raises(UnsafePathError):
        overview.resolve_quality_file(root, rel)


def test_resolve_quality_file_refuses_a_symlink_out_of_quality(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.json"
    outside.write_text("{}", encoding="utf-8")
    folder = root / "quality" / "acme" / END.isoformat()
    (folder / "leak.json").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside"):
        overview.resolve_quality_file(root, f"acme/{END}/leak.json")


def test_item1_kept_and_failed_counts_reach_the_cell(root):
    day = END - dt.timedelta(days=4)
    write_summary(root, "acme", day, status="amber", kept=7, failed=2)
    cell = overview.read_day(root, "acme", day)
    assert (cell.kept, cell.failed) == (7, 2)
    cells = parse(overview.render_overview(overview.build_overview(root, end_day=END)))
    title = cells.cells[("acme", day.isoformat())]["title"]
    assert "Dont conservés ici, plus sur le serveur : 7" in title
    assert "Copies en échec : 2" in title
    plain = cells.cells[("acme", END.isoformat())]["title"]
    assert "conservés" not in plain and "échec" not in plain


def test_item13_config_error_day_and_row_show_configuration_invalide(root):
    from include.cc_intake.proof import write_config_error_summary

    write_config_error_summary(
        root / "quality" / "acme" / END.isoformat(), provider="acme", day=END
    )  # keeps acme's earlier green verdict of END: the day was proved before the file broke
    day = END + dt.timedelta(days=1)
    write_config_error_summary(
        root / "quality" / "acme" / day.isoformat(), provider="acme", day=day
    )

    grid = overview.build_overview(root, end_day=day)
    acme, globex = grid.rows
    assert [c.status for c in acme.cells[:2]] == ["config_error", "green"]
    assert acme.config_error and not globex.config_error
    page = overview.render_overview(grid)
    cells = parse(page)
    assert cells.cells[("acme", day.isoformat())]["status"] == "config_error"
    assert cells.cells[("acme", day.isoformat())]["class"] == "cell config_error"
    cell = page[page.index(f'data-day="{day.isoformat()}"') :].split("</td>")[0]
    assert "acme — " + day.isoformat() + " : configuration invalide" in cell
    row = page[page.index('data-provider="acme"') :].split("</tr>")[0]
    assert "data-config-error" in row and 'class="badge"' in row
    assert "configuration invalide" in row
    assert "data-config-error" not in page[page.index('data-provider="globex"') :]


def test_item13_airflow_says_which_rows_are_config_errors(root):
    # The placeholder DAG exists (tag config-error) before its first run writes a summary...
    grid = overview.build_overview(root, end_day=END, config_errors={"newco"}, discover=True)
    assert [(r.provider, r.config_error) for r in grid.rows] == [
        ("acme", False),
        ("globex", False),
        ("newco", True),
    ]
    # ...and once the file is fixed the row is no longer flagged, whatever old days say.
    day = END + dt.timedelta(days=1)
    folder = root / "quality" / "globex" / day.isoformat()
    from include.cc_intake.proof import write_config_error_summary

    write_config_error_summary(folder, provider="globex", day=day)
    grid = overview.build_overview(root, end_day=day, config_errors=set())
    assert not any(r.config_error for r in grid.rows)
    assert grid.rows[1].cells[0].status == "config_error"


@pytest.mark.parametrize(
    ("count", "text"), [(1, "1 alerte non envoyée"), (3, "3 alertes non envoyées")]
)
def test_item14_banner_counts_undelivered_alerts(root, count, text):
    page = overview.render_overview(overview.build_overview(root, end_day=END, undelivered=count))
    assert text in page
    assert f'data-undelivered="{count}"' in page
    assert "non envoyée" not in overview.render_overview(overview.build_overview(root, end_day=END))
