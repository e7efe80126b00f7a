"""The hospital policy: a scripted receptionist for the hospital scenario.

It stands in for a real model on the hospital tools (parley/tools/hospital): keyword rules over
the caller's lower-case STT text find intents and the patients and doctors of the seed data,
emit real tool calls whose arguments match tools.json, and turn tool results into one or two
short spoken sentences. Seed data and tools.json are read once per process, by path (no Django).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from parley.agents.llm_simulator import spoken
from parley.agents.llm_simulator.replies import (
    ChatRequest,
    PlannedToolCall,
    Reply,
    message_text,
    new_call_id,
)

__all__ = ["HOSPITAL_DIR", "HospitalPolicy", "hospital_tool_names"]

#: The hospital scenario (tools.json and seed data), found by path so no Django app loads.
HOSPITAL_DIR = Path(__file__).resolve().parents[2] / "tools" / "hospital"


# ---------------------------------------------------------------- hospital data


@dataclass(frozen=True, slots=True)
class _HospitalData:
    patients: dict[str, dict[str, Any]]
    doctors: dict[str, dict[str, Any]]
    appointments: dict[str, dict[str, Any]]
    departments: tuple[str, ...]
    tool_schemas: dict[str, dict[str, Any]]
    patient_names: tuple[tuple[tuple[str, ...], str], ...]  # (name words, patient id)
    doctor_names: tuple[tuple[tuple[str, ...], str], ...]  # (name words without "dr", id)
    doctor_last_names: dict[str, str | None]  # last name → id, None if ambiguous

    def doctor_name(self, doctor_id: Any) -> str | None:
        record = self.doctors.get(str(doctor_id)) if doctor_id else None
        return _doctor_title(record["name"]) if record else None

    def patient_name(self, patient_id: Any) -> str | None:
        record = self.patients.get(str(patient_id)) if patient_id else None
        return record["name"] if record else None


def _doctor_title(name: str) -> str:
    """A doctor's spoken title: "Sarah Johnson" or "Dr. Sarah Johnson" → "Dr. Sarah Johnson"."""
    bare = re.sub(r"^(?:dr\.?|doctor)\s+", "", name.strip(), flags=re.IGNORECASE)
    return f"Dr. {bare}"


@functools.cache
def _hospital_data(directory: Path = HOSPITAL_DIR) -> _HospitalData:
    """Load tools.json and the seed data once per process."""

    def read(name: str) -> Any:
        return json.loads((directory / name).read_text(encoding="utf-8"))

    patients = read("data/patients.json")
    doctors = read("data/doctors.json")
    tools = read("tools.json")
    last_names: dict[str, str | None] = {}
    doctor_names = []
    for doctor_id, record in doctors.items():
        words = tuple(spoken.tokens(_doctor_title(record["name"]))[1:])
        doctor_names.append((words, doctor_id))
        last = words[-1]
        last_names[last] = None if last in last_names else doctor_id
    return _HospitalData(
        patients=patients,
        doctors=doctors,
        appointments=read("data/appointments.json"),
        departments=tuple(d["name"] for d in read("data/departments.json").values()),
        tool_schemas={t["function"]["name"]: t["function"] for t in tools},
        patient_names=tuple(
            (tuple(spoken.tokens(record["name"])), patient_id)
            for patient_id, record in patients.items()
        ),
        doctor_names=tuple(doctor_names),
        doctor_last_names=last_names,
    )


def hospital_tool_names() -> frozenset[str]:
    """The function names in the hospital scenario's tools.json."""
    return frozenset(_hospital_data().tool_schemas)


# ---------------------------------------------------------------- hospital: understanding


@dataclass(frozen=True, slots=True)
class _Mention:
    kind: Literal["patient", "doctor"]
    identifier: str  # a name ("John Smith", "Dr. Sarah Johnson"), or an unknown raw ID
    id: str | None
    start: int  # token index
    end: int


