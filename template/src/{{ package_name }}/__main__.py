"""Print the entities each model finds: python -m <this package> [TEXT ...], or text on stdin."""

from __future__ import annotations

import argparse
import sys

from .nlp import ModelNotInstalledError, installed_models, load


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}", description="Print the entities each model finds in TEXT."
    )
    parser.add_argument("text", nargs="*", help="text to analyse; read from stdin when absent")
    parser.add_argument(
        "--model", action="append", dest="models", metavar="NAME", help="model to use (repeatable); default: all"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = " ".join(args.text) if args.text else sys.stdin.read()
    names = args.models or installed_models()
    if not names:
        print("No spaCy model is installed: run `make install`.", file=sys.stderr)
        return 1
    for name in names:
        try:
            doc = load(name)(text)
        except ModelNotInstalledError as error:
            print(error, file=sys.stderr)
            return 1
        found = ", ".join(f"{ent.text} ({ent.label_})" for ent in doc.ents) or "no entities"
        print(f"{name}: {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
