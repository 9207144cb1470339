"""The DAG documentation operators read in the Airflow UI, written from the provider's YAML."""

from __future__ import annotations

from include.cc_intake.config import ProviderConfig


def provider_doc_md(cfg: ProviderConfig) -> str:
    rec = cfg.recordings
    rep = cfg.daily_report
    folders = "\n".join(f"| {d} | `{folder}` |" for d, folder in rec.directions.items())
    bandwidth = f"{rec.max_bandwidth * 8 / 1e6:.1f} Mbit/s" if rec.max_bandwidth else "no cap"
    if cfg.digital is None:
        digital = "No CRM export for this provider."
    else:
        dig = cfg.digital
        digital = (
            f"GET `{dig.endpoint}` on connection `{dig.http_conn_id}`, pagination "
            f"`{dig.pagination.type}`, records at `{dig.records_path or '(body)'}`, "
            f"stated total at `{dig.total_path or '(none)'}`, id `{dig.id_field}`."
        )
    return f"""# {cfg.name} (`{cfg.id}`)

Every night this DAG brings home **the previous day (J-1, {cfg.timezone})** for {cfg.name}:
recordings over {rec.protocol.upper()}, the end-of-day report, the CRM export, then validates them.

| | |
|---|---|
| Time zone | `{cfg.timezone}` |
| Schedule | `{cfg.schedule}` (local time) — each run processes the day before |
| Delivery deadline | {cfg.deadline} local time on day J (e-mail if J-1 is not complete) |
| Alerts to | {", ".join(cfg.alert_emails)} |
| {rec.protocol.upper()} connection | {" then ".join(f"`{c}`" for c in rec.conn_ids)} |
| File name pattern | `{rec.filename_pattern}` (date `{rec.date_format}`) |
| Wait | files older than {rec.min_file_age}, stable for {rec.settle}, as many as the report \
counts; give up after {rec.wait_timeout} (what came is still copied and reconciled) |
| Copy | {rec.max_parallel} in parallel, {bandwidth} |
| Report | `{rep.path}` ({rep.kind}, tolerance {rep.tolerance}) |
| CRM | {digital} |

| Direction | Remote folder |
|---|---|
{folders}

## Re-run a day

* Clear the day's run (Grid view → the run → *Clear*): it lists the whole day again,
  copies only what is new or changed, and rewrites the manifest and the proof.
* Or trigger with conf `{{"target_date": "YYYY-MM-DD"}}` (the processed day).
* A range: `make backfill PROVIDER={cfg.id} FROM=YYYY-MM-DD TO=YYYY-MM-DD`.

Landed files: `recordings/{cfg.id}/<day>/`, manifest `manifests/{cfg.id}/<day>.csv`,
proof `quality/{cfg.id}/<day>/` under the data root.
"""
