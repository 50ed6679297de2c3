"""Redirects between programmes: a list that continues after an application's outcome.

DOMAIN.md section 4: someone refused, too old for a programme, or done with a mission goes
on in the other programmes they may join; a full or expired offer leads to close offers of
the same domain in any programme they may join. `redirect` turns `RankRequest.after` into
the core's continuation (`recsys.paths.continuation`: filters that only narrow, so
eligibility still decides who may join what; the evaluation's redirect segment measures the
same narrowing) and the bridge reason (`serving.explanations.REASONS`, codes
`after_<outcome>`) said first on every item of the list.
"""

from __future__ import annotations

from recsys import taxonomy
from recsys.paths import MissingFact, continuation
from serving.catalog import Catalog
from serving.explanations import MAX_REASONS, REASONS
from serving.schemas import RankFilters, RankRequest
from serving.state import UnknownOffer


def redirect(catalog: Catalog | None, request: RankRequest) -> RankRequest:
    """The request narrowed for its `after` (unchanged without one).

    Raises:
        UnknownOffer: the offer is not in the live catalog and `after` does not give its
            programme (other programmes) or its domain (same domain).
        recsys.paths.NoPath: the request's programme or domain filter leaves nothing the
            continuation may propose.
    """
    after = request.after
    if after is None:
        return request
    row = None if catalog is None else catalog.row.get(after.offer_id)
    programme = after.programme if row is None else catalog.programme[row]
    domain = after.domain if row is None else catalog.domain[row]
    snu = after.snu if row is None else bool(catalog.arrays.snu[row])
    filters = request.filters or RankFilters()
    label = taxonomy.PROGRAMME_LABELS_FR.get(programme or "", "ce programme")
    try:
        update = continuation(after.outcome, programme, domain, snu, filters.types, filters.domains)
    except MissingFact as missing:
        raise UnknownOffer(
            f"after.offer_id: unknown offer {after.offer_id!r}: give after.{missing.fact}"
        ) from None
    narrowed = request.model_copy(
        update={
            "filters": filters.model_copy(update=update),
            "exclude_offer_ids": [*request.exclude_offer_ids, after.offer_id],
        }
    )
    narrowed._bridge = (f"after_{after.outcome}", label)
    return narrowed


def bridged(request: RankRequest, items: list[dict]) -> None:
    """Say the bridge reason first on each item of a redirected request's list, in place."""
    if request._bridge is None:
        return
    code, previous = request._bridge
    for item in items:
        label = taxonomy.PROGRAMME_LABELS_FR.get(item["programme"] or "", "une autre mission")
        text = REASONS[code].format(previous=previous, label=label)
        item["reasons"] = [{"code": code, "text": text}, *item["reasons"]][:MAX_REASONS]
