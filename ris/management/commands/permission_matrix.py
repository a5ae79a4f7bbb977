"""Print the role × action permission matrix as a Markdown table (the README embeds it)."""

from django.core.management.base import BaseCommand

from ris.roles import PERMISSIONS, Role, has_permission


class _FakeUser:
    is_authenticated = True
    is_superuser = False

    def __init__(self, role: str):
        self._ris_roles = {role}


def render_matrix() -> str:
    roles = list(Role.ALL)
    header = "| action | " + " | ".join(roles) + " |"
    sep = "|---|" + "|".join(":-:" for _ in roles) + "|"
    rows = [header, sep]
    for action in sorted(PERMISSIONS):
        marks = ["✓" if has_permission(_FakeUser(r), action) else "" for r in roles]
        rows.append(f"| `{action}` | " + " | ".join(marks) + " |")
    return "\n".join(rows)


class Command(BaseCommand):
    help = "Print the permission matrix (role × action) as Markdown."
    requires_system_checks: list = []

    def handle(self, *args, **options):
        self.stdout.write(render_matrix())
