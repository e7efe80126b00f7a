"""Agents and their prompt versions: ``/api/agents/...`` (docs/api.md#agents).

Reads are open to both roles; writes need the admin role. A write is validated twice, like the
dashboard's agent form: field types and ranges by the input serializer (the model's own
validators), then the model's ``full_clean`` (its cross-field rules and origin normalising),
before :func:`parley.agents.services.agent_save` saves the agent, its tools and its prompt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from parley.agents.models import Agent, PromptVersion, Scenario
from parley.agents.selectors import prompt_active
from parley.agents.services import agent_publish, agent_save, prompt_change, prompt_rollback
from parley.platform.api.errors import BAD_REQUEST, NOT_FOUND
from parley.platform.api.fields import SlugKeyField
from parley.platform.api.pagination import Pagination, paginated_response
from parley.platform.api.permissions import ConfigureRole, ReadRole
from parley.platform.api.selectors import agent_get, agent_list, prompt_version_list
from parley.platform.dashboard.forms import AgentForm
from parley.platform.fleet.models import ModelPool
from parley.tools.models import ToolSchema

#: The agent's settings an admin edits: exactly the dashboard form's model fields.
AGENT_FIELDS: tuple[str, ...] = tuple(AgentForm.Meta.fields)
#: Model fields kept as one entry per line, sent and shown as JSON lists.
LINE_LIST_FIELDS = ("allowed_origins", "stt_keyterms")

TAG_AGENTS = ["agents"]
TAG_PROMPTS = ["prompts"]


def _agent_or_404(slug: str) -> Agent:
    agent = agent_get(slug=slug)
    if agent is None:
        raise NotFound(f"no agent named {slug!r}")
    return agent


def _active_prompt(agent: Agent) -> PromptVersion | None:
    loaded = getattr(agent, "active_prompts", None)  # set by selectors.agent_list
    if loaded is None:
        return prompt_active(agent=agent)
    return loaded[0] if loaded else None


class PromptVersionSerializer(serializers.ModelSerializer):
    """One version of an agent's system prompt."""

    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="Who saved it (null: a command)."
    )

    class Meta:
        model = PromptVersion
        fields = ("version", "text", "active", "created_by", "created_at")


# Agents -----------------------------------------------------------------------------------


class AgentListApi(APIView):
    """``GET /api/agents/``: every agent, by name."""

    permission_classes = [ReadRole]
    pagination_class = Pagination

    class OutputSerializer(serializers.ModelSerializer):
        scenario = serializers.SlugRelatedField(slug_field="slug", read_only=True)
        model_pool = serializers.SlugRelatedField(slug_field="slug", read_only=True)
        tools = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
        prompt_version = serializers.SerializerMethodField(
            help_text="Number of the active prompt version."
        )

        class Meta:
            model = Agent
            fields = (
                "slug",
                "name",
                "scenario",
                "model_pool",
                "published",
                "prompt_version",
                "tools",
                "updated_at",
            )

        def get_prompt_version(self, agent: Agent) -> int | None:
            active = _active_prompt(agent)
            return active.version if active else None

    @extend_schema(tags=TAG_AGENTS, responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return paginated_response(
            request=request,
            view=self,
            items=agent_list(),
            serializer_class=self.OutputSerializer,
        )


class AgentDetailApi(APIView):
    """``GET /api/agents/<slug>/``: an agent's whole configuration."""

    permission_classes = [ReadRole]

    class OutputSerializer(serializers.ModelSerializer):
        scenario = serializers.SlugRelatedField(slug_field="slug", read_only=True)
        model_pool = serializers.SlugRelatedField(slug_field="slug", read_only=True)
        tools = serializers.SlugRelatedField(
            slug_field="name", many=True, read_only=True, help_text="Tools it may call."
        )
        prompt = serializers.SerializerMethodField(help_text="The active prompt version.")
        allowed_origins = serializers.SerializerMethodField()
        stt_keyterms = serializers.SerializerMethodField()

        class Meta:
            model = Agent
            fields = (
                *AGENT_FIELDS,
                "published",
                "publishable_key",
                "tools",
                "prompt",
                "created_at",
                "updated_at",
            )

        @extend_schema_field(PromptVersionSerializer(allow_null=True))
        def get_prompt(self, agent: Agent) -> dict[str, Any] | None:
            active = _active_prompt(agent)
            return PromptVersionSerializer(active).data if active else None

        def get_allowed_origins(self, agent: Agent) -> list[str]:
            return agent.allowed_origin_list

        def get_stt_keyterms(self, agent: Agent) -> list[str]:
            return [line.strip() for line in agent.stt_keyterms.splitlines() if line.strip()]

    @extend_schema(tags=TAG_AGENTS, responses={200: OutputSerializer, 404: NOT_FOUND})
    def get(self, request: Request, slug: str) -> Response:
        return Response(self.OutputSerializer(_agent_or_404(slug)).data)


class AgentInputSerializer(serializers.ModelSerializer):
    """What an admin sets on an agent: the dashboard form's fields, typed for JSON."""

    scenario = SlugKeyField(
        slug_field="slug", queryset=Scenario.objects.all(), help_text="Scenario slug."
    )
    model_pool = SlugKeyField(
        slug_field="slug", queryset=ModelPool.objects.all(), help_text="Model pool slug."
    )
    allowed_origins = serializers.ListField(
        child=serializers.CharField(max_length=300),
        required=False,
        help_text="Web origins allowed to embed the widget, e.g. https://www.example.com.",
    )
    stt_keyterms = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="Extra words Deepgram should boost.",
    )
    tools = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        help_text="Names of the scenario's tools it may call. On create, default: all of "
        "them; on update, default: unchanged.",
    )
    prompt = serializers.CharField(
        help_text="The system prompt; a changed text becomes a new active prompt version."
    )

    class Meta:
        model = Agent
        fields = (*AGENT_FIELDS, "tools", "prompt")


