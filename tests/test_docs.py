"""The design document lives in the repository and every pointer to it leads somewhere.

``docs/architecture.md`` replaced a design note kept outside the repository. No tracked file may
point outside the repository for the design any more, and every "docs/architecture.md section N"
(or "sections N and M", "section N.M") cited anywhere must name a heading that exists: ``## N.``
for a section, ``### N.M`` for a subsection.
"""

import re
import subprocess
from pathlib import Path


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
