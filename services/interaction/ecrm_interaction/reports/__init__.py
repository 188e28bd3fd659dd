"""Reports on customer behaviour and business results, computed in ClickHouse.

Each module is one report (see :mod:`ecrm_interaction.reports.base` for what a report module
holds); :data:`REPORTS` lists them in the order the console shows them.
"""

from __future__ import annotations

from types import ModuleType

from ecrm_interaction.reports import (
    campaigns,
    funnels,
    lifecycle,
    loyalty,
    retention,
    revenue,
    rfm,
    satisfaction,
    service,
    trends,
)

REPORTS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (trends, funnels, retention, lifecycle, rfm, revenue, campaigns, satisfaction, service, loyalty)
}
