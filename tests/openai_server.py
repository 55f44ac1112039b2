"""A small OpenAI-compatible chat server that injects faults before answering: for the retry, load-balancing and
kill/resume tests of the openai backend, and as the instant server of benchmarks/generate_client.py.

    python tests/openai_server.py --faults 500,429,timeout --reasoning split
    # prints "PORT <n>" once listening on 127.0.0.1 (port 0 = any free port)

Every distinct request (messages + seed) first gets the faults in order, one per attempt, then a real answer.
A request whose user message contains "BAD" gets a 400 (as a server does for a prompt that is too long).
GET /stats returns the attempts seen per outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections import Counter

from aiohttp import web

REASONING = "Let me add the numbers carefully. 2 + 3 = 5."
ANSWER = "The answer is $\\boxed{5}$."


def make_app(args: argparse.Namespace) -> web.Application:
    faults = [f for f in args.faults.split(",") if f]
    attempts: Counter = Counter()
    stats: Counter = Counter()

    async def chat(request: web.Request) -> web.Response:
        raw = await request.read()
        if args.require_key and request.headers.get("Authorization") != f"Bearer {args.require_key}":
            stats["401"] += 1
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        body = json.loads(raw)
        key = hashlib.sha1(json.dumps([body["messages"], body.get("seed")]).encode()).hexdigest()
        n = attempts[key]
        attempts[key] += 1
        if "BAD" in body["messages"][-1]["content"]:
            stats["400"] += 1
            return web.json_response({"error": {"message": "prompt too long"}}, status=400)
        if n < len(faults):
            fault = faults[n]
            stats[fault] += 1
            if fault == "timeout":
                await asyncio.sleep(args.hang)
            elif fault == "drop":
                request.transport.close()
                return web.Response(status=500)
            else:
                headers = {"Retry-After": "0"} if fault == "429" else {}
                return web.json_response({"error": {"message": f"injected {fault}"}}, status=int(fault), headers=headers)
        if args.delay:
            await asyncio.sleep(args.delay)
        stats["200"] += 1
        return web.json_response(completion(body, args))

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": args.model, "object": "model"}]})

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(dict(stats))

    app = web.Application(client_max_size=64 * 2**20)
    app.add_routes([web.post("/v1/chat/completions", chat), web.get("/v1/models", models), web.get("/stats", get_stats)])
    return app


def completion(body: dict, args: argparse.Namespace) -> dict:
    if args.reasoning == "split":  # vLLM/SGLang with a reasoning parser, DeepSeek's API
        message = {"role": "assistant", "content": ANSWER, "reasoning_content": REASONING}
    elif args.reasoning == "prefilled":  # template opened <think> itself: the text closes a block it never opened
        message = {"role": "assistant", "content": f"{REASONING}\n</think>\n\n{ANSWER}"}
    else:
        message = {"role": "assistant", "content": f"<think>\n{REASONING}\n</think>\n\n{ANSWER}"}
    prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": args.model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 17, "total_tokens": prompt_tokens + 17},
    }


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(args), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", default="test-teacher")
    p.add_argument("--faults", default="", help="comma list of 500,502,503,429,timeout,drop applied per request")
    p.add_argument("--hang", type=float, default=30.0, help="seconds a 'timeout' fault hangs")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before each real answer")
    p.add_argument("--reasoning", choices=["split", "inline", "prefilled"], default="split")
    p.add_argument("--require-key", default=None)
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
