"""The README's permission table is the one the code enforces."""

from pathlib import Path

from django.conf import settings

from ris.management.commands.permission_matrix import render_matrix


def test_readme_permission_matrix_is_current():
    readme = Path(settings.BASE_DIR, "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- permission-matrix:start -->")
    end = readme.index("<!-- permission-matrix:end -->")
    assert readme[start:end].split("\n", 1)[1].strip() == render_matrix().strip(), (
        "README permission matrix is stale: run `python manage.py permission_matrix` and paste it"
    )


def test_readme_names_both_commands():
    readme = Path(settings.BASE_DIR, "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme
