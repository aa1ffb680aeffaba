"""The reader: answer kinds and phrases, the fitted model's file, and answers made with it."""

import json
import math
import re
from dataclasses import replace
from datetime import date

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.answer import NOT_FOUND, TOO_OLD, AnswerSettings, ask, ask_many, compose_answer, verify_phrase
from qa.keyword import tokenize
from qa.reader import (
    AMOUNT,
    CHEAP,
    DATE,
    FEATURES,
    NAME,
    NUMBER,
    REASON,
    Candidate,
    Logistic,
    ReaderModel,
    SentenceReader,
    answer_phrase,
    answer_spans,
    answerability_row,
    candidates_for,
    opening_name,
    question_kind,
    score_candidates,
)
from qa.retrieve import make_query, retrieve_many
from tests.conftest import FakeEmbedder, fake_index, write_articles


@pytest.mark.parametrize(
    "question, kind",
    [
        ("How much did the new bridge cost?", AMOUNT),
        ("How many people were evacuated from the valley?", NUMBER),
        ("What percentage of voters backed the plan?", AMOUNT),
        ("When did the ferry service begin?", DATE),
        ("What year was the museum founded?", DATE),
        ("Who is the new harbour master?", NAME),
        ("Where will the summit be held?", NAME),
        ("Which company bought the stadium?", NAME),
        ("Which ferry operator won the harbour contract?", NAME),
        ("In which town did the festival end?", NAME),
        ("What temperature did the harbour water reach on Sunday?", NUMBER),
        ("By when must the new bridge be finished?", DATE),
        ("Why did the council delay the vote?", REASON),
        ("What caused the harbour fire?", REASON),
        ("What reason did the mayor give for the delay?", REASON),
        ("What did the engineers say about the span?", None),
        ("What was the magnitude of the tremor?", NUMBER),
        ("What was the price of a ferry ticket?", AMOUNT),
        ("At what Harbour City venue will the band play?", NAME),
        ("The harbour master resigned. What is her name?", NAME),
    ],
)
def test_a_question_names_the_kind_of_answer_it_wants(question, kind):
    assert question_kind(question) == kind


def _spans(text, question):
    return [text[s:e] for s, e in answer_spans(text, question_kind(question), question)]


def test_answer_spans_are_of_the_asked_kind_and_new_to_the_question():
    sentence = "The bridge cost $48.5 million and opened on March 3, 2024, Mayor Ana Ruiz said."
    assert _spans(sentence, "How much did the bridge cost?") == ["$48.5 million"]
    assert _spans(sentence, "When did the bridge open?") == ["March 3, 2024"]
    # a time of day, also where it ends the sentence ("a.m." then nothing)
    assert _spans("The last bus leaves the pier at 11:15 p.m.", "When does the last bus leave?") == ["11:15 p.m."]
    assert _spans("Ana Ruiz flew to the U.S.", "Where did Ana Ruiz fly?") == ["U.S."]  # an abbreviation's stop stays
    assert _spans("Doors open at 9am on weekdays.", "When do the doors open?") == ["9am"]
    # "until" or "since" and a month: the day or year after it too
    closed = "When does the pier stay closed?"
    assert _spans("The pier stays closed until June 12, the port said.", closed) == ["June 12"]
    assert _spans("The pier has been closed since October 2019.", closed) == ["October 2019"]
    assert _spans("The pier stays closed until June.", closed) == ["until June"]
    assert "Ana Ruiz" in " ".join(_spans(sentence, "Who is the mayor of the town with the new bridge?"))
    # a count takes its unit along when the question names it
    assert _spans("About 1,200 residents left their homes.", "How many residents left?") == ["1,200 residents"]
    # an ordinal counts nothing
    assert _spans("At her 21st party, 300 guests came.", "How many guests were at the party?") == ["300 guests"]
    # a number word is a whole word: not the "four" of "fourth", the "Ten" of "Tenby", the "half" of "halftime"
    boats = "How many boats raced?"
    assert _spans("In the fourth race the Tenby crew led at halftime.", boats) == []
    assert _spans("Her seventh album has twenty-five songs and a dozen remixes.", boats) == ["twenty-five", "a dozen"]
    # what the question already says is not an answer
    assert _spans("Ana Ruiz opened the bridge.", "Who is Ana Ruiz?") == []
    assert _spans("The bridge opened in 2024.", "Why did the bridge open?") == []
    # a reason is the clause a cause opens, up to its end
    why = "Why did the council delay the vote?"
    assert _spans("The vote was put off because of a missing budget report, officials said.", why) == [
        "a missing budget report"
    ]
    assert _spans("The council met on Tuesday and will vote in May.", why) == []
    # a cause that "following", "triggered by" ... open, a purpose "needed to"; not "after" or "over", which as
    # often tell when or how long ("after four years of work", "over the weekend")
    assert _spans("The ferry stopped following a storm warning from the coast guard.", why) == [
        "a storm warning from the coast guard"
    ]
    assert _spans("The fees were needed to repair the old pier.", why) == ["repair the old pier"]
    # a number's point or comma does not end the clause
    assert _spans("The vote waited due to a $3.7 million gap in the 1,200-page budget.", why) == [
        "a $3.7 million gap in the 1,200-page budget"
    ]
    assert _spans("The bridge opened after four years of work.", why) == []
    march = "Why did the fishermen march to the town hall?"
    assert _spans("Fishermen marched to the town hall to protest the new quota rules.", march) == [
        "the new quota rules"
    ]


