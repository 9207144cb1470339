"""The sandbox's CRM export server, plugged into :class:`~include.cc_intake.sandbox.env.Sandbox`.

Two API styles, as real CRMs differ: acme's cursor export with a stated total behind a bearer
token, baobab's numbered pages with an RFC 8288 ``Link`` header behind an API-key header. Each
answers one 429 along the way, as busy CRMs do.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

from include.cc_intake.sandbox.crm_server import ApiKeyAuth, BearerAuth, CrmRoute, CrmServer, Style

if TYPE_CHECKING:
    from include.cc_intake.sandbox.env import Sandbox

# Per provider: route style, auth kind, interactions per day.
STYLES: dict[str, tuple[Style, str, int]] = {
    "acme_abidjan": ("cursor", "bearer", 240),
    "baobab_douala": ("page_link", "api_key", 130),
}


class CrmService:
    """One local CRM server answering every sandbox provider that has a ``digital`` section.

    :param port: the server's port (default: a free one).
    :param secrets: fixed token/API key per connection id (``crm_acme``); the others get a
        random one. ``make up`` fixes them so ``airflow_settings.yaml`` can hold them.
    """

    def __init__(self, *, port: int = 0, secrets: Mapping[str, str] | None = None) -> None:
        self.port = port
        self.secrets = dict(secrets or {})
        self.server: CrmServer | None = None
        self._connections: dict[str, str] = {}

    def start(self, sandbox: Sandbox) -> None:
        routes = []
        extras: dict[str, dict[str, str]] = {}
        for index, (pid, cfg) in enumerate(sorted(sandbox.providers.items())):
            if cfg.digital is None:
                continue
            style, auth_kind, count = STYLES.get(pid, ("cursor", "bearer", 100))
            secret = self.secrets.get(cfg.digital.http_conn_id) or secrets.token_urlsafe(16)
            if auth_kind == "bearer":
                auth: BearerAuth | ApiKeyAuth = BearerAuth(secret)
                extra = {"Authorization": f"Bearer {secret}"}
            else:
                auth = ApiKeyAuth(secret)
                extra = {"X-API-Key": secret}
            routes.append(
                CrmRoute(
                    path=cfg.digital.endpoint,
                    style=style,
                    tz=cfg.timezone,
                    count=count,
                    seed=index + 1,
                    auth=auth,
                )
            )
            extras[cfg.digital.http_conn_id] = extra
        self.server = CrmServer(routes, port=self.port)
        port = self.server.start()
        self._connections = {
            conn_id: json.dumps(
                {
                    "conn_type": "http",
                    "host": "127.0.0.1",
                    "port": port,
                    "schema": "http",
                    "extra": extra,
                }
            )
            for conn_id, extra in extras.items()
        }

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def connections(self) -> Mapping[str, str]:
        return dict(self._connections)


def default_services(
    *, crm_port: int = 0, crm_secrets: Mapping[str, str] | None = None
) -> list[CrmService]:
    return [CrmService(port=crm_port, secrets=crm_secrets)]
