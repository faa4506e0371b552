"""The split read: a dispenser hands each page to exactly one of two real processes, and the
child emits every page in order whether the helper works, dies holding a page, or dies early."""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

from page_split import ForkedHalf, ForkedWork, PageDispenser, merged_events
from parse_child import helper_work, page_event
from pdf_engines import PageTexts, PdfiumEngine, Request, map_file

PAGES = list(range(2, 6))  # the dispenser's: the child reads page 1 before the fork
FOUR_PAGES = "clean/pdflatex-4-pages.pdf"


def own(number: int) -> dict:
    return {"page_number": number, "text": "child"}


def send(fd: int, number: int) -> None:
    line = json.dumps({"type": "page", "page_number": number, "text": "helper"})
    os.write(fd, line.encode() + b"\n")


def merged(helper_work) -> list[dict]:
    """Run merged_events with a helper that has already taken page 2 (taken before the fork,
    so no race decides who gets it) and then runs ``helper_work(dispenser, fd)``."""
    dispenser = PageDispenser.create(PAGES)
    assert dispenser.take() == 2
    helper = ForkedHalf(lambda fd: helper_work(dispenser, fd))
    try:
        return list(merged_events(PAGES, own, helper, dispenser))
    finally:
        helper.close()
        dispenser.close()


def test_two_processes_taking_at_once_get_every_page_exactly_once():
    pages = list(range(1, 5001))
    dispenser = PageDispenser.create(pages)

    def take_all(fd: int) -> None:
        taken = []
        while (number := dispenser.take()) is not None:
            taken.append(number)
        os.write(fd, json.dumps(taken).encode())

    other = ForkedWork(take_all)
    mine = []
    while (number := dispenser.take()) is not None:
        mine.append(number)
    theirs = json.loads(other.output(timeout_s=30))
    other.close()
    dispenser.close()
    assert sorted(mine + theirs) == pages
    assert mine == sorted(mine) and theirs == sorted(theirs)


def test_pages_that_do_not_fit_in_a_pipe_give_no_dispenser():
    def create_unprivileged(fd: int) -> None:
        if os.geteuid() == 0:
            os.setuid(65534)  # root may grow a pipe past fs.pipe-max-size
        too_many = list(range(1, 1024 * 1024))  # 4 MB of records: over the 1 MB maximum
        os.write(fd, b"none" if PageDispenser.create(too_many) is None else b"made")

    worker = ForkedWork(create_unprivileged)
    assert worker.output(timeout_s=30) == b"none"
    worker.close()


def test_the_pages_a_working_helper_takes_are_its_own():
    def helper(dispenser: PageDispenser, fd: int) -> None:
        send(fd, 2)
        while (number := dispenser.take()) is not None:
            send(fd, number)

    events = merged(helper)
    assert [event["page_number"] for event in events] == PAGES
    assert events[0]["text"] == "helper"


def test_a_helper_that_sends_one_page_then_dies_leaves_the_rest_to_the_child():
    def helper(dispenser: PageDispenser, fd: int) -> None:
        send(fd, 2)
        os._exit(1)

    events = merged(helper)
    assert [event["page_number"] for event in events] == PAGES
    assert [event["text"] for event in events] == ["helper", "child", "child", "child"]


def test_the_page_a_helper_took_and_died_on_is_read_by_the_child():
    def helper(dispenser: PageDispenser, fd: int) -> None:
        os._exit(1)  # holding page 2: e.g. pdfium crashed on it

    events = merged(helper)
    assert [event["page_number"] for event in events] == PAGES
    assert {event["text"] for event in events} == {"child"}


def helper_pages(engine: PdfiumEngine, request: Request, pages: list[int]) -> dict[int, dict]:
    """Run the real page helper alone on ``pages``; return the events it sent by page."""
    dispenser = PageDispenser.create(pages)
    helper = ForkedHalf(functools.partial(helper_work, request, engine, dispenser))
    try:
        while not helper.ended:
            helper.wait()
        return {number: helper.take(number) for number in pages}
    finally:
        helper.close()
        dispenser.close()


def pdf_request(path: Path) -> Request:
    return Request(str(path), None, None, "all", False, 10000)


def test_a_helper_reads_the_childs_open_document_even_once_its_file_is_gone(corpus, tmp_path):
    copy = tmp_path / "four.pdf"
    shutil.copyfile(corpus / FOUR_PAGES, copy)
    engine = PdfiumEngine(str(copy), None)
    texts = PageTexts(engine, pdf_request(copy))
    expected = {number: page_event(texts, number) for number in (2, 3, 4)}
    copy.unlink()  # a helper opening the file afresh would find nothing
    assert engine.forkable
    assert helper_pages(engine, pdf_request(copy), [2, 3, 4]) == expected
    engine.close()


def test_a_helper_of_a_document_read_through_its_file_opens_the_file_afresh(corpus):
    path = corpus / FOUR_PAGES
    engine = PdfiumEngine(str(path), None)
    texts = PageTexts(engine, pdf_request(path))
    expected = {number: page_event(texts, number) for number in (2, 3, 4)}
    engine.forkable = False  # as when the file could not be mapped
    engine.close()  # a helper using the child's document would fail on every page
    assert helper_pages(engine, pdf_request(path), [2, 3, 4]) == expected


def test_files_that_cannot_be_mapped_are_read_through_their_path(tmp_path):
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    assert map_file(str(empty)) is None
    assert map_file(str(tmp_path)) is None  # a directory
    assert map_file(str(tmp_path / "missing.pdf")) is None
