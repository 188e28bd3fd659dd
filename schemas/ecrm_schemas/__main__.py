"""``python -m ecrm_schemas jsonschema [DIR]``: export the JSON Schemas."""

from __future__ import annotations

import sys
from pathlib import Path

from ecrm_schemas.jsonschema import DEFAULT_DIR, write_schemas


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "jsonschema":
        print("usage: python -m ecrm_schemas jsonschema [DIR]", file=sys.stderr)
        return 2
    directory = Path(args[1]) if len(args) > 1 else DEFAULT_DIR
    for path in write_schemas(directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
