"""The cron trigger: two simulated years in three zones, the DST rule, catch-up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor.errors import ConfigError
from conveyor.plugins.cron.trigger import CronConfig, CronTrigger
from conveyor.testing.triggers import TriggerContract, fired_event
from conveyor.triggers import evaluate

START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
GRID = timedelta(minutes=15)


def cron(schedule: str, zone: str = "UTC", catch_up: str = "latest") -> CronTrigger:
    return CronTrigger(
        app=None, config=CronConfig(schedule=schedule, timezone=zone, catch_up=catch_up)
    )


class TestCronTrigger(TriggerContract):
    @pytest.fixture(
        params=[
            ("0 2 * * *", "Europe/Berlin"),
            ("*/30 * * * *", "UTC"),
            ("30 1 * * 0", "America/New_York"),
        ]
    )
    def trigger(self, request):
        return cron(*request.param)


def oracle(hour: int, minute: int, zone: ZoneInfo) -> list[datetime]:
    """When a daily HH:MM on ``zone``'s wall clock must fire, worked out independently:
    walking UTC in 15-minute steps, a label fires at the first step whose wall time
    has reached it (a label skipped by a gap fires when the gap ends), once (the
    repeated hour of a fall-back day does not reach new labels)."""
    fires = []
    previous = (START - GRID).astimezone(zone).replace(tzinfo=None)
    at = START
    while at < END:
        now_wall = at.astimezone(zone).replace(tzinfo=None)
        label = previous + GRID
        while label <= now_wall:
            if (label.hour, label.minute) == (hour, minute):
                fires.append(at)
                break
            label += GRID
        previous = max(previous, now_wall)
        at += GRID
    return fires


@pytest.mark.parametrize(
    ("zone", "hour", "minute"),
    [
        ("Europe/Berlin", 2, 30),  # spring forward: 02:00-03:00 does not exist
        ("Europe/Berlin", 2, 0),  # fall back: 02:00-03:00 happens twice
        ("America/New_York", 2, 30),
        ("America/New_York", 1, 30),  # fall back: 01:00-02:00 twice
        ("Australia/Lord_Howe", 2, 15),  # spring forward by 30 minutes: 02:00-02:30 missing
        ("Australia/Lord_Howe", 1, 45),  # fall back by 30 minutes: 01:30-02:00 twice
    ],
)
def test_two_years_fire_once_per_tick_by_the_dst_rule(zone, hour, minute):
    tz = ZoneInfo(zone)
    expected = oracle(hour, minute, tz)
    assert 729 <= len(expected) <= 731, "one tick a day, gaps included"
    trigger = cron(f"{minute} {hour} * * *", zone)
    rng = random.Random(f"{zone}{hour}{minute}")
    # evaluate just before, at and after every expected tick, and at random moments
    moments = sorted(
        {
            m
            for tick in expected
            for m in (tick - timedelta(seconds=1), tick, tick + timedelta(minutes=7))
        }
        | {
            START + timedelta(seconds=rng.randrange(int((END - START).total_seconds())))
            for _ in range(600)
        }
    )
    last, fired = None, []
    for now in moments:
        decision = trigger.evaluate(now, last)
        if decision.fire:
            tick = datetime.fromisoformat(decision.details["tick"])
            fired.append((now, tick, decision.key))
            last = fired_event(decision, now)
    # the first evaluation fires the newest tick before START; drop it
    fired = [f for f in fired if f[1] >= START]
    assert [tick for _, tick, _ in fired] == expected
    assert all(now == tick for now, tick, _ in fired), "each tick fires at its instant"
    assert len({key for _, _, key in fired}) == len(fired)


def test_the_documented_rule_on_the_change_days():
    def ticks(schedule, zone, start):
        trigger, out, last = cron(schedule, zone), [], None
        now = start
        while now < start + timedelta(days=1):
            decision = trigger.evaluate(now, last)
            if decision.fire and datetime.fromisoformat(decision.details["tick"]) >= start:
                out.append(decision.details["local"])
            if decision.fire:
                last = fired_event(decision, now)
            now += timedelta(minutes=5)
        return out

    berlin = datetime(2024, 3, 30, 23, tzinfo=UTC)
    assert ticks("30 2 * * *", "Europe/Berlin", berlin) == ["2024-03-31 03:00 CEST"]
    assert ticks("0,30 2 * * *", "Europe/Berlin", berlin) == ["2024-03-31 03:00 CEST"], (
        "two ticks in one gap fire once, together"
    )
    new_york = datetime(2024, 11, 3, 4, tzinfo=UTC)
    assert ticks("30 1 * * *", "America/New_York", new_york) == ["2024-11-03 01:30 EDT"]
    assert ticks("*/30 1 * * *", "America/New_York", new_york) == [
        "2024-11-03 01:00 EDT",
        "2024-11-03 01:30 EDT",
    ], "the repeated hour fires once"
    howe = datetime(2024, 10, 5, 12, tzinfo=UTC)
    assert ticks("15 2 * * *", "Australia/Lord_Howe", howe) == ["2024-10-06 02:30 +11"]


HOURLY = '[triggers.hourly]\nbackend = "cron"\nschedule = "0 * * * *"\npipeline = "training"\n'


def _fire_until_quiet(app, now):
    keys = []
    for _ in range(500):
        outcome = evaluate(app, "hourly", now)
        if not outcome.fired:
            return keys, outcome
        keys.append(outcome.decision.key)
    raise AssertionError("never quiet")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("latest", ["cron-20240110T000000Z"]),
        (
            "all",
            [
                f"cron-{datetime(2024, 1, 7, tzinfo=UTC) + timedelta(hours=h):%Y%m%dT%H%M%SZ}"
                for h in range(1, 73)
            ],
        ),
        (
            "bounded(5)",
            [
                "cron-20240109T200000Z",
                "cron-20240109T210000Z",
                "cron-20240109T220000Z",
                "cron-20240109T230000Z",
                "cron-20240110T000000Z",
            ],
        ),
    ],
)
def test_72_hours_down_then_the_catch_up_policy_fires_what_it_promises(project, policy, expected):
    app = project(HOURLY + f'catch_up = "{policy}"\n')
    before = datetime(2024, 1, 7, 0, 10, tzinfo=UTC)
    assert _fire_until_quiet(app, before)[0] == ["cron-20240107T000000Z"]
    back = before + timedelta(hours=72)  # 2024-01-10 00:10: 72 ticks were missed
    keys, quiet = _fire_until_quiet(app, back)
    assert keys == expected
    assert quiet.status == "not_due"
    assert "next tick 2024-01-10 01:00 UTC" in quiet.reason
    fired = [e for e in app.metadata.list_trigger_events(trigger="hourly", limit=500) if e.fired]
    assert len(fired) == 1 + len(expected)
    assert _fire_until_quiet(app, back + timedelta(minutes=30))[0] == [], "nothing repeats"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('schedule = "every day"\n', "not a cron expression"),
        ('schedule = "0 2 * * *"\ntimezone = "Mars/Olympus"\n', "not an IANA time zone"),
        ('schedule = "0 2 * * *"\ncatch_up = "bounded(0)"\n', "bounded"),
        ('schedule = "0 2 * * *"\ncatch_up = "some"\n', "latest"),
    ],
)
def test_bad_cron_config_is_a_config_error(project, extra, message):
    app = project('[triggers.bad]\nbackend = "cron"\n' + extra)
    with pytest.raises(ConfigError, match=message):
        evaluate(app, "bad", START)
