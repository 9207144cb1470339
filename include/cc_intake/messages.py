"""The operators' e-mails, in French, all in one place: what each alert says.

Pure module (no Airflow): ``include.cc_intake.airflow.notify`` gathers the facts from the Airflow
context into a :class:`Failure` and calls one builder of :data:`FAILURE_BUILDERS` with it. Every
builder returns an :class:`~include.cc_intake.mail.Email` whose subject reads
``[intake][<provider>][<day>] <what is wrong>`` and whose body says what happened, what to do
next and links to the Airflow run. The builders only say *what*: a list of blocks that
:mod:`include.cc_intake.mail` renders as the text and HTML parts. Every free text (error
messages, file names, details) goes through :func:`include.cc_intake.redact.sanitize`: secrets
are redacted and phone numbers masked (contract §2, §7).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from include.cc_intake.constants import dag_id_of
from include.cc_intake.mail import Block, Email, Facts, Items, Link, Para, Pre, render
from include.cc_intake.redact import one_line, sanitize

# --------------------------------------------------------------------------- the facts


@dataclass(frozen=True, kw_only=True)
class Failure:
    """What every failure e-mail is built from: who, which day, which step, what went wrong.

    :param run_link: the Airflow run's page; ``task_link`` its failed task's log page.
    :param task_id: the failed step; absent only for a :func:`config_error`.
    :param error: the error text (sanitized when shown).
    :param try_number: how many tries the step had, when known.
    :param details: structured facts from the exception; each builder documents its keys.
    :param proof_link: the day's proof page(s), for :func:`reconciliation_failed` and
        :func:`validation_failed`.
    :param no_retry: the step failed at once, without automatic retry, because a retry cannot
        fix the error (``retryable = False`` in errors.py); the e-mail says so.
    """

    provider_id: str
    provider_name: str
    day: dt.date | str
    run_link: str
    error: object
    task_id: str | None = None
    try_number: int | None = None
    details: Mapping[str, Any] | None = None
    task_link: str | None = None
    proof_link: str | None = None
    no_retry: bool = False


_WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

# Airflow task-instance states as an operator reads them.
_TI_STATES = {
    None: "pas encore démarrée",
    "none": "pas encore démarrée",
    "scheduled": "planifiée",
    "queued": "en file d'attente",
    "running": "en cours",
    "deferred": "en attente (différée)",
    "up_for_reschedule": "en attente (reprogrammée)",
    "up_for_retry": "nouvelle tentative prévue",
    "restarting": "redémarrage",
    "success": "terminée",
    "failed": "en échec",
    "upstream_failed": "bloquée (une étape précédente a échoué)",
    "skipped": "ignorée",
    "removed": "supprimée",
}
_ACTIVE_STATES = ("running", "deferred", "up_for_reschedule", "up_for_retry", "queued", "scheduled")

_LABELS = {
    "seen": "vus",
    "listed": "listés",
    "ready": "prêts",
    "settling": "en cours d'écriture",
    "too_young": "trop récents",
    "not_ready": "pas prêts",
    "folder": "dossier",
    "missing": "manquants",
    "extra": "en trop",
    "duplicate": "en double",
    "empty": "vides",
    "rejected": "rejetés",
    "unrecognised": "non reconnus",
    "other_date": "d'une autre date",
    "expected": "attendu",
    "got": "reçu",
    "files": "fichiers",
    "bytes": "octets",
    "url": "URL",
    "status": "statut HTTP",
    "waited": "attente",
    "file": "fichier",
    "field": "champ",
    "page": "page",
    "attempts": "essais",
    "previous": "export précédent",
    "held": "déjà copiés, plus sur le serveur",
}


def format_day(day: dt.date | str) -> str:
    """``2026-11-25 (mercredi 25 novembre 2026)``; a non-date is shown as given."""
    if isinstance(day, dt.datetime):
        day = day.date()
    if not isinstance(day, dt.date):
        try:
            day = dt.date.fromisoformat(str(day))
        except ValueError:
            return sanitize(day, limit=40)
    weekday, month = _WEEKDAYS[day.weekday()], _MONTHS[day.month - 1]
    return f"{day.isoformat()} ({weekday} {day.day} {month} {day.year})"


def _day_key(day: dt.date | str) -> str:
    if isinstance(day, dt.datetime):
        return day.date().isoformat()
    if isinstance(day, dt.date):
        return day.isoformat()
    return sanitize(day, limit=40)


def subject_line(provider_id: str, day: dt.date | str, what: str) -> str:
    """``[intake][<provider>][<day>] <what>`` — what every alert subject looks like, on one line."""
    return one_line(f"[intake][{sanitize(provider_id, limit=80)}][{_day_key(day)}] {what}")


def _email(provider_id: str, day: dt.date | str, what: str, blocks: Sequence[Block]) -> Email:
    return render(subject_line(provider_id, day, what), blocks)


# --------------------------------------------------------------------------- shared pieces


def _header(
    *,
    provider_id: str,
    provider_name: str,
    day: dt.date | str,
    task_id: str | None = None,
    try_number: int | None = None,
) -> Facts:
    rows = [
        (
            "Prestataire",
            f"{sanitize(provider_name, limit=120)} ({sanitize(provider_id, limit=80)})",
        ),
        ("Journée traitée", format_day(day)),
    ]
    if task_id:
        step = sanitize(task_id, limit=120)
        if try_number:
            step += f" (tentative {int(try_number)})"
        rows.append(("Étape", step))
    return Facts(tuple(rows))


def _dag_id(provider_id: str) -> str:
    return dag_id_of(sanitize(provider_id, limit=80))


def rerun_instructions(
    provider_id: str,
    day: dt.date | str,
    task_id: str | None = None,
    *,
    whole_run: bool = False,
) -> str:
    """How to re-run the day, in one sentence with the exact command (README operator guide).

    ``whole_run``: a validation reads what earlier steps fetched (the report, the export), so
    after the provider fixes its data the whole run must be cleared, not the failed task.
    """
    key = _day_key(day)
    if whole_run:
        what = "l'exécution entière (pour relire le rapport et l'export corrigés)"
    elif task_id:
        what = f"la tâche « {sanitize(task_id, limit=120)} »"
    else:
        what = "la tâche en échec"
    conf = json.dumps({"target_date": key})
    return (
        f"Relancer la journée : dans Airflow, ouvrir l'exécution (lien ci-dessous), sélectionner "
        f"{what} et « Clear » (effacer) ; ou déclencher une exécution pour ce jour : "
        f"airflow dags trigger {_dag_id(provider_id)} -c '{conf}'. "
        f"Une relance est sans risque : rien n'est dupliqué ni perdu."
    )


def _rerun(failure: Failure, *, whole_run: bool = False) -> str:
    return rerun_instructions(
        failure.provider_id, failure.day, failure.task_id, whole_run=whole_run
    )


def _value(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{_label(k)} {_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(_value(v) for v in value)
    return sanitize(value, limit=500)


def _label(key: object) -> str:
    return _LABELS.get(str(key), sanitize(key, limit=60))


def _bullets(values: Iterable[Any], *, limit: int = 20) -> tuple[str, ...]:
    items = [sanitize(v, limit=300) for v in values]
    if len(items) > limit:
        items = [*items[:limit], f"… et {len(items) - limit} autre(s) (voir le manifeste)"]
    return tuple(items)


def _other_details(details: Mapping[str, Any] | None, known: Collection[str]) -> list[Block]:
    rest = [(k, v) for k, v in (details or {}).items() if k not in known and v not in (None, "")]
    if not rest:
        return []
    return [Items("Autres informations", tuple(f"{_label(k)} : {_value(v)}" for k, v in rest))]


def _counts_lines(counts: Mapping[str, Any]) -> tuple[str, ...]:
    lines = []
    for name, value in counts.items():
        if isinstance(value, Mapping) and "expected" in value and "got" in value:
            expected, got = value["expected"], value["got"]
            line = f"{sanitize(name, limit=40)} : attendu {_value(expected)}, reçu {_value(got)}"
            if isinstance(expected, int) and isinstance(got, int):
                line += f" (écart {got - expected:+d})"
            lines.append(line)
        else:
            lines.append(f"{sanitize(name, limit=40)} : {_value(value)}")
    return tuple(lines)


def _error_block(error: object) -> list[Block]:
    text = sanitize(error) if error not in (None, "") else ""
    return [Pre("Message d'erreur", text)] if text else []


def _links(run_link: str, task_link: str | None = None) -> list[Block]:
    blocks: list[Block] = [Link("Exécution Airflow", run_link)]
    if task_link:
        blocks.append(Link("Journal de la tâche", task_link))
    return blocks


# --------------------------------------------------------------------------- the e-mails

SUBJECTS = {
    "deadline": "délai de livraison dépassé",
    "not_ready": "enregistrements non disponibles",
    "copy": "échec de la copie des enregistrements",
    "host_key": "clé d'hôte SSH refusée",
    "report": "rapport de fin de journée absent ou illisible",
    "reconciliation": "écart entre enregistrements et rapport",
    "validation": "échec de la validation des données",
    "export": "échec de l'export CRM",
    "export_shrunk": "export CRM en baisse, export précédent conservé",
    "task": "échec d'une tâche",
    "config": "configuration du prestataire invalide",
}


def deadline_missed(
    *,
    provider_id: str,
    provider_name: str,
    day: dt.date | str,
    run_link: str,
    deadline: str,
    timezone: str,
    run_state: str | None = None,
    steps: Mapping[str, str | None] | None = None,
) -> Email:
    """The day is not complete by the provider's delivery deadline (scheduled runs only).

    :param deadline: the configured local deadline (``HH:MM``, day J, in ``timezone``).
    :param run_state: the run's state when the deadline passed (``running``, ``queued``…).
    :param steps: task id → task-instance state, to tell which step the run is in.
    """
    name = sanitize(provider_name, limit=120)
    limit = f"{sanitize(deadline, limit=10)}, heure de {sanitize(timezone, limit=60)}"
    state = _TI_STATES.get(run_state, sanitize(run_state or "en cours", limit=40))
    blocks: list[Block] = [
        _header(provider_id=provider_id, provider_name=provider_name, day=day),
        Para(
            f"La journée {_day_key(day)} du prestataire {name} n'est pas complète à l'heure "
            f"limite de livraison ({limit}) : l'exécution planifiée est toujours {state}."
        ),
    ]
    if steps:
        active = [t for t, s in steps.items() if s in _ACTIVE_STATES]
        if active:
            blocks.append(
                Para(
                    "Étape en cours : "
                    + ", ".join(
                        f"{sanitize(t, limit=120)} ({_TI_STATES[steps[t]]})" for t in active
                    )
                )
            )
        blocks.append(
            Items(
                "État des étapes",
                tuple(
                    f"{sanitize(t, limit=120)} : {_TI_STATES.get(s, sanitize(s or '', limit=40))}"
                    for t, s in steps.items()
                ),
            )
        )
    blocks += [
        Items(
            "Que faire",
            (
                "Ouvrir l'exécution dans Airflow (lien ci-dessous) et voir quelle étape attend.",
                "Si l'attente des enregistrements est en cours : les fichiers du jour ne sont pas "
                "(ou pas tous) sur le serveur du prestataire. Contacter le prestataire pour "
                "qu'il les dépose ; l'exécution les copiera d'elle-même s'ils arrivent avant la "
                "fin du délai d'attente (wait_timeout).",
                "Si une étape échoue ensuite, un e-mail d'échec précisera quoi corriger. "
                + rerun_instructions(provider_id, day),
            ),
            ordered=True,
        ),
        Para(
            "Cet avis ne concerne que les exécutions planifiées : la relance ou le rattrapage "
            "d'une journée passée ne l'envoie pas, et une exécution déjà en échec (dont l'e-mail "
            "d'échec est parti) non plus."
        ),
        *_links(run_link),
    ]
    return _email(provider_id, day, SUBJECTS["deadline"], blocks)


NO_RETRY = (
    "Aucune nouvelle tentative automatique : cette erreur ne disparaît pas d'elle-même, l'étape "
    "a donc échoué sans attendre. Rien ne sera retenté tant que la cause n'est pas corrigée ; "
    "relancer ensuite la journée (voir « Que faire »)."
)


def _tries(failure: Failure) -> str:
    """How a lead sentence ends: after how many tries the step gave up, when known."""
    return f" après {int(failure.try_number)} tentative(s)." if failure.try_number else "."


def _failure_email(
    failure: Failure,
    what: str,
    *,
    lead: str,
    todo: Sequence[str],
    facts: Sequence[Block] = (),
    known: Collection[str] = (),
    proof: str | None = None,
) -> Email:
    """The layout every failure e-mail shares, so they differ only in what they say.

    Header, ``lead``, the e-mail's own ``facts``, the error, the ``details`` no fact block
    showed (``known`` are those it did), the numbered ``todo``, then the links.
    """
    f = failure
    blocks: list[Block] = [
        _header(
            provider_id=f.provider_id,
            provider_name=f.provider_name,
            day=f.day,
            task_id=f.task_id,
            try_number=f.try_number,
        ),
        Para(lead),
        *([Para(NO_RETRY)] if f.no_retry else []),
        *facts,
        *_error_block(f.error),
        *_other_details(f.details, known),
        Items("Que faire", tuple(todo), ordered=True),
    ]
    if proof:
        blocks.append(Link("Page de preuve", sanitize(proof, limit=500)))
    blocks += _links(f.run_link, f.task_link)
    return _email(f.provider_id, f.day, what, blocks)


def recordings_not_ready(failure: Failure) -> Email:
    """The day's recordings were absent or still moving when ``wait_timeout`` ran out.

    ``details`` may carry ``directions`` ({direction: what was seen}) and ``waited``.
    """
    details = failure.details or {}
    day, name = _day_key(failure.day), sanitize(failure.provider_name, limit=120)
    facts: list[Block] = []
    directions = details.get("directions")
    if isinstance(directions, Mapping) and directions:
        facts.append(
            Items(
                "Ce qui a été vu, par sens d'appel",
                tuple(f"{sanitize(d, limit=40)} : {_value(v)}" for d, v in directions.items()),
            )
        )
    return _failure_email(
        failure,
        SUBJECTS["not_ready"],
        lead=(
            f"Les enregistrements du {day} ne sont pas disponibles (absents, moins nombreux "
            f"que ne l'annonce le rapport, ou encore en cours d'écriture) sur le serveur "
            f"du prestataire {name} à la fin du délai d'attente"
            + (f" ({_value(details['waited'])})." if details.get("waited") else " (wait_timeout).")
            + " Ce qui est arrivé est tout de même copié puis rapproché du rapport : "
            "l'e-mail de l'étape de rapprochement, s'il y en a un, nomme l'écart."
        ),
        facts=facts,
        known={"directions", "waited"},
        todo=(
            f"Contacter le prestataire {name} : son script de dépôt a-t-il tourné pour le {day} ? "
            "Les fichiers doivent être dans les dossiers configurés (ENTRANTS, SORTANTS).",
            "Vérifier ce que le serveur montre : make check "
            f"PROVIDER={sanitize(failure.provider_id, limit=80)} DATE={day} (ne copie rien).",
            "Quand les fichiers sont là : " + _rerun(failure),
        ),
    )


def copy_failed(failure: Failure, *, host_key: bool = False, certificate: bool = False) -> Email:
    """A copy failed after its retries; ``details['files']`` lists the files concerned.

    :param host_key: the server's host key is unknown or changed (wait or copy step): no session
        opened, the step failed at once without retry, and the next step is to verify the key.
    :param certificate: the same for an FTPS server's certificate (pin or CA file).
    """
    details = failure.details or {}
    day, name = _day_key(failure.day), sanitize(failure.provider_name, limit=120)
    files = details.get("files")
    facts: list[Block] = []
    if files:
        facts.append(
            Items("Fichiers concernés", _bullets(files if not isinstance(files, str) else [files]))
        )
    if certificate:
        check = f"make check PROVIDER={sanitize(failure.provider_id, limit=80)} DATE={day}"
        return _failure_email(
            replace(failure, no_retry=True),
            SUBJECTS["certificate"],
            lead=(
                f"Le serveur FTPS du prestataire {name} a présenté un certificat TLS inconnu "
                "ou différent de celui configuré : la connexion a été refusée avant l'envoi du "
                f"mot de passe et rien n'a été lu ni copié pour le {day}. Aucun autre point "
                "d'accès n'a été essayé. Cela peut être un renouvellement légitime du "
                "certificat ou une interception de la connexion."
            ),
            facts=facts,
            known={"files"},
            todo=(
                f"Afficher l'empreinte SHA-256 du certificat que présente le serveur : {check} "
                "(ne copie rien, n'accepte rien).",
                f"Faire confirmer cette empreinte par le prestataire {name} par un autre canal. "
                "Si elle ne correspond pas : ne rien changer et alerter la sécurité.",
                "Si elle correspond : la mettre dans l'extra « cert_sha256 » de la connexion "
                "Airflow nommée dans le message d'erreur (ou le fichier de l'autorité dans "
                "« ca_file »).",
                _rerun(failure),
            ),
        )
    if host_key:
        # The session never opened: nothing was listed or copied. A retry would meet the same
        # key, so none happens (errors.HostKeyError.retryable) and the e-mail says so.
        check = f"make check PROVIDER={sanitize(failure.provider_id, limit=80)} DATE={day}"
        return _failure_email(
            replace(failure, no_retry=True),
            SUBJECTS["host_key"],
            lead=(
                f"Le serveur SFTP du prestataire {name} a présenté une clé d'hôte SSH inconnue "
                "ou différente de celle configurée : la connexion a été refusée et rien n'a "
                f"été lu ni copié pour le {day}. Cela peut être un changement de serveur "
                "légitime ou une interception de la connexion."
            ),
            facts=facts,
            known={"files"},
            todo=(
                f"Afficher l'empreinte de la clé que présente le serveur : {check} (ne copie "
                "rien, n'accepte rien).",
                f"Faire confirmer cette empreinte par le prestataire {name} par un autre canal "
                "(téléphone, contact connu). Si elle ne correspond pas : ne rien changer et "
                "alerter la sécurité. Ne jamais désactiver la vérification.",
                "Si elle correspond : mettre la nouvelle clé dans l'extra « host_key » de la "
                "connexion Airflow nommée dans le message d'erreur (make check affiche la "
                "valeur exacte).",
                _rerun(failure),
            ),
        )
    first = (
        "Vérifier que le serveur répond et que nos identifiants sont valides : "
        f"make check PROVIDER={sanitize(failure.provider_id, limit=80)} DATE={day} "
        "(ne copie rien) ; vérifier aussi l'espace disque de la racine des données."
    )
    return _failure_email(
        failure,
        SUBJECTS["copy"],
        lead=(
            f"La copie des enregistrements du {day} depuis le serveur du "
            f"prestataire {name} a échoué"
            + _tries(failure)
            + " Les fichiers déjà copiés sont complets et conservés ; aucun fichier partiel "
            "n'est visible sous son nom final."
        ),
        facts=facts,
        known={"files"},
        todo=(first, _rerun(failure)),
    )


def report_failed(failure: Failure) -> Email:
    """The provider's end-of-day report is missing or malformed: nothing can be reconciled."""
    day, name = _day_key(failure.day), sanitize(failure.provider_name, limit=120)
    return _failure_email(
        failure,
        SUBJECTS["report"],
        lead=(
            f"Le rapport de fin de journée du {day} du prestataire {name} est absent "
            "ou illisible : "
            "le nombre d'enregistrements copiés n'a pas pu être rapproché des appels déclarés."
        ),
        todo=(
            f"Demander au prestataire {name} de publier (ou corriger) le rapport du {day} à "
            "l'emplacement configuré ; le message d'erreur dit ce qui était attendu.",
            _rerun(failure),
        ),
    )


