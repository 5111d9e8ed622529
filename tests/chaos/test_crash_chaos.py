"""SIGKILL ``serve`` and an extra ``worker`` at random moments while events are published (issue
10.8): nothing accepted is lost, every delivery ends succeeded, and duplicates are only attempts
that were in flight at a kill, re-sent promptly under a new attempt number with the lost one
logged. The default run kills 5 times during 100 publishes; the slow run 100 times during 20,000."""

from __future__ import annotations

import pytest

from chaos import ChaosRun, report


def test_five_kills_lose_nothing_and_duplicate_only_what_was_in_flight(database_url: str) -> None:
    """5 SIGKILLs during 100 publishes: 0 lost, all succeeded, duplicates explained and logged."""
    figures = ChaosRun(database_url, events=100, kills=5, seed=5).run()
    report("5 kills", figures)
    assert figures.problems() == []
    assert figures.accepted == 100
    assert figures.kills == 5


@pytest.mark.slow
def test_a_hundred_kills_during_twenty_thousand_publishes(database_url: str) -> None:
    """100 SIGKILLs during 20,000 publishes: the same guarantees at scale (figures printed)."""
    figures = ChaosRun(database_url, events=20_000, kills=100, seed=100).run(settle_timeout=900)
    report("100 kills", figures)
    assert figures.problems() == []
    assert figures.accepted == 20_000