def test_a_count_is_not_an_age_a_share_or_a_count_of_something_else_for_a_sum_of_money():
    sentence = "The skipper, Ana Ruiz, 61, was given three months of community service."
    assert _spans(sentence, "How many months of service did the skipper get?") == ["three months"]
    assert _spans("The old ferry, 12, was sold for scrap.", "How many ferries are left?") == []
    assert "61" in _spans(sentence, "How old is the skipper?")
    show = "The quiz drew 3.6 million viewers, down 38% from the spring, and cost $7.3 million a season."
    # a sum of money, or a share of one, but not the viewers
    assert _spans(show, "How much did a season of the quiz cost?") == ["38%", "$7.3 million"]
    assert _spans("The quiz drew 3.6 million viewers.", "How much did the harbour pay for the quiz?") == []
    assert _spans("The quiz drew 3.6 million viewers.", "How much of an audience did the quiz draw?") == ["3.6 million"]
    assert _spans(show, "How many people watched the quiz?") == ["3.6 million"]  # a count: not a share, not a sum
    assert "$7.3 million" in _spans(show, "How many dollars did a season of the quiz cost?")
    won = "How many games have the Gulls won?"  # a count: "won" is no currency here
    assert _spans("The Gulls won 12 games, 60% of those they played, and $2 million.", won) == ["12 games"]
    assert "38%" in _spans(show, "What percentage of viewers did the quiz lose?")
    assert "38%" in _spans(show, "How much more did the quiz cost this year?")  # a rise is a share of the sum
    # a rating or a model's letters belong to its number
    assert _spans("The harbour asked for a class B-7 rating.", "What rating did the harbour ask for?") == ["B-7 rating"]
    assert _spans("The ferry will run again tomorrow.", "When will the ferry run again?") == ["tomorrow"]


def test_a_name_is_not_a_weekday_a_month_or_the_dateline():
    team = "Which team beat the Rovers at the arena?"
    assert _spans("The Rovers lost to the Harbour City Gulls on Sunday.", team) == ["Harbour City Gulls"]
    assert _spans("Starting Monday, the Gulls will play at home.", team) == ["Gulls"]
    # a title holds up to two small words between its capitalised ones
    show = "Which show drew the most viewers?"
    assert _spans("“Harbour of the Gulls” drew a record crowd.", show) == ["“Harbour of the Gulls”"]
    opener = "Who opened the harbour bridge?"
    assert _spans("PORT ELLIS (Harbour News) — Mayor Ana Ruiz opened the bridge.", opener) == ["Mayor Ana Ruiz"]
    assert _spans("(Harbour News) Mayor Ana Ruiz opened the bridge.", opener) == ["Mayor Ana Ruiz"]
    # in title case, where a place stands before the agency's name
    assert _spans("Lisbon (Harbour News) Mayor Ana Ruiz opened the bridge.", opener) == ["Mayor Ana Ruiz"]
    assert _spans("Lisbon (Harbour News) — Mayor Ana Ruiz opened the bridge.", opener) == ["Mayor Ana Ruiz"]
    assert _spans("Harbour Lights (Tenby Rovers) opened the bridge.", opener) == ["Harbour Lights", "Tenby Rovers"]


def test_a_who_question_is_not_answered_by_a_place_a_sentence_names_after_in():
    riders = "Ferry riders in Port Ellis will pay less from May, said Ana Ruiz."
    assert _spans(riders, "Who announced the lower fares?") == ["Ana Ruiz"]
    assert _spans(riders, "By the way, who announced the lower fares?") == ["Ana Ruiz"]
    assert _spans("Ferry riders in Port Ellis will pay less from May.", "Who will run the ferry?") == []
    assert _spans("A shop near Harbour Square will sell the tickets.", "Who will sell the tickets?") == []
    # a place is what "which town" and "where" ask for; and an organisation after "in the" stays a name
    assert "Port Ellis" in _spans(riders, "Which town will get lower fares?")
    assert "Port Ellis" in _spans(riders, "Where will fares fall?")
    assert _spans("The vote in the Harbour Council was close.", "Who held the vote?") == ["Harbour Council"]


