"""One module per console page group; each defines ``router() -> APIRouter`` (routes out of the OpenAPI document)."""
