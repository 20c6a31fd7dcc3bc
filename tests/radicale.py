"""A real Radicale (the CalDAV server, from PyPI: the ``test`` extra pins it) for the
calendar tests: ``python -m radicale`` on a free ``127.0.0.1`` port with plain htpasswd
users and its storage in a temporary folder, waited for with a deadline and stopped by
its own PID. :meth:`Radicale.stop` and :meth:`Radicale.start` again keep the port and the
storage (the server down and back).

The vendor's side is the ``caldav`` library too: :meth:`Radicale.vendor` is a client of
one user, which makes their calendar and reads and edits its events as a calendar app
would.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import caldav
import icalendar

from crdt_server.testing.waits import until
from tests.kannel import free_port, spawn

USERS = {"flo": "flo-password", "pat": "pat-password"}


@dataclass
class Radicale:
    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calendar_url(self, user: str, name: str) -> str:
        return f"{self.url}/{user}/{name}/"

    async def start(self) -> Radicale:
        self.folder.mkdir(parents=True, exist_ok=True)
        users = self.folder / "users"
        users.write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
        config = self.folder / "config"
        config.write_text(
            f"[server]\nhosts = 127.0.0.1:{self.port}\n"
            f"[auth]\ntype = htpasswd\nhtpasswd_filename = {users}\n"
            "htpasswd_encryption = plain\ndelay = 0\n"
            f"[storage]\nfilesystem_folder = {self.folder / 'collections'}\n"
            "[rights]\ntype = owner_only\n"
            "[logging]\nlevel = warning\n"
        )
        self.process = spawn(
            [sys.executable, "-m", "radicale", "--config", str(config)],
            self.folder / "radicale.log",
        )
        try:
            # A deadline for a machine shared by many: importing Radicale alone took 7 s
            # under a load of 30 on two cores.
            await until(self._answers, deadline=90, every=0.1)
        except BaseException:
            await self.stop()  # never left running after a failed start
            raise
        return self

    async def _answers(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, "radicale exited: see radicale.log"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 5)

    def vendor(self, user: str) -> caldav.DAVClient:
        return caldav.DAVClient(self.url, username=user, password=USERS[user], timeout=10)

    def make_calendar(self, user: str, name: str) -> str:
        """Make ``user``'s calendar ``name`` (MKCALENDAR); its URL."""
        with self.vendor(user) as client:
            client.principal().make_calendar(name=name, cal_id=name)
        return self.calendar_url(user, name)

    def events(self, user: str, name: str) -> dict[str, icalendar.Event]:
        """The calendar's events by UID (each object's one VEVENT); a UID twice fails."""
        with self.vendor(user) as client:
            calendar = client.calendar(url=self.calendar_url(user, name))
            found: dict[str, icalendar.Event] = {}
            for obj in calendar.events():
                for event in icalendar.Calendar.from_ical(obj.data).walk("VEVENT"):
                    uid = str(event["UID"])
                    assert uid not in found, f"{uid} is in the calendar twice"
                    found[uid] = event
            return found

    def edit(self, user: str, name: str, uid: str, change: dict[str, object]) -> None:
        """The vendor changes an event in their calendar app: its properties set anew."""
        with self.vendor(user) as client:
            calendar = client.calendar(url=self.calendar_url(user, name))
            obj = calendar.event_by_uid(uid)
            parsed = icalendar.Calendar.from_ical(obj.data)
            event = next(iter(parsed.walk("VEVENT")))
            for key, value in change.items():
                event.pop(key, None)
                event.add(key, value)
            obj.data = parsed.to_ical().decode()
            obj.save()

    def remove(self, user: str, name: str, uid: str) -> None:
        with self.vendor(user) as client:
            calendar = client.calendar(url=self.calendar_url(user, name))
            calendar.event_by_uid(uid).delete()