def test_the_answer_phrase_is_not_the_source_a_sentence_quotes(monkeypatch):
    import qa.reader

    question = "Which island did the cyclone strike?"
    sentence = "The Harbour Weather Office said the cyclone struck the small island of Kelmora after midnight."
    candidate = Candidate(
        "cyclone",
        0,
        len(sentence),
        sentence,
        sentence,
        0,
        1,
        frozenset(tokenize(sentence)) & frozenset(tokenize(question)),
        phrases=answer_spans(sentence, NAME, question),
    )
    assert [sentence[s:e] for s, e in candidate.phrases] == ["The Harbour Weather Office", "Kelmora"]
    start, end = answer_phrase(candidate, question)
    assert sentence[start:end] == "Kelmora"
    # the source is the nearer to the question's words: only its "said" puts it second
    monkeypatch.setattr(qa.reader, "_SAYS_AFTER", re.compile(r"(?!)"))
    start, end = answer_phrase(candidate, question)
    assert sentence[start:end] == "The Harbour Weather Office"


def _phrase(sentence: str, question: str) -> str | None:
    candidate = Candidate(
        "visit",
        100,
        100 + len(sentence),
        sentence,
        sentence,
        100,  # offsets are the article's: the sentence starts at 100
        1,
        frozenset(tokenize(sentence)) & frozenset(tokenize(question)),
        phrases=[(100 + s, 100 + e) for s, e in answer_spans(sentence, question_kind(question), question)],
    )
    found = answer_phrase(candidate, question)
    return None if found is None else sentence[found[0] - 100 : found[1] - 100]


def test_a_question_that_asks_for_a_country_or_a_city_gets_one_as_its_phrase():
    sentence = "President Ana Ruiz met Lena Marsh, the foreign minister of Uruguay, in Lisbon."
    assert _phrase(sentence, "Which country's minister did President Ruiz meet?") == "Uruguay"
    assert _phrase("Uruguay's voters elected Ana Ruiz.", "Which country elected Ana Ruiz?") == "Uruguay"
    assert _phrase(sentence, "In which city did President Ruiz meet the minister?") == "Lisbon"
    assert _phrase(sentence, "Whom did President Ruiz meet?") == "Lena Marsh"
    # its first word too, which is no name for other questions; none when the quote names no country
    assert _phrase("Portugal opened the line on Monday.", "Which country opened the line?") == "Portugal"
    assert _phrase("President Ana Ruiz met the minister.", "Which country's minister did she meet?") is None


@pytest.mark.parametrize(
    "sentence, question, phrase",
    [
        # a bare count for "how many" takes the thing it counts, up to two words ending in a plural
        ("The storm forced 3,200 people to leave.", "How many residents had to leave Port Ellis?", "3,200 people"),
        ("The storm cut power at two pumping stations.", "How many stations lost power?", "two pumping stations"),
        # not past a small word; a unit the question names is taken as before
        ("In all, 12 of them crossed the line.", "How many riders crossed the line?", "12"),
        ("Volunteers planted 2,000 new trees in Port Ellis.", "How many new trees were planted?", "2,000 new trees"),
        # only for a count: "how much" keeps its amount alone
        ("The port paid $6.3 million for two boats.", "How much did the port pay?", "$6.3 million"),
        # a figure keeps the word that makes it approximate or a bound: the phrase says no more than the quote
        (
            "A water taxi carried about 300 people a day.",
            "How many people did the water taxi carry?",
            "about 300 people",
        ),
        ("The port paid more than $6.3 million for two boats.", "How much did the port pay?", "more than $6.3 million"),
        ("Nearly three dozen boats sank in the storm.", "How many boats sank?", "Nearly three dozen boats"),
        # not for a date
        ("Some 40 boats left Port Ellis on June 12.", "When did the boats leave?", "June 12"),
    ],
)
def test_the_phrase_of_a_figure_says_what_is_counted_and_how_exactly(sentence, question, phrase):
    assert _phrase(sentence, question) == phrase


def test_an_abbreviation_or_a_number_sign_is_seldom_the_name_asked_for():
    # "TBL" stands nearest the question's words, the team's name farther
    title = "The Port Ellis Rovers, founded by dock workers, beat the Gulls 3-1 to win the TBL title."
    assert _phrase(title, "Which team beat the Gulls to win the title?") == "The Port Ellis Rovers"
    # but an abbreviation alone is still the phrase
    assert _phrase("The Gulls sold the club to HCFC last week.", "Which group bought the Gulls club?") == "HCFC"
    # "No. 3" is a number, not a name
    assert _spans("Ana Ruiz beat No. 7 seed Lena Marsh on Sunday.", "Whom did Ana Ruiz beat?") == ["Lena Marsh"]


