"""The web chat's entry: the page (qa.page) served behind the HTTP guards (qa.guards)."""

from __future__ import annotations

from collections.abc import Sequence

from qa.config import Settings
from qa.guards import GuardRequests, RefuseUploadPaths
from qa.page import CSS, build_ui
from qa.service import ChatService
from qa.uploads import MAX_UPLOAD_BYTES


def launch(service: ChatService, examples: Sequence[str] = (), settings: Settings | None = None, block: bool = True):
    """Serve the chat on `settings.host` and `settings.port`. Gradio's file routes serve only its own upload cache:
    the index and corpus folders are never in allowed_paths, and are listed in blocked_paths as well. Gradio's
    upload route is guarded by RefuseUploadPaths (names that are paths, other sites, the admin password, quotas),
    every other request is bounded in size and every response carries security headers (GuardRequests)."""
    from starlette.middleware import Middleware

    settings = settings or Settings()
    demo = build_ui(service, examples, settings)
    demo.queue(default_concurrency_limit=2)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        css=CSS,
        blocked_paths=[str(service.index_dir.resolve()), str(service.corpus.resolve())],
        max_file_size=MAX_UPLOAD_BYTES,
        prevent_thread_lock=not block,
        show_error=False,
        footer_links=["api"],
        quiet=not block,
        # Every request through this process, so every upload through RefuseUploadPaths: no static workers.
        num_workers=0,
        app_kwargs={"middleware": [Middleware(GuardRequests), Middleware(RefuseUploadPaths, service=service)]},
    )
    return demo
