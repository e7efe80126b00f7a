"""Generate ``data/users.json``, the HR scenario's users (ours, not Benchforce's).

Benchforce's HR environment loads its users from ``data_users_part_1.json`` …
``data_users_part_6.json``, which are missing from the snapshot (see ``README.md``). This
script writes a small, deterministic stand-in: 196 users in the 11 organizations the 28 HR
tasks talk about, with

- every user id and e-mail address the tasks name (in their ``actions`` and
  ``instructions``), in the organization the task gives;
- ids in the source's scheme (``USR-`` + 6 digits, numbered per organization in order, so
  ``USR-001876`` belongs to ``ORG-000004`` as in the tasks), plus the tasks' one odd id
  ``USR-00101``;
- the record shape of the policy's ``User`` schema, with values from its enumerations and
  offices taken from the user's organization;
- data that make each task's reference actions the right ones (the checks in
  :func:`_tasks_check` state them; the script refuses to write data that break them).

Run ``python parley/tools/hr/users_generate.py`` to rewrite the file, ``--check`` to compare.
It reads only ``data/data_organizations.json`` and uses no Django. The output depends only on
the fixed seed :data:`RANDOM_SEED` and this code; the committed ``users.json`` is the data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"
USERS_FILE = DATA_DIR / "users.json"
ORGANIZATIONS_FILE = DATA_DIR / "data_organizations.json"

RANDOM_SEED = 20240515
#: The policy's "current time" (2024-05-15 15:00:00), as the tools use it.
NOW = dt.datetime(2024, 5, 15, 15, 0, tzinfo=dt.UTC)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# The task personas' names: the style of the source's generated users.
FIRST_NAMES = (
    "James", "Emma", "Fatima", "Ivan", "Yara", "Lei", "Mei", "Sofia", "Ethan", "Daiki",
    "Harper", "Juan", "Olivia", "Yusuf", "Lucas",
)  # fmt: skip
LAST_NAMES = (
    "Davis", "Brown", "Anderson", "Ito", "Silva", "Jackson", "Lee", "Wilson", "Ahmed", "Rossi",
    "Johnson", "Kovacs", "Khan", "Patel", "Santos", "Muller", "Kim", "Thomas",
)  # fmt: skip
TLDS = ("com", "net", "org", "io", "ai", "co", "cloud", "tech")

SENSITIVE_PERMISSIONS = ("admin", "manage_users", "manage_billing", "manage_security")
#: Titles the role's template would make awkward ("Engineering Engineer").
TITLE_OVERRIDES = {("engineer", "Engineering"): "Software Engineer"}


@dataclass(frozen=True)
class Profile:
    """What a user of a role usually has: permissions, skills, a title."""

    permissions: tuple[str, ...]
    skill_pool: tuple[str, ...]
    skills_required: tuple[str, ...] = ()
    skills_min: int = 0
    skills_max: int = 2
    title: str = "{department} Specialist"
    rank: int = 0  # director 3 > manager 2 > lead 1 > others; decides who manages whom


PROFILES: dict[str, Profile] = {
    "admin": Profile(
        ("admin", "manage_users", "view_reports"),
        ("security", "networking", "cloud"),
        title="{department} Administrator",
    ),
    "director": Profile(
        ("manage_team", "view_reports", "approve_requests", "run_reports"),
        ("project_management", "agile", "data_analysis"),
        skills_min=1,
        title="Director of {department}",
        rank=3,
    ),
    "manager": Profile(
        ("manage_team", "view_reports", "approve_requests", "view_own_profile"),
        ("project_management", "agile", "scrum"),
        skills_min=1,
        title="{department} Manager",
        rank=2,
    ),
    "lead": Profile(
        ("manage_team", "approve_basic_requests", "view_reports", "view_own_profile"),
        ("agile", "scrum", "project_management"),
        skills_min=1,
        title="{department} Team Lead",
        rank=1,
    ),
    "developer": Profile(
        ("access_api", "deploy_code", "view_own_profile", "submit_requests"),
        ("python", "java", "javascript", "sql", "docker", "kubernetes", "react", "node", "aws"),
        skills_required=("security",),
        skills_min=2,
        skills_max=4,
        title="Software Developer",
    ),
    "engineer": Profile(
        ("access_api", "view_own_profile", "submit_requests"),
        ("python", "kubernetes", "docker", "networking", "cloud", "devops", "testing"),
        skills_min=1,
        skills_max=3,
        title="{department} Engineer",
    ),
    "analyst": Profile(
        ("view_reports", "run_reports", "export_data", "view_own_profile"),
        ("sql", "python", "machine_learning"),
        skills_required=("data_analysis",),
        skills_min=1,
        title="{department} Analyst",
    ),
    "researcher": Profile(
        ("view_reports", "export_data", "view_own_profile", "submit_requests"),
        ("python", "machine_learning", "sql"),
        skills_required=("data_analysis",),
        skills_min=1,
        title="Research Scientist",
    ),
    "designer": Profile(
        ("view_own_profile", "submit_requests", "manage_documents"),
        ("ui_ux", "javascript", "react"),
        skills_min=1,
        title="Product Designer",
    ),
    "specialist": Profile(
        ("view_own_profile", "submit_requests", "manage_documents"),
        ("project_management", "agile"),
    ),
    "coordinator": Profile(
        ("view_own_profile", "submit_requests"),
        ("project_management", "agile"),
        title="{department} Coordinator",
    ),
    "employee": Profile(
        ("view_own_profile", "submit_requests"),
        ("project_management", "agile", "data_analysis"),
        title="{department} Associate",
    ),
}


@dataclass
class Person:
    """One user to generate; unset fields are filled from the role's profile or at random."""

    role: str
    department: str
    id: str | None = None
    first: str | None = None
    last: str | None = None
    email: str | None = None
    roles: list[str] | None = None
    title: str | None = None
    permissions: list[str] | None = None
    skills: list[str] | None = None
    status: str | None = None
    two_factor: bool | None = None
    top: bool = False  # no manager
    login_days_ago: int | None = None