def _check_failed(kind: str, failure: Failure) -> Email:
    details = failure.details or {}
    day, name = _day_key(failure.day), sanitize(failure.provider_name, limit=120)
    if kind == "reconciliation":
        lead = (
            f"Les enregistrements copiés pour le {day} ne correspondent pas au rapport "
            f"de fin de journée du prestataire {name}."
        )
    else:
        lead = (
            f"La validation des données du {day} du prestataire {name} a échoué : "
            "les comptes ou la structure ne sont pas ceux attendus."
        )
    facts: list[Block] = []
    counts: dict[str, Any] = {}
    for key in ("counts", "recordings"):
        if isinstance(details.get(key), Mapping):
            counts.update(details[key])
    if isinstance(details.get("digital"), Mapping):
        counts["Interactions digitales"] = details["digital"]
    if counts:
        facts.append(Items("Attendu et reçu", _counts_lines(counts)))
    gaps = details.get("gaps")
    if isinstance(gaps, Mapping):
        for gap, names in gaps.items():
            if names:
                listed = [names] if isinstance(names, (str, int)) else list(names)
                facts.append(Items(f"Enregistrements {_label(gap)}", _bullets(listed)))
    failed = details.get("failed_expectations")
    if failed:
        facts.append(
            Items(
                "Contrôles en échec", _bullets(failed if not isinstance(failed, str) else [failed])
            )
        )
    return _failure_email(
        failure,
        SUBJECTS[kind],
        lead=lead,
        facts=facts,
        known={"counts", "recordings", "digital", "gaps", "failed_expectations", "proof"},
        todo=(
            "Ouvrir la page de preuve du jour (lien ci-dessous) : elle détaille, par sens "
            "d'appel, les fichiers manquants, en trop, en double, vides ou rejetés.",
            f"Si des fichiers manquent : demander au prestataire {name} de les déposer. "
            "Si le rapport est faux : demander un rapport corrigé. Si l'écart est accepté, "
            "ajuster la tolérance (daily_report.tolerance) du prestataire.",
            _rerun(failure, whole_run=True),
        ),
        proof=failure.proof_link or (str(details["proof"]) if details.get("proof") else None),
    )


