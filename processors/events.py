"""Hosted events: an agent schedules a server event on Discord, reminds the interested, starts it, hosts it
(trivia: runs the round) and completes it, as pure functions of (deployment, configuration, state, now).

An occurrence's times follow from (event configuration, local date) alone, and a trivia round's questions
from (deployment, local date, event): every worker, a restarted one and a replay compute the same. What an
occurrence already did is table state (models.processor_state.EventRun), written with the outputs, so the
timer never does a step twice; every output's id derives from (occurrence, step), so a step a crash left
unrecorded is the same output when made again, which the gateway performs once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from models.actions import (
    Action,
    AnswerInChannel,
    CreateScheduledEvent,
    Report,
    ScheduledEventStatus,
    SetScheduledEventStatus,
)
from models.agent import HostedEvent, Weekday, clock_time
from models.deployments import DeployedAgent, DeploymentStatus
from models.discord import DiscordMessage, ScheduledEventUser, ScheduledEventView
from models.processor_state import MAX_INTERESTED, EventBook, EventRun, EventStep, GuildDirectory
from processors.directory import channel_by_ref
from processors.emit import Emitter, Say
from processors.ids import seeded_rng
from processors.trivia import credit, draw_round, judge, leaderboard, step

# The local days the timer looks at around today: back far enough for an occurrence that began yesterday
# and still runs, ahead as far as an event is announced (a week at most).
DAYS_BACK = 2
DAYS_AHEAD = 8
_WEEKDAYS = list(Weekday)
# A reminder mentions this many of the interested at most: a message holds 2,000 characters.
REMINDER_MENTIONS = 50
SCHEDULED_EVENT_EVENTS = frozenset(
    {"GUILD_SCHEDULED_EVENT_CREATE", "GUILD_SCHEDULED_EVENT_UPDATE", "GUILD_SCHEDULED_EVENT_DELETE"}
)
SCHEDULED_EVENT_USER_EVENTS = frozenset(
    {"GUILD_SCHEDULED_EVENT_USER_ADD", "GUILD_SCHEDULED_EVENT_USER_REMOVE"}
)


@dataclass(frozen=True)
class Occurrence:
    """One time a deployment's hosted event happens."""

    name: str
    event: HostedEvent
    local_day: date
    starts_at: datetime  # UTC
    ends_at: datetime
    announce_at: datetime
    remind_at: datetime | None


def occurrence_on(name: str, event: HostedEvent, deployed: DeployedAgent, day: date) -> Occurrence | None:
    """The event's occurrence on the local `day`, if it has one."""
    if event.on_date is not None and event.on_date != day:
        return None
    if event.weekday is not None and _WEEKDAYS[day.weekday()] is not event.weekday:
        return None
    zone = deployed.agent.behavior.schedule.zone
    starts_at = datetime.combine(day, clock_time(event.time), tzinfo=zone).astimezone(UTC)
    return Occurrence(
        name=name,
        event=event,
        local_day=day,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=event.duration_minutes),
        announce_at=starts_at - timedelta(hours=event.announce_hours),
        remind_at=starts_at - timedelta(minutes=event.remind_minutes) if event.remind_minutes else None,
    )


def local_days(deployed: DeployedAgent, now: datetime) -> list[date]:
    today = now.astimezone(deployed.agent.behavior.schedule.zone).date()
    return [today + timedelta(days=offset) for offset in range(-DAYS_BACK, DAYS_AHEAD + 1)]


def occurrences(deployed: DeployedAgent, now: datetime) -> list[Occurrence]:
    """The occurrences of the deployment's events on the days the timer looks at, in time order."""
    found = [
        occurrence
        for day in local_days(deployed, now)
        for name, event in deployed.agent.behavior.hosted_events.items()
        if (occurrence := occurrence_on(name, event, deployed, day)) is not None
    ]
    return sorted(found, key=lambda o: (o.starts_at, o.name))


