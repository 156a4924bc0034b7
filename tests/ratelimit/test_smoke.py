import pytest

pytestmark = pytest.mark.urls("tests.ratelimit.urls")


def test_ip_view(client):
    codes = [client.get("/ip/").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
