import json

import pytest

from qa.cli import main
from qa.evaluate import Question, normalize, quotes_contain, read_questions, score
from qa.store import load_generation
from qa.types import Answer, Citation, Hit
from tests.conftest import FakeEmbedder


@pytest.fixture
def index(fixture_index):
    return fixture_index


def _hit(rank, doc_id, also_in=()):
    return Hit(rank, rank, doc_id, 1.0 / rank, 0, 10, also_in=also_in)


def _citation(doc_id, quote):
    return Citation(1, doc_id, "", "", None, "", quote, 0, len(quote))


def test_normalisation_follows_the_scoring_rules():
    assert normalize("“Harbour Lights”") == "harbour lights"
    assert normalize("ＡＢＣ,  Inc.") == "abc inc"


def test_metrics_are_computed_as_specified(index):
    generation = load_generation(index)
    gas = generation.article("gas").text
    start = gas.index("The average")
    end = gas.index(".", gas.index("nationwide")) + 1
    good = Citation(1, "gas", "", "", None, "", gas[start:end], start, end)
    bad = Citation(2, "gas", "", "", None, "", "not in the article", 0, 18)
    questions = [
        Question("q1", answer_text="$4.87", gold_doc_ids=("gas",), answer_in_gold_article=True),
        Question("q2", answer_text="Oslo", gold_doc_ids=("chess",), answer_in_gold_article=True),
        Question("q3", answer_text="moon", gold_doc_ids=("wire-b",)),
        Question("q4", answer_text="Mars", unanswerable=True),
        Question("q5", answer_text="gasoline", unanswerable=True),
    ]
    answers = [
        Answer("q1", "", False, [good], [_hit(1, "gas")]),
        Answer("q2", "", False, [bad], [_hit(1, "gas"), _hit(2, "long"), _hit(3, "chess")]),
        Answer("q3", "", True, [], [_hit(1, "wire-a", also_in=("wire-b",))]),
        Answer("q4", "", False, [good], []),
        Answer("q5", "", False, [good], []),
    ]
    metrics = score(generation, questions, answers)
    # q3's gold is a copy collapsed into the first hit: it counts right after the copy that leads
    assert metrics["hits@1"] == round(1 / 3, 3)
    assert metrics["hits@5"] == 1.0
    assert metrics["mrr@10"] == round((1 + 1 / 3 + 1 / 2) / 3, 3)
    assert metrics["answer_in_quote"] == 0.5 and metrics["answer_in_quote_n"] == 2
    assert metrics["abstained_answerable"] == round(1 / 3, 3)
    assert metrics["wrong_unanswerable"] == 0.5  # q5's quote holds its answer: not wrong
    assert metrics["quotes"] == 4 and metrics["quotes_verified"] == 0.75


def test_long_quotes_do_not_count_as_answers():
    answer = Answer("q", "", False, [_citation("d", "x " * 301 + "answer")], [])
    assert not quotes_contain(answer, "answer")
    assert quotes_contain(Answer("q", "", False, [_citation("d", "the answer.")], []), "Answer")


def test_eval_command_prints_json(index, tmp_path, capsys, monkeypatch):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps(q)
            for q in [
                {
                    "question": "How much did regular gasoline cost a gallon?",
                    "answer_text": "$4.87",
                    "gold_doc_ids": ["gas"],
                    "answer_in_gold_article": True,
                    "question_date": "2025/07/16",
                },
                {
                    "question": "Who won the junior chess championship?",
                    "gold_urls": ["https://outlet-three.example/chess"],
                },
            ]
        )
    )
    monkeypatch.setattr("qa.cli._embedder", lambda args: FakeEmbedder())
    assert main(["eval", "--questions", str(questions), "--index", str(index), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["questions"] == 2 and metrics["with_gold"] == 2
    assert metrics["hits@1"] == 1.0 and metrics["answer_in_quote"] == 1.0 and metrics["quotes_verified"] == 1.0
    assert metrics["latency_ms_p95"] >= metrics["latency_ms_p50"] > 0


def test_question_files_need_only_a_question(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "Only this?"}\n\n')
    assert read_questions(path)[0].question == "Only this?"
    path.write_text('{"q": 1}\n')
    with pytest.raises(Exception, match="expected a JSON object with a 'question'"):
        read_questions(path)
