"""Write the generated contract documents, or check that the written ones are current.

    python -m contracts.generate           # (re)write contracts/schemas/*.json, asyncapi.json
    python -m contracts.generate --check   # exit 1 listing missing, differing or extra files
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contracts.asyncapi import asyncapi_document
from contracts.cases import EVENT_CLASSES
from contracts.catalogue import CATALOGUE_EVENT_CLASSES
from contracts.clients import CLIENT_EVENT_CLASSES
from contracts.schema import event_schema, schema_filename

PACKAGE_DIR = Path(__file__).resolve().parent
SCHEMAS_DIR = "schemas"
ASYNCAPI_FILE = "asyncapi.json"


def expected() -> dict[str, Any]:
    """Generated documents by path relative to the contracts package directory."""
    docs: dict[str, Any] = {
        f"{SCHEMAS_DIR}/{schema_filename(cls)}": event_schema(cls)
        for cls in (*EVENT_CLASSES, *CATALOGUE_EVENT_CLASSES, *CLIENT_EVENT_CLASSES)
    }
    docs[ASYNCAPI_FILE] = asyncapi_document()
    return docs


def render(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _stale(root: Path, docs: dict[str, Any]) -> list[str]:
    """JSON files in the schemas directory that the code no longer generates."""
    found = (root / SCHEMAS_DIR).glob("*.json")
    return sorted(rel for p in found if (rel := f"{SCHEMAS_DIR}/{p.name}") not in docs)


def drift(root: Path = PACKAGE_DIR) -> list[str]:
    """One line per file that is missing, differs (as parsed JSON) or is extra; [] if current."""
    docs = expected()
    problems = []
    for rel, doc in sorted(docs.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
            continue
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            current = None
        if current != doc:
            problems.append(f"differs: {rel}")
    problems += [f"extra: {rel}" for rel in _stale(root, docs)]
    return problems


def write(root: Path = PACKAGE_DIR) -> list[str]:
    """Write every document whose text changed and delete stale schemas; return what changed."""
    docs = expected()
    changed = []
    (root / SCHEMAS_DIR).mkdir(parents=True, exist_ok=True)
    for rel, doc in sorted(docs.items()):
        path, text = root / rel, render(doc)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(f"wrote: {rel}")
    for rel in _stale(root, docs):
        (root / rel).unlink()
        changed.append(f"removed: {rel}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the files differ from the code")
    parser.add_argument("--root", type=Path, default=PACKAGE_DIR,
                        help="directory holding schemas/ and asyncapi.json (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift(args.root)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run `python -m contracts.generate` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for line in write(args.root):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