def _model_values(data: dict[str, Any]) -> dict[str, Any]:
    """Validated input → Agent field values (JSON lists → one entry per line)."""
    values = dict(data)
    for name in LINE_LIST_FIELDS:
        if name in values:
            values[name] = "\n".join(item.strip() for item in values[name])
    return values


def _tools_resolve(*, scenario: Scenario, names: Iterable[str] | None) -> list[ToolSchema]:
    """The scenario's tools called ``names`` (``None``: all of them). Raises a 400 naming
    ``tools`` for a name the scenario has no tool for."""
    available = {tool.name: tool for tool in scenario.tool_schemas.order_by("name")}
    if names is None:
        return list(available.values())
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise ValidationError(
            {
                "tools": [
                    f"not tools of the {scenario.slug} scenario: {', '.join(unknown)} "
                    f"(it has: {', '.join(available) or 'none'})"
                ]
            }
        )
    return [available[name] for name in dict.fromkeys(names)]


class AgentCreateApi(APIView):
    """``POST /api/agents/``: a new agent (unpublished) with prompt version 1."""

    permission_classes = [ConfigureRole]
    parser_classes = [JSONParser]

    class InputSerializer(AgentInputSerializer):
        pass

    @extend_schema(
        tags=TAG_AGENTS,
        request=InputSerializer,
        responses={201: AgentDetailApi.OutputSerializer, 400: BAD_REQUEST},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = _model_values(serializer.validated_data)
        prompt = values.pop("prompt")
        tool_names = values.pop("tools", None)
        agent = Agent(**values)
        agent.full_clean()  # the model's own rules, as the dashboard form applies them
        tools = _tools_resolve(scenario=agent.scenario, names=tool_names)
        agent_save(agent=agent, tools=tools, prompt=prompt, by=request.user)
        return Response(
            AgentDetailApi.OutputSerializer(_agent_or_404(agent.slug)).data,
            status=status.HTTP_201_CREATED,
        )


class AgentUpdateApi(APIView):
    """``PATCH /api/agents/<slug>/``: change some of an agent's settings, tools or prompt.

    A changed prompt text becomes a new active prompt version; the slug never changes.
    """

    permission_classes = [ConfigureRole]
    parser_classes = [JSONParser]

    class InputSerializer(AgentInputSerializer):
        prompt = serializers.CharField(
            required=False,
            help_text="The system prompt; a changed text becomes a new active prompt version.",
        )

        class Meta(AgentInputSerializer.Meta):
            fields = tuple(name for name in AgentInputSerializer.Meta.fields if name != "slug")

    @extend_schema(
        tags=TAG_AGENTS,
        request=InputSerializer,
        responses={200: AgentDetailApi.OutputSerializer, 400: BAD_REQUEST},
    )
    def patch(self, request: Request, slug: str) -> Response:
        agent = _agent_or_404(slug)
        serializer = self.InputSerializer(instance=agent, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        if request.data.get("slug", agent.slug) != agent.slug:
            raise ValidationError(
                {"slug": ["An agent's slug cannot be changed (it is in URLs and snippets)."]}
            )
        values = _model_values(serializer.validated_data)
        prompt = values.pop("prompt", None)
        tool_names = values.pop("tools", None)
        for name, value in values.items():
            setattr(agent, name, value)
        agent.full_clean()  # the model's own rules, as the dashboard form applies them
        if tool_names is None:
            tool_names = [tool.name for tool in agent.tools.all()]
        tools = _tools_resolve(scenario=agent.scenario, names=tool_names)
        if prompt is None:
            active = _active_prompt(agent)
            prompt = active.text if active else ""
        agent_save(agent=agent, tools=tools, prompt=prompt, by=request.user)
        return Response(AgentDetailApi.OutputSerializer(_agent_or_404(agent.slug)).data)


class AgentPublishApi(APIView):
    """``POST /api/agents/<slug>/publish``: publish (callers reach it) or unpublish."""

    permission_classes = [ConfigureRole]
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        published = serializers.BooleanField(
            help_text="true: the widget and callers reach it; false: only test calls."
        )

    @extend_schema(
        tags=TAG_AGENTS,
        request=InputSerializer,
        responses={200: AgentDetailApi.OutputSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request, slug: str) -> Response:
        agent = _agent_or_404(slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent_publish(agent=agent, published=serializer.validated_data["published"])
        return Response(AgentDetailApi.OutputSerializer(agent).data)  # updated in place


# Prompts ----------------------------------------------------------------------------------


class PromptListApi(APIView):
    """``GET /api/agents/<slug>/prompts/``: the agent's prompt versions, newest first."""

    permission_classes = [ReadRole]
    pagination_class = Pagination

    @extend_schema(tags=TAG_PROMPTS, responses=PromptVersionSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        agent = get_object_or_404(Agent, slug=slug)
        return paginated_response(
            request=request,
            view=self,
            items=prompt_version_list(agent=agent),
            serializer_class=PromptVersionSerializer,
        )


class PromptCreateApi(APIView):
    """``POST /api/agents/<slug>/prompts/``: make a text the active prompt.

    201 with the new version; 200 with the active version when the text is already active
    (line breaks and surrounding whitespace aside), so sending the same text twice is safe.
    """

    permission_classes = [ConfigureRole]
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(help_text="The new system prompt.")

    @extend_schema(
        tags=TAG_PROMPTS,
        request=InputSerializer,
        responses={
            201: OpenApiResponse(PromptVersionSerializer, description="A new active version."),
            200: OpenApiResponse(PromptVersionSerializer, description="Unchanged: the active."),
            400: BAD_REQUEST,
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        agent = get_object_or_404(Agent, slug=slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = prompt_change(
            agent=agent, text=serializer.validated_data["text"], created_by=request.user
        )
        if created is None:
            active = agent.prompts.select_related("created_by").get(active=True)
            return Response(PromptVersionSerializer(active).data, status=status.HTTP_200_OK)
        return Response(PromptVersionSerializer(created).data, status=status.HTTP_201_CREATED)


class PromptRollbackApi(APIView):
    """``POST /api/agents/<slug>/prompts/<version>/rollback``: a new active version with the
    text of ``version`` (history is append-only). 400 when that text is already active."""

    permission_classes = [ConfigureRole]

    @extend_schema(
        tags=TAG_PROMPTS,
        request=None,
        responses={201: PromptVersionSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def post(self, request: Request, slug: str, version: int) -> Response:
        agent = get_object_or_404(Agent, slug=slug)
        if not agent.prompts.filter(version=version).exists():
            raise NotFound(f"{slug} has no prompt version {version}")
        created = prompt_rollback(agent=agent, version=version, by=request.user)
        return Response(PromptVersionSerializer(created).data, status=status.HTTP_201_CREATED)
