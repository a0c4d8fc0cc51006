"""The state of one running node, kept on ``app.state.node`` for every module of the node."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from conformance.reference.ratelimit import RateLimiter
from conformance.reference.variants import VariantSet

if TYPE_CHECKING:
    import httpx

    from conformance.reference.catalog_index import CatalogIndex
    from conformance.reference.config import NodeConfig
    from conformance.reference.faults import FaultSet
    from conformance.reference.stats import CallCounter, Connectivity
    from conformance.reference.store import Store


@dataclass
class NodeRuntime:
    """A node runtime is the configuration, store, catalog and shared clients of one node.

    ``http`` is created when the node starts serving (lifespan) and closed when it stops.
    """

    config: NodeConfig
    store: Store
    faults: FaultSet
    catalog: CatalogIndex
    descriptor: dict[str, object]
    calls: CallCounter
    connectivity: Connectivity
    limiter: RateLimiter = field(default_factory=RateLimiter)
    http: httpx.AsyncClient | None = None
    # The 5xx-under-concurrency fault counts the share queries it holds.
    share_queries_held: int = 0

    @functools.cached_property
    def variants(self) -> VariantSet:
        """The conformant variants switched on for this node."""
        return VariantSet.of(self.config.variants)


def runtime_of(request: Request) -> NodeRuntime:
    """The runtime of the node serving this request."""
    node: NodeRuntime = request.app.state.node
    return node
