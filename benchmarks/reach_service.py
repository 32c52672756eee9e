"""What a social reach costs through the service, whose followers' timelines are live.

``POST /v1/influence`` of a share by a user with many followers scores every follower's
timeline as it is now: training history plus the events the service accepted for them and
for the users they follow. This script trains ``sasrec`` briefly on the simulator (the
shipped config reads the shares of the users one follows), opens a
:class:`~behaviorlm.serve.Service` over an event store in a temporary folder, picks the user
with the most followers, and times ``Service.influence`` of their share (reach included) with
a growing share of their followers holding live events of their own (``--active``: a few
views each, stored before the level's timed calls).

Prints one JSON line per level: the median and p90 over ``--repeat`` calls in ms, the
followers, how many have live events, and the median of the model's part alone
(``Reaching.reach`` on the same followers' timelines). Compare code versions by running the
script from each checkout (``PYTHONPATH=other/src``) with a ``--label``. Example::

    python benchmarks/reach_service.py --users 3000 --active 0,0.1,0.5,1 --repeat 10
"""

from __future__ import annotations

import json
import statistics
import tempfile
from functools import partial

import numpy as np

import behaviorlm as blm
from behaviorlm.explain import reaching_event
from behaviorlm.serve.schemas import InfluenceRequest
from simulated import (
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

NOW = 2_000_000_000  # after every event of the simulation


def main() -> None:
    parser = service_parser(__doc__, users=3000, repeat=10)
    parser.add_argument(
        "--active", default="0,0.1,0.5,1", help="shares of the followers with live events"
    )
    parser.add_argument("--events", type=int, default=3, help="live events per active follower")
    args = parsed(parser)

    dataset = blm.preprocess(blm.simulate(args.users, seed=args.seed))
    follows = dataset.follows
    sharer_code, _ = most_followed(dataset)
    users = dataset.users["user_id"].cast(str)
    sharer = users[sharer_code - 1]
    followers = [
        users[int(f) - 1]
        for f in follows.filter(follows["followee"] == sharer_code)["follower"].unique().sort()
    ]
    items = dataset.items["item_id"].cast(str).to_list()
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(followers))  # followers become active in this order
    request = InfluenceRequest(user_id=sharer, item_id=items[0], action="share")
    with tempfile.TemporaryDirectory() as tmp:
        service = trained_service(dataset, tmp, args.threads)
        reaching = reaching_event(service.artifact, "share")
        active = 0
        for level in levels(args.active):
            target = round(level * len(followers))
            for f in order[active:target]:
                views = random_events(followers[int(f)], items, rng, NOW, args.events, "view")
                service.store.append(views)
            active = max(active, target)
            answer = service.influence(request)  # the level's first call, untimed
            times, _, _ = timed(partial(service.influence, request), args.repeat)
            # the model's part: the same followers' timelines, built once
            live, read = service.timelines, service.store.user_events
            rows = live.stack(
                [
                    live.for_user(
                        f, read(f), [e for g in live.followees_of(f) for e in read(g)]
                    ).sequences
                    for f in followers
                ]
            )
            model_times, _, _ = timed(
                partial(reaching.reach, service.artifact.model, rows, 1, None), args.repeat
            )
            line = {
                "benchmark": "reach_service",
                "followers": len(followers),
                "followers_with_live_events": active,
                "events_per_active_follower": args.events,
                "repeat": args.repeat,
                **timing_fields(times),
                "model_median_ms": round(statistics.median(model_times), 2),
                "followers_answered": None if answer.reach is None else len(answer.reach.followers),
                **run_fields(args),
            }
            print(json.dumps(line), flush=True)
        service.close()


if __name__ == "__main__":
    main()