def test_the_answer_phrase_is_what_the_question_does_not_already_name():
    # the name that restates the question's own is passed over for the new one
    game = "It was a quiet Sunday during the Port Ellis Rovers' 89-81 loss to the Harbour City Gulls."
    assert _phrase(game, "Which team defeated Port Ellis at the arena?") == "Harbour City Gulls"
    # a title is quoted; a sentence's first word, when quoted, is a title too
    film = 'Friends gathered to remember Lena Marsh, the Uruguayan dancer and "Harbour Lights" lead, on Monday.'
    assert _phrase(film, "Which film made Lena Marsh a star?") == '"Harbour Lights"'
    assert _phrase("“Harbour Lights” leads this year's list with nine awards.", "Which show won most awards?") == (
        "“Harbour Lights”"
    )
    # "near which park" asks for a place: the name after "outside" is one
    fire = "A grass fire in the Kelmora Valley outside Ruiz National Park burned 1,400 acres."
    assert _phrase(fire, "Residents fled homes near which national park?") == "Ruiz National Park"
    # a country's name is a place, not the person a "who" question asks for
    nurse = "The letter was signed by Ana Ruiz, a midwife who lives in Uruguay."
    assert _phrase(nurse, "Which midwife signed the letter?") == "Ana Ruiz"
    signed = "The letter was signed by Ana Ruiz, who works as a midwife in Lisbon, Oregon."
    assert _phrase(signed, "Which Lisbon midwife signed the letter?") == "Ana Ruiz"
    # "up to" leads to no place: the sum after it is as good as any (and it is a bound, so shown with it)
    grants = "Boat owners who took in under $90,000 last season can claim up to $8,000 in repair grants."
    assert _phrase(grants, "How much in repair grants can boat owners claim?") == "up to $8,000"


def test_a_pronoun_or_a_partitive_one_is_no_phrase_of_the_asked_kind():
    # capitalised where a headline, a quote or a sentence opens, a pronoun is no name; a word in capitals is
    quote = '"I think we lost it," the skipper said. "We\'ve never seen a storm like that."'
    assert _spans(quote, "Who saw the storm?") == []
    assert _spans("Ferry strike:Your questions, answered", "Which union called the strike?") == []
    assert _spans("Everything we learned at the Harbour Council", "Who decided?") == ["Harbour Council"]
    assert _spans("Boats sailed from Tenby to the US.", "Where did the boats sail to?") == ["Tenby", "US"]
    # a title quoted whole is a name whatever its words
    assert _spans('The show "It" won the prize.', "Which show won?") == ['"It"']
    # "one of" is a part, "one in four" a ratio: no count, neither number; "twenty-one of" and "only one" are counts
    boats = "Ana Ruiz, one of the skippers, said one in four boats sank, and 1 in every 40 crews."
    assert _spans(boats, "How many boats sank?") == []
    assert _spans("Only one in Port Ellis sank, after 12 in 2024.", "How many boats sank?") == ["one", "12"]
    assert _spans("The port paid $5 in 10 payments.", "How much did the port pay?") == ["$5"]
    assert _spans("Twenty-one of the boats sank, and only one came back.", "How many boats sank?") == [
        "Twenty-one",
        "one",
    ]


def test_a_quotation_mark_at_one_end_of_a_name_is_left_out_of_its_phrase():
    # the quoted passage goes on past the name: its opening mark is not the name's
    caller = 'Caller "Ana from Tenby" told the show how the Gulls lost.'
    assert _phrase(caller, "Who told the show how the Gulls lost?") == "Ana"
    # a title up to its colon is still a quoted title, shown without the mark
    premiere = "Fans queued for “Harbour Lights: The Return,” which opened on Friday."
    assert _phrase(premiere, "Which film did fans queue for?") == "Harbour Lights"
    # and is the phrase a title question gets, not the name that opens the sentence (no mark before it)
    opening = "Harbour Films opens its new film, “Port Ellis Nights: The Return,” in Tenby on Friday."
    assert _phrase(opening, "Which film opens in Tenby?") == "Port Ellis Nights"
    assert _phrase('Harbour Films opens "Port Ellis Nights" in Tenby.', "Which film opens in Tenby?") == (
        '"Port Ellis Nights"'
    )
    # a possessive's apostrophe is no closing mark
    coach = "The Harbour City Gulls' coach, Ana Ruiz, left."
    assert _phrase(coach, "Who coached the team?") == "The Harbour City Gulls"
    # a name quoted whole keeps both marks
    call = 'The show took a call from "Ana in Tenby" about the Gulls.'
    assert _phrase(call, "Who called the show about the Gulls?") == '"Ana in Tenby"'


def test_a_name_ends_where_a_sentence_inside_the_quote_ends():
    # a quote of two sentences is one candidate: the name stops at the first one's full stop, and the next
    # sentence's first word is no name
    sold = '"We sold the ferry to Harbour Lines. And the town got a new one," the mayor said.'
    assert _spans(sold, "Which company bought the ferry?") == ["Harbour Lines"]
    # an abbreviation's full stop is inside the name
    signed = "Gov. Ana Ruiz signed the bill in St. Louis."
    assert _spans(signed, "Which official signed the bill?") == ["Gov. Ana Ruiz", "St. Louis"]


