import pytest

from qa.places import CITY, COUNTRY, STATE, is_place, place_asked


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Which country did the minister visit?", COUNTRY),
        ("Which island nation held an election this week?", COUNTRY),
        ("What European country banned the toys?", COUNTRY),
        ("In which city was the show filmed?", CITY),
        ("Which of these countries left the league?", COUNTRY),
        ("What does city hall plan for the harbour?", None),
        ("Which town flooded first?", None),  # towns are mostly too small for the list of cities
        ("Which company bought the ferry line?", None),
        ("Where was the show filmed?", None),
    ],
)
def test_a_question_that_asks_for_a_country_or_a_city_says_which(question, kind):
    assert place_asked(question) == kind


def test_country_and_city_names_as_news_writes_them():
    for name in (
        "Uruguay",
        "the Netherlands",
        "Portugal's",
        "Bosnia and Herzegovina’s",
        "U.S.",
        "Britain",
        "Latvia and Estonia",
    ):
        assert is_place(name, COUNTRY), name
    for name in ("Zurich", "Zürich", "Lisbon", "Lagos"):
        assert is_place(name, CITY), name
    for name in ("Oregon", "North Dakota's"):
        assert is_place(name, STATE) and not is_place(name, COUNTRY), name
    for name in ("Ana Ruiz", "US Harbour Survey", "Bosnia", "President", "Harbour City Gulls", "Latvia and Ana"):
        assert not any(is_place(name, kind) for kind in (COUNTRY, CITY, STATE)), name
