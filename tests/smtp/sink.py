"""An SMTP sink for the black-box email tests.

Usage: sink.py <directory>

Listens on 127.0.0.1 on a free port, prints `port <n>` on its first line,
and writes every message it accepts to <directory> as one JSON file
(envelope, headers and the text and HTML parts), written whole then renamed,
so a reader never sees half a message. Recipients whose address starts with
`reject` are refused with 550 (a permanent failure). Runs until stdin closes
or it is killed.
"""

import asyncio
import email
import email.policy
import json
import os
import socket
import sys
import uuid

from aiosmtpd.controller import Controller


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Handler:
    def __init__(self, directory):
        self.directory = directory

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("reject"):
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message.get("From", "")),
            "to": str(message.get("To", "")),
            "subject": str(message.get("Subject", "")),
            "message_id": str(message.get("Message-ID", "")),
            "content_type": message.get_content_type(),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
        }
        name = uuid.uuid4().hex
        temp = os.path.join(self.directory, name + ".tmp")
        with open(temp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(temp, os.path.join(self.directory, name + ".json"))
        return "250 Message accepted for delivery"


def main():
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    port = free_port()
    controller = Controller(Handler(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"port {port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
