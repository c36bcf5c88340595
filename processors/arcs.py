"""Story arcs whose beats wait for conditions, as pure functions of (arc, progress, event or time).

An arc without conditions is a function of the date (processors/routines.py: `beat_on`). Once some beat
waits for a condition (`ArcBeat.starts_when`), where the arc stands is table state (`ArcProgress`), moved
on by two things only:
- a person's message in the arc's channel (`counted`): it counts towards a `messages` condition, says a
  `keyword`, and may start the next beat at the message's own time;
- the routine timer (`advanced`): a beat without a condition begins at local midnight once the previous
  one has run its days; a beat whose condition was met before then begins at that midnight too.
Every beginning is thus the time of an event or a date, never of a timer tick: a replay of the same
events reproduces the same progress. A beat begun is announced at the arc's post time on its first day,
or at once when it began later that day; not in quiet hours. The arc ends when its last beat has run its
days.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from models.agent import BeatCondition, RoutineAction, RoutineSchedule, StoryArc, clock_time
from models.processor_state import ArcProgress
from processors.routines import ARC_SILENCE_H, Firing


def _midnight(day: date, schedule: RoutineSchedule) -> datetime:
    return datetime.combine(day, time(0), tzinfo=schedule.zone).astimezone(UTC)


def says(text: str, keyword: str) -> bool:
    """The text has the keyword as a word (or words) of its own, in any case."""
    return re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", text, re.IGNORECASE) is not None


def _met(condition: BeatCondition, progress: ArcProgress) -> bool:
    if condition.messages is not None:
        return progress.messages >= condition.messages
    return progress.heard


def advanced(
    arc: StoryArc, progress: ArcProgress | None, now: datetime, schedule: RoutineSchedule
) -> ArcProgress | None:
    """The arc's progress at `now`: the beats due begun (None: the arc has not started)."""
    today = now.astimezone(schedule.zone).date()
    if progress is None:
        if today < arc.starts_on:
            return None
        progress = ArcProgress(beat=0, began_on=arc.starts_on, began_at=_midnight(arc.starts_on, schedule))
    while progress.beat + 1 < len(arc.beats):
        due_on = progress.began_on + timedelta(days=arc.beats[progress.beat].days)
        following = arc.beats[progress.beat + 1].starts_when
        if today < due_on or (following is not None and not _met(following, progress)):
            break
        progress = ArcProgress(beat=progress.beat + 1, began_on=due_on, began_at=_midnight(due_on, schedule))
    return progress


def counted(
    arc: StoryArc, progress: ArcProgress | None, text: str, at: datetime, schedule: RoutineSchedule
) -> ArcProgress | None:
    """The progress after a person's message at `at` in the arc's channel; None when it changes nothing
    (the arc has not started, or the message is not newer than the last one counted)."""
    current = advanced(arc, progress, at, schedule)
    if current is None or (current.counted_until is not None and at <= current.counted_until):
        return None
    following = arc.beats[current.beat + 1].starts_when if current.beat + 1 < len(arc.beats) else None
    keyword = following.keyword if following is not None else None
    current = current.model_copy(
        update={
            "messages": current.messages + 1,
            "heard": current.heard or (keyword is not None and says(text, keyword)),
            "counted_until": at,
        }
    )
    due_on = current.began_on + timedelta(days=arc.beats[current.beat].days)
    if following is not None and at.astimezone(schedule.zone).date() >= due_on and _met(following, current):
        # The condition is met after the previous beat ran its days: the beat begins with this message.
        return ArcProgress(
            beat=current.beat + 1,
            began_on=at.astimezone(schedule.zone).date(),
            began_at=at,
            counted_until=at,
        )
    return current


def current_situation(arc: StoryArc, progress: ArcProgress | None, today: date) -> str | None:
    """What the current beat puts in the prompt; None before the arc starts and after it ends."""
    if progress is None:
        return None
    beat = arc.beats[progress.beat]
    last = progress.beat + 1 == len(arc.beats)
    if last and today >= progress.began_on + timedelta(days=beat.days):
        return None
    return beat.situation


def beat_announcement(
    arc: StoryArc, progress: ArcProgress | None, schedule: RoutineSchedule
) -> Firing | None:
    """The current beat's announcement: at the post time of its first day, or when it began if later."""
    if progress is None:
        return None
    text = arc.beats[progress.beat].announcement
    posted = datetime.combine(progress.began_on, clock_time(arc.post_time), tzinfo=schedule.zone)
    at = max(posted, progress.began_at)
    quiet = schedule.quiet_hours
    if not text or (quiet is not None and quiet.covers(at.astimezone(schedule.zone).time())):
        return None
    return Firing(
        routine=f"arc:{arc.name}:{progress.beat}",
        local_day=progress.began_on,
        slot=0,
        at=at.astimezone(UTC),
        action=RoutineAction.post,
        text=text,
        topic=None,
        channel=arc.channel,
        skip_when_silent_h=ARC_SILENCE_H,
    )
