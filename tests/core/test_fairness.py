"""The slot-sharing rule (issue 10.2): slow and unknown endpoints cannot take the slots that
trusted ones need."""

from __future__ import annotations

from attribution_webhooks.core.fairness import (
    Load,
    SlotRules,
    Standing,
    Verdict,
    occupied,
    pace_seconds,
    standing,
    verdict,
)

RULES = SlotRules.sharing(concurrency=64, per_endpoint=8, slow_after=1.0)


def test_the_default_shares() -> None:
    """Untrusted endpoints share a quarter of the slots; an account may use all of them by default."""
    assert (RULES.untrusted, RULES.per_account) == (16, 64)
    assert SlotRules.sharing(64, 8, 1.0, account_share=0.5).per_account == 32
    assert SlotRules.sharing(2, 1, 1.0).untrusted == 1


def test_an_endpoint_is_trusted_only_while_it_answers_quickly() -> None:
    """Unknown until measured; slow if its average, its last timeout or a running attempt says so."""
    assert standing(RULES, None, False, None) is Standing.UNKNOWN
    assert standing(RULES, 0.05, False, None) is Standing.TRUSTED
    assert standing(RULES, 0.05, False, 0.9) is Standing.TRUSTED
    assert standing(RULES, 2.0, False, None) is Standing.SLOW
    assert standing(RULES, 0.05, True, None) is Standing.SLOW
    assert standing(RULES, 0.05, False, 1.5) is Standing.SLOW
    assert standing(RULES, None, False, 1.5) is Standing.SLOW


def test_slow_endpoints_share_a_small_budget() -> None:
    """Given 16 attempts of slow endpoints running, a slow endpoint's delivery is paced; a trusted one starts."""
    load = Load(trusted=1, untrusted=16, endpoint=0, account=17)
    assert verdict(RULES, load, Standing.SLOW) is Verdict.PACE
    assert verdict(RULES, load, Standing.TRUSTED) is Verdict.START
    assert verdict(RULES, Load(1, 15, 0, 16), Standing.SLOW) is Verdict.START


def test_hanging_endpoints_never_take_the_slots_of_trusted_ones() -> None:
    """Given 64 attempts hanging (more than the whole worker), trusted endpoints still have 48 slots."""
    hanging = Load(trusted=0, untrusted=64, endpoint=0, account=0)
    assert occupied(RULES, hanging) == 16
    assert verdict(RULES, hanging, Standing.TRUSTED) is Verdict.START
    assert verdict(RULES, Load(47, 64, 0, 47), Standing.TRUSTED) is Verdict.START
    assert verdict(RULES, Load(48, 64, 0, 48), Standing.TRUSTED) is Verdict.PACE


def test_an_unknown_endpoint_probes_then_uses_only_slots_nobody_holds() -> None:
    """A new endpoint always gets one attempt, even with every slot held by hanging ones; a burst
    to it starts at once while slots are free, and otherwise waits behind its probe."""
    assert verdict(RULES, Load(0, 64, 0, 0), Standing.UNKNOWN) is Verdict.START
    assert verdict(RULES, Load(0, 40, 5, 5), Standing.UNKNOWN) is Verdict.START
    assert verdict(RULES, Load(30, 34, 1, 1), Standing.UNKNOWN) is Verdict.WAIT


def test_an_endpoint_at_its_own_limit_waits_behind_its_attempts() -> None:
    """Whatever its standing, an endpoint with per_endpoint attempts running queues the next one."""
    for endpoint in Standing:
        assert verdict(RULES, Load(8, 0, 8, 8), endpoint) is Verdict.WAIT


def test_an_account_at_its_share_is_paced() -> None:
    """With an account share of a half, the 33rd attempt of one account waits for a later claim."""
    rules = SlotRules.sharing(64, 8, 1.0, account_share=0.5)
    assert verdict(rules, Load(32, 0, 0, 32), Standing.TRUSTED) is Verdict.PACE
    assert verdict(rules, Load(32, 0, 0, 31), Standing.TRUSTED) is Verdict.START


def test_pacing_spreads_a_slow_backlog_over_its_share_of_slots() -> None:
    """A trusted endpoint's backlog comes back one slot's latency apart; a slow one's by its share."""
    assert pace_seconds(RULES, 0.8, True, 0) == 0.1
    assert pace_seconds(RULES, 2.0, False, 2) == 0.25  # 16 slots for 2 endpoints: 8 each
    assert pace_seconds(RULES, 2.0, False, 32) == 4.0  # half a slot each
