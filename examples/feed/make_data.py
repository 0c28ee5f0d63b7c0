"""Write `feed.csv`: a small short-video feed log, the bring-your-own-data worked example.

One row per impression: request, user, item, author, the item's tags (a `|`-separated list), the
user's age, the item's duration in seconds, the hour of day; then what happened: `click` (0/1),
`like` (0/1, only after a click) and `watch_ratio` (share of the video watched, 0 without a
click). Planted signals: users click items of "their" genre; likes follow the author; short
videos are watched to the end; some items are better than others; tags carry the genre. Deterministic (seeded).

    python examples/feed/make_data.py [--rows 1500] [--out examples/feed/feed.csv]
"""
import argparse
import csv

import numpy as np

GENRES = ("music", "sport", "food", "games", "travel", "news")


def rows(count, seed):
    """The log as a list of {column: value} dicts."""
    rng = np.random.default_rng(seed)
    users, items, authors = 40, 100, 20
    user_genre = rng.integers(0, len(GENRES), users)
    item_genre = rng.integers(0, len(GENRES), items)
    item_quality = rng.normal(0, 1.0, items)
    item_author = rng.integers(0, authors, items)
    author_charm = rng.normal(0, 1.2, authors)
    duration = np.round(rng.gamma(2.0, 40.0, items) + 5, 1)
    user_age = rng.integers(16, 70, users)
    out = []
    for i in range(count):
        user, item = int(rng.integers(0, users)), int(rng.integers(0, items))
        match = user_genre[user] == item_genre[item]
        click = rng.random() < 1 / (1 + np.exp(-(2.0 * match + item_quality[item] - 1.2)))
        like = click and rng.random() < 1 / (1 + np.exp(-(author_charm[item_author[item]] - 1)))
        watched = min(1.0, rng.beta(2, 2) * 90 / duration[item] + 0.2 * match) if click else 0.0
        tags = [GENRES[item_genre[item]]] + [GENRES[g] for g in rng.integers(0, len(GENRES),
                                                                              rng.integers(0, 3))]
        out.append({"request_id": f"r{i // 4}", "user_id": f"u{user}", "item_id": f"i{item}",
                    "author_id": f"a{item_author[item]}", "item_tags": "|".join(tags),
                    "user_age": int(user_age[user]), "duration_s": float(duration[item]),
                    "hour": int(rng.integers(0, 24)), "click": int(click), "like": int(like),
                    "watch_ratio": round(float(watched), 3)})
    return out


def write_csv(data, path):
    """Write the rows (`rows`) to the CSV file `path`, a header line first."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", default="examples/feed/feed.csv")
    args = parser.parse_args()
    data = rows(args.rows, args.seed)
    write_csv(data, args.out)
    print(f"wrote {len(data)} rows to {args.out}")


if __name__ == "__main__":
    main()
