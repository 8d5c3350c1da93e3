"""When a schedule trigger is due: the slots of a schedule, as instants in UTC.

A :class:`Schedule` is built from a validated ``ScheduleTrigger`` and the time zone its wall-clock
times are read in (the trigger's ``timezone``, else the organization's). Its *slots* are the
instants it fires at; every computation here is a pure function of the schedule and an instant,
so any process computes the same slots (that is what lets two workers agree on which run is due).

Kinds, and what a slot is:

* ``interval``: every multiple of the interval since the Unix epoch (1970-01-01T00:00Z), whatever
  the time zone: ``15m`` fires at :00, :15, :30 and :45 of every hour in UTC, ``1s`` every second.
* ``cron``: the cron expression (croniter; 5 fields, a 6th is seconds), read in the time zone.
* ``daily``, ``weekly`` and ``monthly`` are cron expressions in disguise (``daily: {at: "09:30"}``
  is ``30 9 * * *``; ``monthly: {day: last, ...}`` uses cron's ``L``; a day 29 to 31 is skipped
  in the months without it), read in the time zone the same way.

Daylight saving time (wall-clock kinds only; intervals never notice it):

* a wall-clock time that does not exist on a day (skipped when clocks go forward, e.g. 02:30 in
  New York on the second Sunday of March) fires at the instant it would have been at the old
  offset, one hour later on the new clock (03:30);
* a wall-clock time that occurs twice (clocks go back) fires once, at its first occurrence.

Catch-up (:meth:`Schedule.due`): a schedule whose due slot has passed fires once, at the latest
slot at or before now, however many slots were missed; the next slot is the first after now.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from .specs._workflow import WEEKDAYS, ScheduleTrigger, interval_seconds

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How far around an instant the UTC offset is looked at: wider than any DST change's notice.
_OFFSET_WINDOW = timedelta(hours=26)
# A cron expression matches at least once in this many slots before the one asked about
# (croniter raises for expressions that never match, e.g. 30 February).
_MAX_STEPS = 1_000_000


def cron_of(trigger: ScheduleTrigger) -> str | None:
    """The cron expression a wall-clock schedule stands for (None for an interval)."""
    if trigger.cron is not None:
        return trigger.cron
    if trigger.daily is not None:
        hour, minute = trigger.daily.at.split(":")
        return f"{int(minute)} {int(hour)} * * *"
    if trigger.weekly is not None:
        hour, minute = trigger.weekly.at.split(":")
        # cron numbers Sunday 0, Monday 1, ...
        days = ",".join(str((WEEKDAYS.index(day) + 1) % 7) for day in trigger.weekly.on)
        return f"{int(minute)} {int(hour)} * * {days}"
    if trigger.monthly is not None:
        hour, minute = trigger.monthly.at.split(":")
        day = "L" if trigger.monthly.day == "last" else str(trigger.monthly.day)
        return f"{int(minute)} {int(hour)} {day} * *"
    return None


@dataclass(frozen=True)
class Due:
    """What a due schedule does now: fire once for ``slot`` and wait for ``next_slot``.
    ``missed`` is true when slots between the one that was due and ``slot`` were skipped."""

    slot: datetime
    next_slot: datetime
    missed: bool


class Schedule:
    """The slots of one schedule trigger in one time zone (see the module docstring)."""

    def __init__(self, trigger: ScheduleTrigger, timezone: str = "UTC") -> None:
        self.trigger = trigger
        self.zone = ZoneInfo(trigger.timezone or timezone)
        self.interval = interval_seconds(trigger.interval) if trigger.interval is not None else None
        self.cron = cron_of(trigger)

    @classmethod
    def of(cls, config: dict, timezone: str = "UTC") -> Schedule:
        """A schedule from a trigger's stored JSON (``kind`` optional); pydantic's
        ``ValidationError`` when it is not a valid schedule trigger."""
        return cls(ScheduleTrigger.model_validate({**config, "kind": "schedule"}), timezone)

    # -- slots -----------------------------------------------------------------------------------

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after ``moment`` (timezone-aware), in UTC."""
        moment = _aware(moment)
        if self.interval is not None:
            step = timedelta(seconds=self.interval)
            return EPOCH + ((moment - EPOCH) // step + 1) * step
        for slot in self._walk(moment, forward=True):
            if slot > moment:
                return slot
        raise ValueError(f"the schedule {self.cron!r} has no slot after {moment.isoformat()}")

    def latest_at(self, moment: datetime) -> datetime:
        """The last slot at or before ``moment``, in UTC."""
        moment = _aware(moment)
        if self.interval is not None:
            step = timedelta(seconds=self.interval)
            return EPOCH + ((moment - EPOCH) // step) * step
        for slot in self._walk(moment, forward=False):
            if slot <= moment:
                return slot
        raise ValueError(f"the schedule {self.cron!r} has no slot before {moment.isoformat()}")

    def slots(self, start: datetime, end: datetime) -> list[datetime]:
        """Every slot in ``(start, end]``, in order."""
        found, slot = [], self.next_after(start)
        while slot <= _aware(end):
            found.append(slot)
            slot = self.next_after(slot)
        return found

    def due(self, due_at: datetime, now: datetime) -> Due | None:
        """What to do at ``now`` for a schedule whose next slot was ``due_at``: None before it;
        else fire once for the latest slot at or before ``now`` (the catch-up policy: one run,
        not one per missed slot) and wait for the first slot after ``now``."""
        due_at, now = _aware(due_at), _aware(now)
        if due_at > now:
            return None
        slot = max(self.latest_at(now), due_at)
        return Due(slot=slot, next_slot=self.next_after(now), missed=slot > due_at)

    # -- wall-clock kinds ------------------------------------------------------------------------

    def _walk(self, moment: datetime, *, forward: bool) -> Iterator[datetime]:
        """The cron's slots as UTC instants, walking from (a little before, or after) ``moment``.

        croniter walks naive wall-clock times; each is placed in the zone with ``fold=0`` (see
        the module docstring on DST). Near a change of UTC offset the walk starts that much
        earlier (later), so that a wall-clock time that maps before (after) ``moment`` is not
        skipped; instants that repeat or go backwards (the gap's slots) are dropped.
        """
        assert self.cron is not None
        offsets = [(moment + d).astimezone(self.zone).utcoffset() or timedelta()
                   for d in (-_OFFSET_WINDOW, timedelta(), _OFFSET_WINDOW)]
        margin = max(offsets) - min(offsets)
        local = moment.astimezone(self.zone).replace(tzinfo=None)
        start = local - margin if forward else local + margin + timedelta(seconds=1)
        walker = croniter(self.cron, start, ret_type=datetime, is_prev=not forward)
        last: datetime | None = None
        for _ in range(_MAX_STEPS):
            naive = walker.get_next(datetime) if forward else walker.get_prev(datetime)
            slot = naive.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
            if last is None or (slot > last if forward else slot < last):
                last = slot
                yield slot


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("schedules need timezone-aware datetimes")
    return moment.astimezone(UTC)