def caller(first: str, last: str, email: str, department: str, title: str, **kw: Any) -> Person:
    """A task persona: active, top of the hierarchy, 2FA on, ``admin`` unless told."""
    kw.setdefault("role", "admin")
    kw.setdefault("status", "active")
    kw.setdefault("two_factor", True)
    kw.setdefault("top", True)
    return Person(department=department, first=first, last=last, email=email, title=title, **kw)


def people(role: str, department: str, count: int, **kw: Any) -> list[Person]:
    return [Person(role=role, department=department, **kw) for _ in range(count)]


ADMIN_SECURITY = ["admin", "manage_users", "manage_security", "view_reports"]
ADMIN_BILLING = ["admin", "manage_billing", "view_reports", "run_reports"]
ALL_SENSITIVE = ["admin", "manage_users", "manage_billing", "manage_security"]
MANAGER_SIX = [
    "manage_team", "view_reports", "approve_requests", "manage_documents", "deploy_code",
    "access_api",
]  # fmt: skip


@dataclass
class OrgPlan:
    org_id: str
    first_number: int  # the block of user ids starts at USR-<first_number>
    domain: str  # e-mail domain without the top-level domain
    persons: list[Person]
    varied_status: bool = True  # fillers may be pending, suspended, locked or terminated


def _plans() -> list[OrgPlan]:
    """The organizations and their users. Comments name the tasks (ids of tasks.json) whose
    reference actions rely on a choice."""
    # fmt: off
    return [
        OrgPlan(
            "ORG-000001",
            1,
            "nextgenadvancedpremier",
            [
                # entry_13: exactly these three have not logged in for 60 days.
                # entry_7: USR-000002 is the one engineer without any skill.
                Person("employee", "Sales", id="USR-000001", login_days_ago=95),
                Person("engineer", "Engineering", id="USR-000002", skills=[], login_days_ago=72),
                Person("coordinator", "Marketing", id="USR-000003", login_days_ago=130),
                # The task personas (entry_5, 7, 8, 13, 14, 18, 20, 21). Two "Mei Lee"s: the
                # tasks give her two addresses.
                caller("Lei", "Jackson", "lei.jackson@nextgenadvancedpremier.com", "IT",
                       "IT Administrator", permissions=ADMIN_SECURITY, skills=["security"]),
                caller("Yara", "Silva", "yara.silva@nextgenadvancedpremier.ai", "Finance",
                       "Billing Manager", permissions=ADMIN_BILLING),
                caller("Mei", "Lee", "mei.lee@nextgenadvancedpremier.ai", "HR",
                       "HR Director", permissions=["admin", "manage_users", "view_reports"]),
                caller("Ivan", "Kovacs", "ivan.kovacs@nextgenadvancedpremier.net", "Compliance",
                       "Compliance Officer", permissions=ADMIN_SECURITY, skills=["security"]),
                caller("Ethan", "Khan", "ethan.khan@nextgenadvancedpremier.net", "Finance",
                       "Billing Manager", permissions=ADMIN_BILLING),
                caller("Yara", "Muller", "yara.muller@nextgenadvancedpremier.co", "Compliance",
                       "Compliance Officer", permissions=ADMIN_SECURITY),
                caller("Mei", "Lee", "mei.lee@nextgenadvancedpremier.org", "Finance",
                       "Billing Manager", permissions=ADMIN_BILLING),
                caller("Juan", "Rossi", "juan.rossi@nextgenadvancedpremier.org", "Compliance",
                       "Compliance Officer", permissions=ADMIN_SECURITY),
                # entry_8: with the eight personas, ten users have no manager.
                Person("director", "Research", top=True),
                Person("director", "Engineering", top=True),
                # entry_5: Research has the most active users (8).
                Person("manager", "Research"),
                *people("researcher", "Research", 5),
                Person("analyst", "Research"),
                Person("manager", "Engineering"),
                *people("developer", "Engineering", 2),
                Person("engineer", "Engineering"),
                Person("analyst", "Data_Science"),
                Person("manager", "Sales"),
                *people("employee", "Sales", 2),
                Person("designer", "Marketing"),
                Person("specialist", "Marketing"),
                Person("coordinator", "HR"),
                Person("specialist", "HR"),
                Person("analyst", "Finance"),
                Person("lead", "Support"),
                Person("employee", "Support"),
                Person("engineer", "IT"),
                Person("employee", "Operations"),
            ],
            varied_status=False,
        ),
        OrgPlan(
            "ORG-000002",
            480,
            "sustainabledynamicenterprises",
            [
                caller("Emma", "Brown", "emma.brown@sustainabledynamicenterprises.cloud", "IT",
                       "IT Administrator", permissions=ADMIN_SECURITY, skills=["security"]),
                caller("Emma", "Kim", "emma.kim@sustainabledynamicenterprises.ai", "Compliance",
                       "Compliance Officer", permissions=ADMIN_SECURITY),
                # entry_27: IT is the one department with a single manager; entry_2: nobody
                # works in Sustainability; entry_24: developers have access_api + deploy_code.
                Person("manager", "IT", status="active"),
                *people("developer", "IT", 2),
                Person("engineer", "IT"),
                *people("manager", "Compliance", 2, status="active"),
                Person("specialist", "Compliance"),
                *people("manager", "HR", 2, status="active"),
                *people("coordinator", "HR", 2),
                *people("manager", "Finance", 2, status="active"),
                Person("analyst", "Finance"),
                *people("manager", "Engineering", 2, status="active"),
                *people("developer", "Engineering", 2),
            ],
        ),
        OrgPlan(
            "ORG-000003",
            900,
            "industrialdynamicadvanced",
            [
                caller("Fatima", "Anderson", "fatima.anderson@industrialdynamicadvanced.org", "IT",
                       "IT Manager", permissions=ADMIN_SECURITY, skills=["security"]),
                # entry_3: two active users without 2FA to find.
                Person("engineer", "Engineering", status="active", two_factor=False),
                Person("employee", "Sales", status="active", two_factor=False),
                Person("manager", "Engineering"),
                *people("developer", "Engineering", 2),
                Person("manager", "Sales"),
                *people("employee", "Sales", 2),
                Person("analyst", "Finance"),
                Person("coordinator", "HR"),
                Person("specialist", "Operations"),
                Person("designer", "Product"),
                Person("lead", "Support"),
                Person("employee", "Support"),
            ],
        ),
        OrgPlan(
            "ORG-000004",
            1870,
            "energyinnovativemobile",
            [
                caller("James", "Davis", "james.davis@energyinnovativemobile.cloud",
                       "Operations", "Operations Manager", role="manager",
                       permissions=["manage_team", "view_reports", "approve_requests",
                                    "view_own_profile"]),
                caller("Ivan", "Ito", "ivan.ito@energyinnovativemobile.net", "IT",
                       "IT Administrator", permissions=ADMIN_SECURITY, skills=["security"]),
                # entry_4: the developer and the researcher lacking access_api, deploy_code and
                # export_data; the one other engineer already has all three.
                Person("developer", "Engineering", id="USR-001876", status="active",
                       permissions=["access_api", "view_own_profile", "submit_requests"],
                       skills=["python", "docker"]),
                Person("researcher", "Research", id="USR-001877", status="active",
                       permissions=["view_reports", "view_own_profile"],
                       skills=["data_analysis", "machine_learning"]),
                Person("engineer", "Engineering", status="active",
                       permissions=["access_api", "deploy_code", "export_data",
                                    "view_own_profile"],
                       skills=["security", "data_analysis", "cloud"]),
                Person("manager", "Engineering"),
                Person("manager", "Sales"),
                *people("employee", "Sales", 2),
                Person("analyst", "Finance"),
                Person("coordinator", "Operations"),
                Person("specialist", "HR"),
                Person("designer", "Marketing"),
                Person("lead", "Support"),
                Person("employee", "Support"),
            ],
        ),
        OrgPlan(
            "ORG-000008",
            3675,
            "smartplatforms",
            [
                caller("Fatima", "Wilson", "fatima.wilson@smartplatforms.net", "Security",
                       "Security Administrator", permissions=ADMIN_SECURITY,
                       skills=["security", "cloud"]),
                # entry_9: three users with manage_security but no security skill; the other
                # holder of manage_security has the skill.
                Person("admin", "IT", id="USR-003682", permissions=ALL_SENSITIVE,
                       skills=["python", "sql"], status="active", two_factor=True),
                Person("manager", "Finance", id="USR-003683", permissions=ALL_SENSITIVE,
                       skills=["project_management"], status="active", two_factor=True),
                Person("admin", "Operations", id="USR-003684", permissions=ALL_SENSITIVE,
                       skills=[], status="active", two_factor=True),
                Person("engineer", "Security", status="active", two_factor=True,
                       permissions=["manage_security", "access_api", "view_own_profile"],
                       skills=["security", "networking"]),
                Person("manager", "Engineering"),
                *people("developer", "Engineering", 2),
                Person("analyst", "Finance"),
                Person("manager", "Sales"),
                *people("employee", "Sales", 2),
                Person("coordinator", "HR"),
                Person("lead", "Support"),
                Person("employee", "Support"),
            ],
        ),
        OrgPlan(
            "ORG-000009",
            3780,
            "softwarebusinessgroup",
            [
                caller("Sofia", "Ahmed", "sofia.ahmed@softwarebusinessgroup.com", "Security",
                       "Security Officer", permissions=ADMIN_SECURITY, skills=["security"]),
                caller("Fatima", "Rossi", "fatima.rossi@softwarebusinessgroup.co", "Operations",
                       "Operations Manager", permissions=ADMIN_BILLING),
                caller("Yara", "Johnson", "yara.johnson@softwarebusinessgroup.org", "IT",
                       "IT Administrator", permissions=ADMIN_SECURITY),
                caller("Daiki", "Jackson", "daiki.jackson@softwarebusinessgroup.com",
                       "Operations", "Operations Manager", permissions=ADMIN_BILLING),
                caller("Olivia", "Wilson", "olivia.wilson@softwarebusinessgroup.ai",
                       "Operations", "Operations Manager", permissions=ADMIN_BILLING),
                # entry_10: an employee and a manager with admin-level permissions; entry_12:
                # USR-003789 is the one manager without the six manager permissions.
                Person("employee", "Sales", id="USR-003788", status="active",
                       permissions=[*ALL_SENSITIVE, "export_data"], skills=[], two_factor=True),
                Person("manager", "Support", id="USR-003789", status="active",
                       permissions=[*ALL_SENSITIVE, "manage_team"],
                       skills=["project_management"], two_factor=True),
                Person("manager", "Engineering", permissions=MANAGER_SIX,
                       skills=["security", "agile"]),
                Person("manager", "Sales", permissions=MANAGER_SIX,
                       skills=["security", "project_management"]),
                *people("developer", "Engineering", 3),
                Person("engineer", "IT"),
                *people("employee", "Sales", 2),
                Person("analyst", "Finance"),
                Person("coordinator", "HR"),
                Person("lead", "Support"),
                Person("employee", "Support"),
                Person("designer", "Marketing"),
            ],
        ),
        OrgPlan(
            "ORG-000011",
            4500,
            "cloudapplicationsmedical",
            [
                caller("Harper", "Patel", "harper.patel@cloudapplicationsmedical.ai", "Security",
                       "Security Officer", permissions=ADMIN_SECURITY, skills=["security"]),
                caller("Harper", "Santos", "harper.santos@cloudapplicationsmedical.io", "IT",
                       "IT Administrator",
                       permissions=["admin", "manage_users", "manage_billing", "view_reports"]),
                # entry_16: every holder of a sensitive permission has 2FA.
                Person("manager", "Finance", status="active", two_factor=True,
                       permissions=["manage_team", "manage_billing", "view_reports",
                                    "approve_requests"]),
                Person("analyst", "Finance"),
                Person("manager", "Engineering"),
                *people("developer", "Engineering", 2),
                Person("engineer", "IT"),
                Person("researcher", "Research"),
                Person("manager", "Sales"),
                *people("employee", "Sales", 2),
                Person("coordinator", "HR"),
                Person("specialist", "Operations"),
                Person("employee", "Support"),
            ],
        ),
        OrgPlan(
            "ORG-000013",
            5300,
            "agilecorporationfinancial",
            [
                caller("James", "Santos", "james.santos@agilecorporationfinancial.tech",
                       "Security", "Security Officer", permissions=ADMIN_SECURITY,
                       skills=["security"]),
                Person("manager", "Finance"),
                *people("analyst", "Finance", 2),
                Person("manager", "Engineering"),
                *people("developer", "Engineering", 2),
                Person("engineer", "IT"),
                Person("manager", "Sales"),
                *people("employee", "Sales", 2),
                Person("coordinator", "HR"),
                Person("employee", "Support"),
                # entry_19: the one user who is not active (the task's id has 5 digits).
                Person("analyst", "Risk_Management", id="USR-00101", status="suspended",
                       login_days_ago=90),
            ],
            varied_status=False,
        ),
        OrgPlan(
            "ORG-000016",
            7170,
            "solutionsscientificventures",
            [
                caller("Yusuf", "Khan", "yusuf.khan@solutionsscientificventures.co", "Security",
                       "Security Officer", permissions=ADMIN_SECURITY, skills=["security"]),
                # entry_23: the one user with several roles.
                Person("developer", "Engineering", id="USR-007175", roles=["developer", "manager"],
                       title="Engineering Manager", status="active",
                       permissions=["access_api", "deploy_code", "manage_team",
                                    "approve_requests", "manage_billing"],
                       skills=["python", "security"], two_factor=True),
                Person("manager", "Engineering"),
                *people("developer", "Engineering", 2),
                Person("engineer", "IT"),
                Person("analyst", "Finance"),
                Person("manager", "Sales"),
                *people("employee", "Sales", 3),
                Person("coordinator", "HR"),
                Person("researcher", "Research"),
                Person("lead", "Support"),
                Person("employee", "Support"),
            ],
        ),
        OrgPlan(
            "ORG-000017",
            7355,
            "researchoptimalnextgen",
            [
                caller("Daiki", "Brown", "daiki.brown@researchoptimalnextgen.net", "Security",
                       "Security Officer", permissions=ADMIN_SECURITY, skills=["security"]),
                caller("Ivan", "Thomas", "ivan.thomas@researchoptimalnextgen.io", "IT",
                       "IT Administrator", permissions=ADMIN_SECURITY),
                # entry_25: the one user with several roles; as a developer it has access_api
                # and deploy_code (entry_26).
                Person("analyst", "Data_Science", id="USR-007360", roles=["analyst", "developer"],
                       title="Data Engineer", status="active",
                       permissions=["view_reports", "export_data", "access_api", "deploy_code",
                                    "manage_billing"],
                       skills=["python", "data_analysis", "security"], two_factor=True),
                Person("manager", "Research"),
                *people("researcher", "Research", 2),
                Person("manager", "Engineering"),
                *people("developer", "Engineering", 2),
                Person("engineer", "IT"),
                Person("analyst", "Data_Science"),
                Person("employee", "Sales"),
                Person("coordinator", "HR"),
                Person("employee", "Support"),
                Person("designer", "Product"),
            ],
        ),
        OrgPlan(
            "ORG-000018",
            8390,
            "commercialfinancialnetworks",
            [
                caller("Lucas", "Wilson", "lucas.wilson@commercialfinancialnetworks.org",
                       "Security", "Security Officer",
                       permissions=["admin", "manage_users", "view_reports"],
                       skills=["security"]),
                # entry_28: the three holders of manage_security; none can have a "compliance"
                # skill (the policy has no such skill).
                Person("admin", "IT", id="USR-008397", permissions=ALL_SENSITIVE,
                       skills=["security", "networking"], status="active", two_factor=True),
                Person("admin", "Security", id="USR-008398", permissions=ALL_SENSITIVE,
                       skills=["security"], status="active", two_factor=True),
                Person("manager", "Finance", id="USR-008399", permissions=ALL_SENSITIVE,
                       skills=["cloud"], status="active", two_factor=True),
                Person("manager", "Engineering"),
                *people("developer", "Engineering", 2),
                Person("engineer", "IT"),
                Person("analyst", "Finance"),
                Person("manager", "Sales"),
                *people("employee", "Sales", 2),
                Person("coordinator", "HR"),
                Person("employee", "Support"),
                Person("specialist", "Operations"),
            ],
        ),
    ]
    # fmt: on