_RELATIONS = (
    "daughter|son|wife|husband|mother|mom|mum|father|dad|sister|brother|partner|friend|"
    "spouse|aunt|uncle|cousin|neighbor|neighbour|grandmother|grandfather|grandma|grandpa|"
    "fiance|fiancee|niece|nephew"
)
_CONTACT_NAME = re.compile(
    r"\bcontact\b(?: \w+){0,5}? (?:to|is|as|be|now) (?:(?:my|his|her|their|the|our) )?"
    rf"(?:(?:new )?(?:{_RELATIONS}) )?(?P<name>[a-z]+(?: [a-z]+)?)"
)
_NOT_NAME_WORDS = {
    "at", "with", "phone", "number", "and", "on", "whose", "who", "to", "please", "her",
    "his", "their", "the", "a", "is", "now", "be", "for", "of", "me", "my", "it",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Utterance:
    """What one caller message says, as far as the hospital policy understands it."""

    position: int  # index in the request's messages
    text: str  # normalised
    intents: tuple[str, ...]
    mentions: tuple[_Mention, ...]
    date: str | None
    time: str | None
    phone: str | None
    contact_name: str | None
    department: str | None
    priority: str | None
    referral_status: str | None
    referral_type: str | None

    def first(self, kind: str) -> _Mention | None:
        return next((m for m in self.mentions if m.kind == kind), None)


def _understand(position: int, raw: str, data: _HospitalData) -> _Utterance:
    words = spoken.tokens(raw)
    text = " ".join(words)
    skip: set[int] = set()
    contact_name = None
    phone = spoken.find_phone(words)
    match = _CONTACT_NAME.search(text)
    if match:
        name_words = []
        for word in match.group("name").split():
            if word in _NOT_NAME_WORDS or spoken.spoken_digits([word], 0)[0] or word.isdigit():
                break
            name_words.append(word)
        if name_words:
            contact_name = " ".join(w.capitalize() for w in name_words)
            first = text[: match.start("name")].count(" ")
            skip.update(range(first, first + len(name_words)))
    if phone is not None:
        skip.update(range(phone[1], phone[2]))
    mentions = _find_mentions(words, data, skip)
    return _Utterance(
        position=position,
        text=text,
        intents=_detect_intents(text, has_doctor=any(m.kind == "doctor" for m in mentions)),
        mentions=mentions,
        date=spoken.find_date(raw),
        time=spoken.find_time(raw),
        phone=phone[0] if phone else None,
        contact_name=contact_name,
        department=_find_department(text, data),
        priority=_first_word(text, {"urgent": "urgent", "stat": "stat", "routine": "routine"}),
        referral_status=_first_word(
            text,
            {
                "pending": "pending",
                "scheduled": "scheduled",
                "completed": "completed",
                "complete": "completed",
                "cancelled": "cancelled",
                "canceled": "cancelled",
                "cancel": "cancelled",
            },
        ),
        referral_type=_first_word(
            text,
            {
                "incoming": "incoming",
                "received": "incoming",
                "outgoing": "outgoing",
                "sent": "outgoing",
                "made": "outgoing",
            },
        ),
    )


def _first_word(text: str, table: dict[str, str]) -> str | None:
    match = re.search(rf"\b(?:{'|'.join(table)})\b", text)
    return table[match.group(0)] if match else None


def _find_department(text: str, data: _HospitalData) -> str | None:
    for name in data.departments:
        pattern = rf"\b{re.escape(name.lower())}\b"
        if name == "Emergency":
            pattern += "(?! contact)"
        if re.search(pattern, text):
            return name
    return None


def _find_mentions(words: list[str], data: _HospitalData, skip: set[int]) -> tuple[_Mention, ...]:
    """Patients and doctors named in ``words`` (token indexes in ``skip`` are ignored).

    Order of precedence: "doctor/dr" + full or unique last name, spelled-out IDs ("p two zero
    zero one", "P2001", "patient id 2001"), patient full names, then bare doctor full names —
    so "doctor maria rodriguez" is the obstetrician and "maria rodriguez" the patient.
    """
    used = set(skip)
    found: list[_Mention] = []

    def free(start: int, end: int) -> bool:
        return end <= len(words) and not any(i in used for i in range(start, end))

    def add(
        kind: Literal["patient", "doctor"], record_id: str | None, raw: str, start: int, end: int
    ) -> None:
        name: str | None = None
        if record_id is not None:
            name = (
                data.patient_name(record_id) if kind == "patient" else data.doctor_name(record_id)
            )
        found.append(_Mention(kind, name or raw, record_id if name else None, start, end))
        used.update(range(start, end))

    for i, word in enumerate(words):
        if word not in ("doctor", "dr") or not free(i, i + 1):
            continue
        for name_words, doctor_id in data.doctor_names:
            end = i + 1 + len(name_words)
            if tuple(words[i + 1 : end]) == name_words and free(i, end):
                add("doctor", doctor_id, "", i, end)
                break
        else:
            if i + 1 < len(words) and free(i + 1, i + 2):
                unique_id = data.doctor_last_names.get(words[i + 1])
                if unique_id:
                    add("doctor", unique_id, "", i, i + 2)

    for i, word in enumerate(words):
        if not free(i, i + 1):
            continue
        kind: Literal["patient", "doctor"] | None = None
        digits, end = "", i
        if re.fullmatch(r"[pd]\d{4}", word):
            kind = "patient" if word[0] == "p" else "doctor"
            digits, end = word[1:], i + 1
        elif word in ("p", "d"):
            digits, end = spoken.spoken_digits(words, i + 1)
            kind = "patient" if word == "p" else "doctor"
        elif (
            word == "patient"
            and i + 1 < len(words)
            and words[i + 1] in ("id", "number", "identifier")
        ):
            j = i + 2 + (1 if i + 2 < len(words) and words[i + 2] in ("is", "p") else 0)
            digits, end = spoken.spoken_digits(words, j)
            kind = "patient"
        if kind and len(digits) == 4 and free(i, end):
            record_id = ("P" if kind == "patient" else "D") + digits
            known = record_id in (data.patients if kind == "patient" else data.doctors)
            add(kind, record_id if known else None, record_id, i, end)

    for table, kind in ((data.patient_names, "patient"), (data.doctor_names, "doctor")):
        for name_words, record_id in table:
            size = len(name_words)
            for i in range(len(words) - size + 1):
                if tuple(words[i : i + size]) == name_words and free(i, i + size):
                    add(kind, record_id, "", i, i + size)  # type: ignore[arg-type]
    return tuple(sorted(found, key=lambda m: m.start))


def _detect_intents(text: str, *, has_doctor: bool) -> tuple[str, ...]:
    """Intents in ``text`` in the order they are mentioned (tool names, or "verify"/"referrals")."""
    found: dict[str, int] = {}

    def hit(intent: str, pattern: str) -> bool:
        match = re.search(rf"\b(?:{pattern})\b", text)
        if match and intent not in found:
            found[intent] = match.start()
        return match is not None

    def has(pattern: str) -> bool:
        return re.search(rf"\b(?:{pattern})\b", text) is not None

    referral = re.search(r"\b(?:referrals?|refer|referred|referring)\b", text)
    if referral:
        at = referral.start()
        if has("pending|scheduled|completed?|cancell?ed|cancel") and has(
            "update|change|mark|set|move|cancel|now"
        ):
            found["update_referral_status"] = at
        elif has("create|make|new|write|send|put in|refer") and not has(
            "check|what|show|review|see|list|status|any"
        ):
            found["create_referral"] = at
        elif has("incoming|outgoing|received|sent") or (has_doctor and not has("my")):
            found["get_doctor_referrals"] = at
        else:
            found["referrals"] = at
    else:
        cancel = hit("cancel_appointment", r"cancel|cancelling|canceling|cancellation|call off")
        schedule = hit(
            "schedule_appointment",
            r"(?<!medication )(?<!medications )(?<!dosing )schedule|reschedule|book|booking|"
            r"new appointment|"
            r"(?:make|need|want|get|set up|like) (?:an|a|a new|another|a follow up) "
            r"(?:appointment|visit)|move my(?: \w+){0,3} (?:appointment|visit)",
        )
        if not cancel and not schedule:
            hit("get_appointment", r"appointments?|visit")
    hit("get_lab_results", r"labs?|lab results?|test results?|blood work|bloodwork|results")
    hit(
        "get_patient_medications",
        r"medications?|meds|medicines?|prescriptions?|pills|drugs",
    )
    emergency = re.search(r"\bemergency contact\b", text)
    if emergency:
        if has("update|change|set|new|replace|switch|add|make"):
            found["update_emergency_contact"] = emergency.start()
        else:
            found.setdefault("get_patient_info", emergency.start())
    hit(
        "get_patient_info",
        r"patient info|patient information|my info|my information|contact info|"
        r"contact information|profile|my details|patient details|on file|demographics|email",
    )
    if has_doctor and not {
        "cancel_appointment",
        "schedule_appointment",
        "create_referral",
        "update_referral_status",
    } & set(found):
        hit(
            "get_doctor_info",
            r"specialty|speciality|speciali[sz]es?|department|what kind of doctor|who is|"
            r"tell me about|info|information|office|reach|phone|number|works?",
        )
    hit("verify", r"verify|verification|identity|identify|passport|authenticate|confirm who")
    return tuple(sorted(found, key=found.__getitem__))


# ---------------------------------------------------------------- hospital: conversation


@dataclass(slots=True)
class _Call:
    """A tool call the model made earlier in the conversation, with its result if any."""

    position: int  # index of the assistant message in the request
    id: str
    name: str
    arguments: dict[str, Any]
    result: str | None = None


@dataclass(slots=True)
class _Conversation:
    users: list[_Utterance] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)

    @classmethod
    def parse(cls, messages: Sequence[Mapping[str, Any]], data: _HospitalData) -> _Conversation:
        conversation = cls()
        by_id: dict[str, _Call] = {}
        for position, message in enumerate(messages):
            role = message.get("role")
            if role == "user":
                conversation.users.append(_understand(position, message_text(message), data))
            elif role == "assistant":
                for raw in message.get("tool_calls") or ():
                    function = raw.get("function") or {}
                    try:
                        arguments = json.loads(function.get("arguments") or "{}")
                    except (TypeError, ValueError):
                        arguments = {}
                    call = _Call(
                        position=position,
                        id=str(raw.get("id") or ""),
                        name=str(function.get("name") or ""),
                        arguments=arguments if isinstance(arguments, dict) else {},
                    )
                    conversation.calls.append(call)
                    by_id[call.id] = call
            elif role == "tool":
                call_or_none = by_id.get(str(message.get("tool_call_id") or ""))
                if call_or_none is None:  # no matching id: the oldest call still waiting
                    call_or_none = next((c for c in conversation.calls if c.result is None), None)
                if call_or_none is not None:
                    call_or_none.result = message_text(message)
        return conversation

    def calls_after(self, position: int) -> list[_Call]:
        return [call for call in self.calls if call.position > position]

    def latest(self, attribute: str) -> Any:
        """The newest non-empty value of an utterance attribute."""
        for utterance in reversed(self.users):
            value = getattr(utterance, attribute)
            if value:
                return value
        return None

    def latest_mention(self, kind: str) -> _Mention | None:
        for utterance in reversed(self.users):
            mentions = [m for m in utterance.mentions if m.kind == kind]
            if mentions:
                return mentions[-1] if kind == "doctor" else mentions[0]
        return None


