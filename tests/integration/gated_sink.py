"""
gated_sink.py: an in-process aiosmtpd sink for the queue monitor and
containment tests (loopback only). Unlike sink.py (a separate process with
fixed behaviour), a test steers this one while it runs:

  gate      a threading.Event: while it is clear, DATA waits (the message
            stays "in flight" in bulwark), so a test can see what bulwark
            holds before anything more is delivered; set() lets them through.
  tempfail  True: every RCPT gets 451 4.3.0 (deferrals on demand).

messages() returns what was accepted, as (mail_from, [rcpts], bytes).
"""

import asyncio
import socket
import threading

from aiosmtpd.controller import Controller


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.sink.tempfail or address.split("@")[0].lower() == "tempfail":
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.sink.gate.wait, 60)
        with self.sink.lock:
            self.sink._messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                        envelope.original_content))
        return "250 2.0.0 Ok"


class GatedSink:
    def __init__(self, open_gate=True):
        self.gate = threading.Event()
        if open_gate:
            self.gate.set()
        self.tempfail = False
        self.lock = threading.Lock()
        self._messages = []
        self.port = _free_port()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=False, decode_data=False)
        self.controller.start()

    def messages(self):
        with self.lock:
            return list(self._messages)

    def count(self):
        with self.lock:
            return len(self._messages)

    def stop(self):
        self.gate.set()
        self.controller.stop()
