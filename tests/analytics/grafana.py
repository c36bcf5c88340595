"""The provisioned dashboards' panels, and their SQL made runnable outside Grafana.

Panels use the grafana-clickhouse-datasource macros below and the dashboards' `${database}` constant. The
expansions are the plugin's (pkg/macros/macros.go): $__timeFilter(c) is `c >= toDateTime(from) AND
c <= toDateTime(to)`, $__timeInterval(c) is `toStartOfInterval(toDateTime(c), INTERVAL n second)`. A macro
not listed here fails the test that expands it, so a panel never goes untested.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from settings import REPO_ROOT

GRAFANA = REPO_ROOT / "infra" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"

_MACRO = re.compile(r"\$__(\w+)(?:\(([^()]*)\))?")


@dataclass(frozen=True)
class Panel:
    dashboard: str
    title: str
    kind: str
    query_type: str
    sql: str
    datasource_uid: str


def load_panels(directory: Path = DASHBOARDS) -> list[Panel]:
    panels = []
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            (target,) = panel["targets"]
            panels.append(
                Panel(
                    dashboard=dashboard["uid"],
                    title=panel["title"],
                    kind=panel["type"],
                    query_type=target["queryType"],
                    sql=target["rawSql"],
                    datasource_uid=target["datasource"]["uid"],
                )
            )
    return panels


def expand(sql: str, *, start: datetime, end: datetime, interval_s: int, database: str) -> str:
    def macro(match: re.Match[str]) -> str:
        name, argument = match.group(1), match.group(2)
        frm, to = f"toDateTime({int(start.timestamp())})", f"toDateTime({int(end.timestamp())})"
        if name == "timeFilter" and argument:
            return f"{argument} >= {frm} AND {argument} <= {to}"
        if name == "timeInterval" and argument:
            return f"toStartOfInterval(toDateTime({argument}), INTERVAL {max(interval_s, 1)} second)"
        if name == "interval_s" and argument is None:
            return str(max(interval_s, 1))
        if name == "fromTime" and argument is None:
            return frm
        if name == "toTime" and argument is None:
            return to
        raise ValueError(f"macro {match.group(0)} has no expansion here")

    return _MACRO.sub(macro, sql.replace("${database}", f"`{database}`"))