def _timestamp(value: dt.datetime) -> str:
    return value.strftime(TIMESTAMP_FORMAT)


def _id_number(user_id: str) -> int:
    return int(user_id.removeprefix("USR-"))


def _ids_assign(plan: OrgPlan) -> None:
    """Give every person without a fixed id the next free number of the org's block."""
    fixed = {p.id for p in plan.persons if p.id}
    number = plan.first_number
    for person in plan.persons:
        if person.id:
            continue
        while f"USR-{number:06d}" in fixed:
            number += 1
        person.id = f"USR-{number:06d}"
        fixed.add(person.id)
        number += 1
    # File order: by number; an id outside the 6-digit scheme goes last.
    plan.persons.sort(key=lambda p: (len(p.id or "") != 10, _id_number(p.id or "USR-0")))


def _managers_assign(plan: OrgPlan, rng: random.Random) -> dict[str, str | None]:
    """user id → manager id: someone of the next higher rank in the same department, else
    one of the org's top users (who have no manager). Ranks only go up, so no cycles."""
    tops = [p for p in plan.persons if p.top]
    managers: dict[str, str | None] = {}
    for person in plan.persons:
        if person.top:
            managers[person.id or ""] = None
            continue
        rank = PROFILES[person.role].rank
        higher = [
            p
            for p in plan.persons
            if p.department == person.department
            and not p.top
            and PROFILES[p.role].rank > rank
            and p is not person
        ]
        if higher:
            lowest = min(PROFILES[p.role].rank for p in higher)
            candidates = [p for p in higher if PROFILES[p.role].rank == lowest]
        else:
            same_department = [p for p in tops if p.department == person.department]
            candidates = same_department or tops
        managers[person.id or ""] = rng.choice(candidates).id
    return managers


