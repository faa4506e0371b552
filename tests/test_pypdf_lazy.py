"""LazyObjStmReader: the same objects, metadata and structure walk as pypdf's reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pypdf
import pytest
from pypdf.generic import IndirectObject

import riskscan
from parse_child import configure_pypdf
from pdf_engines import pypdf_metadata
from pypdf_lazy import LazyObjStmReader

# Files with object streams (pdflatex writes them; so did MSFT's 10-Q filer).
FILES = [
    "clean/2023_Q1_MSFT.pdf",
    "clean/pdflatex-forms.pdf",
    "clean/pdflatex-outline.pdf",
    "clean/multicolumn.pdf",
]


def plain(obj: Any, depth: int = 0) -> Any:
    """Turn a pypdf object into comparable plain values (references by number)."""
    if isinstance(obj, IndirectObject):
        return ("ref", obj.idnum, obj.generation)
    if depth > 50:
        return "deep"
    if isinstance(obj, dict):
        return {str(key): plain(value, depth + 1) for key, value in obj.items()}
    if isinstance(obj, list):
        return [plain(value, depth + 1) for value in obj]
    return (type(obj).__name__, str(obj))


@pytest.fixture(autouse=True)
def _limits() -> None:
    configure_pypdf()  # the child's limits: 2023_Q1_MSFT.pdf needs the larger arrays


@pytest.mark.parametrize("name", FILES)
def test_every_object_stream_object_reads_the_same(corpus: Path, name: str) -> None:
    eager, lazy = pypdf.PdfReader(corpus / name), LazyObjStmReader(corpus / name)
    numbers = sorted(eager.xref_objStm)
    assert numbers  # the file has object streams
    for number in numbers:
        assert plain(lazy.get_object(number)) == plain(eager.get_object(number)), number


@pytest.mark.parametrize("name", FILES)
def test_metadata_and_structure_walk_are_the_same(corpus: Path, name: str) -> None:
    eager, lazy = pypdf.PdfReader(corpus / name), LazyObjStmReader(corpus / name)
    assert pypdf_metadata(lazy) == pypdf_metadata(eager)
    assert riskscan.scan_structure(lazy) == riskscan.scan_structure(eager)


def test_the_catalog_no_longer_parses_its_neighbours(corpus: Path) -> None:
    lazy = LazyObjStmReader(corpus / "clean/2023_Q1_MSFT.pdf")
    lazy.trailer["/Root"].get_object()
    parsed = sum(1 for number in lazy.xref_objStm if lazy.cache_get_indirect_object(0, number))
    assert parsed < len(lazy.xref_objStm) // 10
