"""Offer and user encoders: columns, unknown values, stop words, save/load without pickle."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recsys.encoding import (
    OFFER_IDF_FILE,
    OfferEncoder,
    OfferEncoderConfig,
    UserEncoder,
    UserEncoderConfig,
    french_stop_words,
)

TEXT_ONLY_ONCE = OfferEncoderConfig(text_min_df=1, text_max_df=1.0)


def _offers(**columns: Any) -> pd.DataFrame:
    base: dict[str, Any] = {
        "title": ["Soutien scolaire", "Animation sportive", "Collecte alimentaire"],
        "description": [
            "Aider les élèves avec leurs devoirs",
            "Encadrer des activités sportives pour les jeunes",
            "Collecte de denrées avec une équipe",
        ],
        "type": ["benevolat", "volontariat_service_civique", "benevolat"],
        "domain": ["education", "sport", "solidarite-insertion"],
        "activities": [["soutien-scolaire", "soutien-scolaire"], ["animation-sportive"], None],
        "remote": ["no", "possible", None],
        "departmentCode": ["75", "13", "75"],
        "openToMinors": [True, False, None],
        "snu": [False, True, False],
        "compensationAmount": [None, 620.0, 5.0],
    }
    base.update(columns)
    return pd.DataFrame(base)


def _profiles(**columns: Any) -> pd.DataFrame:
    base: dict[str, Any] = {
        "age": [15, 16, 17, 18, 25, 26, 31, None],
        "region": ["11", "11", "93", None, "11", "84", "11", "11"],
        "departmentCode": ["75", "75", "13", None, "92", "69", "75", "75"],
        "disability": [False, True, None, False, False, False, False, False],
        "hasQuiz": [True, True, False, False, True, True, True, False],
        "quizDomains": [["sport", "sport"], ["numerique"], [], None, ["sport"], [], [], []],
        "quizActivities": [["agir-terrain"], [], [], None, [], [], [], []],
        "quizMotivations": [["indemnisation"], [], [], None, [], [], [], []],
        "quizRhythm": ["un-jour", None, None, None, "un-jour", None, None, None],
        "mobility": ["car", "bike", None, None, None, None, None, None],
    }
    base.update(columns)
    return pd.DataFrame(base)


def _active(matrix: Any, row: int, names: list[str]) -> list[str]:
    return [names[i] for i in np.flatnonzero(matrix[row].toarray()[0])]


def test_offer_columns_hand_checked() -> None:
    encoder = OfferEncoder(OfferEncoderConfig(text_max_features=0)).fit(_offers())
    matrix = encoder.transform(_offers())
    names = encoder.feature_names
    assert matrix.shape == (3, len(names)) and matrix.dtype == np.float32
    assert _active(matrix, 0, names) == [
        "programme=benevolat",
        "domain=education",
        "activity=soutien-scolaire",
        "remote=no",
        "department=75",
        "openToMinors=yes",
    ]
    assert _active(matrix, 1, names) == [
        "programme=volontariat_service_civique",
        "domain=sport",
        "activity=animation-sportive",
        "remote=possible",
        "department=13",
        "openToMinors=no",
        "snu",
        "paid",
        "compensation=100-1000",
    ]
    assert _active(matrix, 2, names)[-3:] == ["openToMinors=missing", "paid", "compensation=<10"]
    assert matrix.max() == 1.0  # the repeated activity is one column set once


def test_unknown_offer_values_set_no_column() -> None:
    encoder = OfferEncoder(OfferEncoderConfig(text_max_features=0)).fit(_offers())
    new = _offers(
        type=["volontariat_sapeurs_pompiers"] * 3,
        departmentCode=["2A"] * 3,
        activities=[["secourisme"], [], ["secourisme"]],
    )
    matrix = encoder.transform(new)
    assert matrix.shape[1] == encoder.n_features
    names = _active(matrix, 0, encoder.feature_names)
    assert not any(n.startswith(("programme=", "department=", "activity=")) for n in names)


def test_text_tfidf_without_stop_words_and_weighted() -> None:
    config = OfferEncoderConfig(text_min_df=1, text_max_df=1.0, text_weight=0.5)
    encoder = OfferEncoder(config).fit(_offers())
    terms = encoder.text_terms
    assert "soutien" in terms and "eleves" in terms  # accents stripped
    for stop_word in ("les", "avec", "des", "pour", "une", "de", "leurs"):
        assert stop_word not in terms
    assert set(terms).isdisjoint(french_stop_words())
    matrix = encoder.transform(_offers()).toarray()
    text = matrix[:, [i for i, n in enumerate(encoder.feature_names) if n.startswith("text=")]]
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 0.5, rtol=1e-6)


def test_stop_words_are_normalised_like_the_text() -> None:
    words = french_stop_words()
    assert 140 <= len(words) <= 200
    assert "ete" in words and "été" not in words and "etre" in words


def test_row_normalisation() -> None:
    config = OfferEncoderConfig(text_min_df=1, text_max_df=1.0, normalize_rows=True)
    matrix = OfferEncoder(config).fit(_offers()).transform(_offers()).toarray()
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-6)


def test_too_few_offers_for_text_gives_structured_features_only() -> None:
    encoder = OfferEncoder().fit(_offers().iloc[:1])  # min_df=2 cannot hold with one offer
    assert encoder.text_terms == []
    assert encoder.transform(_offers()).shape == (3, encoder.n_features)


def _no_pickle(folder: Path) -> None:
    for path in folder.iterdir():
        if path.suffix == ".json":
            json.loads(path.read_text("utf-8"))
        else:
            assert path.suffix == ".npz"
            with np.load(path, allow_pickle=False) as stored:
                assert all(stored[key].dtype != object for key in stored.files)
            with zipfile.ZipFile(path) as archive:
                assert all(name.endswith(".npy") for name in archive.namelist())


def test_offer_encoder_save_load_identical(tmp_path: Path) -> None:
    encoder = OfferEncoder(TEXT_ONLY_ONCE).fit(_offers())
    encoder.save(tmp_path)
    loaded = OfferEncoder.load(tmp_path)
    assert loaded.feature_names == encoder.feature_names
    assert loaded.config == encoder.config
    new = _offers(title=["Soutien aux devoirs", "Sport", "Inconnu total"])
    np.testing.assert_array_equal(loaded.transform(new).toarray(), encoder.transform(new).toarray())
    _no_pickle(tmp_path)
    assert (tmp_path / OFFER_IDF_FILE).is_file()


def test_offer_encoder_needs_fit_and_columns() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        OfferEncoder().transform(_offers())
    with pytest.raises(ValueError, match="missing column"):
        OfferEncoder().fit(_offers().drop(columns=["domain"]))


def test_user_age_bands_and_multi_hot() -> None:
    encoder = UserEncoder().fit(_profiles())
    matrix = encoder.transform(_profiles())
    names = encoder.feature_names
    bands = [_active(matrix, row, names)[0] for row in range(8)]
    assert bands == [
        "age=<16",
        "age=16-17",
        "age=16-17",
        "age=18-20",
        "age=21-25",
        "age=26-30",
        "age=31+",
        "age=unknown",
    ]
    assert _active(matrix, 0, names) == [
        "age=<16",
        "region=11",
        "department=75",
        "quizDomain=sport",
        "quizActivity=agir-terrain",
        "quizMotivation=indemnisation",
        "quizRhythm=un-jour",
        "mobility=car",
        "hasQuiz",
    ]
    assert _active(matrix, 1, names)[-2:] == ["disability", "hasQuiz"]
    assert matrix.max() == 1.0


def test_unknown_user_values_ignored_and_single_profile() -> None:
    encoder = UserEncoder().fit(_profiles())
    one = _profiles().iloc[:1].assign(region="06", mobility="walking")
    one["quizDomains"] = [["citoyennete", "sport"]]
    row = encoder.transform(one)
    assert _active(row, 0, encoder.feature_names) == [
        "age=<16",
        "department=75",
        "quizDomain=sport",
        "quizActivity=agir-terrain",
        "quizMotivation=indemnisation",
        "quizRhythm=un-jour",
        "hasQuiz",
    ]


def test_user_encoder_save_load_identical(tmp_path: Path) -> None:
    config = UserEncoderConfig(age_band_edges=(18, 26), min_category_count=2)
    encoder = UserEncoder(config).fit(_profiles())
    assert "region=93" not in encoder.feature_names  # seen once, below min_category_count
    encoder.save(tmp_path)
    loaded = UserEncoder.load(tmp_path)
    assert loaded.config == config
    np.testing.assert_array_equal(
        loaded.transform(_profiles()).toarray(), encoder.transform(_profiles()).toarray()
    )
    _no_pickle(tmp_path)


def test_config_dict_round_trip_and_errors() -> None:
    config = UserEncoderConfig(age_band_edges=(18, 30))
    assert UserEncoderConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown parameter"):
        OfferEncoderConfig.from_dict({"max_features": 10})
    with pytest.raises(ValueError, match="text_max_features: expected an integer"):
        OfferEncoderConfig.from_dict({"text_max_features": 1.5})
    with pytest.raises(ValueError, match="must increase"):
        UserEncoder(UserEncoderConfig(age_band_edges=(20, 18)))


def test_small_and_large_batches_encode_alike() -> None:
    """One request's row takes a dict-lookup path, big tables a vectorised one: same output."""
    users = UserEncoder().fit(_profiles())
    many = pd.concat([_profiles()] * 5, ignore_index=True)  # 40 rows: the vectorised path
    np.testing.assert_array_equal(
        users.transform(many).toarray(), np.tile(users.transform(_profiles()).toarray(), (5, 1))
    )
    offers = OfferEncoder(TEXT_ONLY_ONCE).fit(_offers())
    many = pd.concat([_offers()] * 12, ignore_index=True)  # 36 rows
    np.testing.assert_array_equal(
        offers.transform(many).toarray(), np.tile(offers.transform(_offers()).toarray(), (12, 1))
    )


def test_fit_transform_equals_fit_then_transform() -> None:
    fitted = OfferEncoder(TEXT_ONLY_ONCE)
    once = fitted.fit_transform(_offers())
    twice = OfferEncoder(TEXT_ONLY_ONCE).fit(_offers()).transform(_offers())
    np.testing.assert_allclose(once.toarray(), twice.toarray(), rtol=1e-6)
    assert once.dtype == np.float32 and once.shape == (3, fitted.n_features)