def _record(
    person: Person,
    plan: OrgPlan,
    organization: dict[str, Any],
    rng: random.Random,
    taken_names: set[tuple[str, str]],
    taken_emails: set[str],
) -> dict[str, Any]:
    profile = PROFILES[person.role]
    if person.first is None or person.last is None:
        while True:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            if (first, last) not in taken_names:
                break
    else:
        first, last = person.first, person.last
    taken_names.add((first, last))
    email = person.email
    if email is None:
        email = f"{first}.{last}@{plan.domain}.{rng.choice(TLDS)}".lower()
        suffix = 2
        while email in taken_emails:
            local, domain = email.split("@")
            email = f"{local.rstrip('0123456789')}{suffix}@{domain}"
            suffix += 1
    taken_emails.add(email)

    if person.skills is not None:
        skills = list(person.skills)
    else:
        count = rng.randint(profile.skills_min, profile.skills_max)
        optional = [s for s in profile.skill_pool if s not in profile.skills_required]
        wanted = max(0, min(len(optional), count - len(profile.skills_required)))
        extra = rng.sample(optional, wanted)
        skills = [*profile.skills_required, *extra]
    permissions = list(person.permissions or profile.permissions)

    status = person.status
    if status is None:
        if plan.varied_status:
            status = rng.choices(
                ("active", "pending", "suspended", "locked", "terminated"), (85, 5, 4, 3, 3)
            )[0]
        else:
            status = "active"
    two_factor = person.two_factor
    if two_factor is None:
        sensitive = any(p in SENSITIVE_PERMISSIONS for p in permissions)
        two_factor = sensitive or rng.random() < 0.8

    created = dt.datetime(2016, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        seconds=rng.randrange(
            int(
                (
                    dt.datetime(2023, 6, 30, tzinfo=dt.UTC) - dt.datetime(2016, 1, 1, tzinfo=dt.UTC)
                ).total_seconds()
            )
        )
    )
    if person.login_days_ago is not None:
        days = person.login_days_ago
    elif status == "active":
        days = rng.randint(0, 40)
    elif status == "pending":
        days = None
    else:
        days = rng.randint(61, 200)
    last_login = (
        None
        if days is None
        else _timestamp(NOW - dt.timedelta(days=days, seconds=rng.randrange(1, 12 * 3600)))
    )

    offices = organization["offices"]
    office = dict(offices[0] if person.top else rng.choice(offices))
    department_label = person.department.replace("_", " ")
    title = person.title or TITLE_OVERRIDES.get((person.role, person.department))
    number = _id_number(person.id or "USR-0")
    return {
        "id": person.id,
        "org_id": plan.org_id,
        "name": {"first_name": first, "last_name": last},
        "email": email,
        "roles": list(person.roles or [person.role]),
        "department": person.department,
        "office": {
            "region": office["region"],
            "city": office["city"],
            "is_headquarters": office["is_headquarters"],
        },
        "manager_id": None,  # filled in after every id is known
        "direct_reports": [],
        "last_login": last_login,
        "two_factor_enabled": two_factor,
        "status": status,
        "permissions": permissions,
        "created_date": _timestamp(created),
        "title": title or profile.title.format(department=department_label),
        "employee_id": f"EMP-{number % 100000:05d}",
        "phone": "+1" + "".join(str(rng.randrange(10)) for _ in range(10)),
        "skills": skills,
    }


