"""The interaction API's routes, one module per resource (as the URLs group); each builds an
``APIRouter`` with ``router(...)``, and ``api/app.py`` includes every one. A new route goes in
its resource's module and joins the role table of ``tests/test_api.py`` (``ROLE_OF``); a new
module must be included in ``create_app`` (``tests/test_api.py`` says which one is not)."""