def due_step(run: EventRun | None, occurrence: Occurrence, now: datetime) -> EventStep | None:
    """The occurrence's next step if it is due at `now`. An event is created only before it starts (Discord
    refuses a start in the past), reminded only before it starts, started only before its end: a worker
    that was down past a step's moment skips it rather than doing it late."""
    steps = run.steps if run is not None else []
    if run is not None and run.canceled:
        return None
    if EventStep.created not in steps:
        return EventStep.created if occurrence.announce_at <= now < occurrence.starts_at else None
    if EventStep.started not in steps:
        remind_at = occurrence.remind_at
        if (
            EventStep.reminded not in steps
            and remind_at is not None
            and remind_at <= now < occurrence.starts_at
        ):
            return EventStep.reminded
        return EventStep.started if occurrence.starts_at <= now < occurrence.ends_at else None
    if EventStep.ended in steps:
        return None
    assert run is not None
    round_over = run.trivia is not None and run.trivia.over
    return EventStep.ended if now >= occurrence.ends_at or round_over else None


def next_event_wake(book: EventBook, deployments: list[DeployedAgent], now: datetime) -> datetime:
    """The earliest moment after `now` at which a tick may do something for the deployments' events: a
    step's moment, an open question's timeout, the next local midnight (the days looked at change there);
    `now` itself while a step is due but waits (for the guild's channels) or a round moves on at the next
    tick. Until then a tick does nothing, unless the book or the configuration changes."""
    runs = {run.marker: run for run in book.runs}
    moments: list[datetime] = []
    for deployed in filter(has_hosted_events, deployments):
        zone = deployed.agent.behavior.schedule.zone
        tomorrow = now.astimezone(zone).date() + timedelta(days=1)
        moments.append(datetime.combine(tomorrow, time(0), tzinfo=zone).astimezone(UTC))
        for occurrence in occurrences(deployed, now):
            run = runs.get(_marker(deployed.deployment.deployment_id, occurrence.name, occurrence.local_day))
            round_moment = _round_moment(run, occurrence, now)
            if due_step(run, occurrence, now) is not None or round_moment == now:
                return now
            moments.extend(
                moment
                for moment in (
                    occurrence.announce_at,
                    occurrence.remind_at,
                    occurrence.starts_at,
                    occurrence.ends_at,
                )
                if moment is not None and moment > now
            )
            if round_moment is not None:
                moments.append(round_moment)
    return min(moments, default=datetime.max.replace(tzinfo=UTC))


def _round_moment(run: EventRun | None, occurrence: Occurrence, now: datetime) -> datetime | None:
    """When a running round next moves: its open question's timeout, or `now` (the next question is asked
    at the next tick)."""
    config = occurrence.event.round
    if run is None or run.trivia is None or config is None or run.trivia.over:
        return None
    if EventStep.started not in run.steps or EventStep.ended in run.steps:
        return None
    ask = run.trivia.questions[run.trivia.current]
    if ask.asked_at is None or ask.closed:
        return now
    return ask.asked_at + timedelta(seconds=config.answer_timeout_s)


def has_hosted_events(deployed: DeployedAgent) -> bool:
    return deployed.deployment.status is DeploymentStatus.active and bool(
        deployed.agent.behavior.hosted_events
    )


def _timestamp(at: datetime) -> str:
    """Discord's markup for a time every reader sees in their own zone."""
    return f"<t:{int(at.timestamp())}:F>"