def test_the_reader_model_round_trips_through_its_file(tmp_path):
    weights = Logistic(CHEAP, (0.5,) * len(CHEAP), (2.0,) * len(CHEAP), tuple(range(len(CHEAP))), -1.0)
    full = Logistic(FEATURES, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES), (0.1,) * len(FEATURES), 0.2)
    model = ReaderModel("some-model", weights, full, weights, 0.4, 0.6, 10, 4, {"folds": 5}, order=full)
    model.save(tmp_path / "reader.json")
    assert ReaderModel.load(tmp_path / "reader.json") == model
    # a model saved before the order model existed (an older index's manifest) orders by its sentence model
    older = {k: v for k, v in model.as_dict().items() if k != "order"}
    assert ReaderModel.from_dict(older).order is None
    rows = np.arange(len(CHEAP) * 2, dtype=float).reshape(2, -1)
    expected = 1 / (1 + np.exp(-(((rows - 0.5) / 2.0) @ np.arange(len(CHEAP)) - 1.0)))
    assert np.allclose(weights.probability(rows), expected)


def test_the_order_model_orders_and_the_sentence_model_tells_how_answerable():
    def one_feature(name):  # a model whose score is the feature `name`
        return Logistic(
            FEATURES, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES), tuple(float(f == name) for f in FEATURES), 0.0
        )

    def candidate(doc_id, coverage, cosine):
        features = dict.fromkeys(FEATURES, 0.0) | {"coverage": coverage, "cosine": cosine}
        return Candidate(doc_id, 0, 10, "text", "text", 0, 1, features=features)

    listed = [candidate("a", 0.9, 0.1), candidate("b", 0.2, 0.8)]
    best = Logistic(("best",), (0.0,), (1.0,), (1.0,), 0.0)
    model = ReaderModel("m", one_feature("coverage"), one_feature("coverage"), best, order=one_feature("cosine"))
    reading = score_candidates(model, make_query("Why did the ferry stop?"), listed)
    assert [c.doc_id for c in reading.candidates] == ["b", "a"]  # by the order model
    assert answerability_row(reading.candidates)["best"] == pytest.approx(0.9)  # by the sentence model
    assert reading.answerable == pytest.approx(1 / (1 + math.exp(-0.9)))
    unordered = ReaderModel("m", one_feature("coverage"), one_feature("coverage"), best)
    assert [c.doc_id for c in score_candidates(unordered, make_query("Why?"), listed).candidates] == ["a", "b"]


def test_the_shipped_reader_belongs_to_the_bundled_model_and_was_cross_validated():
    from qa.embed import default_model_path, model_id_for

    model = ReaderModel.load()
    assert model.model_id == model_id_for(default_model_path())
    assert model.sentence.features == FEATURES and model.cheap.features == CHEAP
    assert model.order is not None and model.order.features == FEATURES
    assert 0 < model.min_answerable < 1 and model.embed_top >= 1
    fitted = model.fitted_on
    assert fitted["folds"] >= 2 and set(fitted["cross_validated"]) == {"natural", "realtimeqa"}


BRIDGE = {
    "bridge.txt": (
        "Harbour bridge opens to traffic",
        "The new harbour bridge in Port Ellis opened to traffic on Saturday after four years of work.\n"
        "The bridge cost $48.5 million, paid for by a state grant and local bonds.\n"
        "Mayor Ana Ruiz cut the ribbon in front of a crowd of about 3,000 people.\n"
        "Engineers said the span is designed to last a century.",
    ),
    "market.txt": (
        "Farmers market moves downtown",
        "The Saturday farmers market will move to the old rail yard in June, organisers said.\n"
        "Stall fees will stay the same for the first season.",
    ),
}


COST = "How much did the bridge cost in grants and bonds?"


@pytest.fixture(scope="module")
def bridge_index(tmp_path_factory):
    return fake_index(tmp_path_factory.mktemp("bridge"), BRIDGE)


def test_the_answer_phrase_leads_the_answer_and_lies_inside_the_first_quote(bridge_index):
    answer = ask(bridge_index, FakeEmbedder(), COST, asked_on=date(2025, 1, 1))
    assert not answer.abstained
    phrase, first = answer.answer_phrase, answer.citations[0]
    assert phrase is not None and phrase.text == "$48.5 million"
    assert answer.answer.startswith(f"**{phrase.text}** — “{first.quote}” [1]")
    assert verify_phrase(bridge_index, phrase, first)
    assert first.start <= phrase.start < phrase.end <= first.end
    data = answer.as_json()
    assert data["answer_phrase"] == {
        "text": "$48.5 million",
        "doc_id": first.doc_id,
        "start": phrase.start,
        "end": phrase.end,
    }
    json.dumps(data)


def test_a_phrase_outside_the_first_quote_or_the_stored_text_fails_verification(bridge_index):
    from dataclasses import replace

    answer = ask(bridge_index, FakeEmbedder(), COST, asked_on=date(2025, 1, 1))
    phrase, first = answer.answer_phrase, answer.citations[0]
    assert not verify_phrase(bridge_index, replace(phrase, start=phrase.start + 1, end=phrase.end + 1), first)
    assert not verify_phrase(bridge_index, replace(phrase, start=first.end + 5, end=first.end + 18), first)


