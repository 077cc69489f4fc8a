"""Documentation that resolves inside the repository.

* Every section citation (the section sign followed by a number ``N`` or ``N.M``, or a range ``N.M-N.K``) written in
  ``streid_lib/``, ``tests/``, ``benchmarks/``, ``notebooks/`` or ``docs/`` leads to a heading of
  ``docs/reference.md`` carrying that number, or to a heading of another Markdown file of ``docs/`` when the text
  names that file just before the citation (``docs/architecture.md`` followed by the citation).
* A section sign is always followed by a number: a citation by title cannot be checked.
* Heading numbers are unique within each file of ``docs/``, every ``N.M`` sits under an ``N``, and
  ``docs/reference.md`` has the numbering the library relies on.
* In ``docs/reference.md``, every code reference written as ``module.name`` (a module of ``streid_lib``) names
  something defined there, and every ``tests/...::test_name`` or repository path names something that exists.

This file spells the section sign as an escape so that it holds no citation itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference.md"
PACKAGE = ROOT / "streid_lib"
SCANNED = ("streid_lib", "tests", "benchmarks", "notebooks", "docs")
SUFFIXES = {".py", ".md", ".ipynb", ".sh", ".txt", ".toml", ".cfg", ".ini", ".yaml", ".yml"}
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".ruff_cache"}

SIGN = "\u00a7"
NUMBER = r"\d+(?:\.\d+)*"
DASH = "-\u2010\u2011\u2012\u2013\u2014"
#: A citation: the sign, a number, and optionally a range to a second number (its sign optional).
CITATION = re.compile(rf"{SIGN}\s*({NUMBER})(?:\s*[{DASH}]\s*{SIGN}?\s*({NUMBER}))?")
#: A section sign that is not followed by a number (a citation by title, or a stray sign).
BARE_SIGN = re.compile(rf"{SIGN}(?!\s*\d)")
#: A Markdown file named immediately before a citation (only spaces, commas or colons in between).
NAMED_FILE = re.compile(r"([\w./-]+\.md)[\s,:]*$")
HEADING = re.compile(rf"^#{{1,6}}\s+{SIGN}\s*({NUMBER})(?=\s|$)")
FENCE = re.compile(r"^\s*(```|~~~)")

#: The numbering the library cites (docs/reference.md); more headings may exist, none of these may go.
REQUIRED = (
    [str(n) for n in range(14)]
    + [f"1.{i}" for i in range(1, 6)]
    + [f"2.{i}" for i in range(1, 7)]
    + [f"3.{i}" for i in range(1, 6)]
    + ["4.1", "6.1"]
    + [f"9.{i}" for i in range(1, 12)]
    + [f"13.{i}" for i in range(1, 10)]
)


# ---------------------------------------------------------------------------------------------------------------
# reading


def text_files() -> Iterator[Path]:
    for top in SCANNED:
        base = ROOT / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and not SKIP_DIRS.intersection(path.parts):
                yield path


def lines_of(path: Path) -> Iterator[tuple[str, str]]:
    """(location, line) of a text file; a notebook's lines are those of its cells' sources."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return
    rel = path.relative_to(ROOT).as_posix()
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text).get("cells", [])
        except (json.JSONDecodeError, AttributeError):
            cells = None
        if cells is not None:
            for c, cell in enumerate(cells):
                source = cell.get("source", "")
                source = "".join(source) if isinstance(source, list) else str(source)
                for i, line in enumerate(source.splitlines(), 1):
                    yield f"{rel}:cell {c}:{i}", line
            return
    for i, line in enumerate(text.splitlines(), 1):
        yield f"{rel}:{i}", line


def headings(path: Path) -> list[str]:
    """Numbers of the headings of a Markdown file, in order (headings inside fenced code blocks do not count)."""
    out: list[str] = []
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            out.append(m.group(1))
    return out


def expand(first: str, last: str | None) -> list[str]:
    """The section numbers a citation or a range names (a range within one parent names every number between)."""
    if last is None:
        return [first]
    a, b = first.split("."), last.split(".")
    if len(a) == len(b) and a[:-1] == b[:-1] and int(a[-1]) <= int(b[-1]):
        return [".".join([*a[:-1], str(k)]) for k in range(int(a[-1]), int(b[-1]) + 1)]
    return [first, last]


def citations() -> Iterator[tuple[str, Path | None, str, list[str]]]:
    """(location, target file or None when the named file is not in docs/, named file, numbers) of every citation."""
    for path in text_files():
        for where, line in lines_of(path):
            for m in CITATION.finditer(line):
                named = NAMED_FILE.search(line[: m.start()])
                name = named.group(1) if named else "docs/reference.md"
                target = DOCS / Path(name).name
                if Path(name).parent.as_posix() not in ("", ".", "docs") or not target.is_file():
                    target = None
                yield where, target, name, expand(m.group(1), m.group(2))


# ---------------------------------------------------------------------------------------------------------------
# tests