@dataclass
class _Host:
    """One deployment's occurrence at one timer tick: the step's actions and the run it leaves."""

    deployed: DeployedAgent
    occurrence: Occurrence
    run: EventRun
    directory: GuildDirectory | None

    def emitter(self, part: str, about_user_id: str | None = None) -> Emitter:
        """The actions of one step; a step answering a member (a trivia answer) is about them."""
        deployment = self.deployed.deployment
        return Emitter(f"event:{self.run.marker}:{part}", self.deployed, deployment.guild_id, about_user_id)

    def channel(self) -> str | None:
        """Where the event is announced, reminded and played."""
        deployment, agent = self.deployed.deployment, self.deployed.agent
        configured = self.occurrence.event.channel
        refs = [configured] if configured else [*deployment.text_channels, *agent.channels.text_channels]
        return next(filter(None, (channel_by_ref(self.directory, ref) for ref in refs)), None)

    def report(self, channel_id: str, done: str, failed: str) -> Report:
        return Report(done=done, failed=failed, answer=AnswerInChannel(channel_id=channel_id))

    def create(self) -> list[Action] | None:
        event, occurrence = self.occurrence.event, self.occurrence
        channel_id = self.channel()
        voice_id = channel_by_ref(self.directory, event.voice_channel) if event.voice_channel else None
        if channel_id is None or (event.voice_channel and voice_id is None):
            return None  # the guild's channels are not known yet: a later tick creates it
        where = f"<#{voice_id}>" if voice_id is not None else event.location
        action = self.emitter(EventStep.created).action(
            CreateScheduledEvent,
            name=event.title,
            description=event.description,
            scheduled_start_time=occurrence.starts_at,
            scheduled_end_time=occurrence.ends_at,
            voice_channel_id=voice_id,
            location=event.location,
            report=self.report(
                channel_id,
                f"📅 **{event.title}** is on {_timestamp(occurrence.starts_at)} in {where}. "
                "Mark yourself interested to get a reminder!",
                f"I could not schedule {event.title}",
            ),
        )
        return [action]

    def remind(self) -> list[Action] | None:
        channel_id = self.channel()
        if channel_id is None:
            return None
        minutes = self.occurrence.event.remind_minutes
        interested = self.run.interested
        mentions = " ".join(f"<@{user_id}>" for user_id in interested[:REMINDER_MENTIONS])
        if len(interested) > REMINDER_MENTIONS:
            mentions += f" and {len(interested) - REMINDER_MENTIONS} more"
        text = f"⏰ **{self.occurrence.event.title}** starts in {minutes} minutes!"
        say = Say(f"{text} {mentions}".strip(), title="Reminder")
        return [self.emitter(EventStep.reminded).send(say, channel_id)]

    def set_status(self, part: str, status: ScheduledEventStatus, channel_id: str, done: str) -> list[Action]:
        """The status change on Discord (when the event's id is known), reported in the channel; without
        the id the channel is told directly."""
        emit = self.emitter(part)
        if self.run.discord_event_id is None:
            return [emit.send(Say(done), channel_id)]
        failed = f"Discord did not take the {status.name} status of {self.occurrence.event.title}"
        return [
            emit.action(
                SetScheduledEventStatus,
                event_id=self.run.discord_event_id,
                status=status,
                report=self.report(channel_id, done, failed),
            )
        ]

    def start(self) -> list[Action] | None:
        channel_id = self.channel()
        if channel_id is None:
            return None
        event = self.occurrence.event
        config = event.round
        text = f"🎬 **{event.title}** is starting now!"
        if config is not None:
            rng = seeded_rng(
                self.deployed.deployment.deployment_id, self.run.local_day, self.run.event, "trivia"
            )
            self.run = self.run.model_copy(update={"trivia": draw_round(config, rng)})
            assert self.run.trivia is not None
            count = len(self.run.trivia.questions)
            text = (
                f"🧠 **{event.title}** is starting now! {count} questions, {config.answer_timeout_s} s each: "
                "the first right answer in this channel wins the point."
            )
        return self.set_status(EventStep.started, ScheduledEventStatus.active, channel_id, text)

    def end(self) -> list[Action] | None:
        channel_id = self.channel()
        if channel_id is None:
            return None
        title = self.occurrence.event.title
        round_ = self.run.trivia
        text = (
            leaderboard(round_, title).text
            if round_ is not None
            else f"**{title}** is over. Thanks for coming!"
        )
        return self.set_status(EventStep.ended, ScheduledEventStatus.completed, channel_id, text)

    def play(self, now: datetime) -> list[Action]:
        """A running trivia round's tick: questions asked, revealed, moved on."""
        round_, config, channel_id = self.run.trivia, self.occurrence.event.round, self.channel()
        if round_ is None or config is None or channel_id is None or round_.over:
            return []
        stepped, says = step(round_, now, config.answer_timeout_s)
        if not says and stepped == round_:
            return []
        emit = self.emitter(f"q{round_.current}:{stepped.current}")
        self.run = self.run.model_copy(update={"trivia": stepped})
        return [emit.send(say, channel_id) for say in says]

    def _due_steps(self, now: datetime) -> list[Action]:
        actions: list[Action] = []
        while (due := due_step(self.run, self.occurrence, now)) is not None:
            made = {
                EventStep.created: self.create,
                EventStep.reminded: self.remind,
                EventStep.started: self.start,
                EventStep.ended: self.end,
            }[due]()
            if made is None:
                break
            actions.extend(made)
            self.run = self.run.model_copy(update={"steps": [*self.run.steps, due]})
        return actions

    def advance(self, now: datetime) -> list[Action]:
        """Every step due at `now`, in order; a running round's tick, and its end when it is over."""
        actions = self._due_steps(now)
        if EventStep.started in self.run.steps and EventStep.ended not in self.run.steps:
            actions.extend(self.play(now))
            actions.extend(self._due_steps(now))
        return actions

    def answer(self, message: DiscordMessage) -> list[Action] | None:
        """A message in the event's channel judged as an answer; None when it changes nothing."""
        round_ = self.run.trivia
        if round_ is None or self.channel() != message.channel_id or EventStep.ended in self.run.steps:
            return None
        judged, say = judge(round_, message.id, message.author.id, message.content)
        if judged is None:
            return None
        self.run = self.run.model_copy(update={"trivia": judged})
        if say is None:
            return []
        return [self.emitter(f"answer:{message.id}", message.author.id).send(say, message.channel_id)]


