"""The Great Expectations suites: the recordings and the digital export, one GX 1.x run each.

:func:`validate_recordings` and :func:`validate_digital` run a suite in an ephemeral context
(GX and pandas are imported inside the functions: DAG parsing stays cheap) and return GX's
result as a JSON-able dict, ``"success"`` at the top level, plus our own findings
(:func:`include.cc_intake.reconcile.reconcile`,
:func:`include.cc_intake.digital_checks.read_export`).
The top-level ``success`` is GX's verdict *and* ours (``gx_success`` keeps GX's alone);
``failure`` is the one-line message for the task log and the e-mail, or None; ``warnings``
make the day amber (:func:`include.cc_intake.status.verdict`).
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.cc_intake.config import ProviderConfig
from include.cc_intake.days import day_bounds
from include.cc_intake.digital_checks import conflict_warnings, read_export
from include.cc_intake.manifest import is_received
from include.cc_intake.reconcile import parse_date, read_manifest_rows, reconcile
from include.cc_intake.redact import mask_phone
from include.cc_intake.report import DailyReport
from include.cc_intake.status import ProofKind

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_IN_RESULT = 20  # GX's partial_unexpected_* lists


def _run_suite(
    name: str, df: pd.DataFrame, expectations: list[Any], index_columns: list[str]
) -> dict[str, Any]:
    """Validate ``df`` with ``expectations`` in a fresh ephemeral context; GX's result dict."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Task logs must not fill with tqdm bars (contract §7 *Proof files*).
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("day")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    with warnings.catch_warnings():
        # pandas notes that filename_pattern has groups; GX only needs match / no match.
        warnings.filterwarnings(
            "ignore", message="This pattern is interpreted", category=UserWarning
        )
        result = definition.run(
            batch_parameters={"dataframe": df},
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": SAMPLE_IN_RESULT,
                "unexpected_index_column_names": index_columns,
            },
        )
    # Round-trip through JSON so the caller gets plain types (numpy scalars, datetimes…).
    return json.loads(json.dumps(result.to_json_dict(), default=str))


def failed_checks(result: Mapping[str, Any]) -> list[str]:
    """The descriptions of the Great Expectations checks a validation result failed.

    Each check's ``description``, else its type; the failure e-mail lists them.
    """
    failed = []
    for item in result.get("results") or []:
        if not item.get("success"):
            config = item.get("expectation_config") or {}
            failed.append(str(config.get("description") or config.get("type") or "expectation"))
    return failed


def _with_verdict(
    result: dict[str, Any],
    kind: ProofKind,
    cfg: ProviderConfig,
    day: dt.date,
    *,
    ok: bool,
    failure: str | None,
    warnings: list[str],
    **findings: dict[str, Any],
) -> dict[str, Any]:
    """GX's ``result`` with our verdict and ``findings`` added (see the module docstring)."""
    gx_success = bool(result.get("success"))
    result.update(
        {
            "success": gx_success and ok,
            "gx_success": gx_success,
            "kind": kind,
            "provider": cfg.id,
            "day": day.isoformat(),
            "failure": failure,
            "warnings": warnings,
            **findings,
        }
    )
    return result


def validate_recordings(
    manifest_csv: Path, report: DailyReport, cfg: ProviderConfig, day: dt.date
) -> dict[str, Any]:
    """Run the recordings suite over the manifest's accepted rows and reconcile with the report.

    Expectations: per direction, the row count is within ``expected ± allowed_gap``; ``call_id``
    is present and unique over the day; ``size_bytes > 0``; the ``date`` group, parsed with
    ``recordings.date_format``, is the day; ``file_name`` matches ``filename_pattern``; with a
    detail report, every ``call_id`` is one the report lists for its direction.
    """
    import great_expectations.expectations as gxe
    import pandas as pd
    from great_expectations.expectations.row_conditions import Column

    rows = read_manifest_rows(manifest_csv, cfg, day)
    rec = reconcile(rows, report, cfg, day)
    date_format = cfg.recordings.date_format

    def parsed(raw: str) -> str:
        value = parse_date(raw, date_format)
        return value.isoformat() if value else f"unreadable {raw!r}"

    accepted = [r for r in rows if is_received(r.get("status") or "")]
    df = pd.DataFrame(
        {
            "direction": pd.Series([r["direction"] for r in accepted], dtype="object"),
            "file_name": pd.Series([r["file_name"] for r in accepted], dtype="object"),
            "call_id": pd.Series(
                [(r.get("call_id") or "").strip() or None for r in accepted], dtype="object"
            ),
            "size_bytes": pd.to_numeric(
                pd.Series([r.get("size_bytes") or None for r in accepted], dtype="object"),
                errors="coerce",
            ),
            "date": pd.Series([r.get("date") or "" for r in accepted], dtype="object"),
            "parsed_date": pd.Series(
                [parsed(r.get("date") or "") for r in accepted], dtype="object"
            ),
        }
    )

    expectations: list[Any] = []
    for d in rec.directions:
        low, high = max(0, d.expected - d.allowed_gap), d.expected + d.allowed_gap
        expectations.append(
            gxe.ExpectTableRowCountToBeBetween(
                min_value=low,
                max_value=high,
                row_condition=Column("direction") == d.direction,
                description=f"{d.direction} : entre {low} et {high} enregistrements "
                f"(rapport : {d.expected}, tolérance : {d.allowed_gap})",
                meta={"check": "count", "direction": d.direction, "expected": d.expected},
            )
        )
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(
            column="call_id", description="Chaque enregistrement a un call_id"
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="call_id", description="Aucun call_id en double sur la journée"
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="size_bytes", description="Chaque enregistrement a une taille"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="size_bytes",
            min_value=0,
            strict_min=True,
            description="Aucun fichier vide (taille > 0 octet)",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="parsed_date",
            value_set=[day.isoformat()],
            description=f"La date du nom de fichier est le {day.isoformat()}",
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="file_name",
            # GX searches; the copier matches from the start of the name (re.match): anchor.
            regex=f"^(?:{cfg.recordings.filename_pattern})",
            description="Les noms de fichier suivent filename_pattern",
        ),
    ]
    if report.call_ids is not None:
        for d in rec.directions:
            count = d.got
            mostly = (count - d.allowed_gap) / count if count and d.allowed_gap else 1.0
            expectations.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column="call_id",
                    value_set=list(report.call_ids.get(d.direction, ())),
                    row_condition=Column("direction") == d.direction,
                    mostly=max(0.0, min(1.0, mostly)),
                    description=f"{d.direction} : chaque call_id figure au rapport détaillé",
                    meta={"check": "listed", "direction": d.direction},
                )
            )

    result = _run_suite(f"recordings_{cfg.id}", df, expectations, ["file_name"])
    gx_success = bool(result.get("success"))
    failure = rec.failure_message()
    if not failure and not gx_success:  # pragma: no cover - the checks mirror each other
        failure = mask_phone(
            f"{cfg.id} {day.isoformat()}: recordings validation failed: "
            + "; ".join(failed_checks(result))
        )
    return _with_verdict(
        result,
        "recordings",
        cfg,
        day,
        ok=rec.ok,
        failure=failure or None,
        warnings=list(rec.warnings),
        reconciliation=rec.to_dict(),
    )


