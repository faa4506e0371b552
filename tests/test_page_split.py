"""The split read: a dispenser hands each page to exactly one of two real processes, and the
child emits every page in order whether the helper works, dies holding a page, or dies early."""

from __future__ import annotations

import json
import os

from page_split import ForkedHalf, ForkedWork, PageDispenser, merged_events

PAGES = list(range(1, 6))


def own(number: int) -> dict:
    return {"page_number": number, "text": "child"}


def send(fd: int, number: int) -> None:
    line = json.dumps({"type": "page", "page_number": number, "text": "helper"})
    os.write(fd, line.encode() + b"\n")


def merged(helper_work) -> list[dict]:
    """Run merged_events with a helper that has already taken page 2 (taken before the fork,
    so no race decides who gets it) and then runs ``helper_work(dispenser, fd)``."""
    dispenser = PageDispenser.create(PAGES[1:])
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
    assert events[0]["text"] == "child"  # the first page always is (the title's page)
    assert events[1]["text"] == "helper"


def test_a_helper_that_sends_one_page_then_dies_leaves_the_rest_to_the_child():
    def helper(dispenser: PageDispenser, fd: int) -> None:
        send(fd, 2)
        os._exit(1)

    events = merged(helper)
    assert [event["page_number"] for event in events] == PAGES
    assert [event["text"] for event in events] == ["child", "helper", "child", "child", "child"]


def test_the_page_a_helper_took_and_died_on_is_read_by_the_child():
    def helper(dispenser: PageDispenser, fd: int) -> None:
        os._exit(1)  # holding page 2: e.g. pdfium crashed on it

    events = merged(helper)
    assert [event["page_number"] for event in events] == PAGES
    assert {event["text"] for event in events} == {"child"}