def reconciliation_failed(failure: Failure) -> Email:
    """Copied recordings do not match the report.

    ``details``: ``counts``/``recordings`` ({direction: {expected, got}}), ``digital``
    ({expected, got}), ``gaps`` ({missing|extra|duplicate|empty|rejected: [names]}).
    """
    return _check_failed("reconciliation", failure)


def validation_failed(failure: Failure) -> Email:
    """A validation suite failed; same ``details`` as :func:`reconciliation_failed` plus
    ``failed_expectations`` (a list of short descriptions)."""
    return _check_failed("validation", failure)


def export_shrunk(failure: Failure) -> Email:
    """The CRM now returns fewer interactions than the landed export, which was kept.

    ``details``: ``previous`` (landed count) and ``got`` (the CRM's count now).
    """
    details = failure.details or {}
    day, name = _day_key(failure.day), sanitize(failure.provider_name, limit=120)
    got, previous = int(details["got"]), int(details["previous"])
    conf = json.dumps({"target_date": day, "replace_digital": True})
    return _failure_email(
        failure,
        SUBJECTS["export_shrunk"],
        lead=(
            f"L'export CRM du {day} du prestataire {name} n'a pas remplacé l'export déjà "
            f"reçu : le CRM renvoie {got} interactions, l'export précédent en contenait "
            f"{previous}. L'export précédent est conservé tel quel (fichier et page de preuve)."
        ),
        facts=[Facts((("Export précédent", str(previous)), ("CRM maintenant", str(got))))],
        known={"previous", "got", "url", "page", "status"},
        todo=(
            f"Demander au prestataire {name} pourquoi son CRM renvoie moins d'interactions "
            f"pour le {day} (purge, archivage, filtre modifié ?). Tant qu'il ne les renvoie "
            "pas toutes, ne rien faire : la preuve déjà obtenue reste valable.",
            "Si la baisse est voulue (données corrigées côté CRM), forcer le remplacement : "
            f"airflow dags trigger {_dag_id(failure.provider_id)} -c '{conf}'.",
        ),
    )


