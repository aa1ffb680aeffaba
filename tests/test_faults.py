"""Faults: builds killed at random moments, damaged generations under the app, and a disk that fills up."""

import logging
import multiprocessing
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import qa.cli
from qa.build import build_index
from qa.config import Settings
from qa.errors import IndexCorrupt
from qa.service import ChatService
from qa.store import CURRENT, Generation, load_generation
from tests.conftest import NEWS, ROOT, FakeEmbedder, write_articles
from tests.fake_build import fake_build_command
from tests.killable_build import PHASES, build_with_pauses

PAUSE = 0.025  # after each mark; the kill comes after a random part of it
SEED = 20251127


def storm_citation_resolves(service: ChatService) -> None:
    """The service answers from its generation with a quote that is that generation's text at the offsets."""
    answer, generation = service.ask("How many homes lost power in the hurricane?")
    assert not answer.abstained and "300,000 homes lost power" in answer.citations[0].quote
    for citation in answer.citations:
        assert generation.article(citation.doc_id).text[citation.start : citation.end] == citation.quote


def wait_for_line(log: Path, line: str, process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and line in log.read_text().splitlines():
            return
        assert process.is_alive(), f"the build ended before {line!r}"
        time.sleep(0.002)
    raise AssertionError(f"the build never reached {line!r}")


def test_builds_killed_at_random_moments_leave_a_complete_generation(tmp_path):
    """SIGKILL a build just before and just after each step of every phase (22 kills, in random order, each
    after a random delay): the app then starts and answers from the last complete generation (the old one,
    or the new one once CURRENT was switched), and the next build succeeds and cleans up."""
    corpus = write_articles(tmp_path / "corpus", NEWS)
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    rng = random.Random(SEED)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.killable_build"])  # fork from a warm process: no import per kill
    points = [phase + when for phase in PHASES for when in ("", " done")]
    rng.shuffle(points)
    outcomes = {}
    for kill, point in enumerate(points):
        before = load_generation(index)
        write_articles(corpus, {f"late{kill}.txt": (f"Late news {kill}", f"Late article {kill} about the port.")})
        log = tmp_path / f"phases-{kill}.log"
        process = context.Process(target=build_with_pauses, args=(str(corpus), str(index), str(log), PAUSE))
        process.start()
        wait_for_line(log, point, process)
        time.sleep(rng.uniform(0, PAUSE))
        process.kill()  # SIGKILL
        process.join()
        assert process.exitcode == -9, f"kill {kill} at {point!r}: the build was not killed ({process.exitcode})"

        current = (index / CURRENT).read_text().strip()
        service = ChatService(corpus, index, FakeEmbedder())  # what app.py starts
        generation = service.generation
        assert generation.name == current and generation.fallback_from is None, point
        switched = current != before.name
        assert not switched or "switch" in log.read_text(), f"CURRENT moved before the switch ({point})"
        expected = before.manifest["articles"] + (1 if switched else 0)
        assert generation.manifest["articles"] == len(generation.doc_ids()) == expected, point
        storm_citation_resolves(service)
        outcomes[point] = "new" if switched else "old"

        report = build_index(corpus, index, FakeEmbedder())  # the next build succeeds
        after = load_generation(index)
        assert report.up_to_date == switched and after.manifest["articles"] == before.manifest["articles"] + 1
        assert not [p for p in index.iterdir() if p.name.startswith(".tmp-")], "a killed build's folder is left"
        assert len([p for p in index.iterdir() if p.name.startswith("gen-")]) <= 2
    assert len(outcomes) >= 20
    new = {point for point, outcome in outcomes.items() if outcome == "new"}
    assert new in ({"switch done", "prune", "prune done"}, {"switch", "switch done", "prune", "prune done"}), new


# ---------------------------------------------------------------- damaged generations under the app


@pytest.fixture
def two_generations(tmp_path):
    """A corpus and an index with two generations; returns (corpus, index, good name, current path)."""
    corpus = write_articles(tmp_path / "corpus", NEWS)
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    good = load_generation(index).name
    write_articles(corpus, {"more.txt": ("More news", "Another article about the harbour opening.")})
    build_index(corpus, index, FakeEmbedder())
    return corpus, index, good, load_generation(index).path


def own_segment(generation: Path) -> Path:
    """The segment written with this generation (the older generation does not use it)."""
    import json

    name = json.loads((generation / "manifest.json").read_text())["segments"][-1]["name"]
    return generation.parent / "segments" / name


def damage(generation: Path, how: str) -> None:
    if how == "truncated-vectors":
        data = (own_segment(generation) / "vectors.npy").read_bytes()
        (own_segment(generation) / "vectors.npy").write_bytes(data[: len(data) // 3])
    elif how == "garbled-sqlite":
        data = bytearray((own_segment(generation) / "store.sqlite").read_bytes())
        data[100:4000] = bytes(len(data[100:4000]))
        (own_segment(generation) / "store.sqlite").write_bytes(bytes(data))
    elif how == "truncated-manifest":
        text = (generation / "manifest.json").read_text()
        (generation / "manifest.json").write_text(text[: len(text) // 2])
    elif how == "missing-folder":
        shutil.rmtree(generation)
    else:
        raise ValueError(how)


DAMAGES = ["truncated-vectors", "garbled-sqlite", "truncated-manifest", "missing-folder"]


@pytest.mark.parametrize("how", DAMAGES)
def test_app_serves_the_previous_generation_and_says_what_is_wrong(two_generations, how, caplog):
    from gradio_client import Client

    from qa.web import launch
    from tests.webapp import free_port

    corpus, index, good, current = two_generations
    damage(current, how)
    with caplog.at_level(logging.WARNING, logger="qa"):
        service = ChatService(corpus, index, FakeEmbedder())
    assert service.generation.name == good and service.generation.fallback_from[0] == current.name
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert current.name in logged and f"serving the previous generation {good}" in logged
    assert "python -m qa build" in logged
    port = free_port()
    demo = launch(service, settings=Settings(port=port), block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}", verbose=False, download_files=False)
        summary = client.predict(api_name="/index_summary")["warning"]
        assert f"Generation {current.name} cannot be loaded" in summary and good in summary
        answer = client.predict("How many homes lost power in the hurricane?", None, api_name="/ask")
        citation = answer["citations"][0]
        text = Generation(index / good).article(citation["doc_id"]).text
        assert text[citation["start"] : citation["end"]] == citation["quote"] and "300,000" in citation["quote"]
    finally:
        demo.close()


def start_app(corpus: Path, index: Path) -> subprocess.CompletedProcess:
    """app.py run as a user starts it, on a port it cannot bind: what it says before serving."""
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--corpus", str(corpus), "--index", str(index), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.mark.parametrize("how", ["truncated-vectors", "garbled-sqlite", "truncated-manifest"])
def test_app_refuses_to_start_without_a_loadable_generation_and_says_how_to_rebuild(tmp_path, how):
    corpus = write_articles(tmp_path / "corpus", NEWS)
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    damage(load_generation(index).path, how)
    run = start_app(corpus, index)
    assert run.returncode == 2, run.stderr
    assert "cannot be loaded" in run.stderr and "rebuild it with `python -m qa build`" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_a_damaged_build_on_disk_does_not_replace_the_generation_in_memory(two_generations):
    """Another process's build that is damaged on disk: refresh keeps the newer generation already served."""
    corpus, index, good, current = two_generations
    service = ChatService(corpus, index, FakeEmbedder())
    assert service.generation.name == current.name
    write_articles(corpus, {"third.txt": ("Third news", "A third article about the ferry timetable.")})
    build_index(corpus, index, FakeEmbedder())
    newest = load_generation(index).path
    damage(newest, "truncated-vectors")
    assert not service.refresh()
    assert service.generation.name == current.name
    storm_citation_resolves(service)


# ---------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (needs root and mount permission; skipped with the reason otherwise)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 2 MiB tmpfs to fill up (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_fails_the_build_clearly_and_the_old_index_keeps_serving(tmp_path, small_disk, monkeypatch, capsys):
    from qa.store import BuildFailed

    corpus = write_articles(tmp_path / "corpus", NEWS)
    index = small_disk / "index"
    build_index(corpus, index, FakeEmbedder())
    service = ChatService(corpus, index, FakeEmbedder(), rebuild_command=fake_build_command(corpus, index))
    old = service.generation.name
    words = "The harbour board met on Monday to discuss the new ferry timetable and the cost of fuel. "
    write_articles(corpus, {f"long{i}.txt": (f"Harbour report {i}", f"Report {i}. " + words * 300) for i in range(40)})

    with pytest.raises(BuildFailed, match="no space left") as error:
        build_index(corpus, index, FakeEmbedder())
    assert str(index) in str(error.value) and "previous generation stays in use" in str(error.value)
    assert (index / CURRENT).read_text().strip() == old
    assert not [p for p in index.iterdir() if p.name.startswith(".tmp-")], "the partial generation is left"

    monkeypatch.setattr(qa.cli, "_embedder", lambda model: FakeEmbedder())  # the CLI says it in one line
    assert qa.cli.main(["build", "--corpus", str(corpus), "--index", str(index)]) == 2
    printed = capsys.readouterr().err
    assert printed.startswith("error: no space left on the device of") and "Traceback" not in printed

    service.start_rebuild("")  # the same through the app: a failed rebuild, the old generation answering
    status = service.wait_for_rebuild(timeout=60)
    assert status.phase == "failed" and "no space left" in status.error and service.generation.name == old
    storm_citation_resolves(service)
    assert load_generation(index).name == old

    for extra in corpus.glob("long*.txt"):  # space made: the next build succeeds
        extra.unlink()
    write_articles(corpus, {"small.txt": ("Small news", "A short article about the harbour.")})
    assert build_index(corpus, index, FakeEmbedder()).new == 1 and load_generation(index).name != old


def test_rebuild_through_the_service_survives_a_damaged_current_generation(two_generations):
    corpus, index, good, current = two_generations
    damage(current, "garbled-sqlite")
    service = ChatService(corpus, index, FakeEmbedder(), rebuild_command=fake_build_command(corpus, index))
    assert service.generation.name == good
    service.start_rebuild("")
    status = service.wait_for_rebuild(timeout=60)
    assert status.phase == "done" and service.generation.name not in (good, current.name)
    assert service.generation.fallback_from is None and service.summary().articles == 4
    storm_citation_resolves(service)


def test_a_generation_of_an_older_layout_is_refused_with_how_to_rebuild_and_the_rebuild_reuses_vectors(tmp_path):
    """An index written by an older version (manifest without checksums, no duplicate_of column, layout 1)."""
    import json

    corpus = write_articles(tmp_path / "corpus", NEWS)
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    old = load_generation(index).path
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["files"]
    # an older layout's fingerprint differs too: it covers the layout number
    (old / "manifest.json").write_text(json.dumps({**manifest, "store_version": 1, "fingerprint": "layout 1"}))

    with pytest.raises(IndexCorrupt, match="written in index layout 1.*rebuild it with `python -m qa build`"):
        ChatService(corpus, index, FakeEmbedder())
    run = start_app(corpus, index)
    assert run.returncode == 2 and "index layout 1" in run.stderr and "Traceback" not in run.stderr + run.stdout
    rebuilt = FakeEmbedder()
    report = build_index(corpus, index, rebuilt)
    assert not report.up_to_date and rebuilt.embedded == [] and report.reused_vectors == report.passages
    storm_citation_resolves(ChatService(corpus, index, FakeEmbedder()))


def test_an_upload_that_fills_the_disk_stores_nothing_and_says_so(tmp_path, small_disk):
    """Two files uploaded over HTTP onto a disk with room for the first only: neither is stored, the message
    says why, and a retry once there is room stores both under their own names (no `-2` copies)."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from tests.test_web import PASSWORD
    from tests.webapp import running_app

    corpus = write_articles(small_disk / "corpus", NEWS)
    incoming = write_articles(
        tmp_path / "incoming",
        {
            "harbour.txt": ("Harbour news", "The harbour reopened on Monday after repairs. " * 2_000),  # 92 KB
            "ferry.txt": ("Ferry news", "The ferry timetable changes in May, the council said. " * 15_000),  # 810 KB
        },
    )
    files = [handle_file(str(incoming / name)) for name in ("harbour.txt", "ferry.txt")]
    filler = small_disk / "filler"
    filler.write_bytes(bytes(shutil.disk_usage(small_disk).free - 400 * 1024))  # 400 KB left
    with running_app(corpus, tmp_path / "index", FakeEmbedder(), password=PASSWORD) as app:
        client = Client(app.url, verbose=False, headers={"x-admin-password": PASSWORD})
        with pytest.raises(AppError, match=r"could not be stored \(no space left on device\); nothing was added"):
            client.predict(files=files, password=PASSWORD, api_name="/upload")
        assert list((corpus / "uploads").iterdir()) == []
        filler.unlink()
        added = client.predict(files=files, password=PASSWORD, api_name="/upload")
        assert added == {"added": ["harbour.txt", "ferry.txt"]}
        for name in ("harbour.txt", "ferry.txt"):
            assert (corpus / "uploads" / name).read_bytes() == (incoming / name).read_bytes()
        assert len(list((corpus / "uploads").iterdir())) == 2


def test_a_store_damaged_while_served_is_detected_and_the_previous_generation_answers(tmp_path, caplog, monkeypatch):
    """store.sqlite garbled under a running app: no question fails, the previous generation answers from then on,
    and the Index tab says which generation is damaged (a85cd91: {"error": null} to some questions, an empty tab).
    The articles are long, so their text lies in pages SQLite reads only when a question needs it."""
    from gradio_client import Client

    from qa.web import launch
    from tests.webapp import free_port

    filler = " ".join(f"Filler sentence {i} says nothing about the news." for i in range(300))
    corpus = write_articles(
        tmp_path / "corpus", {name: (title, f"{body}\n{filler}") for name, (title, body) in NEWS.items()}
    )
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    good = load_generation(index).name
    write_articles(corpus, {"more.txt": ("More news", "Another article about the harbour opening.")})
    monkeypatch.setattr("qa.store.MAX_SEGMENTS", 1)  # the new generation merges: it shares no file with the good one
    build_index(corpus, index, FakeEmbedder())
    current = load_generation(index).path
    service = ChatService(corpus, index, FakeEmbedder())
    assert service.generation.name == current.name
    port = free_port()
    demo = launch(service, settings=Settings(port=port), block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}", verbose=False, download_files=False)
        store = bytearray((own_segment(current) / "store.sqlite").read_bytes())
        store[4096:] = bytes(len(store) - 4096)  # every page after the first
        (own_segment(current) / "store.sqlite").write_bytes(bytes(store))
        with caplog.at_level(logging.WARNING, logger="qa"):
            answers = [
                client.predict(question, None, api_name="/ask")
                for question in [
                    "How many homes lost power in the hurricane?",
                    "Who won the chess championship?",
                    "When will the House vote on the budget?",
                ]
                * 5
            ]
            summary = client.predict(api_name="/index_summary")["warning"]
        assert f"Generation {current.name} cannot be loaded" in summary and f"{good} is answering" in summary
        assert f"generation {current.name} failed while answering" in caplog.text
        assert service.generation.name == good
        text = Generation(index / good).article
        for answer in answers:
            assert not answer["abstained"]
            for citation in answer["citations"]:
                assert text(citation["doc_id"]).text[citation["start"] : citation["end"]] == citation["quote"]
    finally:
        demo.close()
