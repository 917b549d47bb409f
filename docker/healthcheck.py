"""Container health check for the label-studio-act backend (standard library only, no curl).

Exit 0 when ``GET $ACT_HEALTH_URL`` (default http://127.0.0.1:9090/health) answers 200 within
``$ACT_HEALTH_TIMEOUT`` seconds (default 4), else 1. When the backend requires basic auth
(``ACT_BASIC_AUTH_USER``/``ACT_BASIC_AUTH_PASSWORD``, which guard every route), the check sends
the same credentials. Proxy variables are ignored: the check is always a local call.
"""

from __future__ import annotations

import base64
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

DEFAULT_URL = "http://127.0.0.1:9090/health"


def check(env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """(healthy, what happened) for one GET of the health URL."""
    env = os.environ if env is None else env
    url = env.get("ACT_HEALTH_URL") or DEFAULT_URL
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    user = env.get("ACT_BASIC_AUTH_USER")
    if user:
        pair = f"{user}:{env.get('ACT_BASIC_AUTH_PASSWORD', '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode("ascii"))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        timeout = float(env.get("ACT_HEALTH_TIMEOUT") or 4)
        with opener.open(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"{url} unreachable: {exc}"
    return status == 200, f"{url} answered {status}"


def main() -> int:
    healthy, detail = check()
    print(("healthy: " if healthy else "unhealthy: ") + detail, file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
