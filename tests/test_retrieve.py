from datetime import date

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from qa.keyword import tokenize
from qa.retrieve import RetrievalSettings, is_follow_up, make_query, retrieve_many
from qa.timeframe import asked_since, asked_time, mentions_time, question_timeframe
from tests.conftest import FakeEmbedder

ASKED = date(2025, 7, 16)
DEFAULTS = RetrievalSettings()


def _run(generation, question, settings=DEFAULTS, top_k=10, history=(), asked_on=ASKED):
    query = make_query(question, history, asked_on, settings)
    return retrieve_many(generation, FakeEmbedder(), [query], top_k, settings)[0]


def test_rrf_fusion_matches_an_oracle(generation):
    settings = RetrievalSettings(per_article=100, date_weight=0.0)
    question = "How much did a gallon of regular gasoline cost?"
    hits = _run(generation, question, settings, top_k=100)
    ids = [p.passage_id for p in generation.stored_passages()]
    dense = generation.vectors(ids) @ FakeEmbedder().embed([question])[0]
    keyword = generation.keyword_scores(tokenize(question), ids)
    dense_rank = {ids[i]: r for r, i in enumerate(np.argsort(-dense, kind="stable"))}
    keyword_order = sorted((i for i in range(len(ids)) if keyword[i] > 0), key=lambda i: (-keyword[i], ids[i]))
    keyword_rank = {ids[i]: r for r, i in enumerate(keyword_order)}
    oracle = {
        pid: 1 / (61 + dense_rank[pid]) + (1 / (61 + keyword_rank[pid]) if pid in keyword_rank else 0) for pid in ids
    }
    for hit in hits:
        assert hit.score == pytest.approx(oracle[hit.passage_id])
    assert hits[0].doc_id == "gas"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_fusion_modes_use_their_lists(generation):
    question = "Rangers evacuated visitors after the flood"
    for fusion in ("dense", "keyword", "weighted", "rrf"):
        hits = _run(generation, question, RetrievalSettings(fusion=fusion))
        assert hits and hits[0].doc_id.startswith("flood"), fusion
    with pytest.raises(ValueError, match="fusion='magic'"):
        RetrievalSettings(fusion="magic")


def test_passages_per_article_are_capped(generation):
    hits = _run(generation, "council member budget roads schools parks district", RetrievalSettings(per_article=2))
    assert sum(h.doc_id == "long" for h in hits) == 2
    assert len({h.doc_id for h in hits}) > 2


def test_wire_copies_collapse_into_one_hit_naming_the_others(generation):
    hits = _run(generation, "Ishaq Dar phone call with Marco Rubio about trade")
    copies = [h for h in hits if h.doc_id in ("wire-a", "wire-b")]
    assert len({h.doc_id for h in copies}) == 1
    other = "wire-b" if copies[0].doc_id == "wire-a" else "wire-a"
    assert copies[0].also_in == (other,)  # the best-ranked copy leads and names the other outlet's
    assert generation.manifest["duplicates"] == 1


def test_dates_prefer_the_period_the_question_means(generation):
    question = "Which national park closed roads after flooding and evacuated campers?"
    plain = _run(generation, question, RetrievalSettings(date_weight=0.0))
    dated = _run(generation, question + " this week", RetrievalSettings(date_weight=1.0))
    assert plain[0].doc_id == "flood-old"  # the words match the 2024 story best
    assert dated[0].doc_id == "flood-new"  # "this week", asked on 2025-07-16
    in_2024 = _run(generation, "Which park closed roads after flooding in 2024?", RetrievalSettings(date_weight=1.0))
    assert in_2024[0].doc_id == "flood-old"


def test_question_timeframes():
    asked = date(2022, 7, 20)
    assert question_timeframe("Who won this week?", asked, 8).start == date(2022, 7, 12)
    june = question_timeframe("What happened in June?", asked, 8)
    assert (june.start, june.end, june.explicit) == (date(2022, 6, 1), date(2022, 6, 30), True)
    december = question_timeframe("What happened in December?", asked, 8)
    assert december.start == date(2021, 12, 1)
    assert question_timeframe("What happened last month?", asked, 8).start == date(2022, 6, 1)
    assert question_timeframe("Who won in 2021?", asked, 8).end == date(2021, 12, 31)
    default = question_timeframe("Who won the cup?", asked, 8)
    assert not default.explicit and default.start == date(2022, 7, 12)