def _parse_result(content: str | None) -> tuple[bool, Any]:
    """(ok, payload) for a tool result: JSON if it parses; errors give (False, message)."""
    if content is None:
        return False, "no result"
    text = content.strip()
    try:
        payload = json.loads(text)
    except ValueError:
        if re.match(r"(?i)error\b", text):
            return False, re.sub(r"(?i)^error\s*:?\s*", "", text)
        return True, text
    if isinstance(payload, dict):
        error = payload.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            return False, str(message or "the request failed")
        if payload.get("ok") is False:
            return False, str(payload.get("message") or payload.get("content") or "failed")
    if isinstance(payload, str) and re.match(r"(?i)error\b", payload):
        return False, re.sub(r"(?i)^error\s*:?\s*", "", payload)
    return True, payload


def _records(payload: Any, keys: set[str]) -> list[dict[str, Any]]:
    """Every dict inside ``payload`` (any nesting) that has at least one of ``keys``."""
    found: list[dict[str, Any]] = []
    stack = [payload]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            if keys & set(item):
                found.append(item)
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(item)
    return found


# ---------------------------------------------------------------- hospital: policy


_PATIENT_TOOLS = {
    "get_lab_results", "get_patient_medications", "get_appointment", "get_patient_info",
    "get_patient_referrals",
}  # fmt: skip
_TARGETS = {
    "verify": {"get_patient_info"},
    "referrals": {"get_patient_referrals", "get_doctor_referrals"},
}
_ACTIONS = {
    "cancel_appointment": "cancel that appointment",
    "schedule_appointment": "book that appointment",
    "get_appointment": "look up that appointment",
    "get_lab_results": "get those lab results",
    "get_patient_medications": "get the medication list",
    "get_patient_info": "find that patient record",
    "get_doctor_info": "find that doctor",
    "get_doctor_referrals": "get those referrals",
    "get_patient_referrals": "get those referrals",
    "create_referral": "create that referral",
    "update_referral_status": "update that referral",
    "update_emergency_contact": "update the emergency contact",
}
_QUESTIONS = {
    "patient": "Can I have your full name or patient ID?",
    "verify": "Please tell me your full name or patient ID so I can verify you.",
    "doctor": "Which doctor is it with?",
    "cancel_when": "What is the date and time of the appointment?",
    "schedule_when": "What date and time would you like?",
    "contact": "What is the new emergency contact's name and phone number?",
    "referred_to": "Which doctor should the referral go to?",
    "referring": "Which doctor is making the referral?",
    "status": "What should the new status be: pending, scheduled, completed or cancelled?",
}
_CAPABILITIES = (
    "I can help with appointments, lab results, medications, referrals and doctor information."
)


