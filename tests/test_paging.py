"""`ListPolicy.order_page`: pages of one pool are lists of k made one after the other;
`ListPolicy.pages`, the same pages for many people at once."""

from __future__ import annotations

import numpy as np

from recsys.policy import ListPolicy, tie_keys
from recsys.ranking import top_k


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


def test_the_batch_pages_are_the_pages_of_each_person() -> None:
    """`pages` (the replay's path) holds each person's pages as `order_page` makes them for
    a request's offset (the service's path), page 1 being `lists`; the caps bind."""
    rng = np.random.default_rng(7)
    n_people, n_offers, k, pages = 6, 300, 10, 3
    scores = rng.normal(size=(n_people, n_offers))
    masks = rng.random((n_people, n_offers)) < 0.8
    publisher = rng.integers(0, 4, n_offers)  # few publishers and programmes: the caps bind
    programme = rng.integers(0, 2, n_offers)
    keys = tie_keys(np.array([f"o{i:04d}" for i in range(n_offers)]))
    policy = ListPolicy()
    made = policy.pages(scores, masks, k, pages, publisher, programme, keys)
    assert made.shape == (n_people, pages * k)
    first = policy.lists(scores, masks, k, publisher, programme, keys)
    np.testing.assert_array_equal(made[:, :k], first)
    np.testing.assert_array_equal(
        policy.pages(scores, masks, k, 1, publisher, programme, keys), first
    )
    longer = policy.lists(scores, masks, pages * k, publisher, programme, keys)
    assert (made != longer).any()  # not a slice of one longer list
    pools = top_k(scores, policy.paged_pool_size(k, (pages - 1) * k), masks, keys)
    for i, pool in enumerate(pools):
        pool = pool[pool >= 0]
        for n in range(pages):
            page = pool[policy.order_page(publisher[pool], programme[pool], k, n * k)]
            np.testing.assert_array_equal(made[i, n * k : (n + 1) * k], page)