def export_failed(failure: Failure) -> Email:
    """The CRM export failed; ``details`` may carry ``url`` (path, no secrets), ``status``,
    ``page``, and ``malformed``/``attempts`` for a page that came whole but unreadable.

    With ``previous`` and ``got`` (the CRM returns fewer interactions than landed) the e-mail
    is :func:`export_shrunk`.
    """
    details = failure.details or {}
    if isinstance(details.get("previous"), int) and isinstance(details.get("got"), int):
        return export_shrunk(failure)
    name = sanitize(failure.provider_name, limit=120)
    status = details.get("status")
    if details.get("malformed"):
        advice = (
            f"Le CRM du prestataire {name} renvoie une page complète mais illisible (JSON ou "
            "CSV invalide, ou champs attendus absents), y compris redemandée deux fois en "
            "moins d'une minute. Vérifier auprès "
            "du prestataire que son export répond correctement, ou que la configuration "
            "(digital.records_path, digital.id_field) correspond à ses pages, puis relancer."
        )
    elif isinstance(status, int) and status in (401, 403):
        advice = (
            "Le CRM refuse nos identifiants (HTTP "
            f"{status}) : vérifier le jeton ou le mot de passe de la connexion Airflow du CRM."
        )
    elif isinstance(status, int) and 400 <= status < 500:
        advice = (
            f"Le CRM refuse la requête (HTTP {status}) : vérifier l'adresse et les paramètres de "
            "l'export (digital.endpoint, digital.params) dans la configuration du prestataire."
        )
    else:
        advice = (
            f"Le CRM du prestataire {name} est indisponible ou a renvoyé une page invalide : "
            "vérifier auprès du prestataire qu'il répond, puis relancer."
        )
    facts = [
        (_label(k), _value(details[k]))
        for k in ("url", "page", "status", "attempts")
        if details.get(k) not in (None, "")
    ]
    return _failure_email(
        failure,
        SUBJECTS["export"],
        lead=(
            "L'export CRM des interactions digitales (chats, e-mails, messages) du "
            f"{_day_key(failure.day)} du prestataire {name} a échoué" + _tries(failure)
        ),
        facts=[Facts(tuple(facts))] if facts else [],
        known={"url", "page", "status", "attempts", "malformed"},
        todo=(advice, _rerun(failure)),
    )