def test_the_time_a_question_asks_about_by_the_year_it_names():
    assert asked_time("Who was charged over the ferry crash in 2025?") == date(2025, 1, 1)
    assert asked_time("What caused the July 2025 harbour fire?") == date(2025, 7, 1)
    assert asked_time("How much did the Sept. 3, 2025 gala raise?") == date(2025, 9, 3)
    assert asked_time("How many boats had docked by the end of 2025?") == date(2025, 12, 1)
    assert asked_time("After the 2023 storm, what did the 2025 report find?") == date(2025, 1, 1)  # the latest
    # not asked about: a bound, a year inside a number or a decade, a question about what is to come
    assert asked_time("Before the 2025 final, who won the cup?") is None
    assert asked_time("Did 2,025 people or $2025 come in the 2020s?") is None
    assert asked_time("Where will the Gulls play in November 2025?") is None
    assert asked_time("Who won the cup?") is None


def test_the_time_a_question_asks_about_by_its_time_words_before_the_asked_on_day():
    asked = date(2025, 7, 16)
    assert asked_since("Who won the cup in 2024?", asked) == date(2024, 1, 1)  # a year named comes first
    assert asked_since("Who won the cup this week?", asked) == date(2025, 7, 8)
    assert asked_since("What did the mayor say yesterday?", asked) == date(2025, 7, 14)
    assert asked_since("What did the mayor say in June?", asked) == date(2025, 6, 1)
    assert asked_since("Who won the cup this week?", None) is None
    assert asked_since("What did the mayor say recently?", asked) is None  # vague: may reach back further
    assert asked_since("Who will win the cup this week?", asked) is None  # looks ahead
    assert asked_since("Who won the cup?", asked) is None


@examples(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                ["in", "2024", "May", "Sept.", "3,", "end of", "before", "this week", "Feb", "29,", "2,024"]
            ),
            st.text(max_size=6),
        ),
        max_size=12,
    ),
    st.dates(min_value=date(1901, 1, 1), max_value=date(2099, 12, 31)),
)
def test_the_time_a_question_asks_about_is_a_date_or_none_for_any_text(parts, asked):
    question = " ".join(parts)  # "Feb 29, 2023" and other days that do not exist included
    for found in (asked_time(question), asked_since(question, asked)):
        assert found is None or isinstance(found, date)
    assert isinstance(mentions_time(question, asked), bool)


def test_a_sentence_speaks_of_a_time_by_its_year_its_month_or_as_the_one_to_come():
    november = date(2025, 11, 1)
    assert mentions_time("The match is on Nov. 12 at Port Ellis.", november)
    assert mentions_time("The final will be played in 2025.", november)
    assert mentions_time("The line opens later this year, the mayor said.", november)
    assert not mentions_time("The Gulls announced the match on Tuesday.", november)
    assert not mentions_time("Officials have not decided on a date.", date(2025, 12, 1))  # "decided" is no "Dec"


def test_follow_up_retrieves_as_if_the_subject_were_named(generation):
    first = "Who did Ishaq Dar speak with by phone?"
    follow = "What did he say about India?"
    assert is_follow_up(follow) and not is_follow_up(first)
    alone = _run(generation, follow, RetrievalSettings(per_article=1))
    with_history = _run(generation, follow, RetrievalSettings(per_article=1), history=[first])
    assert with_history[0].doc_id in ("wire-a", "wire-b")
    assert make_query(follow, [first]).text == f"{first} {follow}"
    assert alone[0].doc_id == "cricket"  # without the conversation, "he" and "India" lead elsewhere


def test_a_period_named_with_this_or_that_is_not_a_follow_up():
    for question in [
        "Which country won the most medals this week?",
        "Who resigned as prime minister this month?",
        "What did the central bank decide that Tuesday?",
        "Which team won the cup this past weekend?",
    ]:
        assert not is_follow_up(question), question
    for question in ["What did he say about India this week?", "Where did this happen?", "What about the ferry?"]:
        assert is_follow_up(question), question


def test_pages_that_failed_into_one_boilerplate_are_each_found_by_their_headline(tmp_path):
    """Two downloads that failed into the same page text are two articles (not one and a duplicate), and a
    question about either finds it by its headline."""
    from tests.conftest import NEWS, fake_index

    boilerplate = "Please enable scripts to read this page. The video player failed to load."
    generation = fake_index(
        tmp_path,
        {
            **NEWS,
            "gulls.txt": ("Harbour City Gulls sign Ana Ruiz as head coach", boilerplate),
            "pier.txt": ("Port Ellis opens a second ferry pier", boilerplate),
        },
    )
    titles = {generation.article(d).title: d for d in generation.doc_ids()}
    for question, title in (
        ("Who did the Harbour City Gulls sign as head coach?", "Harbour City Gulls sign Ana Ruiz as head coach"),
        ("Where did Port Ellis open a second ferry pier?", "Port Ellis opens a second ferry pier"),
    ):
        hits = _run(generation, question)
        assert hits[0].doc_id == titles[title], question
