"""`ListPolicy.order_page`: pages of one pool are lists of k made one after the other."""

from __future__ import annotations

import numpy as np

from recsys.policy import ListPolicy


def test_pages_partition_the_pool_and_page_one_is_the_list() -> None:
    rng = np.random.default_rng(3)
    n, k = 40, 5
    publisher = rng.integers(0, 3, n)  # few publishers: the caps reorder
    programme = rng.integers(0, 2, n)
    policy = ListPolicy()
    first = policy.order_page(publisher, programme, k, 0)
    assert first.tolist() == policy.order_pool(publisher, programme, k).tolist()
    pages = [policy.order_page(publisher, programme, k, offset) for offset in range(0, n, k)]
    seen = np.concatenate(pages)
    assert sorted(seen.tolist()) == list(range(n))  # no duplicate, no gap
    # page 2 is page 1 of the pool without page 1's offers
    rest = np.setdiff1d(np.arange(n), first)
    again = policy.order_pool(publisher[rest], programme[rest], k)
    assert rest[again].tolist() == pages[1].tolist()


def test_a_page_past_the_end_is_empty() -> None:
    policy = ListPolicy()
    groups = np.zeros(3, dtype=np.int64)
    assert policy.order_page(groups, groups, 5, 5).tolist() == []
    assert policy.paged_pool_size(5, 10) == 10 + policy.pool_size(5)
