"""The dispatcher's per-host HTTP clients are closed once idle (webhooks/host_clients.py): kept
for good, each held a socket for every host ever delivered to (a soak test: 200 hosts, 200
file descriptors, still open long after)."""

from __future__ import annotations

import httpx

from contacts_api.webhooks.host_clients import HostClients


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_client_idle_past_the_limit_is_closed_and_one_in_use_never() -> None:
    clock = Clock()
    clients = HostClients(httpx.AsyncClient, idle_seconds=60, clock=clock)
    async with clients.using("a.example") as a, clients.using("a.example") as a_again:
        assert a is a_again  # one pool per host name
    async with clients.using("b.example") as b:
        clock.now = 59.0
        await clients.close_idle()
        assert (len(clients), a.is_closed) == (2, False)
        clock.now = 120.0  # a idle 120 s, b in use all along
        await clients.close_idle()
        assert (a.is_closed, b.is_closed, len(clients)) == (True, False, 1)
    clock.now = 179.0  # b idle 59 s since its delivery ended
    await clients.close_idle()
    assert not b.is_closed
    async with clients.using("a.example") as a_new:  # the next delivery makes a new one
        assert a_new is not a and not a_new.is_closed
    await clients.aclose()
    assert (a_new.is_closed, b.is_closed, len(clients)) == (True, True, 0)