def task_failed(failure: Failure) -> Email:
    """Fallback for a failure no other e-mail describes."""
    step = sanitize(failure.task_id, limit=120)
    return _failure_email(
        failure,
        f"{SUBJECTS['task']} ({step})",
        lead=(
            f"L'étape « {step} » de l'ingestion du {_day_key(failure.day)} de "
            f"{sanitize(failure.provider_name, limit=120)} a échoué" + _tries(failure)
        ),
        todo=(
            "Lire le journal de la tâche (lien ci-dessous) : sa première erreur dit quel "
            "fichier ou quelle adresse pose problème et ce qui était attendu.",
            "Corriger la cause, puis : " + _rerun(failure),
        ),
    )


def config_error(failure: Failure) -> Email:
    """The provider YAML (or a run's ``target_date``) is invalid; ``details['file']`` names it.

    ``day`` may be the raw ``target_date`` or ``"inconnue"``, and ``task_id`` may be absent.
    """
    provider_id = failure.provider_id
    return _failure_email(
        failure,
        SUBJECTS["config"],
        lead=(
            f"La configuration du prestataire {sanitize(failure.provider_name, limit=120)} est "
            "invalide : aucune journée de ce prestataire ne peut être traitée tant qu'elle "
            "n'est pas corrigée. "
            "Les autres prestataires ne sont pas affectés."
        ),
        todo=(
            "Corriger le fichier et le champ nommés dans le message d'erreur (fichier YAML "
            "du prestataire dans include/providers/, ou la date target_date de l'exécution).",
            f"Vérifier : make check PROVIDER={sanitize(provider_id, limit=80)} ; le DAG "
            f"{_dag_id(provider_id)} redevient normal à la prochaine lecture des DAGs.",
            # Every day of the provider is blocked, not one step: no task to name here.
            "Puis relancer les journées manquées : " + rerun_instructions(provider_id, failure.day),
        ),
    )


