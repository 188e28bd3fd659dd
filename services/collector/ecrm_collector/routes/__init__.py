"""The collector's HTTP routes, one module per kind of caller; each builds an ``APIRouter`` around the gateway."""
