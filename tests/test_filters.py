"""`recsys.filters`: each filter over offers with missing values, hand-checked."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.arrays import offer_arrays
from recsys.filters import FilterColumns, OfferFilters, _index, city_key, filter_mask
from tests.fixtures import make_offers_frame

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2026-03-01", tz="UTC")


def offers() -> pd.DataFrame:
    return make_offers_frame(
        4,
        departmentCode=[None, "42", "2A", "42"],
        postalCode=[None, "42000", "20000", "42100"],
        city=[None, "Saint-Étienne", "Ajaccio", "Saint-Etienne"],
        organizationName=["  Croix-Rouge ", None, "Secours", "croix-rouge"],
        activities=[["animation"], [], ["secourisme", "animation"], ["mentorat-parrainage"]],
        startAt=[T0, T0 + 10 * DAY, T0 + 20 * DAY, T0 + 30 * DAY],
        endAt=[T0 + 5 * DAY, None, T0 + 100 * DAY, T0 + 31 * DAY],
        snu=[False, True, False, False],
        openToMinors=[True, None, False, True],
    )


def held(**filters: object) -> list[int]:
    frame = offers()
    mask = filter_mask(offer_arrays(frame), FilterColumns.of(frame), OfferFilters(**filters))
    assert mask is not None
    return np.flatnonzero(mask).tolist()


def test_each_filter_keeps_the_offers_it_names() -> None:
    assert held(departments=["42"]) == [1, 3]
    assert held(departments=["2a".upper()]) == [2]
    assert held(cities=["saint etienne"]) == [1, 3]
    assert held(cities=["20000", "Saint-Étienne"]) == [1, 2, 3]
    assert held(organisations=["croix-rouge"]) == [0, 3]
    assert held(activities=["animation"]) == [0, 2]
    assert held(snu=True) == [1]
    assert held(open_to_minors=True) == [0, 3]
    start = int((T0 + 15 * DAY).timestamp())
    assert held(start_after=start) == [2, 3]
    assert held(start_before=start) == [0, 1]
    assert held(max_duration_days=5) == [0, 3]  # the open-ended offer has no bounded duration
    assert held(min_duration_days=50) == [1, 2]
    assert held(departments=["42"], open_to_minors=True) == [3]


def test_no_filter_set_is_none() -> None:
    frame = offers()
    columns = FilterColumns.of(frame)
    assert filter_mask(offer_arrays(frame), columns, OfferFilters()) is None
    assert filter_mask(offer_arrays(frame), columns, OfferFilters(domains=[])) is None


def test_city_names_compare_without_case_accents_or_hyphens() -> None:
    assert city_key("Saint-Étienne") == city_key("saint etienne") == "saint etienne"
    assert city_key("L’Haÿ-les-Roses") == "l hay les roses"


def test_an_offer_is_in_every_place_one_of_its_addresses_is() -> None:
    """An offer flattened in Bordeaux with a second address in Toulouse is found by either
    department, postal code or city; the other offer has no addresses listed."""

    def address(city: str, code: str) -> dict[str, object]:
        place = {"city": city, "postalCode": code, "departmentCode": code[:2]}
        return {**place, "lat": None, "lon": None, "locationSource": None}

    frame = make_offers_frame(
        2,
        departmentCode=["33", "31"],
        postalCode=["33000", "31000"],
        city=["Bordeaux", "Toulouse"],
        addresses=[[address("Bordeaux", "33000"), address("Toulouse", "31000")], None],
    )
    columns = FilterColumns.of(frame)

    def rows(**filters: object) -> list[int]:
        mask = filter_mask(offer_arrays(frame), columns, OfferFilters(**filters))
        return np.flatnonzero(mask).tolist()

    assert rows(departments=["31"]) == [0, 1]
    assert rows(departments=["33"]) == [0]
    assert rows(cities=["toulouse"]) == rows(cities=["31000"]) == [0, 1]
    assert rows(cities=["Bordeaux"]) == [0]


def test_indexes_list_each_row_once_ascending_under_its_compared_key() -> None:
    """An activity named twice by one offer lists it once; city spellings of one key merge
    their rows in order; None and empty values are left out; rows are positions even when
    the table's labels are not."""
    frame = make_offers_frame(
        5,
        city=["Saint-Étienne", "", "saint etienne", None, "SAINT-ETIENNE"],
        organizationName=[None, " Secours ", "secours", "", "Secours"],
        activities=[["animation", "animation"], None, [], ["animation"], ["secourisme"]],
    )
    frame.index = [50, 40, 30, 20, 10]
    columns = FilterColumns.of(frame)
    assert {k: v.tolist() for k, v in columns.activity.items()} == {
        "animation": [0, 3],
        "secourisme": [4],
    }
    assert {k: v.tolist() for k, v in columns.city.items()} == {"saint etienne": [0, 2, 4]}
    assert {k: v.tolist() for k, v in columns.organisation.items()} == {"secours": [1, 2, 4]}
    assert all(v.dtype == np.int64 for v in columns.city.values())


def test_an_index_takes_rows_in_any_order_and_several_values_per_row() -> None:
    """Values labelled by their row, out of order and repeated (a row's several addresses):
    each key lists its rows once, ascending."""
    values = pd.Series(["42", "69", None, "42", "", "42", "69"], index=[5, 3, 1, 0, 2, 3, 0])
    assert {k: v.tolist() for k, v in _index(values).items()} == {"42": [0, 3, 5], "69": [0, 3]}
    lowered = _index(values, lambda v: "rhone" if v == "69" else None)
    assert {k: v.tolist() for k, v in lowered.items()} == {"rhone": [0, 3]}