# Failure kind → builder, the one dispatch table (notify picks the kind from the exception; an
# unknown host key is ``copy_failed(failure, host_key=True)``).
FAILURE_BUILDERS: dict[str, Callable[[Failure], Email]] = {
    "not_ready": recordings_not_ready,
    "copy": copy_failed,
    "report": report_failed,
    "reconciliation": reconciliation_failed,
    "validation": validation_failed,
    "export": export_failed,
    "task": task_failed,
    "config": config_error,
}


# --------------------------------------------------------------------------- the manifest
# (errors.ManifestError: before it, a missing manifest sent "validation failed" and pointed at a
# proof page that was never written.)

SUBJECTS["manifest"] = "manifeste des enregistrements absent ou illisible"
SUBJECTS["certificate"] = "certificat FTPS refusé"
SUBJECTS["backup_endpoint"] = "serveur principal injoignable, point d'accès de secours utilisé"


def manifest_missing(failure: Failure) -> Email:
    """The day's manifest is missing or unreadable: nothing reconciled, no proof page written.

    ``details['path']`` is the manifest expected.
    """
    from include.cc_intake.constants import TASK_COPY

    details = failure.details or {}
    day, name = _day_key(failure.day), sanitize(failure.provider_name, limit=120)
    path = details.get("path")
    return _failure_email(
        failure,
        SUBJECTS["manifest"],
        lead=(
            f"Le manifeste des enregistrements du {day} du prestataire {name} (la liste de ce "
            "que l'étape de copie a reçu) est absent ou illisible : les enregistrements n'ont "
            "pas pu être rapprochés du rapport de fin de journée, et aucune page de preuve n'a "
            "été écrite pour ce jour."
        ),
        facts=[Facts((("Manifeste attendu", sanitize(path, limit=500)),))] if path else [],
        known={"path"},
        todo=(
            f"Vérifier que l'étape « {TASK_COPY} » a réellement tourné pour le {day} (elle a pu "
            "être marquée réussie à la main) et que le fichier nommé ci-dessus n'a pas été "
            "déplacé ou supprimé.",
            "La copie réécrit le manifeste : "
            + rerun_instructions(failure.provider_id, failure.day, TASK_COPY),
        ),
    )