def host_events(
    book: EventBook | None, deployments: list[DeployedAgent], directory: GuildDirectory | None, now: datetime
) -> tuple[EventBook, list[Action]]:
    """The steps due at `now` of every occurrence of the deployments' events; the book they leave (runs of
    days the timer no longer looks at are dropped, with those of deployments gone)."""
    runs = {run.marker: run for run in (book.runs if book is not None else [])}
    points = book.points if book is not None else {}
    kept: dict[str, EventRun] = {}
    actions: list[Action] = []
    for deployed in deployments:
        if not has_hosted_events(deployed):
            continue
        deployment_id = deployed.deployment.deployment_id
        oldest = local_days(deployed, now)[0]
        for occurrence in occurrences(deployed, now):
            run = runs.get(_marker(deployment_id, occurrence.name, occurrence.local_day))
            if run is None and due_step(None, occurrence, now) is None:
                continue
            host = _Host(deployed, occurrence, run or _new_run(deployment_id, occurrence), directory)
            actions.extend(host.advance(now))
            ended_now = EventStep.ended in host.run.steps and (
                run is None or EventStep.ended not in run.steps
            )
            if ended_now and host.run.trivia is not None:
                points = credit(points, host.run.trivia)
            if host.run.steps:
                kept[host.run.marker] = host.run
        for marker, run in runs.items():
            if run.deployment_id == deployment_id and run.local_day >= oldest and marker not in kept:
                kept[marker] = run
    return EventBook(runs=sorted(kept.values(), key=lambda r: r.marker), points=points), actions


def _marker(deployment_id: UUID, name: str, day: date) -> str:
    return f"{deployment_id}/{name}/{day.isoformat()}"


