"""Several etcd endpoints in one URL: parsing, redaction, and failover.

The failover client is driven through a stand-in ``requests`` session that
plays a cluster whose members can be "killed" (connection refused), can
time out or can answer 503, so every path is checked without a server; the
real cluster cases are in ``tests/functional/test_ha.py``.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
import requests
from etcd3gw import exceptions as etcd3gw_exc
from etcd3gw.lease import Lease

from servicegroup import exceptions
from servicegroup.drivers.tooz import compat, etcd, urls
from servicegroup.drivers.tooz.backends import etcd as etcd_backend
from servicegroup.drivers.tooz.backends import registry

H1, H2, H3 = ("10.0.0.1", 2379), ("10.0.0.2", 2379), ("10.0.0.3", 2380)


class _Reply:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code = status
        self.reason = "OK" if status == 200 else "Service Unavailable"
        self.text = str(body)
        self._body = body

    def json(self) -> dict[str, Any]:
        return self._body


class _Cluster(requests.Session):
    """Answers like an etcd cluster; ``state[host:port]`` says how."""

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[str, str] = {}
        self.calls: list[tuple[str, str, Any]] = []

    def _answer(self, url: str, body: Any) -> _Reply:
        parts = urllib.parse.urlsplit(url)
        self.calls.append((parts.netloc, parts.path, body))
        state = self.state.get(parts.netloc, "up")
        if state == "dead":
            raise requests.exceptions.ConnectionError("connection refused")
        if state == "hung":
            raise requests.exceptions.ReadTimeout("read timed out")
        if state == "no-leader":
            return _Reply(503, {"error": "etcdserver: no leader"})
        if parts.path == "/version":
            return _Reply(200, {"etcdserver": "3.5.16"})
        if parts.path.endswith("/lease/keepalive"):
            return _Reply(200, {"result": {"ID": body["ID"], "TTL": "3"}})
        return _Reply(200, {"header": {}, "served_by": parts.netloc})

    def post(self, url: Any, data: Any = None, json: Any = None, **kw: Any) -> Any:
        return self._answer(url, json if json is not None else data)

    def get(self, url: Any, **kw: Any) -> Any:
        return self._answer(url, None)


@pytest.fixture(autouse=True)
def _fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test starts with no endpoint remembered as the last good one.
    monkeypatch.setattr(etcd, "_last_good", {})


def _client(
    cluster: _Cluster, endpoints: list[tuple[str, int]] | None = None
) -> etcd.FailoverClient:
    return etcd.FailoverClient(
        endpoints or [H1, H2, H3], session=cluster, timeout=3, api_path="/v3/"
    )


def _status(client: etcd.FailoverClient) -> Any:
    return client.post(client.get_url("/maintenance/status"), json={})


# -- URLs ---------------------------------------------------------------------


def _endpoints(url: str) -> list[tuple[str, int]]:
    return etcd_backend.etcd_endpoints(urllib.parse.urlsplit(url))


def test_the_url_host_comes_first_then_each_hosts_option() -> None:
    url = "etcd3+http://h1:2379?hosts=h2:2379&hosts=h3:2380"
    assert _endpoints(url) == [("h1", 2379), ("h2", 2379), ("h3", 2380)]


def test_default_ports_ipv6_commas_and_repeats() -> None:
    url = "etcd3+https://h1?hosts=[::1]:2390,h2&hosts=h1:2379"
    assert _endpoints(url) == [("h1", 2379), ("::1", 2390), ("h2", 2379)]
    assert _endpoints("etcd3+http://") == [("localhost", 2379)]
    assert _endpoints("etcd3+http://?hosts=h2") == [("h2", 2379)]


@pytest.mark.parametrize(
    "bad", ["h2:abc", "http://h2:2379", "h2:2379/v3", "user:pw@h2", " h2", ":2379"]
)
def test_an_endpoint_that_is_not_host_port_is_refused_before_any_traffic(
    bad: str,
) -> None:
    with pytest.raises(exceptions.InvalidURL, match="HOST\\[:PORT\\]"):
        registry.parse_url(f"etcd3+http://h1:2379?hosts={urllib.parse.quote(bad)}")


def test_endpoints_for_describe_and_the_cli_carry_no_secret() -> None:
    assert registry.endpoints("etcd3+https://h1:2379?hosts=h2:2379&hosts=[::1]") == [
        "h1:2379",
        "h2:2379",
        "[::1]:2379",
    ]
    assert registry.endpoints("kazoo://u:pw@z1:2181?hosts=z2:2181") == [
        "z1:2181",
        "z2:2181",
    ]
    assert registry.endpoints("redis://:secret@r1:6379") == ["r1:6379"]
    assert registry.endpoints("file:///var/lib/sg") == []


def test_redaction_keeps_the_endpoints_and_masks_secrets() -> None:
    url = (
        "etcd3+https://h1:2379?hosts=h2:2379&hosts=u:s3cret@h3:2379"
        "&ca_cert=/etc/ca.pem&cert_key=/etc/key.pem"
    )
    shown = urls.redact_url(url)
    assert "s3cret" not in shown
    assert "/etc/key.pem" not in shown
    assert "hosts=h2:2379&hosts=u:***@h3:2379" in shown
    assert "ca_cert=/etc/ca.pem" in shown


# -- the failover client ------------------------------------------------------


def test_requests_stay_on_the_first_endpoint_while_it_answers() -> None:
    cluster = _Cluster()
    client = _client(cluster)
    for _ in range(3):
        assert _status(client)["served_by"] == "10.0.0.1:2379"
    assert client.endpoint == "10.0.0.1:2379"


def test_a_dead_endpoint_moves_the_same_call_to_the_next_one() -> None:
    cluster = _Cluster()
    client = _client(cluster)
    _status(client)
    cluster.state["10.0.0.1:2379"] = "dead"
    assert _status(client)["served_by"] == "10.0.0.2:2379"
    # and it stays there: the dead one is not tried first again
    cluster.calls.clear()
    _status(client)
    assert [netloc for netloc, _, _ in cluster.calls] == ["10.0.0.2:2379"]
    assert client.endpoint == "10.0.0.2:2379"
    assert client.base_url == "http://10.0.0.2:2379"


@pytest.mark.parametrize("state", ["hung", "no-leader"])
def test_a_timeout_or_no_leader_moves_on_too(state: str) -> None:
    cluster = _Cluster()
    client = _client(cluster)
    cluster.state["10.0.0.1:2379"] = state
    assert _status(client)["served_by"] == "10.0.0.2:2379"


def test_the_lease_keeps_its_id_on_the_next_endpoint() -> None:
    cluster = _Cluster()
    client = _client(cluster)
    lease = Lease(1234, client=client)
    assert lease.refresh() == 3
    cluster.state["10.0.0.1:2379"] = "dead"
    assert lease.refresh() == 3
    netloc, path, body = cluster.calls[-1]
    assert (netloc, path, body) == (
        "10.0.0.2:2379",
        "/v3/lease/keepalive",
        {"ID": 1234},
    )


def test_every_endpoint_failing_raises_naming_each() -> None:
    cluster = _Cluster()
    client = _client(cluster)
    cluster.state.update(dict.fromkeys(("10.0.0.1:2379", "10.0.0.2:2379"), "dead"))
    cluster.state["10.0.0.3:2380"] = "no-leader"
    with pytest.raises(etcd3gw_exc.ConnectionFailedError) as caught:
        _status(client)
    message = str(caught.value)
    for endpoint in ("10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2380"):
        assert endpoint in message
    assert "no leader" in message
    cluster.state.clear()
    assert _status(client)["served_by"] == "10.0.0.1:2379"


def test_a_call_stops_moving_on_once_its_timeout_is_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = _Cluster()
    client = _client(cluster)
    cluster.state.update(dict.fromkeys(("10.0.0.1:2379", "10.0.0.2:2379"), "hung"))
    now = [100.0]

    def hung_post(url: Any, data: Any = None, json: Any = None, **kw: Any) -> Any:
        now[0] += 3.0  # each hung endpoint costs the whole request timeout
        return cluster._answer(url, json if json is not None else data)

    monkeypatch.setattr(cluster, "post", hung_post)
    monkeypatch.setattr(etcd.time, "monotonic", lambda: now[0])
    with pytest.raises(etcd3gw_exc.ConnectionTimeoutError):
        _status(client)
    assert [netloc for netloc, _, _ in cluster.calls] == ["10.0.0.1:2379"]
    # the next call starts on the next endpoint, not on the hung one again
    assert client.endpoint == "10.0.0.2:2379"


def test_other_errors_are_answers_and_do_not_move(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = _Cluster()
    client = _client(cluster)
    monkeypatch.setattr(
        cluster, "post", lambda *a, **k: _Reply(500, {"error": "mvcc: bad"})
    )
    with pytest.raises(etcd3gw_exc.InternalServerError):
        _status(client)
    assert client.endpoint == "10.0.0.1:2379"


def test_api_version_discovery_moves_on_too() -> None:
    cluster = _Cluster()
    client = etcd.FailoverClient([H1, H2], session=cluster, timeout=3)
    cluster.state["10.0.0.1:2379"] = "dead"
    assert _status(client)["served_by"] == "10.0.0.2:2379"
    assert [(n, p) for n, p, _ in cluster.calls] == [
        ("10.0.0.1:2379", "/version"),
        ("10.0.0.2:2379", "/version"),
        ("10.0.0.2:2379", "/v3/maintenance/status"),
    ]


def test_a_new_client_starts_where_the_last_one_got_answers() -> None:
    cluster = _Cluster()
    cluster.state["10.0.0.1:2379"] = "dead"
    _status(_client(cluster))
    cluster.calls.clear()
    _status(_client(cluster))
    assert [netloc for netloc, _, _ in cluster.calls] == ["10.0.0.2:2379"]
    # another cluster's endpoints are remembered separately
    assert _client(cluster, [H3, H1]).endpoint == "10.0.0.3:2380"


def test_ipv6_endpoints_are_bracketed() -> None:
    client = etcd.FailoverClient([("::1", 2379)], protocol="https", api_path="/v3/")
    assert client.base_url == "https://[::1]:2379"
    assert client.endpoints == ["[::1]:2379"]


# -- the tooz driver subclass -------------------------------------------------


def test_the_driver_uses_every_endpoint_and_tooz_tls_session() -> None:
    compat.check_etcd()
    url = (
        "etcd3+https://h1:2379?hosts=h2:2379&hosts=h3:2379"
        "&ca_cert=/etc/ca.pem&cert_cert=/etc/crt.pem&cert_key=/etc/key.pem"
        "&timeout=4&api_version=v3"
    )
    parts = urllib.parse.urlsplit(url)
    driver_class = registry.for_scheme("etcd3+https").driver_class()
    assert driver_class is not None
    coord: Any = driver_class(b"m@g", parts, urllib.parse.parse_qs(parts.query))
    client = coord.client
    assert isinstance(client, etcd.FailoverClient)
    assert client.endpoints == ["h1:2379", "h2:2379", "h3:2379"]
    assert client.base_url == "https://h1:2379"
    assert client.session.verify == "/etc/ca.pem"
    assert client.session.cert == ("/etc/crt.pem", "/etc/key.pem")
    assert client.timeout == 4
    assert client.get_url("/kv/range") == "https://h1:2379/v3/kv/range"
    client.session.close()


def test_the_url_ca_cert_wins_over_requests_ca_bundle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # requests would let the environment replace the session's own CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/system-bundle.pem")
    tooz_session = requests.Session()
    tooz_session.verify = "/etc/etcd/ca.pem"
    tooz_session.cert = ("/etc/etcd/crt.pem", "/etc/etcd/key.pem")
    pinned = etcd.pinned_session(tooz_session)
    merged = pinned.merge_environment_settings(
        "https://h1:2379/v3/kv/range", {}, None, None, None
    )
    assert merged["verify"] == "/etc/etcd/ca.pem"
    assert pinned.cert == ("/etc/etcd/crt.pem", "/etc/etcd/key.pem")
    # With no ca_cert the environment's bundle is still honoured.
    plain = etcd.pinned_session(requests.Session())
    merged = plain.merge_environment_settings("https://h1:2379/", {}, None, None, None)
    assert merged["verify"] == "/etc/ssl/system-bundle.pem"
    pinned.close()
    plain.close()
