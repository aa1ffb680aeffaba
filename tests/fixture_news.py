"""A small, hand-written news corpus with dates, a wire story run by two outlets, and follow-up material."""

import json
from pathlib import Path

WIRE = (
    "ISLAMABAD (AP) — Pakistan's foreign minister Ishaq Dar held a phone call with U.S. Secretary of State "
    "Marco Rubio on Monday to discuss trade and regional security. Dar told Rubio that Pakistan wanted calm "
    "relations with India and more trade with the United States. The two agreed to stay in contact.\n"
    "On India, Dar said Pakistan was ready for talks about water sharing and the ceasefire along the border. "
    "Officials in New Delhi did not comment on the call."
)

ARTICLES = [
    {
        "doc_id": "wire-a",
        "title": "Dar and Rubio discuss trade by phone",
        "text": WIRE,
        "url": "https://outlet-one.example/dar-rubio",
        "publish_date": "2025-07-14",
        "source": "Outlet One",
    },
    {
        "doc_id": "wire-b",
        "title": "Dar, Rubio hold phone call on trade",
        "text": WIRE + " The call lasted an hour.",
        "url": "https://outlet-two.example/news/dar",
        "publish_date": "2025-07-15",
        "source": "Outlet Two",
    },
    {
        "doc_id": "flood-old",
        "title": "River flood closes park roads",
        "text": "Flooding on the Green River closed roads in Elm National Park. Rangers evacuated 200 campers. "
        "The park expects to reopen in two weeks after repairs to three bridges.",
        "url": "https://outlet-one.example/flood-2024",
        "publish_date": "2024-06-10",
        "source": "Outlet One",
    },
    {
        "doc_id": "flood-new",
        "title": "Flood washes out bridges in Elm National Park",
        "text": "A flash flood washed out two bridges in Elm National Park this week. Rangers evacuated 900 visitors. "
        "The park will stay closed for at least a month while crews repair the roads.",
        "url": "https://outlet-three.example/flood",
        "publish_date": "2025-07-12",
        "source": "Outlet Three",
    },
    {
        "doc_id": "gas",
        "title": "Gas prices reach record",
        "text": "The average price of regular gasoline rose to $4.87 a gallon nationwide, a record. "
        "Drivers in California paid more than $6. Analysts expect prices to ease in the autumn.",
        "url": "https://outlet-two.example/gas",
        "publish_date": "2025-07-10",
        "source": "Outlet Two",
    },
    {
        "doc_id": "chess",
        "title": "Teenager wins chess championship",
        "text": "A 16-year-old from Oslo won the world junior chess championship on Sunday. She beat the defending "
        "champion in the final round. Her coach said she trains six hours a day.",
        "url": "https://outlet-three.example/chess",
        "publish_date": "2025-07-13",
        "source": "Outlet Three",
    },
    {
        "doc_id": "cricket",
        "title": "India win the cricket series",
        "text": "India beat England by six wickets to win the cricket series. The captain said India played their best "
        "cricket of the year. He said India would rest before the next tour of India.",
        "url": "https://outlet-two.example/cricket",
        "publish_date": "2025-07-09",
        "source": "Outlet Two",
    },
    {
        "doc_id": "long",
        "title": "City council weighs a new budget",
        "text": "\n".join(
            f"Council member {i} spoke about the budget for roads, schools and parks in district {i}."
            for i in range(40)
        ),
        "url": "https://outlet-one.example/budget",
        "publish_date": "2025-07-11",
        "source": "Outlet One",
    },
]


def write_fixture(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "news.jsonl"
    path.write_text("\n".join(json.dumps(a) for a in ARTICLES) + "\n", encoding="utf-8")
    return folder
