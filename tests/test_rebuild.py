"""Rebuilds outside the server (qa/rebuild.py): a separate, lower-priority process, one at a time, its progress
in the service's status, and the old generation answering when it fails, is killed or is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import qa.cli
from qa.build import build_index
from qa.rebuild import NICENESS, BuildStatus, RebuildRunning, build_cpus
from qa.service import ChatService
from qa.store import CURRENT
from tests.conftest import NEWS, ROOT, FakeEmbedder, write_articles
from tests.fake_build import fake_build_command
from tests.webapp import free_port, sample_corpus_copy

COMET = (
    "Observatory spots a comet",
    "Astronomers spotted a faint comet on Thursday. The comet will be visible "
    "with binoculars in October, the observatory said.",
)


@pytest.fixture
def service(tmp_path):
    corpus = write_articles(tmp_path / "corpus", NEWS)
    build_index(corpus, tmp_path / "index", FakeEmbedder())
    served = ChatService(
        corpus, tmp_path / "index", FakeEmbedder(), rebuild_command=fake_build_command(corpus, tmp_path / "index")
    )
    yield served
    served.close()


@pytest.fixture
def gate(tmp_path, monkeypatch) -> Path:
    """A file the build process's embedding waits for: the build stays running until the test creates it."""
    path = tmp_path / "gate"
    monkeypatch.setenv("FAKE_BUILD_GATE", str(path))
    return path


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def embedding(service: ChatService) -> BuildStatus:
    """The status once the build process has reached embedding (where the gate holds it)."""
    return wait_for(lambda: (s := service.build_status()).phase == "embedding" and s, "the embedding stage")


def nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def gone(pid: int) -> bool:
    """No such process (or only its zombie, which no one has reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def comet_answered_from_new_generation(service: ChatService, old_name: str) -> None:
    answer, generation = service.ask("When will the comet be visible?")
    assert generation.name != old_name and "October" in answer.citations[0].quote


def test_a_rebuild_runs_in_another_process_at_lower_priority_one_at_a_time_with_progress(service, gate):
    write_articles(service.corpus, {"comet.txt": COMET})
    old = service.generation
    service.start_rebuild("")
    status = embedding(service)
    pid = status.pid
    assert status.running and pid not in (None, os.getpid())
    assert pid in children_of(os.getpid())  # the server started it
    assert nice_of(pid) == min(19, nice_of(os.getpid()) + NICENESS)
    assert os.sched_getaffinity(pid) == (build_cpus() or os.sched_getaffinity(0))
    assert (status.done, status.total) == (0, 1) and status.describe() == "embedding passages 0/1"
    with pytest.raises(RebuildRunning, match="already running"):
        service.start_rebuild("")
    answer, answered_from = service.ask("Who won the chess championship?")  # the old generation answers meanwhile
    assert answered_from is old and "Oslo" in answer.citations[0].quote
    assert not service.refresh()  # the running build does its own switch

    gate.touch()
    status = service.wait_for_rebuild(timeout=60)
    assert status.phase == "done" and not status.running and status.swapped_to == service.generation.name
    assert status.report.new == 1 and status.report.embedded == 1
    comet_answered_from_new_generation(service, old.name)
    assert gone(pid)


def test_a_killed_build_process_fails_the_rebuild_and_the_old_generation_keeps_answering(service, gate):
    write_articles(service.corpus, {"comet.txt": COMET})
    old, current = service.generation, (service.index_dir / CURRENT).read_text()
    service.start_rebuild("")
    os.kill(embedding(service).pid, signal.SIGKILL)
    status = service.wait_for_rebuild(timeout=60)
    assert status.phase == "failed" and "SIGKILL" in status.error and not status.running
    assert service.generation is old and (service.index_dir / CURRENT).read_text() == current
    assert not service.ask("Who won the chess championship?")[0].abstained

    gate.touch()  # the next rebuild completes what the killed one left
    service.start_rebuild("")
    assert service.wait_for_rebuild(timeout=60).phase == "done"
    comet_answered_from_new_generation(service, old.name)
    assert not [p for p in service.index_dir.iterdir() if p.name.startswith(".tmp-")]


def test_closing_the_service_ends_the_build_process(service, gate):
    write_articles(service.corpus, {"comet.txt": COMET})
    old = service.generation
    service.start_rebuild("")
    pid = embedding(service).pid
    started = time.monotonic()
    service.close()
    assert gone(pid) and time.monotonic() - started < 10  # SIGTERM ends it; no SIGKILL grace needed
    status = service.build_status()
    assert status.phase == "failed" and "server is stopping" in status.error and service.generation is old
    with pytest.raises(Exception, match="stopping"):
        service.start_rebuild("")


def test_a_build_process_ends_when_the_server_is_killed_outright(tmp_path, gate):
    corpus, index = write_articles(tmp_path / "corpus", NEWS), tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    write_articles(corpus, {"comet.txt": COMET})
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from qa.service import ChatService
from tests.conftest import FakeEmbedder
from tests.fake_build import fake_build_command
service = ChatService({str(corpus)!r}, {str(index)!r}, FakeEmbedder(),
                      rebuild_command=fake_build_command({str(corpus)!r}, {str(index)!r}))
service.start_rebuild("")
deadline = time.monotonic() + 60
while service.build_status().phase not in ("embedding", "failed", "done") and time.monotonic() < deadline:
    time.sleep(0.02)
status = service.build_status()
print(status.pid, status.phase, status.error, flush=True)
time.sleep(120)
""",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid, phase, error = (server.stdout.readline().strip().split(" ", 2) + ["", "", ""])[:3]
        assert phase == "embedding", f"the build did not reach embedding: {phase} {error}"
        pid = int(pid)
    finally:
        server.kill()  # no atexit, no signal handler: only the kernel's parent-death signal is left
        server.wait()
    wait_for(lambda: gone(pid), "the orphaned build process to end", timeout=10)


