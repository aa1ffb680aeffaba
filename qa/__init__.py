"""Question answering with verbatim, cited quotes over a folder of news articles."""

from qa.answer import ask, ask_many, compose_answer, verify_quote
from qa.build import BuildReport, build_index
from qa.chunk import ChunkSettings, chunk_article, split_sentences
from qa.embed import SentenceTransformerEmbedder
from qa.errors import QAError
from qa.ingest import read_corpus
from qa.reader import Reader, ReaderModel, SentenceReader
from qa.retrieve import retrieve, retrieve_many
from qa.store import Generation, load_generation
from qa.types import Answer, Article, Citation, Hit, Passage, Phrase, Sentence, Skipped

__all__ = [
    "Answer",
    "Article",
    "BuildReport",
    "ChunkSettings",
    "Citation",
    "Generation",
    "Hit",
    "Passage",
    "Phrase",
    "QAError",
    "Reader",
    "ReaderModel",
    "Sentence",
    "SentenceReader",
    "SentenceTransformerEmbedder",
    "Skipped",
    "ask",
    "ask_many",
    "build_index",
    "chunk_article",
    "compose_answer",
    "load_generation",
    "read_corpus",
    "retrieve",
    "retrieve_many",
    "split_sentences",
    "verify_quote",
]
