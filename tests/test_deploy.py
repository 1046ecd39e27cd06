"""The deployment artifacts agree with each other and with the app: the compose file's instances
share one MongoDB replica set, one Redis and one JWT secret, and nginx balances over exactly
those instances. (nginx's proxy settings themselves run against real processes in
`tests/api/test_cluster_processes.py`.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[1]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def app_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("build") == "."
    }


def test_the_instances_share_the_database_redis_and_secret() -> None:
    services = app_services()
    assert len(services) >= 2
    environments = [service["environment"] for service in services.values()]
    for key in ("GQL_CHAT_MONGODB_URL", "GQL_CHAT_REDIS_URL", "GQL_CHAT_JWT_SECRET"):
        assert len({env[key] for env in environments}) == 1, key
    assert "replicaSet=" in environments[0]["GQL_CHAT_MONGODB_URL"]
    for service in services.values():
        assert "ports" not in service, "only nginx is published"
        assert set(service["depends_on"]) == {"mongo", "redis"}


def test_nginx_balances_over_exactly_the_instances_with_websockets() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    upstream = re.search(r"upstream gql_chat \{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = set(re.findall(r"server (\w+):8000;", upstream.group(1)))
    assert servers == set(app_services())
    for directive in (
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_buffering off;",
    ):
        assert directive in conf
    nginx = compose()["services"]["nginx"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert set(nginx["depends_on"]) == set(app_services())
