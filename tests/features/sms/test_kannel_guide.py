"""The notifications guide's Kannel configuration runs as written: bearerbox and smsbox
start with it (ports and log folder moved to free ones), and the server's sender
(``crdt_server.features.sms.service.Kannel``) hands a text through the guide's
``CRDT_SERVER_SMS_URL`` to the ``fakesmsc`` on its SMSC."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from crdt_server.features.sms.service import Kannel as Sender
from crdt_server.testing.waits import until
from tests.kannel import _GOT, FAKESMSC, SBIN, Text, free_port, spawn, text_of
from tests.kannel import _answers as answers

pytestmark = [pytest.mark.services, pytest.mark.timeout(60)]

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "guides" / "notifications.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", GUIDE.read_text(), re.S)


@pytest.mark.asyncio
async def test_the_guide_s_kannel_configuration_sends_a_text(tmp_path: Path) -> None:
    [config] = blocks("ini")
    [env] = blocks("text")
    ports = {p: free_port() for p in ("13000", "13001", "13010", "13013")}
    for old, new in ports.items():
        config = config.replace(f" {old}\n", f" {new}\n").replace(f":{old}/", f":{new}/")
    config = config.replace("/var/log/kannel", str(tmp_path))
    conf = tmp_path / "kannel.conf"
    conf.write_text(config)
    url = re.search(r"CRDT_SERVER_SMS_URL=(\S+)", env)
    assert url is not None
    sms_url = url.group(1).replace(":13013/", f":{ports['13013']}/")
    phone_log = tmp_path / "fakesmsc.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        boxes = tmp_path / "boxes.out"
        processes.append(spawn([str(SBIN / "bearerbox"), str(conf)], boxes))
        await until(lambda: answers(ports["13000"]), deadline=20)
        processes.append(spawn([str(SBIN / "smsbox"), str(conf)], boxes))
        smsc = str(ports["13010"])
        fake = [str(FAKESMSC), "-H", "127.0.0.1", "-r", smsc, "-m", "0", "0 0 text x"]
        processes.append(spawn(fake, phone_log))
        await until(lambda: answers(ports["13013"]), deadline=20)
        sender = Sender(sms_url, "Wedding", 10)
        try:

            async def taken() -> bool:
                result = await sender.send("+447700900123", "Zoë: the guide works", "http://x/%d")
                return result.taken

            await until(taken, deadline=20, every=0.5)
        finally:
            await sender.aclose()

        async def received() -> list[Text]:
            lines = phone_log.read_text(errors="replace").splitlines()
            return [text_of(*m.groups()) for ln in lines if (m := _GOT.search(ln))]

        # "ë" is not in the GSM 7-bit alphabet: the text went as UCS-2 (coding=2).
        [text] = await until(received, deadline=30)
        assert text == Text("Wedding", "+447700900123", "ucs-2", "Zoë: the guide works")
    finally:
        for process in reversed(processes):
            process.terminate()
            await asyncio.to_thread(process.wait, 10)
