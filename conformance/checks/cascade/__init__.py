"""ATS chapter 8 — cascade between levels (逐级对接): catalog aggregation and routing.

The checks stand the candidate between its neighbours and see them through one view
(``view``): with emulated neighbours (``conformance.neighbours``) every request the candidate
sends up or down is seen and a neighbour can be made to refuse, fail, hang or loop; in live mode
(``neighbours.live``: the real parent and child of a topology) the candidate's answers and the
real parent's catalog are judged, what a neighbour received is not observable, and what only a
misbehaving neighbour could show is provoked with the target's ``emulated_child``, or reported
as not assessed, with the reason, when the file names none. A clause that applies to the
node's level but needs a neighbour the target file does not name is not assessed either: the
run cannot certify without it.

- ``view``: the neighbourhood (emulated or live), the catalog walk, the query, the evidence of
  what the neighbours received;
- ``roles``: the suite as the candidate's child (pushes) and parent (routed queries);
- ``aggregation``: ATS-CAS-01, -02, -03, -10, -11;
- ``routing``: ATS-CAS-04 to -09.
"""

from __future__ import annotations

from conformance.checks.cascade import aggregation, routing
from conformance.checks.cascade.view import in_subtree, witnessed

# The decorator by its former name, for the tests that witness a function of their own.
_witnessed = witnessed

__all__ = ["aggregation", "in_subtree", "routing", "witnessed"]
