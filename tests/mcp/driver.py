"""Drives Malipo's MCP server with the official MCP Python SDK.

Reads one JSON scenario on stdin and prints one JSON report on stdout:

    {"transport": "http", "url": "...", "key": "...", "mode": "legacy" | "2026-07-28" | "auto",
     "steps": [{"op": "list_tools"}, {"op": "call", "tool": "...", "args": {...}, "progress": true}]}

or, for stdio, {"transport": "stdio", "command": "...", "args": [...], "env": {...}, ...}.
Each step's outcome is reported (protocol errors as {"exception": ...});
the Rust tests in tests/api/mcp.rs make the assertions.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def server_of(spec):
    if spec["transport"] == "http":
        headers = {"Authorization": f"Bearer {spec['key']}"}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0))
        return streamable_http_client(spec["url"], http_client=http)
    return StdioServerParameters(command=spec["command"], args=spec.get("args", []), env=spec.get("env"))


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def step(client, item):
    if item["op"] == "list_tools":
        listed = await client.list_tools()
        return {"tools": [tool.model_dump(by_alias=True, exclude_none=True, mode="json") for tool in listed.tools]}
    if item["op"] == "call":
        progress = []

        async def on_progress(done, total, message):
            progress.append({"progress": done, "total": total, "message": message})

        result = await client.call_tool(
            item["tool"],
            item.get("args", {}),
            progress_callback=on_progress if item.get("progress") else None,
        )
        return {
            "is_error": bool(result.is_error),
            "structured": result.structured_content,
            "text": text_of(result),
            "progress": progress,
        }
    raise ValueError(f"unknown step {item['op']!r}")


async def main():
    spec = json.load(sys.stdin)
    report = {"steps": []}
    async with Client(server_of(spec), mode=spec.get("mode", "auto"), cache=None) as client:
        report["protocol_version"] = client.protocol_version
        for item in spec["steps"]:
            try:
                report["steps"].append(await step(client, item))
            except Exception as error:  # reported, asserted on by the Rust side
                report["steps"].append({"exception": f"{type(error).__name__}: {error}"})
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
