"""What a followee who posts often costs their followers' recommendations.

A model trained with followees' events (``split.followee_actions = ["share"]``, the shipped
sasrec config) reads the shares of the users one follows; the service adds the shares it
accepts to the followers' live timelines. This script trains such a model briefly on the
simulator (the cost of a request does not depend on how well it is trained), opens a
:class:`~behaviorlm.serve.Service` over an event store in a temporary folder, lets one user
with followers share ``N`` items (each level of ``--shares`` in turn), and times one of their
followers' recommendations (``Service.recommend_batch``, one request) after each further share:
the read-your-writes case, where the follower's next request must show the new share.
``--views V`` first stores ``V`` views by the same followee, events the follower's timeline
does not read (the service caches at most 200,000 coded events).

Prints one JSON line per level: the median and p90 over ``--repeat`` requests in ms, and the
live events the last answer read (the shares since the follow began). Compare code versions by
running the script from each checkout (``PYTHONPATH=other/src``) with a ``--label``. Example::

    python benchmarks/followee_reads.py --shares 0,1000,10000,30000 --repeat 30
    python benchmarks/followee_reads.py --shares 0,1000 --views 250000 --repeat 30
"""

from __future__ import annotations

import json
import tempfile
from functools import partial

import numpy as np

import behaviorlm as blm
from behaviorlm.serve import EventRecord, RecommendRequest
from simulated import (
    fill_store,
    levels,
    most_followed,
    parsed,
    random_events,
    run_fields,
    service_parser,
    timed,
    timing_fields,
    trained_service,
)


def main() -> None:
    parser = service_parser(__doc__, users=300, repeat=30)
    parser.add_argument("--shares", default="0,1000,10000", help="the followee's shares, levels")
    parser.add_argument("--views", type=int, default=0, help="the followee's views, stored first")
    args = parsed(parser)

    dataset = blm.preprocess(blm.simulate(args.users, seed=args.seed))
    follows = dataset.follows
    followee_code, n_followers = most_followed(dataset)
    edge = follows.filter(follows["followee"] == followee_code).sort("follower").row(0)
    users = dataset.users["user_id"].cast(str)
    followee, follower, since = users[followee_code - 1], users[int(edge[0]) - 1], edge[2]
    items = dataset.items["item_id"].cast(str).to_list()
    rng = np.random.default_rng(args.seed)
    start = max(int(since or 0), int(dataset.events["timestamp"].max())) + 1

    def shares(first: int, n: int) -> list[EventRecord]:
        return random_events(followee, items, rng, start + first, n, "share")

    def views(first: int, n: int) -> list[EventRecord]:  # before the shares, in time too
        return random_events(followee, items, rng, start + first - args.views, n, "view")

    with tempfile.TemporaryDirectory() as tmp:
        service = trained_service(dataset, tmp, args.threads)
        fill_store(service.store, views, 0, args.views, batch=10_000)
        stored = 0
        request = [RecommendRequest(user_id=follower, k=10)]
        for level in map(int, levels(args.shares)):
            # the shares stored when the level's requests start: the level, or more where the
            # last level's requests added more than the gap between the two
            stored = at_start = fill_store(service.store, shares, stored, level)
            service.recommend_batch(request)  # the level's first read, untimed
            # a new share, then the follower asks
            times, answers, stored = timed(
                partial(service.recommend_batch, request),
                args.repeat,
                service.store,
                shares,
                stored,
            )
            answer = None if answers is None else answers[0]
            if isinstance(answer, Exception):
                raise answer
            line = {
                "benchmark": "followee_reads",
                "followee_shares": at_start,
                "followee_views": args.views,
                "followers_of_followee": n_followers,
                "repeat": args.repeat,
                **timing_fields(times),
                "live_events_read": None if answer is None else answer.live_events,
                **run_fields(args),
            }
            print(json.dumps(line), flush=True)
        service.close()


if __name__ == "__main__":
    main()