def test_a_build_that_cannot_start_fails_with_its_message(service):
    service._rebuilds.command = [
        sys.executable,
        "-c",
        "import sys; print('no such build', file=sys.stderr); sys.exit(3)",
    ]
    service.start_rebuild("")
    status = service.wait_for_rebuild(timeout=60)
    assert status.phase == "failed" and status.error == "the build process exited with status 3: no such build"


def test_build_progress_json_prints_stages_then_the_report(tmp_path, monkeypatch, capsys):
    corpus = write_articles(
        tmp_path / "corpus", {f"a{i}.txt": (f"Report {i}", f"Harbour news number {i}.") for i in range(70)}
    )
    monkeypatch.setattr(qa.cli, "_embedder", lambda args: FakeEmbedder())
    assert qa.cli.main(["build", "--corpus", str(corpus), "--index", str(tmp_path / "index"), "--progress-json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    stages = [line["stage"] for line in lines[:-1]]
    assert list(dict.fromkeys(stages)) == ["reading", "chunking", "embedding", "writing"]
    assert stages == sorted(stages, key=["reading", "chunking", "embedding", "writing"].index)  # each once, in order
    embedding = [(line["done"], line["total"]) for line in lines if line.get("stage") == "embedding"]
    assert embedding[0] == (0, 70) and embedding[-1] == (70, 70)
    assert lines[-1]["report"]["new"] == 70 and lines[-1]["report"]["generation"]

    (tmp_path / "empty").mkdir()
    assert (
        qa.cli.main(["build", "--corpus", str(tmp_path / "empty"), "--index", str(tmp_path / "i2"), "--progress-json"])
        == 1
    )
    failure = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert "no article files found" in failure["error"] and failure["report"]["files"] == 0


def test_build_on_a_terminal_prints_its_stages(tmp_path, monkeypatch, capsys):
    corpus = write_articles(tmp_path / "corpus", NEWS)
    monkeypatch.setattr(qa.cli, "_embedder", lambda args: FakeEmbedder())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert qa.cli.main(["build", "--corpus", str(corpus), "--index", str(tmp_path / "index")]) == 0
    assert "embedding 3/3" in capsys.readouterr().err.splitlines()


def test_build_status_describes_each_stage():
    assert BuildStatus(running=True, phase="reading").describe() == "reading and chunking articles"
    status = BuildStatus(running=True, phase="embedding", done=64, total=150)
    assert status.describe() == "embedding passages 64/150" and round(status.fraction, 2) == 0.43
    assert BuildStatus(running=True, phase="writing").describe() == "writing the new index generation"
    assert BuildStatus(phase="done", done=1, total=1).fraction is None


# ---------------------------------------------------------------- app.py over HTTP, real model


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def call(http, endpoint: str, *data) -> str:
    """Start a Gradio API call; its event id."""
    response = http.post(f"/gradio_api/call/{endpoint}", json={"data": list(data)})
    response.raise_for_status()
    return response.json()["event_id"]


def result(http, endpoint: str, event_id: str):
    stream = http.get(f"/gradio_api/call/{endpoint}/{event_id}", timeout=300).text
    kind = None
    for line in stream.splitlines():
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: ") and kind == "complete":
            return json.loads(line[len("data: ") :])[0]
    raise AssertionError(f"no result: {stream[-300:]}")


@pytest.mark.model
def test_app_py_rebuilds_in_a_child_process_over_http_and_ends_it_when_stopped(tmp_path):
    corpus = sample_corpus_copy(tmp_path / "corpus")
    port, password = free_port(), "rebuild-test"
    env = {**os.environ, "QA_ADMIN_PASSWORD": password}
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (the server's whole life)
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "--corpus",
            str(corpus),
            "--index",
            str(tmp_path / "index"),
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            wait_for(lambda: _up(http, server, tmp_path / "server.log"), "app.py to serve", timeout=300)
            write_articles(corpus, {"comet.txt": COMET})
            report = result(http, "rebuild", call(http, "rebuild", password))  # the JSON API, as a script calls it
            assert report["ok"] and report["new"] == 1, report
            answer = result(http, "ask", call(http, "ask", "When will the comet be visible with binoculars?", None))
            assert "October" in answer["citations"][0]["quote"]
            assert not children_of(server.pid)  # the build process has ended

            write_articles(
                corpus,
                {
                    f"harbour{i}.txt": (
                        f"Harbour report {i}",
                        f"Ferry {i} leaves the harbour at {i % 12 + 1} o'clock on weekdays. " * 40,
                    )
                    for i in range(60)
                },
            )
            call(http, "rebuild", password)
            child = wait_for(lambda: children_of(server.pid), "the build process")[0]
            command = wait_for(
                lambda: "build" in (line := Path(f"/proc/{child}/cmdline").read_text().split("\0")) and line,
                "the build's command line (after exec)",
            )
            assert command[1:4] == ["-m", "qa", "build"] and "--progress-json" in command
            assert nice_of(child) == min(19, nice_of(server.pid) + NICENESS)
        server.send_signal(signal.SIGTERM)  # as a service manager stops it
        assert server.wait(timeout=60) is not None
        wait_for(lambda: gone(child), "the build process to end with the server", timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
    assert "Traceback" not in (tmp_path / "server.log").read_text(errors="replace")


def _up(http, server, log: Path) -> bool:
    assert server.poll() is None, f"app.py exited: {log.read_text(errors='replace')[-2000:]}"
    try:
        return http.get("/").status_code == 200
    except httpx.TransportError:
        return False
