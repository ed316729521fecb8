"""Writes the API reference pages of the documentation site.

One page per public name of `keras_tl` (`docs/api/<name>.md`, rendered from
its docstring by mkdocstrings) and an index grouped by task, in the order
of `keras_tl/__init__.py`. `make docs` runs this before `mkdocs build`; the
pages are generated, not committed.
"""

import pathlib
import re
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api"


def groups():
    """`[(group title, [names])]` from the `_LAZY` table of keras_tl/__init__.py."""
    source = (ROOT / "keras_tl" / "__init__.py").read_text(encoding="utf-8")
    table = source[source.index("_LAZY = {"):]
    table = table[: table.index("\n}")]
    found, current = [], None
    for line in table.splitlines()[1:]:
        line = line.strip()
        title = re.match(r"# (.+)", line)
        entry = re.match(r'"(\w+)": "([\w.]+)",', line)
        if title:
            current = (title.group(1), [])
            found.append(current)
        elif entry:
            current[1].append((entry.group(1), entry.group(2)))
    return found


def main():
    shutil.rmtree(API, ignore_errors=True)
    API.mkdir(parents=True)
    index = [
        "# API reference",
        "",
        "Every public name of `keras_tl`, grouped by task. Each page is rendered from the "
        "object's docstring: signature, arguments, what it returns and an example.",
        "",
    ]
    for title, names in groups():
        index += [f"## {title.capitalize()}", ""]
        for name, module in names:
            is_module = module == f"keras_tl.{name}"
            # Rendered from where it is defined; users import it from keras_tl.
            target = module if is_module else f"{module}.{name}"
            title_name = module if is_module else f"keras_tl.{name}"
            options = "    options:\n      show_root_heading: true\n      show_root_full_path: false\n      heading_level: 2\n"
            if is_module:
                options += "      members: false\n"
            lines = [f"# `{title_name}`", ""]
            if not is_module:
                lines += [f"`from keras_tl import {name}` (defined in `{module}`)", ""]
            (API / f"{name}.md").write_text("\n".join(lines) + f"\n::: {target}\n{options}",
                                           encoding="utf-8")
            kind = "module" if is_module else "`" + name + "`"
            index.append(f"- [{kind if not is_module else '`' + target + '`'}]({name}.md)")
        index.append("")
    (API / "index.md").write_text("\n".join(index), encoding="utf-8")
    print(f"Wrote {len(list(API.glob('*.md')))} pages to {API.relative_to(ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
