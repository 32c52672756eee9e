"""What a user's stored events cost the explanation of their next recommendation.

``GET /v1/users/{id}/explanation`` explains the user's timeline as it is now: the training
history and every event the service accepted for them. This script trains the shipped
``sasrec`` config briefly on the simulator (the cost of a request does not depend on how well
it is trained), opens a :class:`~behaviorlm.serve.Service` over an event store in a temporary
folder, stores ``N`` events of one user (views of random items; each level of ``--events`` in
turn), and times the user's explanation (``Service.explain_user``, occlusion, of the
score of one item: the catalogue is small, so the user soon has seen every item and has no
top recommendation left) after each further event: the read-your-writes case, where the explanation
must show the new event.

Prints one JSON line per level: the median and p90 over ``--repeat`` requests in ms, and the
live events the last answer read. Compare code versions by running the script from each
checkout (``PYTHONPATH=other/src``) with a ``--label``. Example::

    python benchmarks/live_explanations.py --events 0,1000,10000,50000 --repeat 20
"""

from __future__ import annotations

import json
import tempfile
from functools import partial

import numpy as np

import behaviorlm as blm
from behaviorlm.serve import EventRecord
from simulated import (
    fill_store,
    levels,
    parsed,
    random_events,
    run_fields,
    service_parser,
    timed,
    timing_fields,
    trained_service,
)


def main() -> None:
    parser = service_parser(__doc__, users=300, repeat=20)
    parser.add_argument("--events", default="0,1000,10000", help="the user's stored events")
    args = parsed(parser)

    dataset = blm.preprocess(blm.simulate(args.users, seed=args.seed))
    user = str(dataset.users["user_id"][0])
    items = dataset.items["item_id"].cast(str).to_list()
    rng = np.random.default_rng(args.seed)
    start = int(dataset.events["timestamp"].max()) + 1
    target = items[0]

    def views(first: int, n: int) -> list[EventRecord]:
        return random_events(user, items, rng, start + first, n, "view")

    with tempfile.TemporaryDirectory() as tmp:
        service = trained_service(dataset, tmp, args.threads)
        stored = 0
        for level in map(int, levels(args.events)):
            # the events stored when the level's requests start: the level, or more where the
            # last level's requests added more than the gap between the two
            stored = at_start = fill_store(service.store, views, stored, level)
            service.explain_user(user, target)  # the level's first read, untimed
            # a new event, then the user asks
            times, answer, stored = timed(
                partial(service.explain_user, user, target),
                args.repeat,
                service.store,
                views,
                stored,
            )
            line = {
                "benchmark": "live_explanations",
                "stored_events": at_start,
                "repeat": args.repeat,
                **timing_fields(times),
                "live_events_read": None if answer is None else answer.live_events,
                **run_fields(args),
            }
            print(json.dumps(line), flush=True)
        service.close()


if __name__ == "__main__":
    main()
