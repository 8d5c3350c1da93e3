"""When schedules are due (``engine.Schedule``): cron, interval, daily, weekly and monthly slots, in
a time zone across DST changes, and the catch-up policy; bad schedule triggers refused with JSON
pointers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import Schedule
from engine.errors import SpecValidationError
from engine.specs import load_workflow



def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def local(schedule: Schedule, slots: list[datetime]) -> list[str]:
    return [slot.astimezone(schedule.zone).strftime("%Y-%m-%d %H:%M%z") for slot in slots]


def test_cron_slots_are_read_in_the_time_zone():
    schedule = Schedule.of({"cron": "*/15 9 * * *"}, "Europe/Berlin")
    assert local(schedule, schedule.slots(utc(2024, 1, 2, 7, 50), utc(2024, 1, 2, 8, 40))) == [
        "2024-01-02 09:00+0100", "2024-01-02 09:15+0100", "2024-01-02 09:30+0100",
    ]
    # Strictly after, and at-or-before.
    assert schedule.next_after(utc(2024, 1, 2, 8, 15)) == utc(2024, 1, 2, 8, 30)
    assert schedule.latest_at(utc(2024, 1, 2, 8, 15)) == utc(2024, 1, 2, 8, 15)
    assert schedule.latest_at(utc(2024, 1, 2, 8, 14, 59)) == utc(2024, 1, 2, 8, 0)


def test_the_trigger_time_zone_wins_over_the_organization_one():
    schedule = Schedule.of({"daily": {"at": "09:00"}, "timezone": "Asia/Tokyo"}, "Europe/Berlin")
    assert schedule.next_after(utc(2024, 1, 1, 1)) == utc(2024, 1, 2, 0, 0)
    assert local(schedule, [schedule.next_after(utc(2024, 1, 1, 1))]) == ["2024-01-02 09:00+0900"]


def test_intervals_count_from_the_epoch_whatever_the_zone():
    schedule = Schedule.of({"interval": "1h30m"}, "America/New_York")
    assert schedule.slots(utc(2024, 3, 10, 5), utc(2024, 3, 10, 9)) == [
        utc(2024, 3, 10, 6), utc(2024, 3, 10, 7, 30), utc(2024, 3, 10, 9),
    ]
    every_second = Schedule.of({"interval": "1s"})
    assert every_second.next_after(utc(2024, 1, 1, 0, 0, 0).replace(microsecond=400)) == utc(2024, 1, 1, 0, 0, 1)
    assert every_second.latest_at(utc(2024, 1, 1, 0, 0, 7).replace(microsecond=999)) == utc(2024, 1, 1, 0, 0, 7)


def test_daily_weekly_and_monthly():
    daily = Schedule.of({"daily": {"at": "17:45"}}, "UTC")
    assert daily.slots(utc(2024, 1, 1), utc(2024, 1, 3)) == [utc(2024, 1, 1, 17, 45), utc(2024, 1, 2, 17, 45)]
    weekly = Schedule.of({"weekly": {"on": ["Mon", "friday"], "at": "08:00"}}, "UTC")
    # 2024-01-01 was a Monday.
    assert weekly.slots(utc(2024, 1, 1), utc(2024, 1, 10)) == [
        utc(2024, 1, 1, 8), utc(2024, 1, 5, 8), utc(2024, 1, 8, 8),
    ]
    last = Schedule.of({"monthly": {"day": "last", "at": "23:00"}}, "UTC")
    assert last.slots(utc(2024, 1, 15), utc(2024, 4, 15)) == [
        utc(2024, 1, 31, 23), utc(2024, 2, 29, 23), utc(2024, 3, 31, 23),
    ]
    # A day some months lack is skipped in them.
    thirty_first = Schedule.of({"monthly": {"day": 31, "at": "06:00"}}, "UTC")
    assert thirty_first.slots(utc(2024, 1, 15), utc(2024, 5, 15)) == [utc(2024, 1, 31, 6), utc(2024, 3, 31, 6)]


def test_a_wall_clock_time_skipped_by_dst_fires_an_hour_later_on_the_new_clock():
    # New York springs forward on 2024-03-10 at 02:00 (to 03:00): 02:30 does not exist that day.
    schedule = Schedule.of({"daily": {"at": "02:30"}}, "America/New_York")
    assert local(schedule, schedule.slots(utc(2024, 3, 9, 12), utc(2024, 3, 11, 12))) == [
        "2024-03-10 03:30-0400", "2024-03-11 02:30-0400",
    ]
    # A cron over the gap fires once per instant: 02:00 and 03:00 are the same instant that day.
    half_hourly = Schedule.of({"cron": "*/30 * * * *"}, "America/New_York")
    assert local(half_hourly, half_hourly.slots(utc(2024, 3, 10, 6, 40), utc(2024, 3, 10, 8, 40))) == [
        "2024-03-10 03:00-0400", "2024-03-10 03:30-0400", "2024-03-10 04:00-0400", "2024-03-10 04:30-0400",
    ]


def test_a_wall_clock_time_that_occurs_twice_fires_once():
    # New York falls back on 2024-11-03 at 02:00 (to 01:00): 01:30 happens twice.
    schedule = Schedule.of({"daily": {"at": "01:30"}}, "America/New_York")
    slots = schedule.slots(utc(2024, 11, 2, 12), utc(2024, 11, 4, 12))
    assert local(schedule, slots) == ["2024-11-03 01:30-0400", "2024-11-04 01:30-0500"]
    # The instants keep their real distance (25 hours across the change, then 24).
    assert (slots[1] - slots[0]).total_seconds() == 25 * 3600
    half_hourly = Schedule.of({"cron": "*/30 * * * *"}, "America/New_York")
    got = half_hourly.slots(utc(2024, 11, 3, 4, 40), utc(2024, 11, 3, 7, 40))
    assert local(half_hourly, got) == [
        "2024-11-03 01:00-0400", "2024-11-03 01:30-0400", "2024-11-03 02:00-0500", "2024-11-03 02:30-0500",
    ]
    # At-or-before, inside the repeated hour: the last slot is the first pass's 01:30.
    assert half_hourly.latest_at(utc(2024, 11, 3, 6, 40)) == utc(2024, 11, 3, 5, 30)


def test_a_due_schedule_fires_once_for_the_latest_missed_slot():
    schedule = Schedule.of({"cron": "*/5 * * * *"}, "UTC")
    assert schedule.due(utc(2024, 1, 1, 10, 5), utc(2024, 1, 1, 10, 4, 59)) is None
    on_time = schedule.due(utc(2024, 1, 1, 10, 5), utc(2024, 1, 1, 10, 5, 0))
    assert (on_time.slot, on_time.next_slot, on_time.missed) == (utc(2024, 1, 1, 10, 5), utc(2024, 1, 1, 10, 10), False)
    # Down from 10:05 to 13:02: one run, for 13:00, then 13:05; not 36 runs.
    late = schedule.due(utc(2024, 1, 1, 10, 5), utc(2024, 1, 1, 13, 2))
    assert (late.slot, late.next_slot, late.missed) == (utc(2024, 1, 1, 13, 0), utc(2024, 1, 1, 13, 5), True)


def _workflow(trigger: object) -> dict:
    return {"id": "w", "trigger": trigger, "steps": [{"id": "a", "map": {"value": 1}}]}


@pytest.mark.parametrize(("trigger", "pointer", "reason"), [
    ({"kind": "schedule"}, "/trigger", "exactly one of: cron, interval, daily, weekly, monthly"),
    ({"kind": "schedule", "cron": "* * * * *", "interval": "1m"}, "/trigger", "(got cron, interval)"),
    ({"kind": "schedule", "cron": "61 * * * *"}, "/trigger/cron", "not a valid cron expression"),
    ({"kind": "schedule", "interval": "15 minutes"}, "/trigger/interval", "not an interval"),
    ({"kind": "schedule", "interval": "0s"}, "/trigger/interval", "at least one second"),
    ({"kind": "schedule", "daily": {"at": "25:00"}}, "/trigger/daily/at", "pattern"),
    ({"kind": "schedule", "daily": {}}, "/trigger/daily/at", "required"),
    ({"kind": "schedule", "weekly": {"on": ["mon", "funday"], "at": "09:00"}}, "/trigger/weekly/on", "'funday' is not a day"),
    ({"kind": "schedule", "weekly": {"on": [], "at": "09:00"}}, "/trigger/weekly/on", "at least 1"),
    ({"kind": "schedule", "monthly": {"day": 32, "at": "09:00"}}, "/trigger/monthly/day", "1..31 or last"),
    ({"kind": "schedule", "monthly": {"day": "first", "at": "09:00"}}, "/trigger/monthly/day", "last"),
    ({"kind": "schedule", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "/trigger/timezone", "unknown time zone"),
    ({"kind": "schedule", "every": "1m"}, "/trigger/every", "Extra inputs"),
])
def test_bad_schedule_triggers_are_refused_with_pointers(trigger, pointer, reason):
    with pytest.raises(SpecValidationError) as caught:
        load_workflow(_workflow(trigger))
    problems = [(p.pointer, p.message) for p in caught.value.problems]
    assert any(p == pointer and reason in m for p, m in problems), problems


def test_good_schedule_triggers_load():
    for trigger in ({"kind": "schedule", "cron": "*/15 * * * *"}, {"kind": "schedule", "interval": "90s"},
                    {"kind": "schedule", "daily": {"at": "09:00"}, "timezone": "Europe/Berlin"},
                    {"kind": "schedule", "weekly": {"on": ["sun"], "at": "00:00"}},
                    {"kind": "schedule", "monthly": {"day": "last", "at": "23:59"}}):
        spec = load_workflow(_workflow(trigger))
        assert Schedule(spec.trigger).next_after(utc(2024, 1, 1)) > utc(2024, 1, 1)
