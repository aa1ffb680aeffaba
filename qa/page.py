"""The Gradio page: a Chat tab (answers, sources, article viewer) and an Index tab (summary, upload, rebuild),
its events and its JSON API. What it shows is made by qa.render. No `from __future__ import annotations`: Gradio
reads the event functions' annotations (gr.Request, gr.EventData) to know what to pass them."""

import html
import time
from collections.abc import Sequence
from pathlib import Path

from qa.backend import SearchIndex
from qa.config import Settings
from qa.errors import QAError
from qa.guards import ADMIN_COOKIE, UPLOAD_CACHE_SECONDS
from qa.render import (
    parse_open_link,
    plain_answer,
    render_answer,
    render_article,
    render_question,
    render_status,
    render_summary,
    render_timeline,
    status_json,
    summary_json,
)
from qa.service import MAX_HISTORY_TURNS, MAX_QUESTION_CHARS, BuildStatus, ChatService, QuestionRefused
from qa.types import Answer
from qa.uploads import MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES

MAX_CHAT_MESSAGES = 40  # the chat keeps its last 20 questions and answers: what a request brings back is bounded
_VIEWER_HINT = '<p class="qa-hint">Click a citation like [1], or a source title, to read the whole article here.</p>'
_STATIC = Path(__file__).with_name("static")
# The article viewer listens for clicks on citation links anywhere on the page (the chat's sanitiser drops
# data-* attributes, so the target travels in the link's fragment) and scrolls the highlighted quote into view;
# the chat's Copy buttons copy the plain text each answer carries.
_VIEWER_JS = (_STATIC / "viewer.js").read_text(encoding="utf-8")
CSS = (_STATIC / "page.css").read_text(encoding="utf-8")

PAGE_TITLE = "newsqa: answers quoted from your news articles"
# After an answer: the chat is scrolled to the newest question, so its answer (or a "not found" verdict above the
# closest passages) is read from its first line rather than its last.
_SHOW_NEWEST_JS = """() => {
  const rows = document.querySelectorAll('#qa-chat .message-row');
  const row = rows[Math.max(0, rows.length - 2)], wrap = row && row.closest('.bubble-wrap');
  if (wrap) wrap.scrollTop += row.getBoundingClientRect().top - wrap.getBoundingClientRect().top - 8;
}"""

_ADMIN_COOKIE_JS = (
    f"(password) => {{ document.cookie = '{ADMIN_COOKIE}=' + encodeURIComponent(password || '') + "
    "'; path=/; SameSite=Strict'; }"
)


def client_address(request) -> str:
    """The address a Gradio request came from ("" when unknown): whom wrong admin passwords are counted for."""
    return getattr(getattr(request, "client", None), "host", "") or ""


