"""Factories of the call record: agents (without seeding scenario data), conversations, turns,
events and tool calls with the latencies a test chooses (factory_boy).

``ConversationFactory(agent=agent, started_at=...)``; ``TurnFactory(conversation=c, index=1,
ttfa_ms=900.0)`` (turn *i* starts *i* seconds into the call; no latency unless given);
``ToolCallFactory(turn=t, status="error")`` (its conversation is the turn's) or
``ToolCallFactory(conversation=c, name="find_patient")`` (no turn).
"""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from parley.agents.models import Agent, Scenario
from parley.conversations.models import CallEvent, Conversation, Turn
from parley.platform.fleet.models import ModelPool
from parley.tools.models import ToolCall


class ScenarioFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scenario
        django_get_or_create = ("slug",)

    slug = "hospital"
    name = "Hospital"
    domain = "hospital"


class ModelPoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelPool
        django_get_or_create = ("slug",)

    slug = "simulator"
    name = "LLM simulator (built in, not a real model)"
    kind = ModelPool.Kind.SIMULATOR
    model = "parley-simulator"


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"agent-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    scenario = factory.SubFactory(ScenarioFactory)
    model_pool = factory.SubFactory(ModelPoolFactory)
    published = True


class ConversationFactory(factory.django.DjangoModelFactory):
    """An ended call that lasted a minute."""

    class Meta:
        model = Conversation

    agent = factory.SubFactory(AgentFactory)
    status = Conversation.Status.ENDED
    started_at = factory.LazyFunction(timezone.now)
    ended_at = factory.LazyAttribute(lambda o: o.started_at + dt.timedelta(minutes=1))
    providers = factory.LazyFunction(
        lambda: {"stt": "pocketsphinx", "tts": "espeak-ng", "llm": "simulator:parley-simulator"}
    )


class TurnFactory(factory.django.DjangoModelFactory):
    """A completed turn (index 0 is the greeting) with no latency measured unless given; the
    caller heard all of the reply (``spoken_text`` = ``agent_text``)."""

    class Meta:
        model = Turn

    conversation = factory.SubFactory(ConversationFactory)
    index = factory.Sequence(lambda n: n + 1)
    status = Turn.Status.COMPLETED
    started_at = factory.LazyAttribute(
        lambda o: o.conversation.started_at + dt.timedelta(seconds=o.index)
    )
    ended_at = factory.LazyAttribute(lambda o: o.started_at + dt.timedelta(milliseconds=900))
    user_text = ""
    agent_text = ""
    spoken_text = factory.LazyAttribute(lambda o: o.agent_text)


class CallEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CallEvent

    conversation = factory.SubFactory(ConversationFactory)
    seq = factory.Sequence(lambda n: n + 1)
    turn_index = 1
    type = "agent.text"
    t_ms = factory.LazyAttribute(lambda o: 100.0 * o.seq)
    data = factory.LazyFunction(lambda: {"text": "Hello."})


class ToolCallFactory(factory.django.DjangoModelFactory):
    """A tool call that succeeded in 12 ms, in ``turn`` (then of its conversation) or in
    ``conversation`` with no turn."""

    class Meta:
        model = ToolCall

    turn = None
    conversation = factory.LazyAttribute(
        lambda o: o.turn.conversation if o.turn is not None else ConversationFactory()
    )
    scenario = "hospital"
    call_id = factory.Sequence(lambda n: f"call_{n}")
    name = "find_patient"
    arguments_raw = "{}"
    arguments = factory.LazyFunction(dict)
    status = ToolCall.Status.OK
    result = '{"ok": true}'
    started_at = factory.LazyAttribute(
        lambda o: (o.turn or o.conversation).started_at + dt.timedelta(milliseconds=300)
    )
    finished_at = factory.LazyAttribute(lambda o: o.started_at + dt.timedelta(milliseconds=12))
    duration_ms = 12.0
