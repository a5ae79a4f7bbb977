import pytest


@pytest.mark.browser
def test_logged_in_page_shows_role_and_language_switch(page_for):
    page = page_for("front_desk")
    page.goto(page.base_url + "/admin/login/")  # any page rendering base.html works
    page.goto(page.base_url + "/accounts/login/")
    # A logged-in user is redirected away from the login page.
    assert "/accounts/login/" not in page.url
