"""One module per console page group. Each defines ``router() -> APIRouter`` (routes kept out
of the OpenAPI document: ``APIRouter(include_in_schema=False)``), ``PAGES`` (its routes' least
roles) and ``ACTIONS`` (each form route → the API route it calls); ``console.app.install``
includes them all."""