def build_ui(service: ChatService, examples: Sequence[str] = (), settings: Settings | None = None):
    """The Blocks app: a Chat tab (answers, sources, article viewer) and an Index tab (summary, upload, rebuild).
    The page's events return HTML and are left out of the API docs; the API (`/ask`, `/chat`, `/index_summary`,
    `/upload`, `/rebuild`) returns JSON, with named parameters, the password optional. Questions are answered
    `settings.answer_concurrency` at once."""
    import gradio as gr

    answering = (settings or Settings()).answer_concurrency

    def refuse(message: str) -> Exception:
        """The message shown on the page; no traceback in the log: it is the caller's mistake, not ours."""
        return gr.Error(message, print_exception=False)

    def question_problem(question: str) -> str:
        if not question:
            return "Type a question first."
        if len(question) > MAX_QUESTION_CHARS:
            return f"Questions are limited to {MAX_QUESTION_CHARS} characters."
        return ""

    def respond(question: str, messages: list, asked: list[str]):
        """The page's chat. A question refused (empty, too long, nothing to search for) leaves the chat as it is
        and shows a hint: an error would mark the chat and the question box as failed."""
        question = question.strip() if isinstance(question, str) else ""
        problem = question_problem(question)
        if not problem:
            try:
                answer, generation = service.ask(question, history=asked or [])
            except QuestionRefused as error:
                problem = f"{str(error)[:1].upper()}{str(error)[1:]}."
            except QAError as error:
                raise refuse(str(error)) from None
        if problem:
            gr.Warning(problem, duration=4, title="")
            return gr.skip(), gr.skip(), gr.skip()
        earlier = messages[-(MAX_CHAT_MESSAGES - 2) :] if isinstance(messages, list) else []
        messages = [
            *earlier,
            {"role": "user", "content": render_question(question)},
            {"role": "assistant", "content": render_answer(answer, generation)},
        ]
        return "", messages, [*(asked or []), question][-MAX_HISTORY_TURNS:]

    def open_article(evt: gr.EventData):
        target = parse_open_link(getattr(evt, "link", ""))
        if target is None:
            return '<p class="qa-hint">That link does not point to an article.</p>'
        generation_name, doc_id, start, end = target
        try:
            article, generation = service.find_article(generation_name, doc_id)
        except KeyError:
            return '<p class="qa-hint">That article is no longer in the index.</p>'
        return render_article(article, start, end, generation.name)

    def new_chat():
        return [], [], _VIEWER_HINT, ""

    def answered(question: object, history: object) -> tuple[Answer, SearchIndex]:
        question = question.strip() if isinstance(question, str) else ""
        if question_problem(question):
            raise refuse(f"Give a question of 1 to {MAX_QUESTION_CHARS} characters.")
        try:
            return service.ask(question, history=history if isinstance(history, list) else [])
        except QAError as error:
            raise refuse(str(error)) from None

    def ask_json(question: str, history: list[str] | None = None) -> dict:
        """Answer one question; the result has the same fields as `python -m qa ask --json`."""
        return answered(question, history)[0].as_json()

    def chat_json(question: str, history: list[str] | None = None) -> dict:
        """One turn of a conversation: `answer` (as `/ask` gives it), `text` (the answer and its numbered sources
        in plain text, as the page's Copy button copies it), `generation` (the index generation that answered:
        citations are offsets into its articles) and `history` (the questions so far, to pass with the next)."""
        earlier = [q for q in history if isinstance(q, str)] if isinstance(history, list) else []
        answer, generation = answered(question, earlier)
        return {
            "answer": answer.as_json(),
            "text": plain_answer(answer, generation),
            "generation": generation.name,
            "history": [*earlier, answer.question][-MAX_HISTORY_TURNS:],
        }

    def index_summary() -> dict:
        """What the index holds: generation, build time, articles, passages, model, articles per period."""
        service.refresh()
        return summary_json(service.summary())

    def show_index():
        service.refresh()  # picks up a `python -m qa build` run while the page was open
        summary = service.summary()
        return render_summary(summary), render_timeline(summary)

    def save(files: list[str] | None, password: str | None, request: gr.Request) -> list[Path]:
        try:
            return service.save_uploads(
                files or [], [Path(f).name for f in files or []], password, client_address(request)
            )
        except QAError as error:
            raise refuse(str(error)) from None

    def add_files(files: list[str] | None, password: str, request: gr.Request):
        names = ", ".join(html.escape(path.name) for path in save(files, password, request))
        return f"<p>Added to the corpus: {names}. Press “Rebuild index” to index them.</p>", None

    def run_rebuild(password: str | None, request: gr.Request, progress) -> BuildStatus:
        try:
            service.start_rebuild(password, client_address(request))
        except QAError as error:
            raise refuse(str(error)) from None
        while (status := service.build_status()).running:
            progress((status.done, status.total or None), desc=status.describe(), unit="passages")
            time.sleep(0.2)
        return status

    def rebuild(files: list[str] | None, password: str, request: gr.Request, progress=gr.Progress()):  # noqa: B008 (Gradio's progress bar)
        """The page's Rebuild: files chosen and not yet added are added first, so a chosen file is never left out."""
        added = ""
        if files:
            names = ", ".join(html.escape(path.name) for path in save(files, password, request))
            added = f"<p>Added to the corpus: {names}.</p>"
        status = run_rebuild(password, request, progress)
        return added + render_status(status), None, *show_index()

    def upload_json(files: list[str] | None, password: str | None, request: gr.Request) -> dict:
        """Add articles to the corpus (`<corpus>/uploads/`); `/rebuild` indexes them. `password`: the admin
        password, when one is set."""
        return {"added": [path.name for path in save(files, password, request)]}

    def rebuild_json(password: str | None, request: gr.Request, progress=gr.Progress()) -> dict:  # noqa: B008 (Gradio's progress bar)
        """Rebuild the index from the corpus and switch to it; returns when it is answering (or failed).
        `password`: the admin password, when one is set."""
        return status_json(run_rebuild(password, request, progress))

    # Files sent to Gradio's upload route are deleted an hour after they came (checked every 5 minutes).
    with gr.Blocks(
        title=PAGE_TITLE, analytics_enabled=False, delete_cache=(min(300, UPLOAD_CACHE_SECONDS), UPLOAD_CACHE_SECONDS)
    ) as demo:
        gr.HTML(f'<h1 class="qa-title">{html.escape(PAGE_TITLE)}</h1>', elem_id="qa-heading", padding=False)
        asked = gr.State([])
        with gr.Tab("Chat"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Answers, quoted word for word",
                        show_label=False,  # a floating label would cover the first lines of the chat
                        elem_id="qa-chat",
                        height=560,
                        autoscroll=False,  # the newest answer is scrolled to its top instead (_SHOW_NEWEST_JS)
                        render_markdown=False,  # messages are HTML built here, every text escaped
                        latex_delimiters=[],
                        sanitize_html=True,
                        feedback_options=None,
                        buttons=["copy", "copy_all"],  # no "share": it posts to an outside site
                        placeholder="Ask a question about the indexed articles. Answers are quotes from them, "
                        "each with its source.",
                    )
                    with gr.Row(equal_height=True):
                        question = gr.Textbox(
                            show_label=False,
                            placeholder="Ask about the indexed articles…",
                            elem_id="qa-question",
                            scale=1,
                            max_length=MAX_QUESTION_CHARS,
                            submit_btn=False,
                            container=False,
                        )
                        ask_button = gr.Button("Ask", variant="primary", scale=0, min_width=72, elem_id="qa-ask")
                        new_button = gr.Button("New chat", scale=0, min_width=128, elem_id="qa-new-chat")
                    if examples:
                        example_list = gr.Examples(
                            [[q] for q in examples], inputs=[question], label="Example questions"
                        )
                with gr.Column(scale=2):
                    viewer = gr.HTML(
                        _VIEWER_HINT,
                        js_on_load=_VIEWER_JS,
                        elem_id="qa-viewer",
                        max_height=680,
                        container=True,
                        padding=True,
                        label="Article",
                    )
        with gr.Tab("Index", elem_id="qa-index-tab") as index_tab:
            summary_html = gr.HTML(elem_id="qa-summary")
            chart = gr.HTML(elem_id="qa-timeline")
            with gr.Row():
                files = gr.File(
                    label="Articles to add (.txt .md .html .json .jsonl, at most "
                    f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MiB each)",
                    file_count="multiple",
                    file_types=list(UPLOAD_SUFFIXES),
                    elem_id="qa-upload",
                    scale=3,
                )
                with gr.Column(scale=2):
                    password = gr.Textbox(
                        label="Admin password", type="password", elem_id="qa-password", visible=service.admin_required
                    )
                    add_button = gr.Button("Add to corpus", elem_id="qa-add")
                    rebuild_button = gr.Button("Rebuild index", variant="primary", elem_id="qa-rebuild")
                    gr.HTML('<p class="qa-hint">Rebuild index adds the chosen files first.</p>', padding=False)
            build_html = gr.HTML(elem_id="qa-build")
        # The API's own inputs and outputs, never shown: JSON results, parameters named after the functions'.
        api_files = gr.File(
            file_count="multiple", file_types=list(UPLOAD_SUFFIXES), visible=False, elem_id="qa-api-files"
        )
        api_password = gr.Textbox("", visible=False, elem_id="qa-api-password")
        api_result = gr.JSON(label="result", visible=False)
        api_upload, api_rebuild = gr.Button(visible=False), gr.Button(visible=False)

        # The page's HTML events are "undocumented" (callable, not listed): scripts use the JSON API.
        chat_inputs, chat_outputs = [question, chatbot, asked], [question, chatbot, asked]
        question.submit(
            respond,
            chat_inputs,
            chat_outputs,
            api_name="page_chat",
            api_visibility="undocumented",
            concurrency_limit=answering,
        ).then(None, js=_SHOW_NEWEST_JS)
        ask_button.click(
            respond, chat_inputs, chat_outputs, api_visibility="private", concurrency_limit=answering
        ).then(None, js=_SHOW_NEWEST_JS)
        if examples:
            example_list.load_input_event.then(respond, chat_inputs, chat_outputs, api_visibility="private").then(
                None, js=_SHOW_NEWEST_JS
            )
        new_button.click(new_chat, None, [chatbot, asked, viewer, question], api_visibility="private")
        chatbot.clear(new_chat, None, [chatbot, asked, viewer, question], api_visibility="private")
        viewer.open(open_article, None, viewer, api_visibility="private", concurrency_limit=8)
        gr.api(ask_json, api_name="ask", concurrency_limit=answering)
        gr.api(chat_json, api_name="chat", concurrency_limit=answering)
        gr.api(index_summary, api_name="index_summary")

        # The browser sends the password typed so far with its uploads (a cookie of this site only): with an
        # admin password set, the upload route stores nothing without it (RefuseUploadPaths).
        password.change(None, [password], None, js=_ADMIN_COOKIE_JS, queue=False)
        index_outputs = [summary_html, chart]
        demo.load(show_index, None, index_outputs, api_name="page_index", api_visibility="undocumented")
        index_tab.select(show_index, None, index_outputs, api_visibility="private")
        add_button.click(
            add_files, [files, password], [build_html, files], api_name="page_upload", api_visibility="undocumented"
        )
        # Not queued behind a running rebuild: a second press must be refused at once, not run afterwards.
        rebuild_button.click(
            rebuild,
            [files, password],
            [build_html, files, *index_outputs],
            api_name="page_rebuild",
            api_visibility="undocumented",
            concurrency_limit=None,
        )
        api_upload.click(upload_json, [api_files, api_password], api_result, api_name="upload")
        api_rebuild.click(rebuild_json, [api_password], api_result, api_name="rebuild", concurrency_limit=None)
    return demo
