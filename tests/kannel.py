"""A real Kannel for the text message tests: ``bearerbox`` and ``smsbox`` from Debian's
``kannel``, and ``fakesmsc`` (``kannel-extras``) as the SMSC, with a generated
configuration on free local ports (``scripts/setup-kannel`` installs them).

Two fake SMSCs: ``mt``, where one long-running ``fakesmsc`` receives every text the
server sends (its output is what a phone got), and ``mo``, where :meth:`Kannel.text_in`
starts a ``fakesmsc`` that sends one text from a phone (Kannel's ``sms-service`` then
posts it to the server's ``post-url``). Every process is started here and stopped by its
own PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

import httpx

from crdt_server.testing.waits import until

SBIN = Path(os.environ.get("CRDT_SERVER_KANNEL_DIR", "/usr/sbin"))
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
USER, PASSWORD = "crdt", "kannel-test-password"
_GOT = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>$")


def text_of(sender: str, to: str, kind: str, body: str) -> Text:
    """A line of fakesmsc's output as a text (a UCS-2 one is printed URL-encoded)."""
    if kind in ("ucs2", "ucs-2"):
        body = unquote_to_bytes(body.replace("+", "%20")).decode("utf-16-be")
    return Text(sender, to, kind, body)


_PART = re.compile(r"^(\S+) data (.*)$")


def _bytes(printed: str) -> bytes:
    """What fakesmsc printed URL-encoded (``+`` a space; a printable byte as itself)."""
    return unquote_to_bytes(printed.replace("+", "%20"))


def _joined(texts: list[Text]) -> list[Text]:
    """``texts`` with the parts of a concatenated text (fakesmsc prints each part as
    ``udh <header> data <bytes>``, the 8-bit reference header: 05 00 03 ref total seq)
    made one text, once every part has come, where its last part came; ``parts`` says how
    many. The parts' bytes are UTF-16 (UCS-2) when they hold a zero byte (every ASCII
    character does then), else the text's own characters."""
    whole: list[Text] = []
    pending: dict[tuple[str, str, int], dict[int, bytes]] = {}
    for text in texts:
        part = _PART.match(text.body) if text.kind == "udh" else None
        udh = _bytes(part.group(1)) if part is not None else b""
        if part is None or len(udh) != 6 or udh[:3] != b"\x05\x00\x03":
            whole.append(text)
            continue
        ref, total, seq = udh[3], udh[4], udh[5]
        got = pending.setdefault((text.sender, text.to, ref), {})
        got[seq] = _bytes(part.group(2))
        if len(got) < total:
            continue
        data = b"".join(got[i] for i in sorted(got))
        del pending[(text.sender, text.to, ref)]
        if b"\0" in data:
            whole.append(Text(text.sender, text.to, "ucs-2", data.decode("utf-16-be"), total))
        else:
            whole.append(Text(text.sender, text.to, "text", data.decode(errors="replace"), total))
    return whole


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``args`` with its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Text:
    """A text the fake SMSC received: ``sender`` (our ``from``), ``to``, ``body``."""

    sender: str
    to: str
    kind: str
    body: str
    parts: int = 1
    """The parts it came in (a long text is split, and put back together here)."""


