"""Load test of the HTTP service: latency, throughput, errors and the server's memory over time.

``N`` concurrent clients (asyncio + aiohttp, one keep-alive connection each) send a mix of
``GET /v1/users/{user}/recommendations`` for users whose timeline was just extended (the
users of the most recent event posts; read-your-writes makes every such request read the
store) and ``POST /v1/events`` (one new event each, a known item, the time now), 80 % / 20 %
by default, for ``--duration`` seconds after a ``--warmup`` whose requests are not counted.

With ``--explainers N`` another ``N`` clients ask for explanations
(``GET /v1/users/{user}/explanation?method=--explain-method`` of random users), each as soon as
its last one is answered, beside the mix and outside its rate; their latencies and errors
are reported apart (``explanation``) and left out of the mix's percentiles, throughput and
error count (the server's CPU per request still divides all of its CPU, the explanations'
included, by the mix's requests). This measures
what a long explanation (Shapley values take hundreds of milliseconds) does to the
recommendations and event posts served at the same time.

Two ways to load the server:

* closed loop (the default): each client sends its next request as soon as the last one is
  answered. This finds the highest throughput; latency then only says how long the queue
  is (with ``N`` clients, mean latency = N / throughput).
* open loop, ``--rate R``: the clients together send ``R`` requests/s on a fixed schedule
  (each client every ``N / R`` s, phases spread), as wrk2 does. A client still waits for
  its answer before its next request, so when answers take longer than ``N / R`` it falls
  behind the schedule (the achieved ``requests_per_s`` then falls below ``R``); but a
  request's latency counts from its scheduled time, so a stalled server shows up in the
  percentiles instead of silently lowering the rate (no coordinated omission). This is the
  latency users see at that traffic.

The server is either started here from an artifact (``behaviorlm serve ARTIFACT`` on a free
loopback port with an event store in a temporary folder, stopped at the end) or a running one
given by ``--url`` (loopback only; ``--server-pid`` to sample its memory). User and item ids
come from the artifact's data set in both cases. The run is bounded by ``--duration`` and by
``--max-requests``.

Prints JSON lines: ``config``, ``progress`` every ``--report-every`` seconds (with the p99 of
that interval alone, which shows whether a slow tail is spread over the run or comes in
bursts), and ``result``:
p50 / p90 / p99 latency in ms (all requests and per kind), requests/s, error count (non-2xx
answers and transport errors, with the first few messages), the server's CPU time (user +
system, all threads) per request over the measured window, and its resident memory
(VmRSS, MiB) at the start, middle and end of the measured window, its minimum and maximum,
and its growth over the second half of the window (MiB per minute, a least-squares line
through the samples taken every second), so "memory flat" can be judged; and, for a server
started here, the size of its event store's SQLite write-ahead log (``store_wal_mib``).

The load generator shares the machine with the server: on a 2-core machine its own CPU use
lowers the throughput the server can reach and adds to the latencies it measures. That is why
it uses aiohttp: with httpx the generator took twice the CPU, and the same server at 400
requests/s measured p99 61 ms instead of 21 ms (the server's own histogram had 97 % of
recommendations under 25 ms in both runs).

Examples::

    behaviorlm simulate sim --users 200 && behaviorlm prepare sim sim.ds
    behaviorlm train sim.ds --model markov --out runs/markov
    python benchmarks/serve_load.py runs/markov --duration 10 --warmup 2
    python benchmarks/serve_load.py runs/markov --duration 10 --rate 400  # open loop
    python benchmarks/serve_load.py runs/markov --duration 10 --retain-freed-memory
    python benchmarks/serve_load.py runs/sasrec --duration 10 --rate 400 --explainers 1
    # against a server already running on 127.0.0.1:8000 (process id 1234)
    python benchmarks/serve_load.py runs/markov --url http://127.0.0.1:8000 --server-pid 1234
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np

import behaviorlm as blm
from behaviorlm.allocator import is_glibc, user_configured
from behaviorlm.serve.process import start_server
from behaviorlm.serve.server import is_loopback
from machine import malloc_label, rss_mib

#: Longest run accepted (seconds of measurement plus warm-up).
MAX_SECONDS = 3600.0
#: Events posted to a user are remembered for this many recent posts (the "fresh" users).
FRESH_USERS = 1000
#: The request kinds of the mix (explanations are counted apart).
MIX = ("recommend", "events")
#: Error messages kept for the result line.
KEPT_ERRORS = 5
START_TIMEOUT_S = 120.0


@dataclass
class Tally:
    """Latencies (seconds) per request kind and errors, of the measured window."""

    latency: dict[str, list[float]] = field(
        default_factory=lambda: {"recommend": [], "events": [], "explanation": []}
    )
    #: the mix's latencies in the order the answers came
    answered: list[float] = field(default_factory=list)
    errors: int = 0
    #: errors of the explanations (also in ``errors``' messages, not in its count)
    explanation_errors: int = 0
    messages: list[str] = field(default_factory=list)
    warmup_requests: int = 0
    warmup_errors: int = 0

    @property
    def requests(self) -> int:
        """Measured requests of the mix."""
        return sum(len(self.latency[kind]) for kind in MIX)

    def record(self, kind: str, seconds: float) -> None:
        """One measured answer of ``kind`` (recommend, events, explanation) after ``seconds``."""
        self.latency[kind].append(seconds)
        if kind in MIX:
            self.answered.append(seconds)

    def since(self, count: int) -> list[float]:
        """Latencies of the answers after the first ``count``."""
        return self.answered[count:]

    def error(self, message: str, explanation: bool = False) -> None:
        """One failed request; an explanation's counts apart from the mix's."""
        if explanation:
            self.explanation_errors += 1
        else:
            self.errors += 1
        if len(self.messages) < KEPT_ERRORS:
            self.messages.append(message[:300])


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max in milliseconds (None without requests)."""
    if not seconds:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(seconds) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "p50_ms": round(float(p50), 3),
        "p90_ms": round(float(p90), 3),
        "p99_ms": round(float(p99), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads) in seconds, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def rss_slope(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares growth in MiB per minute of ``(seconds, MiB)`` samples (None if < 2).

    Examples
    --------
    >>> rss_slope([(0.0, 100.0), (60.0, 101.0), (120.0, 102.0)])
    1.0
    """
    if len(samples) < 2:
        return None
    t, m = np.array(samples, dtype=np.float64).T
    if np.ptp(t) == 0:
        return None
    return round(float(np.polyfit(t / 60.0, m, 1)[0]), 3)


class Load:
    """The clients, the shared state they read (fresh users) and the tally."""

    def __init__(self, args: argparse.Namespace, users: list[str], items: list[str]) -> None:
        self.args = args
        self.users = users
        self.items = items
        self.fresh: collections.deque[str] = collections.deque(maxlen=FRESH_USERS)
        self.tally = Tally()
        self.sent = 0
        self.measured = 0  # requests sent after the warm-up (``--max-requests`` counts these)
        self.posted = 0
        self.measuring = False
        self.stopping = False
        self.last_answer = 0.0  # when the latest measured answer came (perf_counter)

    async def client(self, http: aiohttp.ClientSession, worker: int) -> None:
        rng = random.Random(self.args.seed * 1_000_003 + worker)
        headers = {"X-API-Key": self.args.api_key} if self.args.api_key else {}
        interval = self.args.clients / self.args.rate if self.args.rate else 0.0
        due = time.perf_counter() + interval * rng.random()  # open loop: spread the phases
        while not self.stopping and self.measured < self.args.max_requests:
            if interval:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                if self.stopping or self.measured >= self.args.max_requests:
                    break  # another client sent the last one while this one waited
            self.sent += 1
            self.measured += self.measuring
            if rng.random() < self.args.recommend_share:
                kind = "recommend"
                user = rng.choice(self.fresh) if self.fresh else rng.choice(self.users)
                method, path = "GET", f"/v1/users/{user}/recommendations"
                options: dict[str, Any] = {"params": {"k": self.args.k}}
            else:
                kind = "events"
                user = rng.choice(self.users)
                self.posted += 1
                events = [
                    {
                        "user_id": user,
                        "item_id": rng.choice(self.items),
                        "action": "view",
                        "timestamp": int(time.time()),
                        "event_id": f"load-{self.args.seed}-{worker}-{self.posted}-{j}",
                    }
                    for j in range(self.args.batch)
                ]
                method, path = "POST", "/v1/events"
                options = {"json": {"events": events}, "headers": headers}
            measuring = self.measuring
            # open loop: from the scheduled time, so waiting behind a slow answer counts
            start = due if interval else time.perf_counter()
            due += interval
            try:
                async with http.request(method, path, **options) as response:
                    body = await response.read()
                ok = response.status < 300
                problem = "" if ok else f"{kind} {response.status}: {body[:300]!r}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok, problem = False, f"{kind} {type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - start
            if ok and kind == "events":
                self.fresh.append(user)
            if not measuring:
                self.tally.warmup_requests += 1
                self.tally.warmup_errors += not ok
            else:
                self.tally.record(kind, elapsed)
                self.last_answer = time.perf_counter()
                if not ok:
                    self.tally.error(problem)

    async def explainer(self, http: aiohttp.ClientSession, worker: int) -> None:
        """Ask for explanations of random users, one after the other, until the run stops."""
        rng = random.Random(self.args.seed * 1_000_003 - 1 - worker)
        params = {"method": self.args.explain_method}
        while not self.stopping:
            user = rng.choice(self.users)
            measuring = self.measuring
            start = time.perf_counter()
            path = f"/v1/users/{user}/explanation"
            try:
                async with http.get(path, params=params) as response:
                    body = await response.read()
                # a user without an event the model reads has nothing to explain (404):
                # neither an error nor an explanation's latency
                if response.status == 404:
                    continue
                ok = response.status < 300
                problem = "" if ok else f"explanation {response.status}: {body[:300]!r}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok, problem = False, f"explanation {type(exc).__name__}: {exc}"
            if measuring:
                self.tally.record("explanation", time.perf_counter() - start)
                if not ok:
                    self.tally.error(problem, explanation=True)


def labelled(args: argparse.Namespace) -> dict[str, str]:
    """The run's ``--label`` as a field of its lines, where it has one."""
    return {"label": args.label} if args.label else {}


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def file_mib(path: Path | None) -> float | None:
    """Size of a file in MiB; None where there is no such file (or no path)."""
    try:
        return round(path.stat().st_size / 2**20, 2) if path is not None else None
    except FileNotFoundError:
        return None


async def run(
    args: argparse.Namespace, base: str, pid: int | None, load: Load, wal: Path | None = None
) -> None:
    """Load the server at ``base`` (process ``pid``, for its memory and CPU) and print the
    progress and result lines; ``wal`` is its SQLite store's write-ahead log, where the
    server was started here (its size is reported: a log that readers keep from being reset
    grows, and every read then searches more of it)."""
    # one session (and one keep-alive connection) per simulated client
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                aiohttp.ClientSession(
                    base_url=base, timeout=timeout, connector=aiohttp.TCPConnector(limit=1)
                )
            )
            for _ in range(args.clients + args.explainers)
        ]
        mix, explaining = clients[: args.clients], clients[args.clients :]
        workers = [asyncio.create_task(load.client(http, w)) for w, http in enumerate(mix)]
        workers += [
            asyncio.create_task(load.explainer(http, w)) for w, http in enumerate(explaining)
        ]
        await asyncio.sleep(args.warmup)
        load.measuring = True
        start = time.perf_counter()
        memory: list[tuple[float, float | None]] = [(0.0, rss_mib(pid) if pid else None)]
        wal_sizes = [file_mib(wal)]
        cpu_start = cpu_seconds(pid) if pid else None
        next_report = args.report_every
        reported = 0  # requests measured up to the last progress line
        while not load.stopping:
            await asyncio.sleep(min(1.0, args.duration))
            now = time.perf_counter() - start
            memory.append((now, rss_mib(pid) if pid else None))
            wal_sizes.append(file_mib(wal))
            if now >= next_report:
                next_report += args.report_every
                latest = load.tally.since(reported)  # this interval's latencies
                reported = load.tally.requests
                emit(
                    {
                        "event": "progress",
                        **labelled(args),
                        "seconds": round(now, 1),
                        "requests": load.tally.requests,
                        "requests_per_s": round(load.tally.requests / now, 1),
                        "errors": load.tally.errors,
                        "interval_p99_ms": percentiles(latest)["p99_ms"],
                        "server_rss_mib": memory[-1][1],
                        "store_wal_mib": wal_sizes[-1],
                    }
                )
            if now >= args.duration or load.measured >= args.max_requests:
                load.stopping = True
        await asyncio.gather(*workers)  # the requests in flight finish and count
        wall = time.perf_counter() - start
        if load.measured >= args.max_requests and load.last_answer > start:
            # ended by the count: up to the last answer, not the control loop's next tick
            wall = load.last_answer - start
        cpu_end = cpu_seconds(pid) if pid else None
    tally = load.tally
    samples = [m for _, m in memory if m is not None]
    middle = min(memory, key=lambda m: abs(m[0] - wall / 2))[1]
    late = [(t, m) for t, m in memory if m is not None and t >= wall / 2]
    emit(
        {
            "event": "result",
            **labelled(args),
            "loop": "open" if args.rate else "closed",
            "model_pass": "eager" if args.eager else "traced",
            "server_malloc": server_malloc(args),
            "rate": args.rate or None,
            "clients": args.clients,
            "seconds": round(wall, 2),
            "requests": tally.requests,
            "requests_per_s": round(tally.requests / wall, 1) if wall > 0 else None,
            "errors": tally.errors,
            "error_messages": tally.messages,
            **percentiles([x for kind in MIX for x in tally.latency[kind]]),
            **{
                kind: {"requests": len(tally.latency[kind])} | percentiles(tally.latency[kind])
                for kind in MIX
            },
            "explainers": args.explainers,
            "explain_method": args.explain_method if args.explainers else None,
            "explanation": {
                "requests": len(tally.latency["explanation"]),
                "errors": tally.explanation_errors,
            }
            | percentiles(tally.latency["explanation"]),
            "warmup_requests": tally.warmup_requests,
            "warmup_errors": tally.warmup_errors,
            "server_cpu_ms_per_request": round(1000.0 * (cpu_end - cpu_start) / tally.requests, 3)
            if cpu_start is not None and cpu_end is not None and tally.requests
            else None,
            "server_rss_mib": {
                "start": memory[0][1],
                "middle": middle,
                "end": memory[-1][1],
                "min": min(samples) if samples else None,
                "max": max(samples) if samples else None,
                "second_half_mib_per_min": rss_slope(late),
            },
            "store_wal_mib": {
                "start": wal_sizes[0],
                "end": wal_sizes[-1],
                "max": max((w for w in wal_sizes if w is not None), default=None),
            },
        }
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("artifact", type=Path, help="artifact folder (ids; served unless --url)")
    p.add_argument("--url", help="a running server on a loopback address (default: start one)")
    p.add_argument("--server-pid", type=int, help="process id of the --url server (memory)")
    p.add_argument("--api-key-env", help="environment variable with the --url server's API key")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open loop: requests/s sent by all clients together (0: closed loop)",
    )
    p.add_argument("--duration", type=float, default=300.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    p.add_argument("--recommend-share", type=float, default=0.8)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--batch", type=int, default=1, help="events per POST /v1/events")
    p.add_argument("--users", type=int, default=0, help="use the first N users (0 = all)")
    p.add_argument(
        "--max-requests",
        type=int,
        default=2_000_000,
        help="stop after this many requests past the warm-up",
    )
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument("--report-every", type=float, default=30.0, help="seconds between progress")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", default="", help="a name for this run, echoed in every line")
    p.add_argument(
        "--explainers",
        type=int,
        default=0,
        help="clients asking for explanations back to back, beside the mix (reported apart)",
    )
    p.add_argument(
        "--explain-method",
        default="shapley",
        choices=["occlusion", "integrated_gradients", "attention", "shapley"],
        help="the explainers' method",
    )
    p.add_argument(
        "--eager",
        action="store_true",
        help="start the server with --no-trace (its model runs eagerly; with --url: a label only)",
    )
    p.add_argument(
        "--retain-freed-memory",
        action="store_true",
        help="start the server with --retain-freed-memory (behaviorlm.allocator; with --url: a "
        "label only)",
    )
    args = p.parse_args(argv)
    if args.duration <= 0:
        p.error("--duration must be positive")
    if args.duration + args.warmup > MAX_SECONDS or args.warmup < 0:
        p.error(f"--warmup must be >= 0 and --duration + --warmup at most {MAX_SECONDS:.0f} s")
    if args.rate < 0:
        p.error("--rate must be >= 0 (0: closed loop)")
    if not 1 <= args.clients <= 1024:
        p.error("--clients must be between 1 and 1024")
    if not 0 <= args.explainers <= 64:
        p.error("--explainers must be between 0 and 64")
    if not 0.0 <= args.recommend_share <= 1.0:
        p.error("--recommend-share must be between 0 and 1")
    if args.max_requests < 1 or args.batch < 1 or args.k < 1 or args.report_every <= 0:
        p.error("--max-requests, --batch, --k and --report-every must be positive")
    if args.url is not None:
        host = urlsplit(args.url).hostname or ""
        if urlsplit(args.url).scheme != "http" or not is_loopback(host):
            p.error(f"--url {args.url}: only http:// on a loopback address (127.0.0.1, ::1)")
    args.api_key = os.environ.get(args.api_key_env, "") if args.api_key_env else ""
    return args


def server_malloc(args: argparse.Namespace) -> str:
    """How the server's malloc runs (``behaviorlm.allocator``): it inherits this process's
    environment, whose malloc settings win over ``--retain-freed-memory``. With ``--url``, a
    label from this process's environment."""
    retained = args.retain_freed_memory and is_glibc() and not user_configured()
    return malloc_label(retained)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    dataset = blm.Artifact.load(args.artifact).dataset
    users = dataset.users["user_id"].cast(str).to_list()
    if args.users:
        users = users[: args.users]
    items = dataset.items["item_id"].cast(str).to_list()
    emit(
        {
            "event": "config",
            **labelled(args),
            "artifact": str(args.artifact),
            "url": args.url,
            "clients": args.clients,
            "rate": args.rate or None,
            "loop": "open" if args.rate else "closed",
            "model_pass": "eager" if args.eager else "traced",
            "server_malloc": server_malloc(args),
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "recommend_share": args.recommend_share,
            "explainers": args.explainers,
            "explain_method": args.explain_method if args.explainers else None,
            "k": args.k,
            "batch": args.batch,
            "users": len(users),
            "items": len(items),
            "cpus": os.cpu_count(),
        }
    )
    load = Load(args, users, items)
    if args.url is not None:
        asyncio.run(run(args, args.url.rstrip("/"), args.server_pid, load))
        return
    with tempfile.TemporaryDirectory(prefix="serve-load-") as folder:
        store_url = f"sqlite:///{Path(folder) / 'events.db'}"
        try:
            server = start_server(
                args.artifact,
                store_url,
                Path(folder) / "server.log",
                timeout_s=START_TIMEOUT_S,
                options=[
                    *(["--no-trace"] if args.eager else []),
                    *(["--retain-freed-memory"] if args.retain_freed_memory else []),
                ],
            )
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        try:
            wal = Path(folder) / "events.db-wal"
            asyncio.run(run(args, server.url, server.proc.pid, load, wal))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