FAILURE_BUILDERS["manifest"] = manifest_missing


# --------------------------------------------------------------------------- the handshake
# (handshake.HandshakeError: the marker or the move on the provider's server failed, #12.)

SUBJECTS["handshake"] = "accusé de réception non déposé chez le prestataire"


def handshake_failed(failure: Failure) -> Email:
    """The completion handshake (``recordings.on_complete``) failed on the provider's server.

    ``details`` may carry ``endpoint`` (the connection id) and ``path`` (the remote path).
    """
    from include.cc_intake.constants import TASK_CONFIRM

    details = failure.details or {}
    day, name = _day_key(failure.day), sanitize(failure.provider_name, limit=120)
    rows = [
        (label, sanitize(details[key], limit=500))
        for key, label in (("endpoint", "Connexion"), ("path", "Chemin distant"))
        if details.get(key)
    ]
    return _failure_email(
        failure,
        SUBJECTS["handshake"],
        lead=(
            f"La journée du {day} du prestataire {name} est copiée et validée (verte), mais "
            "l'accusé de réception n'a pas pu être déposé sur son serveur"
            + _tries(failure)
            + " Rien n'est perdu : les enregistrements restent copiés et la preuve du jour "
            "est inchangée ; seul le prestataire ne sait pas encore ce que nous avons reçu."
        ),
        facts=[Facts(tuple(rows))] if rows else [],
        known={"endpoint", "path"},
        todo=(
            f"Vérifier avec le prestataire {name} que notre compte peut écrire, créer un "
            "dossier et renommer dans ses dossiers de dépôt (droits d'écriture, quota).",
            "Puis relancer l'étape seule : "
            + rerun_instructions(failure.provider_id, failure.day, TASK_CONFIRM),
        ),
    )


FAILURE_BUILDERS["handshake"] = handshake_failed


# --------------------------------------------------------------------------- a purged day
# (retention.PurgedDayError: a re-run of a day whose personal data the retention deleted, #12.)

SUBJECTS["purged"] = "journée purgée (conservation des données), relance refusée"


