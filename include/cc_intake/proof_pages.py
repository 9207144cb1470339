"""The proof pages: one self-contained HTML page, in French, per validation result.

Pure rendering, no I/O: :func:`include.cc_intake.quality.write_proof` passes the JSON-able
result of ``validate_recordings`` / ``validate_digital`` and its verdict (green, amber, red) and
writes the page. Every text goes through :func:`_t`: phone numbers masked, HTML escaped. The
operators' network may be offline, so no CDN and no link out: the CSS is inline.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from include.cc_intake.manifest import REASON_FR
from include.cc_intake.naming import escape_unsafe
from include.cc_intake.redact import mask_phone

if TYPE_CHECKING:
    from include.cc_intake.quality import Status

NAMES_IN_PAGE = 500  # the JSON keeps everything; the page shows enough to act on

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;
max-width:70rem;padding:0 1rem;color:#1d2733;line-height:1.45}
h1{font-size:1.4rem;margin-bottom:.3rem}h2{font-size:1.1rem;margin-top:2rem;
border-bottom:1px solid #d5dbe1;padding-bottom:.2rem}
.verdict{padding:1rem 1.2rem;border-radius:.4rem;margin:1rem 0;border-left:.5rem solid}
.verdict strong{font-size:1.3rem;display:block}
.green{background:#e8f6ec;border-color:#1e8e3e}.amber{background:#fff5e0;border-color:#e8a000}
.red{background:#fdecea;border-color:#c5221f}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #d5dbe1;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1e8e3e;font-weight:600}.ko{color:#c5221f;font-weight:600}
ul{margin:.3rem 0 .8rem}code{font-size:.92em}.muted{color:#5f6b7a;font-size:.9rem}
"""

# The pages carry no script and load nothing: inline CSS only. The overview plugin serves them
# with this policy (plus ``frame-ancestors``, which a <meta> cannot carry); the page repeats it
# for a copy opened from the file share.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'none'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

_KIND_FR = {"summary": "rapport de synthèse", "detail": "rapport détaillé, appel par appel"}
_STATUS_FR = {
    "green": "CONFORME",
    "amber": "CONFORME AVEC RÉSERVES",
    "red": "NON CONFORME",
}


def render_recordings_page(result: Mapping[str, Any], status: Status) -> str:
    """The recordings proof page: verdict, per-direction counts, then every list."""
    rec = result.get("reconciliation") or {}
    report = rec.get("report") or {}
    directions = rec.get("directions") or {}
    title = f"Enregistrements — {result.get('provider')} — {result.get('day')}"
    body = [
        f'<p class="muted">Rapport de fin de journée : <code>{_t(report.get("source"))}</code> '
        f"({_fr(_KIND_FR, report.get('kind'))})</p>",
        '<h2 id="counts">Attendu et reçu par sens</h2>',
        "<table><tr><th>Sens</th><th>Attendu (rapport)</th><th>Reçu</th><th>Écart</th>"
        "<th>Tolérance</th><th>Résultat</th></tr>",
    ]
    for name, d in directions.items():
        body.append(
            f"<tr><td>{_t(name)}</td><td class='num'>{_t(d.get('expected'))}</td>"
            f"<td class='num'>{_t(d.get('got'))}</td><td class='num'>{d.get('gap', 0):+d}</td>"
            f"<td class='num'>{_t(d.get('allowed_gap'))}</td><td>{_mark(d.get('ok'), 'ÉCART')}</td>"
            "</tr>"
        )
    body.append("</table>")

    # A summary report only counts: it cannot say which call is missing or extra.
    detail = report.get("kind") == "detail"
    note = "" if detail else "Rapport de synthèse : les écarts sont chiffrés, pas nommés."
    missing = [
        f"<code>{_t(call_id)}</code> ({_t(name)})"
        for name, d in directions.items()
        for call_id in d.get("missing", [])
    ]
    extra = [_file(e, detail=False) for d in directions.values() for e in d.get("extra", [])]
    duplicates = [
        f"<code>{_t(dup['call_id'])}</code> : "
        + ", ".join(_file(e, detail=False) for e in dup.get("files", []))
        for dup in rec.get("duplicates", [])
    ]
    rejected = [
        f"{_file(e, detail=False)} — {_fr(REASON_FR, e.get('reason'))}"
        for e in rec.get("rejected", [])
    ]
    kept = [
        f"{_file(e, detail=False)} — copié le {_t(e.get('detail'))}" for e in rec.get("kept", [])
    ]
    failed = [f"{_file(e, detail=False)} — {_t(e.get('reason'))}" for e in rec.get("failed", [])]
    body += [
        _items("Appels manquants (call_id)", missing, anchor="missing", note=note),
        _items("Fichiers en trop", extra, anchor="extra", note=note),
        _items("call_id en double", duplicates, anchor="duplicates"),
        _items("Fichiers vides", [_file(e) for e in rec.get("empty", [])], anchor="empty"),
        _items(
            "Fichiers d'une autre date",
            [_file(e) for e in rec.get("other_date", [])],
            anchor="other-date",
        ),
    ]
    if rec.get("bad_names"):
        body.append(
            _items(
                "Noms non conformes acceptés",
                [_file(e) for e in rec["bad_names"]],
                anchor="bad-names",
            )
        )
    body.append(
        _items(
            "Fichiers rejetés",
            rejected,
            anchor="rejected",
            note="Listés pour information : un rejet seul ne fait pas échouer la journée.",
        )
    )
    if kept:
        body.append(
            _items(
                "Conservés ici, plus sur le serveur",
                kept,
                anchor="kept",
                note="Copiés lors d'un passage précédent (empreinte SHA-256 au manifeste), puis "
                "retirés du serveur par le fournisseur : ils comptent comme reçus.",
            )
        )
    if failed:
        body.append(
            _items(
                "Copies en échec",
                failed,
                anchor="failed",
                note="Non comptés comme reçus : une relance du jour les copie à nouveau.",
            )
        )
    return _page(title, result, status, body)


