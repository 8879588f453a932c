"""The design document lives in the repository and every pointer to it leads somewhere.

``docs/architecture.md`` replaced a design note kept outside the repository. No tracked file may
point outside the repository for the design any more, and every "docs/architecture.md section N"
(or "sections N and M", "section N.M") cited anywhere must name a heading that exists: ``## N.``
for a section, ``### N.M`` for a subsection.
"""

import contextlib
import io
import re
import subprocess
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"

# Spelled in pieces so that this file does not match its own patterns.
OUTSIDE = b"../" + b"shared"
DOC_NAME = re.compile(rb"architecture" + rb"\.md", re.IGNORECASE)
NUMBER = rb"\d+(?:\.\d+)?"
CITATION = re.compile(rb"docs/architecture\.md,?\s+sections?\s+(" + NUMBER +
                      rb"(?:(?:\s*,\s*|\s+and\s+|\s+or\s+)" + NUMBER + rb")*)")
INTERNAL = re.compile(rb"\bsections?\s+(" + NUMBER +
                      rb"(?:(?:\s*,\s*|\s+and\s+|\s+or\s+)" + NUMBER + rb")*)")


def tracked_files() -> dict:
    """Contents of every tracked file that exists in the work tree, by path."""
    # The suite runs from a checkout (CI clones one); the tracked files are what is checked.
    assert (ROOT / ".git").exists(), f"{ROOT} is not a git checkout: no list of tracked files"
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.split(b"\0")
    files = {}
    for name in filter(None, names):
        path = ROOT / name.decode()
        if path.is_file():
            files[name.decode()] = path.read_bytes()
    return files


def cited_numbers(match) -> list:
    return [n.decode() for n in re.findall(NUMBER, match.group(1))]


def headings() -> set:
    """Section numbers of the document: ``## N. Title`` and ``### N.M Title``."""
    text = DOC.read_text(encoding="utf-8")
    sections = re.findall(r"^## (\d+)\. \S", text, re.MULTILINE)
    subsections = re.findall(r"^### (\d+\.\d+) \S", text, re.MULTILINE)
    return set(sections) | set(subsections)


def test_no_reference_leads_outside_the_repository():
    offenders = []
    for name, content in tracked_files().items():
        if OUTSIDE in content:
            offenders.append(f"{name}: mentions {OUTSIDE.decode()}")
        for match in DOC_NAME.finditer(content):
            if match.group(0) != b"architecture.md":
                offenders.append(f"{name}: mentions {match.group(0).decode()} "
                                 f"(the design document is docs/architecture.md)")
    assert not offenders, "\n".join(offenders)


def test_the_document_is_numbered_in_order():
    text = DOC.read_text(encoding="utf-8")
    sections = [int(n) for n in re.findall(r"^## (\d+)\. \S", text, re.MULTILINE)]
    assert sections == list(range(1, len(sections) + 1)), sections
    current, last_sub = 0, 0
    for line in text.splitlines():
        if match := re.match(r"^## (\d+)\. ", line):
            current, last_sub = int(match.group(1)), 0
        elif match := re.match(r"^### (\d+)\.(\d+) ", line):
            section, sub = int(match.group(1)), int(match.group(2))
            assert section == current and sub == last_sub + 1, f"subsection {section}.{sub}"
            last_sub = sub
    # Every heading below the title is numbered, so every heading can be cited.
    unnumbered = [line for line in text.splitlines()
                  if re.match(r"^##+ ", line) and not re.match(r"^(## \d+\.|### \d+\.\d+) ", line)]
    assert not unnumbered, unnumbered


def test_every_cited_section_exists():
    existing = headings()
    citations, missing = 0, []
    for name, content in tracked_files().items():
        for match in CITATION.finditer(content):
            for number in cited_numbers(match):
                citations += 1
                if number not in existing:
                    line = content.count(b"\n", 0, match.start()) + 1
                    missing.append(f"{name}:{line}: docs/architecture.md section {number}")
    assert citations > 0, "no citation found: the pattern is broken"
    assert not missing, "no such heading in docs/architecture.md:\n" + "\n".join(missing)