def _new_run(deployment_id: UUID, occurrence: Occurrence) -> EventRun:
    return EventRun(deployment_id=deployment_id, event=occurrence.name, local_day=occurrence.local_day)


def _hosts(
    book: EventBook, deployments: list[DeployedAgent], directory: GuildDirectory | None
) -> list[tuple[int, _Host]]:
    """The book's runs whose deployment and event are still configured, by their index in the book."""
    by_id = {d.deployment.deployment_id: d for d in deployments if has_hosted_events(d)}
    found = []
    for index, run in enumerate(book.runs):
        deployed = by_id.get(run.deployment_id)
        event = deployed.agent.behavior.hosted_events.get(run.event) if deployed is not None else None
        occurrence = occurrence_on(run.event, event, deployed, run.local_day) if event and deployed else None
        if deployed is not None and occurrence is not None:
            found.append((index, _Host(deployed, occurrence, run, directory)))
    return found


def take_answer(
    book: EventBook,
    deployments: list[DeployedAgent],
    directory: GuildDirectory | None,
    message: DiscordMessage,
) -> tuple[EventBook | None, list[Action]]:
    """A person's message judged by the trivia rounds running in its channel; None: the book is unchanged."""
    if message.author.bot:
        return None, []
    runs, actions, changed = list(book.runs), [], False
    for index, host in _hosts(book, deployments, directory):
        made = host.answer(message)
        if made is not None:
            runs[index], changed = host.run, True
            actions.extend(made)
    return (book.model_copy(update={"runs": runs}) if changed else None), actions


def learn_scheduled_event(
    book: EventBook,
    deployments: list[DeployedAgent],
    kind: str,
    data: ScheduledEventView | ScheduledEventUser,
) -> EventBook | None:
    """What Discord says of a scheduled event: the id of one the agent created, who is interested, that a
    person canceled or deleted it. None: none of the book's runs is concerned."""
    bots = {d.deployment.deployment_id: d for d in deployments}
    runs, changed = list(book.runs), False
    for index, run in enumerate(book.runs):
        updated = _learnt(run, bots.get(run.deployment_id), kind, data)
        if updated is not None and updated != run:
            runs[index], changed = updated, True
    return book.model_copy(update={"runs": runs}) if changed else None


def _learnt(
    run: EventRun, deployed: DeployedAgent | None, kind: str, data: ScheduledEventView | ScheduledEventUser
) -> EventRun | None:
    if isinstance(data, ScheduledEventUser):
        if data.guild_scheduled_event_id != run.discord_event_id:
            return None
        adding = kind == "GUILD_SCHEDULED_EVENT_USER_ADD"
        if adding == (data.user_id in run.interested):
            return None  # a redelivered dispatch
        others = [user_id for user_id in run.interested if user_id != data.user_id]
        interested = [*others, data.user_id][-MAX_INTERESTED:] if adding else others
        return run.model_copy(update={"interested": interested})
    if run.discord_event_id is None:
        if kind != "GUILD_SCHEDULED_EVENT_CREATE" or deployed is None or not _ours(run, deployed, data):
            return None
        return run.model_copy(update={"discord_event_id": data.id})
    if data.id != run.discord_event_id:
        return None
    gone = kind == "GUILD_SCHEDULED_EVENT_DELETE" or data.status == ScheduledEventStatus.canceled
    return run.model_copy(update={"canceled": True}) if gone and not run.canceled else None


def _ours(run: EventRun, deployed: DeployedAgent, data: ScheduledEventView) -> bool:
    """The scheduled event is the one this run created: by its bot, under its title, at its start."""
    event = deployed.agent.behavior.hosted_events.get(run.event)
    occurrence = occurrence_on(run.event, event, deployed, run.local_day) if event is not None else None
    return (
        occurrence is not None
        and data.creator_id == deployed.deployment.bot_id
        and data.name == occurrence.event.title
        and data.scheduled_start_time == occurrence.starts_at
    )
