"""The one trade between nodes and weight bytes behind every size decision (the never-worse rule,
folding, fusions that must copy a shared weight): a removed node is worth up to ``BYTES_PER_NODE``
bytes of weights, so a rewrite may grow the weights by that much per node it removes. Users see
fewer nodes first and size second; a shape sub-graph of 90 nodes folding into 0.6 MB of anchors is a
good trade, a 10 MB weight copied to remove one node is not."""

from __future__ import annotations

BYTES_PER_NODE = 16 * 1024  # weight bytes one removed node may be traded for
SLACK_BYTES = 4 * 1024  # what one pass may add without removing a node (a fixpoint must give it back)


def allowed_growth(nodes_removed: int, slack: int = SLACK_BYTES) -> int:
    """Bytes the weights may grow by when ``nodes_removed`` nodes go (none when nodes were added)."""
    return slack + BYTES_PER_NODE * nodes_removed if nodes_removed >= 0 else -1


def worse(nodes_before: int, bytes_before: int, nodes_after: int, bytes_after: int,
          slack: int = SLACK_BYTES) -> bool:
    """True when the change added nodes, or grew the weights beyond what its removed nodes allow."""
    removed = nodes_before - nodes_after
    return removed < 0 or bytes_after - bytes_before > allowed_growth(removed, slack)