def test_every_section_the_document_refers_to_exists():
    existing = headings()
    content = DOC.read_bytes()
    missing = [number for match in INTERNAL.finditer(content)
               for number in cited_numbers(match) if number not in existing]
    assert not missing, f"docs/architecture.md refers to missing sections {missing}"


def test_readme_links_the_document():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/architecture.md)" in readme


# --- the README and the pages of docs/ ----------------------------------------------------------

README = ROOT / "README.md"
README_LIMIT = 200
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"(?:^|[\s/])maskprop ([a-z][\w-]*)([^`\n#]*)")
REPO_PATH = re.compile(r"^(?:hw|sim|tb|tests|scripts|docs|maskprop|\.ci)/[\w./*-]+$")


def pages() -> list:
    return [README] + sorted((ROOT / "docs").glob("*.md"))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def code(text: str) -> list:
    """The inline code spans and the lines of fenced code blocks of a page."""
    blocks = [line for block in FENCE.findall(text) for line in block.splitlines()[1:-1]]
    return blocks + CODE_SPAN.findall(FENCE.sub("", text))


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_LIMIT, f"README.md has {lines} lines; at most {README_LIMIT}: " \
        f"move detail into docs/"


def test_every_relative_link_resolves():
    broken, checked = [], 0
    for page in pages():
        for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z]+:", target):
                continue                          # https:, mailto:: not this test's business
            checked += 1
            name, _, anchor = target.partition("#")
            path = (page.parent / name).resolve() if name else page
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{page.relative_to(ROOT)}: {target}: no heading #{anchor}")
    assert checked > 20, "no links found: the pattern is broken"
    assert not broken, "\n".join(broken)


def test_every_repository_path_named_in_the_docs_exists():
    tracked = set(tracked_files())
    missing, checked = [], 0
    for page in pages():
        for span in code(page.read_text(encoding="utf-8")):
            for word in span.split():
                word = word.split("::")[0].rstrip(".,;:)")
                if not REPO_PATH.match(word) or word.endswith("/"):
                    continue
                checked += 1
                if "*" in word:
                    found = any(Path(name).match(word) for name in tracked)
                else:
                    found = word in tracked or any(name.startswith(word + "/")
                                                   for name in tracked)
                if not found:
                    missing.append(f"{page.relative_to(ROOT)}: {word}")
    assert checked > 30, "no paths found: the pattern is broken"
    assert not missing, "not in the repository:\n" + "\n".join(missing)


def cli_help(*words) -> str:
    """The CLI's ``--help`` text for ``words``, in-process (a subprocess per command cost most
    of this test's time)."""
    from maskprop.cli.main import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    return out.getvalue()


def test_every_command_the_readme_names_exists():
    """Every ``maskprop <subcommand>`` in README.md and docs/usage.md is one of the CLI's, and
    every ``--option`` written after it is one of that subcommand's."""
    choices = re.search(r"\{([a-z,-]+)\}", cli_help()).group(1).split(",")
    helps, wrong, checked = {}, [], 0
    for page in (README, ROOT / "docs" / "usage.md"):
        for span in code(page.read_text(encoding="utf-8")):
            for command, rest in COMMAND.findall(span):
                checked += 1
                if command not in choices:
                    wrong.append(f"{page.name}: maskprop {command}: no such command "
                                 f"(the CLI has {', '.join(choices)})")
                    continue
                helps.setdefault(command, cli_help(command))
                for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
                    if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helps[command]):
                        wrong.append(f"{page.name}: maskprop {command} has no option {option}")
    assert checked >= 10, "no maskprop commands found: the pattern is broken"
    assert not wrong, "\n".join(wrong)


def test_the_host_link_document_lists_every_command_and_status_with_its_code():
    """docs/host_link.md's two tables against maskprop/device/protocol.py, the one home of the
    codes: every member with its code, and no other."""
    from maskprop.device.protocol import Command, Status

    text = (ROOT / "docs" / "host_link.md").read_text()
    for enum in (Command, Status):
        rows = re.findall(r"^\| 0x([0-9A-F]{2}) \| ([A-Z_]+) \|", text, re.MULTILINE)
        listed = {name: int(code, 16) for code, name in rows if name in enum.__members__}
        assert listed == {member.name: member.value for member in enum}