def render_digital_page(result: Mapping[str, Any], status: Status) -> str:
    """The digital proof page: verdict, expected vs got, then every list."""
    checks = result.get("checks") or {}
    title = f"Interactions numériques — {result.get('provider')} — {result.get('day')}"
    stated = checks.get("stated_total")
    body = [
        '<h2 id="counts">Attendu et reçu</h2>',
        "<table><tr><th>Total annoncé par le CRM</th><th>Interactions exportées</th></tr>",
        f"<tr><td class='num'>{_t(stated if stated is not None else 'non communiqué')}</td>"
        f"<td class='num'>{_t(checks.get('records'))}</td></tr></table>",
    ]
    sections = (
        (
            "Identifiants en double",
            "duplicates",
            [
                f"<code>{_t(d['id'])}</code> (lignes {_t(', '.join(map(str, d['lines'])))})"
                for d in checks.get("duplicate_ids", [])
            ],
        ),
        (
            "Interactions sans identifiant",
            "without-id",
            [f"ligne {_t(n)}" for n in checks.get("without_id", [])],
        ),
        (
            "Hors de la journée",
            "outside-day",
            [
                f"<code>{_t(x['id'])}</code> à {_t(x['timestamp'])} (ligne {_t(x['line'])})"
                for x in checks.get("outside_day", [])
            ],
        ),
        (
            "Horodatage absent ou illisible",
            "bad-timestamps",
            [
                f"<code>{_t(x['id'])}</code> : {_t(x['value'])} (ligne {_t(x['line'])})"
                for x in checks.get("bad_timestamps", [])
            ],
        ),
        (
            "Contenu vide",
            "empty-content",
            [
                f"<code>{_t(x['id'])}</code> (ligne {_t(x['line'])})"
                for x in checks.get("empty_content", [])
            ],
        ),
    )
    body += [_items(heading, items, anchor=anchor) for heading, anchor, items in sections]
    conflicting = int(checks.get("conflicting_ids") or 0)
    examples = [f"<code>{_t(x)}</code>" for x in checks.get("conflicting_examples") or []]
    if conflicting > len(examples):
        examples.append(f"… et {conflicting - len(examples)} autre(s) (journal de l'export)")
    body.append(
        f'<h2 id="conflicting-ids">Identifiants reçus avec des contenus différents '
        f"({conflicting})</h2>"
        '<p class="muted">Le CRM a envoyé plusieurs versions différentes de ces interactions '
        "(par exemple mises à jour entre deux pages) : la dernière version reçue est conservée. "
        f"Doublons identiques écartés : {_t(checks.get('duplicates_dropped') or 0)}.</p>"
        + ("<ul>" + "".join(f"<li>{x}</li>" for x in examples) + "</ul>" if examples else "")
    )
    return _page(title, result, status, body)