def test_the_scanner_reads_citations_ranges_and_named_files(tmp_path: Path) -> None:
    line = f"see reference {SIGN}3.2{chr(0x2013)}3.4 and {SIGN}11, then architecture.md {SIGN}2"
    found = [(m.group(1), m.group(2)) for m in CITATION.finditer(line)]
    assert found == [("3.2", "3.4"), ("11", None), ("2", None)]
    assert expand("3.2", "3.4") == ["3.2", "3.3", "3.4"]
    assert expand("2.5", "2.6") == ["2.5", "2.6"] and expand("3", "4.1") == ["3", "4.1"]
    third = list(CITATION.finditer(line))[2]
    assert NAMED_FILE.search(line[: third.start()]).group(1) == "architecture.md"
    assert NAMED_FILE.search(line[: list(CITATION.finditer(line))[0].start()]) is None
    assert BARE_SIGN.findall(f"{SIGN}Ablation {SIGN} 4 {SIGN}5") == [SIGN]
    doc = tmp_path / "x.md"
    doc.write_text(f"# Title\n## {SIGN}1 One\n```\n## {SIGN}9 in a code block\n```\n### {SIGN}1.1 Sub\n")
    assert headings(doc) == ["1", "1.1"]


def test_reference_has_the_numbering_the_library_cites() -> None:
    present = set(headings(REFERENCE))
    missing = [n for n in REQUIRED if n not in present]
    assert not missing, f"docs/reference.md lacks the headings {SIGN}" + f", {SIGN}".join(missing)


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_heading_numbers_are_unique_and_nested(path: Path) -> None:
    numbers = headings(path)
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not duplicates, f"{path.name}: heading numbers used twice: {duplicates}"
    orphans = [n for n in numbers if "." in n and n.rsplit(".", 1)[0] not in numbers]
    assert not orphans, f"{path.name}: sub-sections without their parent heading: {orphans}"


def test_every_citation_resolves_to_a_heading() -> None:
    cache: dict[Path, set[str]] = {}
    unresolved: list[str] = []
    n_citations = 0
    for where, target, name, numbers in citations():
        n_citations += 1
        if target is None:
            unresolved.append(f"{where}: names {name}, which is not a Markdown file of docs/")
            continue
        have = cache.setdefault(target, set(headings(target)))
        lost = [n for n in numbers if n not in have]
        if lost:
            cited = ", ".join(SIGN + n for n in lost)
            unresolved.append(f"{where}: {cited} is not a heading of docs/{target.name}")
    assert n_citations > 0, "no citation found at all: the scanner is broken"
    assert not unresolved, f"{len(unresolved)} citation(s) lead nowhere:\n" + "\n".join(unresolved)


def test_every_section_sign_is_followed_by_a_number() -> None:
    bare = [
        f"{where}: {line.strip()[:100]}"
        for path in text_files()
        for where, line in lines_of(path)
        if BARE_SIGN.search(line)
    ]
    assert not bare, "section signs without a number (cite a numbered heading of docs/):\n" + "\n".join(bare)


# -- code references of docs/reference.md ---------------------------------------------------------------------

BACKTICKED = re.compile(r"`([^`\s]+)`")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
FILE_SUFFIXES = (".py", ".md", ".json", ".npz", ".mat", ".csv", ".txt", ".ipynb", ".sh", ".pt", ".log")
REPO_PATH = re.compile(r"(?:streid_lib|tests|benchmarks|notebooks|docs)/[\w./-]+(?:::\w+)?")


def _module_files(parts: list[str]) -> tuple[list[Path], int] | None:
    """Files of the longest prefix of ``parts`` that is a module or package of streid_lib, and that prefix's length."""
    for k in range(len(parts), 0, -1):
        base = PACKAGE.joinpath(*parts[:k])
        if base.with_suffix(".py").is_file():
            return [base.with_suffix(".py")], k
        if (base / "__init__.py").is_file():
            return sorted(base.rglob("*.py")), k
    return None


def _defines(files: list[Path], name: str) -> bool:
    pattern = re.compile(rf"^\s*(?:(?:async\s+)?def|class)\s+{name}\b|^\s*{name}\s*[:=]|self\.{name}\s*=", re.M)
    return any(pattern.search(f.read_text(encoding="utf-8")) for f in files)


def test_reference_code_references_exist() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    missing: list[str] = []
    checked = 0
    for token in sorted(set(BACKTICKED.findall(text))):
        if REPO_PATH.fullmatch(token):
            checked += 1
            file, _, test = token.partition("::")
            path = ROOT / file
            if not path.exists():
                missing.append(f"{token}: no such file")
            elif test and not _defines([path], test):
                missing.append(f"{token}: {file} defines no {test}")
            continue
        if not DOTTED.fullmatch(token) or token.endswith(FILE_SUFFIXES):
            continue
        found = _module_files(token.split("."))
        if found is None:
            continue  # not a streid_lib name (numpy, scipy, torch, ...)
        files, k = found
        checked += 1
        lost = [name for name in token.split(".")[k:] if not _defines(files, name)]
        if lost:
            missing.append(f"{token}: {', '.join(lost)} not defined in {files[0].relative_to(ROOT).as_posix()}")
    assert checked > 20, "too few code references found: the scanner is broken"
    assert not missing, "docs/reference.md names code that does not exist:\n" + "\n".join(missing)
