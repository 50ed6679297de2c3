"""Redirects between programmes: a list that continues after an application's outcome.

DOMAIN.md section 4: someone refused, too old for a programme, or done with a mission goes
on in the other programmes they may join; a full or expired offer leads to close offers of
the same domain in any programme they may join. `redirect` turns `RankRequest.after` into
filters that only narrow (`recsys.filters`: eligibility still decides who may join what) and
the bridge reason (`serving.explanations.REASONS`, codes `after_<outcome>`) said first on
every item of the list.
"""

from __future__ import annotations

from recsys import taxonomy
from serving.catalog import Catalog
from serving.explanations import MAX_REASONS, REASONS
from serving.schemas import RankFilters, RankRequest
from serving.state import UnknownOffer

OTHER_PROGRAMMES = ("refused", "too_old", "finished")  # the other outcomes: the same domain


class NoPath(ValueError):
    """The request's own filters leave nothing the redirect may propose."""


def redirect(catalog: Catalog | None, request: RankRequest) -> RankRequest:
    """The request narrowed for its `after` (unchanged without one).

    Raises:
        UnknownOffer: the offer is not in the live catalog and `after` does not give its
            programme (other programmes) or its domain (same domain).
        NoPath: the request's programme filter names only the offer's own programme.
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
    if after.outcome in OTHER_PROGRAMMES:
        if programme is None:
            raise UnknownOffer(
                f"after.offer_id: unknown offer {after.offer_id!r}: give after.programme"
            )
        if snu:  # after an SNU mission: anything but another SNU mission
            update = {"snu": False}
        else:
            allowed = [p for p in (filters.types or taxonomy.PROGRAMMES) if p != programme]
            if not allowed:
                raise NoPath(f"filters.types: only {programme}, which after.outcome leaves out")
            update = {"types": allowed}
    else:
        if domain is None:
            raise UnknownOffer(
                f"after.offer_id: unknown offer {after.offer_id!r}: give after.domain"
            )
        if filters.domains and domain not in filters.domains:
            raise NoPath(f"filters.domains: {domain}, the offer's domain, is not among them")
        update = {"domains": [domain]}
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
