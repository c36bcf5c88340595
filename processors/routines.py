"""Routines and story arcs: when an agent acts on its own, as pure functions of (deployment, local date,
routine, configuration).

A routine's firing times on a local day are drawn from a generator seeded by
(deployment id, local date, routine name): every worker, a restarted one and a replay compute the same
times. A fixed-time routine runs at its local time, late by at most the character's punctuality jitter;
"every N-M hours" runs after gaps drawn from the window, from local midnight on; "daily" at a random waking
minute. Firings in the quiet hours are dropped, then the day keeps at most `daily_budget` of them. A story
arc's beat is announced at the arc's post time on the beat's first day (arcs whose beats wait for
conditions: processors/arcs.py). Whether a due firing still speaks (somebody wrote in the channel lately) is
decided at the firing's own time, so a late timer decides as a punctual one would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from uuid import UUID

from models.agent import (
    ArcBeat,
    PersonalityTraits,
    ProactiveAction,
    RoutineAction,
    RoutineSchedule,
    StoryArc,
    channel_label,
    clock_time,
)
from models.deployments import DeployedAgent
from models.processor_state import GuildDirectory
from models.state import ChannelContext
from processors.ids import seeded_rng
from processors.traits import routine_jitter_s

# The local days the timer looks at: today and yesterday, so a firing just before midnight is not lost to
# the date change.
LOOKBACK_DAYS = 1
# A firing the timer sees later than this (the worker was down) is dropped: a morning greeting at dusk is
# worse than none.
LATE_LIMIT = timedelta(hours=1)
# An arc announcement, like a routine, is not posted to a channel nobody wrote in for this long.
ARC_SILENCE_H = 24
_DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class Firing:
    """One thing a deployment does on its own, at one moment."""

    # The routine's name, or "arc:<arc name>:<beat index>" for a story arc's beat.
    routine: str
    local_day: date
    slot: int
    at: datetime  # UTC
    action: RoutineAction
    # The text as written (without AI) or the gist of the post (with AI); a topic to talk about.
    text: str
    topic: str | None
    # A channel name or id from the configuration; empty: the deployment's first text channel.
    channel: str
    skip_when_silent_h: int
    # A check-in: how long a regular has been away before it addresses them; None for other firings.
    away: timedelta | None = None

    @property
    def marker(self) -> str:
        return f"{self.local_day.isoformat()}/{self.routine}/{self.slot}"


def _utc(day: date, clock: time, schedule: RoutineSchedule) -> datetime:
    return datetime.combine(day, clock, tzinfo=schedule.zone).astimezone(UTC)


def _quiet(at: datetime, schedule: RoutineSchedule) -> bool:
    quiet = schedule.quiet_hours
    return quiet is not None and quiet.covers(at.astimezone(schedule.zone).time())


def routine_times(
    deployment_id: UUID,
    day: date,
    name: str,
    routine: ProactiveAction,
    schedule: RoutineSchedule,
    traits: PersonalityTraits,
) -> list[datetime]:
    """When `routine` fires on the local `day` (UTC times, in order): outside quiet hours, within budget."""
    rng = seeded_rng(deployment_id, day.isoformat(), name)
    candidates: list[datetime] = []
    gap = routine.gap_hours
    if routine.time is not None:
        late = timedelta(seconds=rng.uniform(0.0, routine_jitter_s(traits)))
        candidates.append(_utc(day, clock_time(routine.time), schedule) + late)
    elif gap is not None:
        # Wall-clock hours from local midnight: the gaps are what the people in the zone see.
        local = datetime.combine(day, time(0), tzinfo=schedule.zone)
        while True:
            local += timedelta(hours=rng.uniform(gap[0], gap[1]))
            if local.date() != day:
                break
            candidates.append(local.astimezone(UTC))
    else:
        quiet = schedule.quiet_hours
        minutes = [time(minute // 60, minute % 60) for minute in range(_DAY_MINUTES)]
        # Quiet hours never cover a whole day (their start differs from their end).
        awake = [clock for clock in minutes if quiet is None or not quiet.covers(clock)]
        candidates.append(_utc(day, rng.choice(awake), schedule))
    return [at for at in candidates if not _quiet(at, schedule)][: routine.daily_budget]


def beat_on(arc: StoryArc, day: date) -> tuple[int, ArcBeat] | None:
    """The beat of `arc` on the local `day` and its index; None before the arc starts or after it ends."""
    offset = (day - arc.starts_on).days
    if offset < 0:
        return None
    for index, beat in enumerate(arc.beats):
        if offset < beat.days:
            return index, beat
        offset -= beat.days
    return None


def arc_ends_on(arc: StoryArc) -> date:
    """The arc's last day."""
    return arc.starts_on + timedelta(days=sum(beat.days for beat in arc.beats) - 1)


def _beat_begins(arc: StoryArc, index: int, day: date) -> bool:
    return day - arc.starts_on == timedelta(days=sum(beat.days for beat in arc.beats[:index]))


