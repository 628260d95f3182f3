"""docs/: the generated reference pages are up to date, and the README links every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from descentlab.reference_docs import PAGES

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


@pytest.mark.parametrize("name", sorted(PAGES))
def test_generated_page_is_up_to_date(name):
    want = PAGES[name]()
    have = (DOCS / name).read_text() if (DOCS / name).exists() else ""
    assert have == want, f"docs/{name} is stale: run `python -m descentlab.reference_docs docs`"


def test_spec_reference_names_every_table_key_and_catalogue_entry():
    from descentlab.engine.spec import InitTable, RunTable, StopTable
    from descentlab.landscapes import LANDSCAPES
    from descentlab.optimizers import OPTIMIZERS

    text = (DOCS / "spec-reference.md").read_text()
    for table in ("run", "landscape", "data", "batch", "optimizer", "schedule", "init", "stop", "sweep"):
        assert f"## [{table}]" in text
    for model in (RunTable, StopTable, InitTable):
        for key in model.model_fields:
            assert f"| `{key}` |" in text, key
    for name in [*LANDSCAPES, *OPTIMIZERS]:
        assert f"| `{name}` |" in text, name
    assert "`lr` > 0" in text and "`betas` in [0, 1)" in text


def test_readme_and_docs_link_only_existing_pages():
    readme = (REPO / "README.md").read_text()
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    for name in pages:
        assert f"docs/{name}" in readme, f"README does not link docs/{name}"
    for src in [REPO / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", src.read_text()):
            assert (src.parent / target).exists(), f"{src.name} links {target}, which does not exist"
