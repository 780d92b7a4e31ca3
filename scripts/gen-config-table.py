#!/usr/bin/env python3
"""Regenerates the configuration table in README.md from the `Options` struct in src/config.rs.

Every option there has a `///` doc, a long flag and (mostly) a `STOMPGATE_*` env var; the TOML
key is the field name. The table sits between the `config-table` markers in README.md.

Usage: scripts/gen-config-table.py          rewrite README.md
       scripts/gen-config-table.py --check  exit 1 if README.md is out of date
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"
NOT_IN_TOML = {"config", "check_config"}


def options_body(src: str) -> str:
    body = src[src.index("pub struct Options"):]
    return body[: body.index("\n}\n")]


def rows(body: str):
    doc, arg, in_arg, subcommand = [], "", False, False
    for line in body.splitlines():
        text = line.strip()
        if in_arg:
            arg += " " + text
            in_arg = not text.endswith(")]")
        elif text.startswith("///"):
            doc.append(text[3:].strip())
        elif text.startswith("#[arg"):
            arg, in_arg = text, not text.endswith(")]")
        elif text.startswith("#[command(subcommand"):
            subcommand = True  # a tool (`stompgate hash-password`), not an option
        elif subcommand and re.match(r"pub (\w+): ", text):
            doc, arg, subcommand = [], "", False
        elif m := re.match(r"pub (\w+): ", text):
            name = m.group(1)
            long = re.search(r'long\s*=\s*"([^"]+)"', arg)
            env = re.search(r'env\s*=\s*"([^"]+)"', arg)
            flag = "--" + (long.group(1) if long else name.replace("_", "-"))
            cells = [
                f"`{flag}`",
                f"`{env.group(1)}`" if env else "",
                "" if name in NOT_IN_TOML else f"`{name}`",
                " ".join(doc).replace("|", "\\|"),
            ]
            yield "| " + " | ".join(cells) + " |"
            doc, arg = [], ""


def table() -> str:
    src = (ROOT / "src" / "config.rs").read_text()
    head = ["| flag | env | TOML key | meaning, default |", "|---|---|---|---|"]
    return "\n".join(head + list(rows(options_body(src))))


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n" + table() + "\n" + text[end:]
    if "--check" in sys.argv[1:]:
        if new != text:
            print("README.md's configuration table is out of date: run scripts/gen-config-table.py")
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