def day_purged(failure: Failure) -> Email:
    """A re-run of a day the retention purged, without ``restore``: nothing was copied.

    ``details`` may carry ``purged_at`` and ``kinds`` (what was purged).
    """
    details = failure.details or {}
    day, name = _day_key(failure.day), sanitize(failure.provider_name, limit=120)
    rows = []
    if details.get("purged_at"):
        rows.append(("Purgée le", sanitize(details["purged_at"], limit=40)))
    if details.get("kinds"):
        rows.append(("Données purgées", sanitize(", ".join(details["kinds"]), limit=80)))
    conf = json.dumps({"target_date": day, "restore": True})
    return _failure_email(
        failure,
        SUBJECTS["purged"],
        lead=(
            f"La journée du {day} du prestataire {name} a été purgée par la politique de "
            "conservation des données personnelles : ses enregistrements ou son export CRM ont "
            "été supprimés, seuls le manifeste, le rapport et la preuve sont gardés. Cette "
            "exécution ne recopie rien sans demande explicite."
        ),
        facts=[Facts(tuple(rows))] if rows else [],
        known={"purged_at", "kinds"},
        todo=(
            "Si la relance n'était pas voulue : rien à faire, la journée reste purgée.",
            "Pour recopier volontairement cette journée (demande légale, litige) : airflow "
            f"dags trigger {_dag_id(failure.provider_id)} -c '{conf}'. Attention : une journée "
            "plus ancienne que la durée de conservation est purgée de nouveau au prochain "
            "passage du DAG cc_intake_housekeeping.",
        ),
    )


FAILURE_BUILDERS["purged"] = day_purged


# --------------------------------------------------------------------------- retention
# (the cc_intake_housekeeping DAG's purge task failed: not a processed day's failure, #12.)

SUBJECTS["retention"] = "échec de la purge des données personnelles (conservation)"


def retention_failed(failure: Failure) -> Email:
    """A ``purge_<provider>`` task of the housekeeping DAG failed; ``day`` is the run's date."""
    name = sanitize(failure.provider_name, limit=120)
    step = sanitize(failure.task_id, limit=120)
    return _failure_email(
        failure,
        SUBJECTS["retention"],
        lead=(
            f"La purge des données personnelles de {name} (étape « {step} » du DAG "
            "cc_intake_housekeeping) a échoué" + _tries(failure) + " Les journées plus "
            "anciennes que la durée de conservation gardent donc leurs enregistrements ou leur "
            "export CRM tant que la purge n'a pas abouti ; rien d'autre n'est touché."
        ),
        todo=(
            "Lire le journal de la tâche (lien ci-dessous) : un réglage "
            "CC_INTAKE_RETENTION_* illisible, ou des droits insuffisants sur la racine des "
            "données, sont les causes habituelles.",
            f"Corriger la cause, puis relancer la tâche « {step} » (« Clear ») ou attendre le "
            "passage du lendemain : la purge reprend là où elle s'est arrêtée.",
        ),
    )


# --------------------------------------------------------------------------- backup endpoint


def primary_unreachable(
    *,
    provider_id: str,
    provider_name: str,
    day: dt.date | str,
    served_by: str,
    unreachable: Sequence[tuple[str, str]],
    protocol: str = "sftp",
) -> Email:
    """The day is served by a backup endpoint: the ones before it did not answer (once a day).

    Not a failure: the run goes on through ``served_by``; the manifest's ``endpoint`` column
    and the proof page name it.

    :param unreachable: ``(connection id, error)`` of each endpoint tried before, in order.
    """
    name = sanitize(provider_name, limit=120)
    server = "FTPS" if protocol == "ftps" else "SFTP"
    blocks: list[Block] = [
        _header(provider_id=provider_id, provider_name=provider_name, day=day),
        Para(
            f"Le serveur {server} principal du prestataire {name} n'a pas répondu pour la "
            f"journée {_day_key(day)} : les enregistrements sont lus par le point d'accès de "
            f"secours « {sanitize(served_by, limit=120)} ». La copie continue normalement ; "
            "la colonne « endpoint » du manifeste et la page de preuve indiquent le point "
            "d'accès qui a servi chaque fichier."
        ),
        Items(
            "Points d'accès injoignables",
            tuple(
                f"{sanitize(conn_id, limit=120)} : {sanitize(error, limit=300)}"
                for conn_id, error in unreachable
            ),
        ),
        Items(
            "Que faire",
            (
                f"Prévenir le prestataire {name} que son lien principal ne répond pas.",
                "Vérifier la connexion Airflow du point d'accès principal : make check "
                f"PROVIDER={sanitize(provider_id, limit=80)} DATE={_day_key(day)}.",
            ),
            ordered=True,
        ),
        Para("Cet avis est envoyé une seule fois par journée traitée."),
    ]
    return _email(provider_id, day, SUBJECTS["backup_endpoint"], blocks)