def test_a_question_without_an_asked_for_kind_gets_quotes_without_a_phrase(bridge_index):
    answer = ask(
        bridge_index, FakeEmbedder(), "What did engineers say about the harbour bridge span?", asked_on=date(2025, 1, 1)
    )
    assert not answer.abstained and answer.answer_phrase is None and answer.answer.startswith("“")


def _read(index, question):
    query = make_query(question, asked_on=date(2025, 1, 1))
    hits = retrieve_many(index, FakeEmbedder(), [query], 10)[0]
    reading = SentenceReader(FakeEmbedder()).read(index, [query], [hits])[0]
    return query, hits, reading


def test_a_question_whose_asked_kind_the_first_quote_lacks_is_not_answered(bridge_index):
    # the articles tell that the bridge opened, not why: no sentence gives a cause
    query, hits, reading = _read(bridge_index, "Why did the harbour bridge in Port Ellis open to traffic?")
    assert reading.kind == REASON and reading.candidates and not reading.candidates[0].phrases
    settings = AnswerSettings(min_answerable=0.0)  # answerability aside: the kind alone decides here
    answer = compose_answer(bridge_index, query, hits, reading, settings)
    assert answer.abstained and answer.answer == NOT_FOUND
    told = compose_answer(bridge_index, query, hits, reading, replace(settings, kind_needed=False))
    assert not told.abstained and "opened to traffic" in told.citations[0].quote
    # a question asking for a kind that the first quote holds is answered
    query, hits, reading = _read(bridge_index, COST)
    assert reading.candidates[0].phrases
    assert not compose_answer(bridge_index, query, hits, reading, settings).abstained


# a story of 2024 that the time tests ask about as of later: what the court did in 2025 it cannot tell
CHARGED = (
    "Ferry operator charged over harbour crash",
    "Date: 2024-09-10\nProsecutors in Port Ellis charged the ferry operator Marlow with negligence on Monday. "
    "If convicted, Marlow faces a fine of up to $2 million, the prosecutors said.",
)


def test_a_question_about_a_time_after_the_first_quotes_article_is_not_answered(tmp_path):
    ferry = {
        "charge.txt": CHARGED,
        "trial.txt": (
            "Harbour crash trial gets a date",
            "Date: 2024-10-02\nThe court in Port Ellis said the trial of the ferry operator over the crash will open "
            "in March 2025.",
        ),
    }
    index = fake_index(tmp_path, ferry)
    settings = AnswerSettings(min_answerable=0.0)  # answerability aside: the dates alone decide here
    # the articles were written in 2024: they cannot tell what the court did in 2025
    query, hits, reading = _read(index, "How much was the fine Marlow paid in 2025?")
    assert index.article(reading.candidates[0].doc_id).title == "Ferry operator charged over harbour crash"
    answer = compose_answer(index, query, hits, reading, settings)
    said = f"{NOT_FOUND} {TOO_OLD.format(published='2024-09-10')}"
    assert said.endswith("comes from an article published on 2024-09-10, before the time the question asks about.")
    assert answer.abstained and not answer.citations and answer.answer == said
    told = compose_answer(index, query, hits, reading, replace(settings, written_after=False))
    assert not told.abstained and "$2 million" in told.citations[0].quote
    # so is a time given by time words, before the asked-on day (2025-01-01 here)
    this_week = compose_answer(index, *_read(index, "How much was the fine Marlow paid this week?"), settings)
    assert this_week.abstained and this_week.answer == said
    # asked in the chat, without a date, of a corpus that ended before today: its last days stand in for "this
    # week" in retrieval, but the asker may not know them, so time words refuse nothing (a named year still does)
    week, year = "How much was the fine Marlow paid this week?", "How much was the fine Marlow paid in 2025?"
    chat = ask_many(index, FakeEmbedder(), [week, year], answering=settings)
    assert not chat[0].abstained and "$2 million" in chat[0].citations[0].quote
    assert chat[1].abstained and chat[1].answer == said
    dated = ask_many(index, FakeEmbedder(), [week], asked_on=["2025-01-01"], answering=settings)[0]
    assert dated.abstained and dated.answer == said
    # asked without a time, looking ahead, or with a vague time word, the same sentence is quoted
    for question in (
        "How much was the fine Marlow paid?",
        "How much could the fine Marlow pays in 2025 be?",
        "How much was the fine Marlow recently paid?",
    ):
        told = compose_answer(index, *_read(index, question), settings)
        assert not told.abstained and "$2 million" in told.citations[0].quote
    # a sentence that speaks of the time asked about may answer, though written before it
    query, hits, reading = _read(index, "In what month of 2025 did the ferry crash trial open?")
    assert index.article(reading.candidates[0].doc_id).title == "Harbour crash trial gets a date"
    assert not compose_answer(index, query, hits, reading, settings).abstained


