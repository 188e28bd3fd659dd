"""The console benchmark's coverage: every GET page the console serves is measured (a new page
cannot be missed), with its path parameters filled; and how its figures are judged. No seeding."""

from __future__ import annotations

from bench import console_bench, report
from bench.console_bench import PARAMETERS, Target, api_list_route, path_parameters, targets
from ecrm_interaction.console.app import routes_of


def _app(tmp_path):  # type: ignore[no-untyped-def]
    from ecrm_interaction.api.app import create_app
    from ecrm_interaction.settings import InteractionSettings
    from ecrm_interaction.storage.store import Store, make_engine

    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/console.sqlite")
    return create_app(settings, Store(make_engine(settings.database_url)), worker=None)


def test_the_bench_measures_every_get_page_the_console_serves(tmp_path) -> None:
    routes = routes_of(_app(tmp_path).routes)
    served = {r.path for r in routes if r.path.startswith("/console") and "GET" in r.methods}
    pages = console_bench.console_pages()
    assert served - set(pages) == set(), f"console GET routes the bench would not measure: {served - set(pages)}"
    assert "/console" in pages and "/console/sign-in" in pages

    api_lists = {r.path for r in routes if r.path.startswith("/v1/") and "GET" in r.methods}
    for page in pages:
        for name in path_parameters(page):
            assert name in PARAMETERS or api_list_route(name) in api_lists, (
                f"{page}: the bench has no id for {{{name}}}; add the seeded id to bench.console_bench.PARAMETERS "
                f"(and seed it in bench.console_seed), or serve GET {api_list_route(name)} to list them"
            )

    seeded = {key: f"<{key}>" for key in {*PARAMETERS.values(), "typical_customer_id", "email_of_customer"}}
    found, unfilled = targets(pages, seeded, lambda name: f"<listed {name}>")
    assert unfilled == {}
    assert {t.page for t in found} == set(pages), "every page is requested at least once"
    assert all("{" not in t.url for t in found), [t.url for t in found if "{" in t.url]


def test_path_parameters_are_filled_with_seeded_ids_variants_and_listed_ids() -> None:
    seeded = {"customer_id": "c0", "typical_customer_id": "c512", "segment_id": "buyers", "email_of_customer": "e"}
    pages = ["/console/customers", "/console/customers/{customer_id}", "/console/broadcasts/{broadcast_id}",
             "/console/widgets/{widget_id}"]  # fmt: skip
    listed = {"broadcast_id": "b-1"}
    found, unfilled = targets(pages, seeded, listed.get)
    urls = [t.url for t in found]
    assert "/console/customers?segment=buyers" in urls and "/console/customers" in urls
    assert [t.url for t in found if t.page == "/console/customers/{customer_id}"] == [
        "/console/customers/c0",
        "/console/customers/c512",
    ]
    assert Target("/console/broadcasts/{broadcast_id}", "/console/broadcasts/b-1") in found
    assert list(unfilled) == ["/console/widgets/{widget_id}"]
    assert "widget_id" in unfilled["/console/widgets/{widget_id}"]
    assert api_list_route("broadcast_id") == "/v1/broadcasts" and api_list_route("dead_letters") == "/v1/dead-letters"


def test_the_slowest_page_is_held_to_the_ceiling_and_a_failing_page_misses_it() -> None:
    def page(url: str, p95: float | None = None, error: str | None = None) -> dict:
        if error:
            return {"url": url, "error": error}
        return {"url": url, "p95_ms": p95, "met": p95 < 300, "ratio_to_ceiling": p95 / 300}

    console = {"customers": 100_000, "events": 10_000_000, "unfilled": {},
               "measured": [page("/console", 40.0), page("/console/sign-in", 9.0)]}  # fmt: skip
    aim = report.console_aim(console)
    assert (aim.figure, aim.met, aim.unit) == (40.0, True, "ms")
    assert report.console_findings(console) == []

    console["measured"].append(page("/console/customers", 420.0))
    assert report.console_aim(console).met is False
    assert report.console_findings(console) == [
        "Console page /console/customers: p95 420 ms, over the 300 ms ceiling (1.40 ×)."
    ]

    console["measured"] = [page("/console", 40.0), page("/console/data", error="answered 503")]
    assert report.console_aim(console).met is False, "a page answering an error misses the goal, however fast"
    console["measured"], console["unfilled"] = [page("/console", 40.0)], {"/console/x/{y}": "no id for y"}
    assert report.console_aim(console).met is False


def test_the_suite_runs_the_console_at_the_quick_size_and_at_the_goals_with_full() -> None:
    from bench.console_seed import FULL, QUICK
    from bench.suite import STAGES, Plan

    assert "console" in STAGES
    assert Plan.make(False, 1000, 1, None, None, 1000, ("console",)).console_size == QUICK
    assert Plan.make(True, 1000, 1, None, None, 1000, ("console",)).console_size == FULL
    assert (FULL.customers, FULL.events) == (100_000, 10_000_000), "the goal's size"
