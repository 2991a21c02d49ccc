"""The plan's node graph: a `networkx.DiGraph`, built straight into networkx's own storage.

networkx gives every node three dicts of its own (its attributes, its successors, its predecessors)
and every edge one (its attributes), built one call at a time by `add_nodes_from` and
`add_edges_from`: at a million nodes, most of a compile's time and a third of its memory. A plan's
graph carries no attributes, and most nodes of a large plan have no edge on one side or the other
(the items of a first step have no predecessor). So `node_graph` fills `_node`, `_succ` and `_pred`
(as `DiGraph.__init__` names them) from one `dict.fromkeys` and two copies of it (copying a dict
clones its table, where building each again would insert every node anew), every node sharing one
empty read-only mapping (`EMPTY`) for its attributes and for each side it has no edge on, and every
edge sharing it as its attributes; a node gets an adjacency dict of its own only on the side it has
edges.

The result is an ordinary DiGraph: networkx reads it as any other, and `Plan` freezes it. Its
shared mappings are `FrozenDict`s, so a write that reached one (`G.nodes[n]["x"] = 1`) would
raise rather than change every node; the only code that changes a plan's graph after it is built,
`plait.compiler.grow`, copies a node's dict before writing to it (`_Growth._own`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from plait.compiler.plan import FrozenDict

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["EMPTY", "node_graph"]

EMPTY = FrozenDict()  # the attributes of every node and edge, and the adjacency of a side without edges


def node_graph(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> nx.DiGraph:
    """Return a DiGraph of `nodes` (in order) and `edges` between them. Raises KeyError for an edge off the nodes."""
    import networkx as nx  # here, not at the top: `plait status` reads no graph

    graph = nx.DiGraph()
    attributes = dict.fromkeys(nodes, EMPTY)
    succ, pred = attributes.copy(), attributes.copy()  # a copy clones the hash table whole: no key hashed again
    for u, v in edges:
        out = succ[u]
        if out is EMPTY:
            out = succ[u] = {}
        into = pred[v]
        if into is EMPTY:
            into = pred[v] = {}
        out[v] = into[u] = EMPTY
    graph._node = attributes
    graph._succ = graph._adj = succ
    graph._pred = pred
    return graph