def test_a_further_quote_from_an_article_older_than_the_time_asked_about_is_left_out(tmp_path):
    ferry = {
        "charge.txt": CHARGED,
        "fine.txt": (
            "Ferry operator fined over harbour crash",
            "Date: 2024-12-30\nA court in Port Ellis ordered the ferry operator Marlow to pay a fine of $1.5 million "
            "on Monday.",
        ),
    }
    index = fake_index(tmp_path, ferry)
    query, hits, reading = _read(index, "How much was the fine Marlow was ordered to pay this week?")  # 2025-01-01
    settings = AnswerSettings(min_answerable=0.0, min_further=0.0)  # any further quote that adds a term
    told = compose_answer(index, query, hits, reading, replace(settings, written_after=False))
    assert [c.publish_date for c in told.citations] == ["2024-12-30", "2024-09-10"]
    answer = compose_answer(index, query, hits, reading, settings)
    assert [c.publish_date for c in answer.citations] == ["2024-12-30"] and "$1.5 million" in answer.citations[0].quote


def test_a_country_that_opens_the_first_quote_is_the_kind_a_country_question_asks_for(tmp_path):
    rail = {"rail.txt": ("Harbour rail line opens", "Uruguay opened the first harbour rail line on Monday.")}
    index = fake_index(tmp_path, rail)
    query, hits, reading = _read(index, "Which country opened the first harbour rail line?")
    assert not reading.candidates[0].phrases  # a sentence's first word is no name for the sentence models
    answer = compose_answer(index, query, hits, reading, AnswerSettings(min_answerable=0.0))
    assert not answer.abstained and answer.answer_phrase.text == "Uruguay"


def test_a_name_that_opens_the_first_quote_is_its_phrase_when_the_article_names_it_inside_a_sentence(tmp_path):
    ferry = {
        "ferry.txt": (
            "Harbour ferry line opens",
            "Marlow opened the first harbour ferry line on Monday. The line was built in two years, and Marlow "
            "runs six boats on it. Harbour users welcomed the new line.",
        )
    }
    index = fake_index(tmp_path, ferry)
    query, hits, reading = _read(index, "Which company opened the first harbour ferry line?")
    first = reading.candidates[0]
    assert first.sentence.startswith("Marlow opened")
    answer = compose_answer(index, query, hits, reading, AnswerSettings(min_answerable=0.0))
    assert not answer.abstained and answer.answer_phrase.text == "Marlow"
    # the features the models read are those of before: a sentence's first word is no name for them
    assert first.features["kind_match"] == 0.0
    # "Harbour" and "The" open sentences too, but the article never writes them capitalised inside one
    text = ferry["ferry.txt"][1]
    assert [opening_name(s, text) for s in ("Marlow’s boats", "Harbour users", "The line", "Marlowe")] == [
        "Marlow",
        None,
        None,
        None,
    ]


def test_a_further_quote_needs_the_reader_to_think_it_answers(bridge_index):
    from qa.answer import AnswerSettings

    query = make_query(COST, asked_on=date(2025, 1, 1))
    hits = retrieve_many(bridge_index, FakeEmbedder(), [query], 10)[0]
    reading = SentenceReader(FakeEmbedder()).read(bridge_index, [query], [hits])[0]
    assert len(reading.candidates) >= 3
    only_first = compose_answer(
        bridge_index, query, hits, reading, AnswerSettings(min_answerable=0.0, min_further=1.01)
    )
    assert len(only_first.citations) == 1
    every = compose_answer(
        bridge_index, query, hits, reading, AnswerSettings(min_answerable=0.0, min_further=0.0, new_terms=False)
    )
    assert len(every.citations) > 1


FERRY = {
    "ferry.txt": (
        "Island ferry adds a night run",
        "The island ferry will add a night run from May, the operator said.\n"
        "More: Island ferry timetable for the summer\n"
        "The ferry carried 41,000 passengers in 2023, a record for the operator.\n"
        "In 2019 it ran 12 boats with a crew of 300 and carried fewer islanders.",
    ),
}


def _candidate_features(tmp_path, articles: dict, question: str) -> dict[str, dict[str, float]]:
    """Each sentence's features for `question`, read from an index of `articles` alone."""
    generation = fake_index(tmp_path, articles)
    query = make_query(question, asked_on=date(2025, 1, 1))
    hits = retrieve_many(generation, FakeEmbedder(), [query], 10)[0]
    return {c.sentence: c.features for c in candidates_for(generation, query, hits)}


