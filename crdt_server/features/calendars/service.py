"""A CalDAV calendar over HTTP, with the ``caldav`` library's client (its authentication
negotiation, basic or digest, and its multistatus parsing), to the address the webhooks'
SSRF guard checked.

:func:`open_calendar` resolves the calendar's host and checks every address (loopback,
private, link-local and the like are refused unless ``CRDT_SERVER_CALDAV_ALLOW_HOSTS``
names the host), then every request of that synchronisation goes to the checked address
(the URL's host replaced by it, the ``Host`` header and, over TLS, the server name and the
certificate check still the URL's own name), so a name that resolves elsewhere a second
later (DNS rebinding) is not followed. No redirect is followed, no proxy or ``.netrc`` from
the environment is used. The client is synchronous (``requests``): the extension runs
each call in a worker thread with the request's own timeout, and a deadline around it.
This module is imported by the first synchronisation, not by every process start (the
client and its HTTP stack take a second to import on a busy host).

A failure raises :class:`CalendarError` with a message safe to show the wedding (it names
neither the password nor the server's answer body).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from caldav import DAVClient
from caldav.lib import error as dav_error
from requests.adapters import HTTPAdapter

from crdt_server.features.calendars.domain import CalendarError, key_of
from crdt_server.features.webhooks import Target, UnsafeTarget, resolve_target

__all__ = ["Dav", "open_calendar"]

USER_AGENT = "crdt-server-calendars/1"
_LISTING = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>'
)
_ETAG = "{DAV:}getetag"


class _PinnedTls(HTTPAdapter):
    """TLS to the checked address that still sends and verifies the URL's own name."""

    def __init__(self, host: str) -> None:
        self._host = host
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = self._host
        kwargs["assert_hostname"] = self._host
        super().init_poolmanager(*args, **kwargs)


@dataclass
class Dav:
    """One calendar (its collection URL) through a checked address; synchronous."""

    url: str
    target: Target
    client: DAVClient

    @property
    def base(self) -> str:
        """The collection's path, ending with ``/``."""
        path = urlsplit(self.url).path or "/"
        return path if path.endswith("/") else path + "/"

    def href_for(self, name: str) -> str:
        """The path of a new resource named ``name`` in the collection."""
        return self.base + quote(name, safe="")

    def _to(self, href: str) -> str:
        """The request URL of a path: the checked address's."""
        connect = urlsplit(self.target.connect_url)
        return f"{connect.scheme}://{connect.netloc}{urlsplit(href).path}"

    def _request(self, method: str, href: str, body: str = "", **headers: str) -> Any:
        try:
            response = self.client.request(self._to(href), method, body, headers)
        except dav_error.AuthorizationError as exc:
            raise CalendarError("the calendar refused the username or password") from exc
        except requests.TooManyRedirects as exc:
            raise CalendarError(
                "the calendar answered with a redirect: give the calendar's own URL"
            ) from exc
        except requests.Timeout as exc:
            raise CalendarError("the calendar did not answer in time") from exc
        except (requests.RequestException, OSError) as exc:
            raise CalendarError("could not reach the calendar") from exc
        except NotImplementedError as exc:  # no basic, digest or bearer authentication
            raise CalendarError("the calendar asks for an authentication we cannot do") from exc
        return response

    def listing(self) -> dict[str, str]:
        """Every resource of the collection (its path, decoded) and its ETag."""
        response = self._request("PROPFIND", self.base, _LISTING, Depth="1")
        if response.status == 404:
            raise CalendarError("there is no calendar at this URL")
        if response.status != 207:
            raise CalendarError(f"the calendar answered {response.status} to a listing")
        found: dict[str, str] = {}
        own = key_of(self.base)
        origin = urlsplit(self.url)
        for href, props in response.find_objects_and_props().items():
            absolute = urlsplit(urljoin(self.url, href))
            if (absolute.scheme, absolute.netloc) != (origin.scheme, origin.netloc):
                continue  # not in this calendar
            path = key_of(absolute.path)
            element = props.get(_ETAG)
            if path.rstrip("/") == own.rstrip("/") or element is None or not element.text:
                continue
            found[path] = element.text.strip()
        return found

    def get(self, href: str) -> tuple[bytes, str]:
        """A resource's iCalendar data and ETag (:class:`CalendarError` if it is gone)."""
        response = self._request("GET", href, Accept="text/calendar")
        if response.status != 200:
            raise CalendarError(f"the calendar answered {response.status} to a read")
        return response.raw.encode(), str(response.headers.get("ETag", ""))

    def put(self, href: str, body: bytes, *, if_match: str | None) -> str:
        """Write ``body`` at ``href`` (only over ``if_match`` when given): the ETag the
        calendar gave it (read back when the answer has none)."""
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if if_match:
            headers["If-Match"] = if_match
        response = self._request("PUT", href, body.decode(), **headers)
        if response.status == 412:
            raise CalendarError("the event changed in the calendar meanwhile", conflict=True)
        if response.status not in (200, 201, 204):
            raise CalendarError(f"the calendar answered {response.status} to a write")
        etag = str(response.headers.get("ETag", ""))
        if etag:
            return etag
        # The server changed what we wrote (RFC 4791 5.3.4 lets it): ask what it kept.
        return self.listing().get(key_of(href), "")

    def delete(self, href: str, *, if_match: str | None) -> None:
        """Remove ``href`` (gone already is done; changed since: :class:`CalendarError`
        with ``conflict``)."""
        headers = {"If-Match": if_match} if if_match else {}
        response = self._request("DELETE", href, **headers)
        if response.status == 412:
            raise CalendarError("the event changed in the calendar meanwhile", conflict=True)
        if response.status not in (200, 204, 404, 410):
            raise CalendarError(f"the calendar answered {response.status} to a removal")

    def close(self) -> None:
        self.client.close()


async def open_calendar(
    url: str, username: str, password: str, *, allowed: frozenset[str], seconds: float
) -> Dav:
    """The calendar at ``url`` through its checked address (:class:`CalendarError` when the
    SSRF guard refuses it)."""
    host = (urlsplit(url).hostname or "").lower()
    try:
        target = await resolve_target(url, allow_private=host in allowed)
    except UnsafeTarget as exc:
        raise CalendarError(str(exc)) from exc
    headers = {"Host": target.host_header, "User-Agent": USER_AGENT}
    client = DAVClient(
        target.connect_url, username=username, password=password, timeout=math.ceil(seconds),
        headers=headers,
    )  # fmt: skip
    client.session.trust_env = False  # no proxy, no .netrc from the environment
    client.session.max_redirects = 0  # a redirect is an error, never followed
    if urlsplit(url).scheme == "https":
        client.session.mount("https://", _PinnedTls(target.host))
    return Dav(url, target, client)