def validate_digital(
    jsonl_path: Path,
    stated_total: int | None,
    cfg: ProviderConfig,
    day: dt.date,
    *,
    export: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the digital suite over the day's exported interactions (one JSON object a line).

    Expectations: the count equals the CRM's stated total (when given); ``id_field`` is present
    and unique; ``timestamp_field`` (if set) is readable and inside the day's bounds in the
    provider's zone, end excluded; ``content_field`` (if set) is not empty. Only ids, times and
    content *lengths* enter the frame and the result: conversations are personal data.

    ``export`` is what the export step reported (``duplicates_dropped``, ``conflicting_ids``,
    ``conflicting_examples``): ids the CRM sent with conflicting contents (the last version
    was kept) are counted in the proof and are a warning, which makes the day amber.
    """
    import great_expectations.expectations as gxe
    import pandas as pd

    read = read_export(jsonl_path, stated_total, cfg, day, export=export)
    checks = read.checks
    assert cfg.digital is not None  # read_export refuses a provider without one
    dig = cfg.digital
    start, end = day_bounds(day, cfg.tz)
    id_col = dig.id_field
    ts_col = dig.timestamp_field
    content_col = f"{dig.content_field} (longueur)" if dig.content_field else None

    columns: dict[str, Any] = {
        "jsonl_line": pd.Series(read.lines, dtype="int64"),
        id_col: pd.Series(read.ids, dtype="object"),
    }
    if ts_col:
        utc = [m.astimezone(dt.UTC) if m else None for m in read.stamps]
        columns[ts_col] = pd.to_datetime(pd.Series(utc, dtype="object"), utc=True).dt.tz_convert(
            cfg.timezone
        )
    if content_col:
        columns[content_col] = pd.Series(read.lengths, dtype="int64")
    df = pd.DataFrame(columns)

    expectations: list[Any] = []
    if stated_total is not None:
        expectations.append(
            gxe.ExpectTableRowCountToEqual(
                value=stated_total,
                description=f"Nombre d'interactions égal au total annoncé par le CRM "
                f"({stated_total})",
            )
        )
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(
            column=id_col, description=f"Chaque interaction a un identifiant ({id_col})"
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column=id_col, description=f"Aucun identifiant en double ({id_col})"
        ),
    ]
    if ts_col:
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(
                column=ts_col, description=f"Chaque interaction a un horodatage lisible ({ts_col})"
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column=ts_col,
                min_value=start,
                max_value=end,
                strict_max=True,
                description=f"Horodatage dans la journée du {day.isoformat()} ({cfg.timezone})",
            ),
        ]
    if content_col:
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=content_col,
                min_value=1,
                description=f"Chaque interaction a un contenu ({dig.content_field} non vide)",
            )
        )

    result = _run_suite(f"digital_{cfg.id}", df, expectations, ["jsonl_line", id_col])
    gx_success = bool(result.get("success"))
    clauses = checks.clauses(cfg)
    failure = None
    if clauses or not gx_success:
        detail = clauses or failed_checks(result)
        failure = mask_phone(f"{cfg.id} {day.isoformat()}: digital export: " + "; ".join(detail))
    warnings = conflict_warnings(checks, id_col)
    return _with_verdict(
        result,
        "digital",
        cfg,
        day,
        ok=not clauses,
        failure=failure,
        warnings=warnings,
        checks=checks.to_dict(),
    )