def users_build(organizations: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The users collection ``{user_id: record}``. Raises ``AssertionError`` if the result
    breaks one of the tasks' expectations (:func:`_tasks_check`)."""
    if organizations is None:
        organizations = json.loads(ORGANIZATIONS_FILE.read_text(encoding="utf-8"))
    rng = random.Random(RANDOM_SEED)
    users: dict[str, dict[str, Any]] = {}
    taken_emails: set[str] = set()
    plans = _plans()
    # The personas' names stay theirs: generated users never get one of them.
    personas = {(p.first or "", p.last or "") for plan in plans for p in plan.persons if p.email}
    for plan in plans:
        _ids_assign(plan)
        taken_names = set(personas)
        organization = organizations[plan.org_id]
        for person in plan.persons:
            record = _record(person, plan, organization, rng, taken_names, taken_emails)
            if record["id"] in users:
                raise AssertionError(f"duplicate user id {record['id']}")
            users[record["id"]] = record
        for user_id, manager_id in _managers_assign(plan, rng).items():
            users[user_id]["manager_id"] = manager_id
            if manager_id is not None:
                users[manager_id]["direct_reports"].append(user_id)
    _tasks_check(users)
    return users


def _in_org(users: dict[str, dict[str, Any]], org_id: str) -> list[dict[str, Any]]:
    return [u for u in users.values() if u["org_id"] == org_id]


def _tasks_check(users: dict[str, dict[str, Any]]) -> None:
    """Assert what the HR tasks' reference actions take for granted about the users."""

    def check(condition: bool, message: str) -> None:
        if not condition:
            raise AssertionError(message)

    org1 = _in_org(users, "ORG-000001")
    stale = NOW - dt.timedelta(days=60)
    inactive = sorted(
        u["id"]
        for u in org1
        if u["last_login"] is None
        or dt.datetime.strptime(u["last_login"], TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC) < stale
    )
    check(inactive == ["USR-000001", "USR-000002", "USR-000003"], f"entry_13: {inactive}")
    no_skill = sorted(
        u["id"]
        for u in org1
        if (
            u["department"] in ("Engineering", "Data_Science")
            or {"analyst", "engineer"} & set(u["roles"])
        )
        and not u["skills"]
    )
    check(no_skill == ["USR-000002"], f"entry_7: {no_skill}")
    check(sum(u["manager_id"] is None for u in org1) == 10, "entry_8: ten without a manager")
    active = Counter(u["department"] for u in org1 if u["status"] == "active").most_common(2)
    check(active[0][0] == "Research" and active[0][1] > active[1][1], f"entry_5: {active}")
    for u in org1:
        if "deploy_code" in u["permissions"]:
            check("security" in u["skills"], f"entry_18: {u['id']}")
        if "export_data" in u["permissions"]:
            check("data_analysis" in u["skills"], f"entry_21: {u['id']}")

    org2 = _in_org(users, "ORG-000002")
    check(all(u["department"] != "Sustainability" for u in org2), "entry_2")
    managers = Counter(u["department"] for u in org2 if "manager" in u["roles"])
    check({d for d, n in managers.items() if n < 2} == {"IT"} and managers["IT"] == 1, "entry_27")
    for org_id in ("ORG-000002", "ORG-000017"):
        for u in _in_org(users, org_id):
            if "developer" in u["roles"]:
                check({"access_api", "deploy_code"} <= set(u["permissions"]), f"{u['id']}")

    check(
        any(
            u["status"] == "active" and not u["two_factor_enabled"]
            for u in _in_org(users, "ORG-000003")
        ),
        "entry_3: a 2FA violation to find",
    )
    wanted = {"access_api", "deploy_code", "export_data"}
    lacking = sorted(
        u["id"]
        for u in _in_org(users, "ORG-000004")
        if {"developer", "engineer", "researcher"} & set(u["roles"])
        and not wanted <= set(u["permissions"])
    )
    check(lacking == ["USR-001876", "USR-001877"], f"entry_4: {lacking}")
    unskilled = sorted(
        u["id"]
        for u in _in_org(users, "ORG-000008")
        if "manage_security" in u["permissions"] and "security" not in u["skills"]
    )
    check(unskilled == ["USR-003682", "USR-003683", "USR-003684"], f"entry_9: {unskilled}")
    six = set(MANAGER_SIX)
    short = sorted(
        u["id"]
        for u in _in_org(users, "ORG-000009")
        if "manager" in u["roles"] and not six <= set(u["permissions"])
    )
    check(short == ["USR-003789"], f"entry_12: {short}")
    for u in _in_org(users, "ORG-000011"):
        if set(u["permissions"]) & {"manage_security", "manage_billing", "manage_users"}:
            check(u["two_factor_enabled"], f"entry_16: {u['id']}")
    not_active = sorted(u["id"] for u in _in_org(users, "ORG-000013") if u["status"] != "active")
    check(not_active == ["USR-00101"], f"entry_19: {not_active}")
    for org_id, expected in (("ORG-000016", ["USR-007175"]), ("ORG-000017", ["USR-007360"])):
        several = sorted(u["id"] for u in _in_org(users, org_id) if len(u["roles"]) > 1)
        check(several == expected, f"entry_23/25: {org_id} {several}")
    holders = sorted(
        u["id"] for u in _in_org(users, "ORG-000018") if "manage_security" in u["permissions"]
    )
    check(holders == ["USR-008397", "USR-008398", "USR-008399"], f"entry_28: {holders}")
    emails = [u["email"] for u in users.values()]
    check(len(emails) == len(set(emails)), "e-mail addresses are unique")


def users_text(users: dict[str, dict[str, Any]] | None = None) -> str:
    """The file content: ``json.dumps(users, indent=2)``, like the Benchforce data files."""
    return json.dumps(users_build() if users is None else users, indent=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = users_text()
    if args.check:
        same = USERS_FILE.exists() and USERS_FILE.read_text(encoding="utf-8") == text
        print(f"{USERS_FILE}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    USERS_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {USERS_FILE} ({len(json.loads(text))} users)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
