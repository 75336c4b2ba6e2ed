"""The local Apify-compatible marketplace simulator (owns: everything under this package).

A deterministic simulated Amazon behind a faithful Apify API v2: runs, datasets, pagination,
errors, costs; listings whose prices, ranks, reviews, stock, buy box and content change day by
day; block pages and injected faults; and the ground truth of every injected event.

    from asinwatch.simulator import SimConfig, SimulatorServer
    with SimulatorServer(SimConfig(seed=7, block_rate=0)) as srv:
        srv.simulator.clock.advance(days=1)
        events = srv.simulator.events()
"""

from asinwatch.simulator.clock import SimClock
from asinwatch.simulator.engine import ACTORS, TERMINAL_STATUSES, SimConfig, Simulator
from asinwatch.simulator.market import EVENT_TYPES, SimEvent, sample_asins
from asinwatch.simulator.server import SimulatorServer, serve, start_simulator

__all__ = [
    "ACTORS",
    "EVENT_TYPES",
    "TERMINAL_STATUSES",
    "SimClock",
    "SimConfig",
    "SimEvent",
    "Simulator",
    "SimulatorServer",
    "sample_asins",
    "serve",
    "start_simulator",
]
