"""The query parameters the pages take, checked as the API's lists check theirs
(``web.schemas.QuerySchema``): a page refuses one it does not take, or a value it cannot use,
with a 400 naming it. Left unchecked, a mistyped filter (``/jobs?statu=failed``) answered the
whole list as if it were the filtered one.

A page's view declares what it takes with ``takes_query``; a page that declares nothing takes
nothing (``NoQuery``), so a page added later is checked too."""

from __future__ import annotations

from apiflask import abort   # carries its detail to the error page's one line
from flask import current_app, g, request
from marshmallow import EXCLUDE, ValidationError

from web.context import answers_json
from web.schemas import NoQuery, QuerySchema

TAKES_QUERY = "vidfarm_takes_query"
NOT_PAGES = frozenset({"static", "healthz", "metrics.scrape"})


def takes_query(schema: type[QuerySchema]):
    """Declare the query parameters a page's view takes (right under its route decorator)."""
    def declare(view):
        setattr(view, TAKES_QUERY, schema)
        return view
    return declare


def check_page_query():
    """before_request, after the guard (an anonymous caller learns nothing about a page): a
    page's query parameters loaded by the schema its view declares, for ``page_query``; or a
    400 naming what it refuses, in the API's words. An empty value counts as not given: a
    filter form's "all" sends ``?status=``. Only a page's GET: a form's POST is checked by its form."""
    if request.method not in ("GET", "HEAD") or _not_a_page():
        return
    schema = getattr(current_app.view_functions[request.endpoint], TAKES_QUERY, NoQuery)()
    given = {name: value for name, value in request.args.items() if value or name not in schema.load_fields}
    try:
        g.page_query = schema.load(given, unknown=EXCLUDE)   # as webargs loads: QuerySchema names them
    except ValidationError as exc:
        abort(400, detail={"query": exc.messages})


def _not_a_page() -> bool:
    """No route (a 404 follows), a file, a probe, or a request answered as JSON (the API's)."""
    return request.endpoint is None or request.endpoint in NOT_PAGES or answers_json()


def page_query() -> dict:
    """This page's query parameters, as its ``takes_query`` schema loaded them."""
    return g.page_query