def test_candidates_know_lines_that_are_not_sentences_counts_of_the_asked_thing_and_other_years(tmp_path):
    features = _candidate_features(tmp_path, FERRY, "How many passengers did the island ferry carry in 2023?")
    link, record, before = (
        features["More: Island ferry timetable for the summer"],
        features["The ferry carried 41,000 passengers in 2023, a record for the operator."],
        features["In 2019 it ran 12 boats with a crew of 300 and carried fewer islanders."],
    )
    assert link["unfinished"] == 1.0 and record["unfinished"] == before["unfinished"] == 0.0
    # "41,000 passengers" counts what is asked; "12 boats", "300" do not
    assert record["unit_match"] == 1.0 and before["unit_match"] == 0.0
    assert record["kind_match"] == before["kind_match"] == 1.0
    # the question is about 2023: a sentence naming only 2019 tells of another time
    assert record["year_conflict"] == 0.0 and before["year_conflict"] == 1.0
    when = "When did the island ferry carry a record number of passengers?"
    dated = _candidate_features(tmp_path / "when", FERRY, when)
    assert not any(f["year_conflict"] for f in dated.values())  # a date question's answer is another time


TOLL = {
    "toll.txt": (
        "Harbour bridge opens to traffic",
        "The harbour bridge opened on Monday, and the city paid $2 million for new signs along the coast road.\n"
        "Engineers said the bridge cost $48.5 million to build.",
    ),
}


def test_a_phrase_among_the_question_words_is_told_from_one_about_another_detail(tmp_path):
    features = _candidate_features(tmp_path, TOLL, "How much did the harbour bridge cost to build?")
    signs = features[
        "The harbour bridge opened on Monday, and the city paid $2 million for new signs along the coast road."
    ]
    cost = features["Engineers said the bridge cost $48.5 million to build."]
    # both hold an amount and words of the question, but only the cost stands among them ("bridge cost ___ to build")
    assert signs["kind_match"] == cost["kind_match"] == 1.0 and signs["coverage"] > 0.0
    assert cost["slot_coverage"] > 0.5 and signs["slot_coverage"] == 0.0
    assert cost["slot_coverage_gap"] == 0.0 and signs["slot_coverage_gap"] == -cost["slot_coverage"]


@pytest.fixture(scope="module")
def bridge_model_index(tmp_path_factory, product_embedder):
    from qa.build import build_index
    from qa.store import load_generation

    folder = tmp_path_factory.mktemp("bridge-model")
    build_index(write_articles(folder / "corpus", BRIDGE), folder / "index", product_embedder)
    return load_generation(folder / "index")


@pytest.mark.model
def test_with_the_bundled_model_the_sentence_that_answers_comes_first(bridge_model_index, product_embedder):
    day = date(2025, 1, 1)
    cost = ask(bridge_model_index, product_embedder, "How much did the bridge cost?", asked_on=day)
    assert not cost.abstained and cost.answer_phrase.text == "$48.5 million"
    assert "$48.5 million" in cost.citations[0].quote
    ribbon = ask(bridge_model_index, product_embedder, "Who cut the ribbon at the bridge?", asked_on=day)
    assert not ribbon.abstained and ribbon.answer_phrase.text == "Mayor Ana Ruiz"


@pytest.mark.model
def test_with_the_bundled_model_a_detail_no_article_gives_is_not_answered(bridge_model_index, product_embedder):
    answer = ask(
        bridge_model_index,
        product_embedder,
        "How much will the toll for trucks on the bridge be?",
        asked_on=date(2025, 1, 1),
    )
    assert answer.abstained and answer.answer == NOT_FOUND and answer.passages


def test_a_reader_fitted_for_another_model_says_so_once(caplog, monkeypatch):
    import qa.reader

    monkeypatch.setattr(qa.reader, "_WARNED", set())

    class OtherModel(FakeEmbedder):
        model_id = "some-other-model-int8"

    with caplog.at_level("WARNING", logger="qa.reader"):
        SentenceReader(OtherModel())
        SentenceReader(OtherModel())
    warnings = [r.getMessage() for r in caplog.records if "fitted for" in r.getMessage()]
    assert len(warnings) == 1 and "not some-other-model" in warnings[0]


_NAME_WORDS = ["Ana", "Ruiz", "Port", "Ellis", "Sunday", "June", "Sept.", "of", "the", "and", "on", "said", "“Harbour”"]


@given(st.lists(st.sampled_from(_NAME_WORDS) | st.sampled_from([",", ".", "\u00a0", "  "]), max_size=14))
def test_a_sentence_s_name_runs_are_trimmed_of_weekdays_and_months_as_by_the_full_reading(words):
    """The remembered name runs of a sentence skip the trimming when neither end is a weekday or month: the same
    spans as trimming every run."""
    from qa.reader import _name_runs, _name_spans, _without_calendar_words

    text = " ".join(words)
    runs = list(_name_runs(text))
    assert [(s, e) for s, e, _ in _name_spans(text)] == [_without_calendar_words(text, s, e) for s, e, _ in runs]
    # a run opens its sentence as found; trimmed of a weekday or month at its start, it no longer does
    assert [opens for *_, opens in _name_spans(text)] == [
        opens and _without_calendar_words(text, s, e)[0] == s for s, e, opens in runs
    ]