@dataclass
class Kannel:
    """Kannel on free ports under ``folder``; :meth:`start` with the URL inbound texts
    are posted to (Kannel's ``%p``, ``%P``, ``%a`` are added as ``from``, ``to``,
    ``text``)."""

    folder: Path
    admin: int = field(default_factory=free_port)
    boxes: int = field(default_factory=free_port)
    mt: int = field(default_factory=free_port)
    mo: int = field(default_factory=free_port)
    sendsms: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _phone: subprocess.Popen[bytes] | None = None
    _smsbox: subprocess.Popen[bytes] | None = None

    @property
    def sms_url(self) -> str:
        """``CRDT_SERVER_SMS_URL`` for this smsbox."""
        return f"http://{USER}:{PASSWORD}@127.0.0.1:{self.sendsms}/cgi-bin/sendsms"

    @property
    def phone_log(self) -> Path:
        return self.folder / "fakesmsc-mt.log"

    def config(self, post_url: str) -> str:
        return f"""
group = core
admin-port = {self.admin}
admin-password = {PASSWORD}
admin-interface = 127.0.0.1
smsbox-port = {self.boxes}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = {self.folder}/bearerbox.log
log-level = 1
dlr-storage = internal
store-type = file
store-location = {self.folder}/store
access-log = {self.folder}/access.log

group = smsc
smsc = fake
smsc-id = mt
port = {self.mt}
connect-allow-ip = 127.0.0.1

group = smsc
smsc = fake
smsc-id = mo
allowed-smsc-id = mo
port = {self.mo}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.boxes}
sendsms-port = {self.sendsms}
sendsms-interface = 127.0.0.1
log-file = {self.folder}/smsbox.log
log-level = 1

group = sendsms-user
username = {USER}
password = {PASSWORD}
max-messages = 3
concatenation = true

group = sms-service
keyword = default
post-url = "{post_url}?from=%p&to=%P&text=%a"
omit-empty = true
max-messages = 1
"""

    async def start(self, post_url: str) -> Kannel:
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "kannel.conf"
        conf.write_text(self.config(post_url))
        self._spawn([str(SBIN / "bearerbox"), str(conf)], "bearerbox.out")
        await until(lambda: _answers(self.admin), deadline=20)
        await self.start_smsbox()
        self._spawn(
            [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(self.mt), "-i", "1", "-m", "0",
             "0 0 text unused"],
            self.phone_log.name,
        )  # fmt: skip
        await until(self._mt_online, deadline=20)
        return self

    async def start_smsbox(self) -> None:
        """Start the smsbox (the ``sendsms`` interface) and wait until it answers."""
        conf = self.folder / "kannel.conf"
        self._smsbox = self._spawn([str(SBIN / "smsbox"), str(conf)], "smsbox.out")
        await until(lambda: _answers(self.sendsms), deadline=20)

    async def stop_smsbox(self) -> None:
        """Stop the smsbox: the server's ``sendsms`` requests fail until it starts again."""
        if self._smsbox is not None:
            await self.stop_process(self._smsbox)
            self.processes.remove(self._smsbox)
            self._smsbox = None

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        process = spawn(args, self.folder / log)
        self.processes.append(process)
        return process

    async def _mt_online(self) -> bool:
        async with httpx.AsyncClient(timeout=5) as http:
            status = await http.get(
                f"http://127.0.0.1:{self.admin}/status.txt", params={"password": PASSWORD}
            )
        line = next((ln for ln in status.text.splitlines() if ln.strip().startswith("mt")), "")
        return "online" in line

    def received(self) -> list[Text]:
        """Every text the phones got so far: what the ``mt`` fakesmsc printed, then the
        replies to inbound texts (Kannel sends those back through the SMSC the text came
        from while it is connected: the ``mo`` fakesmsc's output)."""
        texts = []
        for path in (self.phone_log, self.folder / "fakesmsc-mo.log"):
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                found = _GOT.search(line)
                if found:
                    texts.append(text_of(*found.groups()))
        return _joined(texts)

    def to(self, phone: str) -> list[Text]:
        return [t for t in self.received() if t.to == phone]

    async def text_in(self, sender: str, body: str, to: str = "+15550100") -> None:
        """A phone texts ``body``: a ``fakesmsc`` sends it on the ``mo`` SMSC once
        bearerbox has taken it (its access log says so; smsbox then posts it to the server:
        callers wait on its effect). That ``fakesmsc`` stays connected (a reply comes back
        through it, see :meth:`received`) until the next text or :meth:`stop`."""
        log = self.folder / "access.log"

        def taken() -> int:
            text = log.read_text(errors="replace") if log.exists() else ""
            return text.count("Receive SMS [SMSC:mo]")

        if self._phone is not None:
            await self.stop_process(self._phone)
            self.processes.remove(self._phone)
        before = taken()
        self._phone = self._spawn(
            [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(self.mo), "-i", "0", "-m", "1",
             f"{sender} {to} text {body}"],
            "fakesmsc-mo.log",
        )  # fmt: skip

        async def arrived() -> bool:
            return taken() > before

        await until(arrived, deadline=20)

    async def stop_process(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, 5)

    async def stop(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                await self.stop_process(process)
        self.processes.clear()
        self._phone = None
        self._smsbox = None


async def _answers(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