def firings_on(deployed: DeployedAgent, day: date) -> list[Firing]:
    """Everything the deployment does on its own on the local `day`, in time order."""
    agent = deployed.agent
    behavior = agent.behavior
    schedule = behavior.schedule
    traits = agent.character.personality if agent.character is not None else PersonalityTraits()
    deployment_id = deployed.deployment.deployment_id
    found: list[Firing] = []
    for name, routine in behavior.proactive_actions.items():
        if not routine.enabled:
            continue
        for slot, at in enumerate(routine_times(deployment_id, day, name, routine, schedule, traits)):
            rng = seeded_rng(deployment_id, day.isoformat(), name, slot, "topic")
            topic = rng.choice(routine.topics) if routine.topics else None
            found.append(
                Firing(
                    routine=name,
                    local_day=day,
                    slot=slot,
                    at=at,
                    action=routine.action,
                    text=routine.message_template,
                    topic=topic,
                    channel=routine.channel,
                    skip_when_silent_h=routine.skip_when_silent_h,
                    away=routine.check_in_after if routine.action is RoutineAction.check_in else None,
                )
            )
    for arc in behavior.story_arcs:
        current = None if arc.conditional else beat_on(arc, day)
        if current is None or not current[1].announcement or not _beat_begins(arc, current[0], day):
            continue
        at = _utc(day, clock_time(arc.post_time), schedule)
        if not _quiet(at, schedule):
            found.append(
                Firing(
                    routine=f"arc:{arc.name}:{current[0]}",
                    local_day=day,
                    slot=0,
                    at=at,
                    action=RoutineAction.post,
                    text=current[1].announcement,
                    topic=None,
                    channel=arc.channel,
                    skip_when_silent_h=ARC_SILENCE_H,
                )
            )
    return sorted(found, key=lambda firing: (firing.at, firing.routine))


def local_days(deployed: DeployedAgent, now: datetime) -> list[date]:
    """The local days the timer looks at, oldest first."""
    today = now.astimezone(deployed.agent.behavior.schedule.zone).date()
    return [today - timedelta(days=back) for back in range(LOOKBACK_DAYS, -1, -1)]


def next_wake(deployed: DeployedAgent, now: datetime, firings_of: Callable[[date], list[Firing]]) -> datetime:
    """The earliest moment after `now` at which something of the deployment may fall due: its next firing on
    the days the timer looks at, or the start of its next local day (the days looked at, and the conditional
    arcs' beats, change there). Until then a tick has nothing to do for it unless its state changes."""
    days = local_days(deployed, now)
    zone = deployed.agent.behavior.schedule.zone
    next_day = datetime.combine(days[-1] + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return min([next_day, *(firing.at for day in days for firing in firings_of(day) if firing.at > now)])


def has_routines(deployed: DeployedAgent) -> bool:
    behavior = deployed.agent.behavior
    return bool(behavior.story_arcs) or any(r.enabled for r in behavior.proactive_actions.values())


def due_firings(
    deployed: DeployedAgent,
    now: datetime,
    fired: list[str],
    firings_of: Callable[[date], list[Firing]] | None = None,
) -> list[Firing]:
    """The firings due at `now` whose markers are not in `fired`, at most LATE_LIMIT late: none from
    before the deployment existed. `firings_of(day)` is `firings_on(deployed, day)`, perhaps remembered."""
    made = set(fired)
    since = max(deployed.deployment.deployed_at, now - LATE_LIMIT)
    of_day = firings_of or partial(firings_on, deployed)
    return [
        firing
        for day in local_days(deployed, now)
        for firing in of_day(day)
        if since <= firing.at <= now and firing.marker not in made
    ]


def record_fired(fired: list[str], firings: list[Firing], days: list[date]) -> list[str]:
    """The markers with the firings' added and those of days the timer no longer looks at dropped."""
    oldest = days[0].isoformat()
    return [*(marker for marker in fired if marker[:10] >= oldest), *(firing.marker for firing in firings)]


def somebody_spoke(context: ChannelContext | None, firing: Firing) -> bool:
    """A person wrote in the channel within `skip_when_silent_h` hours before the firing (0: always true)."""
    if firing.skip_when_silent_h == 0:
        return True
    since = firing.at - timedelta(hours=firing.skip_when_silent_h)
    return context is not None and any(
        not m.author_is_bot and since <= m.at <= firing.at for m in context.messages
    )


def _resolve(refs: list[str], directory: GuildDirectory | None) -> str | None:
    """The first of the channel names or ids that names a channel: an id as is, a name through the
    guild's directory (unresolvable before the guild is known)."""
    names = directory.channel_names if directory is not None else {}
    for ref in refs:
        if ref.isdigit():
            return ref
        found = next((cid for cid, name in names.items() if channel_label(name) == channel_label(ref)), None)
        if found is not None:
            return found
    return None


def text_channel(deployed: DeployedAgent, configured: str, directory: GuildDirectory | None) -> str | None:
    """The channel a routine or an arc speaks in: its `configured` one, else the deployment's first, else
    the agent's first; when none of them names one (a preset leaves the channel to the deployment), the
    guild's home channel."""
    if configured:
        return _resolve([configured], directory)
    named = [*deployed.deployment.text_channels, *deployed.agent.channels.text_channels]
    if named:
        return _resolve(named, directory)
    return directory.home_channel if directory is not None else None


def voice_channel(deployed: DeployedAgent, directory: GuildDirectory | None) -> str | None:
    """The voice channel a check-in joins: the deployment's first, else the agent's first."""
    return _resolve([*deployed.deployment.voice_channels, *deployed.agent.channels.voice_channels], directory)


def situations_on(arcs: list[StoryArc], day: date) -> list[str]:
    """The current beat of every running arc without conditions (those with them: processors/arcs.py):
    what the prompt says is going on in the character's life."""
    return [
        current[1].situation
        for arc in arcs
        if not arc.conditional and (current := beat_on(arc, day)) is not None
    ]