@dataclass(frozen=True, slots=True)
class _Plan:
    call: tuple[str, dict[str, str]] | None = None
    missing: str | None = None  # a key of _QUESTIONS
    done: bool = False


class HospitalPolicy:
    """Scripted receptionist for the hospital scenario (parley/tools/hospital).

    Per request: read the caller's messages (lower-case STT text) for intents (cancel,
    schedule, appointment lookup, lab results, medications, patient and doctor info,
    referrals, emergency contact, verification) and for patients and doctors from the seed
    data; then either emit the tool calls the pending intents need (arguments valid for
    tools.json, names as identifiers as the scenario policy asks), or, after tool results,
    answer in one or two short spoken sentences — or ask for what is missing. An intent
    left waiting for information (a name, a date) is taken up again when the caller answers.
    Only tools offered in the request are called.
    """

    GREETING = "Hello, thank you for calling the hospital. How can I help you today?"

    def __init__(self, data: _HospitalData | None = None) -> None:
        self._data = data or _hospital_data()

    @classmethod
    def load(cls) -> HospitalPolicy:
        """The policy with the seed data read from disk (once per process)."""
        return cls(_hospital_data())

    @property
    def tool_names(self) -> frozenset[str]:
        return frozenset(self._data.tool_schemas)

    def respond(self, request: ChatRequest) -> Reply:
        conversation = _Conversation.parse(request.messages, self._data)
        if not conversation.users:
            return Reply(text=self.GREETING)
        last = conversation.users[-1]
        intents, anchor = self._active_intents(conversation)
        done_calls = conversation.calls_after(anchor.position)
        turn_calls = conversation.calls_after(last.position)

        new_calls: list[PlannedToolCall] = []
        questions: list[str] = []
        unavailable: list[str] = []
        for intent in intents:
            plan = self._plan(intent, conversation, anchor, done_calls)
            if plan.call is not None:
                name, arguments = plan.call
                if name not in request.tool_names:
                    unavailable.append(name)
                elif not any(c.name == name and c.arguments == arguments for c in done_calls):
                    new_calls.append(PlannedToolCall(name, json.dumps(arguments), new_call_id()))
            elif plan.missing is not None:
                questions.append(_QUESTIONS[plan.missing])
        if new_calls:
            if not request.parallel_tool_calls:
                new_calls = new_calls[:1]
            return Reply(tool_calls=tuple(new_calls))

        # Results of this turn's latest tool-call message (the step the model just took).
        last_step = [c for c in turn_calls if c.position == turn_calls[-1].position]
        summaries = [self._summary(call) for call in last_step if call.result is not None]
        extra = [
            f"I'm sorry, I can't {_ACTIONS.get(name, 'do that')} on this line."
            for name in dict.fromkeys(unavailable)
        ]
        question = questions[:1]
        if summaries:
            if question or extra or len(summaries) > 1:
                sentences = [s[0] for s in summaries]
            else:
                sentences = summaries[0]
            return Reply(text=" ".join([*sentences, *extra, *question]))
        if extra:
            return Reply(text=" ".join([*extra, *question]))
        if question:
            # A short first sentence lets text-to-speech start while the rest streams.
            opener = "Happy to verify you." if intents == ("verify",) else "Sure, I can help."
            return Reply(text=f"{opener} {question[0]}")
        return Reply(text=self._fallback(conversation, last))

    # ------------------------------------------------------------ deciding

    def _active_intents(self, conversation: _Conversation) -> tuple[tuple[str, ...], _Utterance]:
        """The intents to work on and the caller message they came from."""
        last = conversation.users[-1]
        if last.intents:
            return last.intents, last
        for utterance in reversed(conversation.users[:-1]):
            if utterance.intents:
                called = {c.name for c in conversation.calls_after(utterance.position)}
                pending = tuple(i for i in utterance.intents if not (_TARGETS.get(i, {i}) & called))
                if pending:
                    return pending, utterance
                # Finished during this turn (the caller's last message supplied what was
                # missing): stay on them so the results get summarised.
                called_now = {c.name for c in conversation.calls_after(last.position)}
                if any(_TARGETS.get(i, {i}) & called_now for i in utterance.intents):
                    return utterance.intents, utterance
                break
        if last.first("patient"):
            return ("verify",), last
        if last.first("doctor"):
            return ("get_doctor_info",), last
        return (), last

    def _plan(
        self, intent: str, conversation: _Conversation, anchor: _Utterance, done: list[_Call]
    ) -> _Plan:
        called = {c.name for c in done}
        if _TARGETS.get(intent, {intent}) & called:
            return _Plan(done=True)
        patient_mention = conversation.latest_mention("patient")
        patient = patient_mention.identifier if patient_mention else None
        doctor_mention = conversation.latest_mention("doctor")
        doctor = doctor_mention.identifier if doctor_mention else None

        if intent in _PATIENT_TOOLS or intent == "verify":
            tool = "get_patient_info" if intent == "verify" else intent
            if not patient:
                return _Plan(missing="verify" if intent == "verify" else "patient")
            return _Plan(call=(tool, {"patient_identifier": patient}))
        if intent == "get_doctor_info":
            if not doctor:
                return _Plan(missing="doctor")
            return _Plan(call=("get_doctor_info", {"doctor_identifier": doctor}))
        if intent in ("get_doctor_referrals", "referrals"):
            if (
                intent == "referrals"
                and patient
                and (anchor.first("patient") or not anchor.first("doctor"))
            ):
                return _Plan(call=("get_patient_referrals", {"patient_identifier": patient}))
            if not doctor:
                return _Plan(missing="patient" if intent == "referrals" else "doctor")
            return _Plan(
                call=(
                    "get_doctor_referrals",
                    {
                        "doctor_identifier": doctor,
                        "referral_type": conversation.latest("referral_type") or "all",
                    },
                )
            )
        if intent == "cancel_appointment":
            return self._plan_cancel(conversation, patient, doctor_mention, called, done)
        if intent == "schedule_appointment":
            return self._plan_schedule(conversation, patient, doctor_mention, done)
        if intent == "update_emergency_contact":
            name = conversation.latest("contact_name")
            phone = conversation.latest("phone")
            if not patient:
                return _Plan(missing="patient")
            if not name or not phone:
                return _Plan(missing="contact")
            return _Plan(
                call=(
                    "update_emergency_contact",
                    {
                        "patient_identifier": patient,
                        "contact_name": name,
                        "contact_phone": phone,
                    },
                )
            )
        if intent == "create_referral":
            return self._plan_referral(conversation, anchor, patient)
        if intent == "update_referral_status":
            status = conversation.latest("referral_status")
            if not patient:
                return _Plan(missing="patient")
            if not doctor:
                return _Plan(missing="referred_to")
            if not status:
                return _Plan(missing="status")
            return _Plan(
                call=(
                    "update_referral_status",
                    {
                        "patient_identifier": patient,
                        "referred_to_doctor_identifier": doctor,
                        "new_status": status,
                    },
                )
            )
        return _Plan(done=True)

    def _plan_cancel(
        self,
        conversation: _Conversation,
        patient: str | None,
        doctor_mention: _Mention | None,
        called: set[str],
        done: list[_Call],
    ) -> _Plan:
        doctor = doctor_mention.identifier if doctor_mention else None
        date, time = conversation.latest("date"), conversation.latest("time")
        if patient and not (doctor and date and time):
            if "get_appointment" not in called:
                # Look the appointment up first, as the scenario policy asks.
                return _Plan(call=("get_appointment", {"patient_identifier": patient}))
            found = self._appointment_in(done, doctor_mention)
            doctor = doctor or found.get("doctor")
            date = date or found.get("date")
            time = time or found.get("time")
        if not patient:
            if doctor and not called:
                # Confirm the doctor while waiting for the caller's identity.
                return _Plan(call=("get_doctor_info", {"doctor_identifier": doctor}))
            return _Plan(missing="patient")
        if not doctor:
            return _Plan(missing="doctor")
        if not (date and time):
            return _Plan(missing="cancel_when")
        return _Plan(
            call=(
                "cancel_appointment",
                {
                    "patient_identifier": patient,
                    "doctor_identifier": doctor,
                    "appointment_date": date,
                    "appointment_time": time,
                },
            )
        )

    def _appointment_in(self, done: list[_Call], doctor: _Mention | None) -> dict[str, str]:
        """Doctor, date and time of the scheduled appointment found by ``get_appointment``."""
        for call in reversed(done):
            if call.name != "get_appointment":
                continue
            ok, payload = _parse_result(call.result)
            if not ok:
                return {}
            candidates = []
            for record in _records(payload, {"appointment_id", "appointment_date"}):
                seed = self._data.appointments.get(str(record.get("appointment_id")), {})
                merged = {**seed, **{k: v for k, v in record.items() if v}}
                if merged.get("status", "scheduled") != "scheduled":
                    continue
                doctor_name = self._data.doctor_name(merged.get("doctor_id")) or (
                    _doctor_title(merged["doctor_name"]) if merged.get("doctor_name") else None
                )
                if doctor and doctor.id and merged.get("doctor_id") not in (None, doctor.id):
                    continue
                candidates.append(
                    {
                        "doctor": doctor_name or "",
                        "date": str(merged.get("appointment_date") or ""),
                        "time": str(merged.get("appointment_time") or ""),
                    }
                )
            if len(candidates) == 1:
                return {k: v for k, v in candidates[0].items() if v}
            return {}
        return {}

    def _plan_schedule(
        self,
        conversation: _Conversation,
        patient: str | None,
        doctor_mention: _Mention | None,
        done: list[_Call],
    ) -> _Plan:
        if not patient:
            return _Plan(missing="patient")
        if doctor_mention is None:
            return _Plan(missing="doctor")
        date, time = conversation.latest("date"), conversation.latest("time")
        if not (date and time):
            return _Plan(missing="schedule_when")
        seed = self._data.doctors.get(doctor_mention.id or "", {})
        department = conversation.latest("department") or seed.get("department")
        if not department:
            return _Plan(missing="doctor")
        return _Plan(
            call=(
                "schedule_appointment",
                {
                    "patient_identifier": patient,
                    "doctor_identifier": doctor_mention.identifier,
                    "appointment_time": time,
                    "appointment_date": date,
                    "department": department,
                },
            )
        )

    def _plan_referral(
        self, conversation: _Conversation, anchor: _Utterance, patient: str | None
    ) -> _Plan:
        if not patient:
            return _Plan(missing="patient")
        doctors: list[_Mention] = []
        referring = referred = None
        for utterance in conversation.users:
            if utterance.position < anchor.position:
                continue
            words = utterance.text.split()
            for mention in utterance.mentions:
                if mention.kind != "doctor":
                    continue
                doctors.append(mention)
                before = words[mention.start - 1] if mention.start else ""
                if before == "from" and referring is None:
                    referring = mention
                elif before == "to" and referred is None:
                    referred = mention
        rest = [m for m in doctors if m is not referring and m is not referred]
        if referring is None and rest:
            referring = rest.pop(0)
        if referred is None and rest:
            referred = rest.pop(0)
        if referred is None:
            return _Plan(missing="referred_to")
        if referring is None:
            return _Plan(missing="referring")
        seed = self._data.doctors.get(referred.id or "", {})
        department = seed.get("department") or conversation.latest("department")
        if not department:
            return _Plan(missing="referred_to")
        return _Plan(
            call=(
                "create_referral",
                {
                    "patient_identifier": patient,
                    "referring_doctor_identifier": referring.identifier,
                    "referred_to_doctor_identifier": referred.identifier,
                    "referred_to_department": department,
                    "priority": conversation.latest("priority") or "routine",
                },
            )
        )

    def _fallback(self, conversation: _Conversation, last: _Utterance) -> str:
        if re.search(r"\b(?:thanks|thank you|thank)\b", last.text):
            return "You're welcome. Is there anything else I can help you with?"
        if re.search(r"\b(?:bye|goodbye|that is all|thats all|nothing else)\b", last.text):
            return "Thank you for calling. Goodbye."
        if conversation.latest_mention("patient"):
            return f"{_CAPABILITIES} What would you like to do?"
        return f"{_CAPABILITIES} To get started, can I have your full name or patient ID?"

    # ------------------------------------------------------------ speaking results

    def _summary(self, call: _Call) -> list[str]:
        """One or two short spoken sentences about one tool result."""
        ok, payload = _parse_result(call.result)
        if not ok:
            message = _spoken_dates(str(payload)).strip().rstrip(".").replace("'", "")
            action = _ACTIONS.get(call.name, "do that")
            return [f"I'm sorry, I couldn't {action}: {message}."]
        args = call.arguments
        record = payload if isinstance(payload, dict) else {}
        data = self._data
        patient = (
            record.get("patient_name")
            or data.patient_name(record.get("patient_id"))
            or args.get("patient_identifier")
            or "the patient"
        )
        if call.name == "get_doctor_info":
            name = _doctor_title(str(record.get("name") or args.get("doctor_identifier", "")))
            department = record.get("department")
            specialty = record.get("specialty")
            first = f"{name} works in {department}." if department else f"I found {name}."
            if specialty and department and specialty != department:
                first = f"{name} is a {specialty} specialist in {department}."
            phone = record.get("phone")
            return [first, f"You can reach the office at {phone}."] if phone else [first]
        if call.name == "get_patient_info":
            name = record.get("name") or patient
            sentences = [f"I found the record for {name}."]
            if record.get("phone") and record.get("emergency_contact"):
                sentences.append(
                    f"The phone number on file is {record['phone']}, and the emergency "
                    f"contact is {record['emergency_contact']}."
                )
            return sentences
        if call.name == "get_appointment":
            found = _records(payload, {"appointment_id", "appointment_date"})
            if not found:
                return [f"I don't see any upcoming appointment for {patient}."]
            return [self._appointment_sentence(f"{patient} has an appointment", found[0])]
        if call.name == "cancel_appointment":
            details = {**args, **(_records(payload, {"appointment_date"}) or [{}])[0]}
            when = _when(details.get("appointment_date"), details.get("appointment_time"))
            doctor = _doctor_title(str(args.get("doctor_identifier", "your doctor")))
            return [f"Your appointment with {doctor}{when} is now cancelled."]
        if call.name == "schedule_appointment":
            details = {**args, **(_records(payload, {"appointment_date"}) or [{}])[0]}
            when = _when(details.get("appointment_date"), details.get("appointment_time"))
            doctor = _doctor_title(str(args.get("doctor_identifier", "the doctor")))
            return [f"You're all set with {doctor}{when}."]
        if call.name == "get_lab_results":
            results = _records(payload, {"test_name"})
            if not results:
                return [f"I don't see any lab results for {patient}."]
            latest = max(results, key=lambda r: str(r.get("test_date", "")))
            count = "one lab result" if len(results) == 1 else f"{len(results)} lab results"
            return [
                f"{patient} has {count} on file.",
                f"The most recent is {_article(str(latest.get('test_name', 'a test')))}"
                f"{_on(latest.get('test_date'))}, and it is {latest.get('status', 'on file')}.",
            ]
        if call.name == "get_patient_medications":
            medications = _records(payload, {"medication_name"})
            if not medications:
                return [f"I don't see any current medications for {patient}."]
            said = [
                " ".join(str(m.get(k)) for k in ("medication_name", "dosage") if m.get(k))
                + (
                    f" {str(m['frequency'])[0].lower()}{str(m['frequency'])[1:]}"
                    if m.get("frequency")
                    else ""
                )
                for m in medications[:3]
            ]
            more = f", and {len(medications) - 3} more" if len(medications) > 3 else ""
            return [f"{patient} takes {_join(said)}{more}."]
        if call.name == "update_emergency_contact":
            contact = (
                record.get("emergency_contact")
                or record.get("contact_name")
                or args.get("contact_name")
            )
            phone = (
                record.get("emergency_phone")
                or record.get("contact_phone")
                or args.get("contact_phone")
            )
            return [f"The emergency contact for {patient} is now {contact} at {phone}."]
        if call.name in ("get_patient_referrals", "get_doctor_referrals"):
            return self._referrals_sentences(call, payload, patient)
        if call.name == "create_referral":
            priority = args.get("priority", "routine")
            doctor = _doctor_title(str(args.get("referred_to_doctor_identifier", "")))
            return [
                f"I've created {_article(priority)} referral for {patient} to {doctor} in "
                f"{args.get('referred_to_department', 'that department')}."
            ]
        if call.name == "update_referral_status":
            doctor = _doctor_title(str(args.get("referred_to_doctor_identifier", "")))
            return [
                f"The referral for {patient} to {doctor} is now "
                f"{args.get('new_status', 'updated')}."
            ]
        return ["That's done."]

    def _appointment_sentence(self, prefix: str, record: dict[str, Any]) -> str:
        seed = self._data.appointments.get(str(record.get("appointment_id")), {})
        merged = {**seed, **{k: v for k, v in record.items() if v}}
        doctor = self._data.doctor_name(merged.get("doctor_id")) or (
            _doctor_title(merged["doctor_name"]) if merged.get("doctor_name") else None
        )
        with_doctor = f" with {doctor}" if doctor else ""
        when = _when(merged.get("appointment_date"), merged.get("appointment_time"))
        return f"{prefix}{with_doctor}{when}."

    def _referrals_sentences(self, call: _Call, payload: Any, patient: str) -> list[str]:
        referrals = _records(payload, {"referral_id", "referred_to_doctor_id"})
        if call.name == "get_doctor_referrals":
            record = payload if isinstance(payload, dict) else {}
            owner = _doctor_title(
                str(record.get("doctor_name") or call.arguments.get("doctor_identifier", ""))
            )
            kind = call.arguments.get("referral_type", "all")
            label = "" if kind == "all" else f" {kind}"
            if not referrals:
                return [f"{owner} has no{label} referrals."]
            counts: dict[str, int] = {}
            for referral in referrals:
                status = str(referral.get("status", "open"))
                counts[status] = counts.get(status, 0) + 1
            if len(referrals) == 1:
                return [f"{owner} has one{label} referral, which is {next(iter(counts))}."]
            if len(counts) == 1:
                breakdown = f"all {next(iter(counts))}"
            else:
                breakdown = _join([f"{n} {status}" for status, n in counts.items()])
            return [f"{owner} has {len(referrals)}{label} referrals: {breakdown}."]
        if not referrals:
            return [f"I don't see any referrals for {patient}."]
        latest = max(referrals, key=lambda r: str(r.get("referral_date", "")))
        doctor = self._data.doctor_name(latest.get("referred_to_doctor_id")) or "a specialist"
        department = latest.get("referred_to_department")
        where = f" in {department}" if department else ""
        status = latest.get("status", "open")
        if len(referrals) == 1:
            return [
                f"{patient} has one referral.",
                f"It is to {doctor}{where}, and it is {status}.",
            ]
        return [
            f"{patient} has {len(referrals)} referrals.",
            f"The most recent is to {doctor}{where}, and it is {status}.",
        ]


def _when(date: Any, time: Any) -> str:
    parts = []
    if date:
        parts.append(f" on {spoken.speak_date(str(date))}")
    if time:
        parts.append(f" at {time}")
    return "".join(parts)


def _on(date: Any) -> str:
    return f" from {spoken.speak_date(str(date))}" if date else ""


def _article(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _spoken_dates(text: str) -> str:
    return re.sub(r"\b\d{4}-\d{2}-\d{2}\b", lambda m: spoken.speak_date(m.group(0)), text)