# --------------------------------------------------------------------------------------------
# Building blocks


def _t(value: Any) -> str:
    """Text for the page: masked phone numbers, control and bidi-override characters shown as
    \\xNN / \\uNNNN, escaped."""
    return html.escape(escape_unsafe(mask_phone("" if value is None else str(value))))


def _fr(labels: Mapping[str, str], value: Any) -> str:
    """The French label of a code, or the code itself when it has none."""
    return _t(labels.get(value, value))


def _mark(ok: Any, ko_text: str) -> str:
    return '<span class="ok">OK</span>' if ok else f'<span class="ko">{ko_text}</span>'


def _page(title: str, result: Mapping[str, Any], status: Status, body: list[str]) -> str:
    head = [
        "<!DOCTYPE html>",
        '<html lang="fr"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_t(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_t(title)}</h1>",
        f'<div class="verdict {status}" id="verdict" data-status="{status}">'
        f"<strong>{_STATUS_FR[status]}</strong>",
    ]
    if result.get("failure"):
        head.append(f"<p>{_t(result['failure'])}</p>")
    for warning in result.get("warnings") or []:
        head.append(f"<p>Avertissement : {_t(warning)}</p>")
    head.append("</div>")
    return "\n".join([*head, *body, _gx_table(result), _footer(result), "</body></html>"]) + "\n"


def _items(title: str, items: Sequence[str], *, anchor: str, note: str = "") -> str:
    """A titled list with its count; long lists are cut at :data:`NAMES_IN_PAGE`."""
    count = len(items)
    out = [f'<h2 id="{anchor}">{_t(title)} ({count})</h2>']
    if note:
        out.append(f'<p class="muted">{_t(note)}</p>')
    if not items:
        out.append("<p>Aucun.</p>")
        return "\n".join(out)
    out.append("<ul>")
    out += [f"<li>{item}</li>" for item in items[:NAMES_IN_PAGE]]
    out.append("</ul>")
    if count > NAMES_IN_PAGE:
        out.append(f'<p class="muted">… et {count - NAMES_IN_PAGE} autres (voir le JSON).</p>')
    return "\n".join(out)


def _file(entry: Mapping[str, Any], *, detail: bool = True) -> str:
    text = f"<code>{_t(entry.get('file_name'))}</code> ({_t(entry.get('direction'))})"
    if detail and entry.get("detail"):
        text += f" — {_t(entry['detail'])}"
    return text


def _gx_table(result: Mapping[str, Any]) -> str:
    rows = ['<h2 id="expectations">Contrôles Great Expectations</h2>', "<table>"]
    rows.append("<tr><th>Contrôle</th><th>Résultat</th><th>Observé</th></tr>")
    for item in result.get("results", []):
        config = item.get("expectation_config", {})
        label = config.get("description") or config.get("type")
        res = item.get("result") or {}
        if "observed_value" in res:
            observed = _t(res["observed_value"])
        else:
            sample = [str(v) for v in (res.get("partial_unexpected_list") or [])[:10]]
            observed = f"{_t(res.get('unexpected_count', 0))} inattendu(s)"
            if sample:
                observed += " : " + _t(", ".join(sample))
        if (item.get("exception_info") or {}).get("raised_exception"):
            observed = "erreur : " + _t(item["exception_info"].get("exception_message"))
        rows.append(
            f"<tr><td>{_t(label)}</td><td>{_mark(item.get('success'), 'ÉCHEC')}</td>"
            f"<td>{observed}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _footer(result: Mapping[str, Any]) -> str:
    meta = result.get("meta") or {}
    version = meta.get("great_expectations_version", "?")
    when = (meta.get("run_id") or {}).get("run_time", "")
    stats = result.get("statistics") or {}
    return (
        f'<p class="muted">Validé le {_t(when)} — Great Expectations {_t(version)} — '
        f"{_t(stats.get('successful_expectations'))}/{_t(stats.get('evaluated_expectations'))} "
        "contrôles réussis. Résultat complet : fichier JSON à côté de cette page.</p>"
    )
