#!/usr/bin/env python3
"""Writes a realistic link table for clickstream: CSV with a header row.

    python3 data/gen_links.py                       # data/links.csv, 3,000 links, 3 domains
    python3 data/gen_links.py --count 1000000 --out /tmp/links-1m.csv

Slashtags are lower case and unique per domain (so they do not collide case-insensitively
either), destinations carry UTM parameters, and ids look like the hex ids of a link service.
The output is deterministic for a given --seed.
"""
import argparse
import csv
import random
import sys

DOMAINS = [
    # (domain, domain id, workspace id, workspace name, share of links)
    ("brand.link", "9a5ae320f3e247ef8c9b6061131bb517", "d88bfe5fgd14b2ghb44538b9aekpw89", "Brand Marketing", 0.5),
    ("go.northwind.shop", "4c1f0e7a2b9d4e6f8a3c5b7d9e1f2a3b", "5e2d9c8b7a6f4e3d2c1b0a9f8e7d6c5b", "Northwind Retail", 0.3),
    ("rbl.ink", "7b3e1d9c5a2f4b6e8d0c2a4f6b8d0e2c", "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d", "Agency Clients", 0.2),
]
WORDS = """spring summer autumn winter sale deal promo launch webinar guide report demo trial offer
event signup newsletter podcast video story case study pricing careers blog docs app download
coupon gift free bonus vip early black friday cyber monday holiday flash weekend new shop
collection lookbook recipe tips how tour contest giveaway survey review update release beta""".split()
SITES = ["https://www.yourdestination.com", "https://shop.example.com", "https://blog.example.org",
         "https://www.example.net", "https://events.example.com", "https://app.example.io"]
SOURCES = ["facebook", "instagram", "linkedin", "twitter", "newsletter", "tiktok", "youtube", "sms"]
MEDIUMS = ["social", "email", "paid", "organic", "referral"]


def slashtags(rng):
    """Readable slashtags first (two words), then numbered ones: never exhausted."""
    seen = set()
    for a in WORDS:
        for b in WORDS:
            if a != b:
                seen.add(f"{a}-{b}")
    readable = sorted(seen)
    rng.shuffle(readable)
    yield "spring-sale"
    for s in readable:
        if s != "spring-sale":
            yield s
    n = 0
    while True:
        n += 1
        yield f"{rng.choice(WORDS)}-{n:x}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="data/links.csv")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = sys.stdout if args.out == "-" else open(args.out, "w", newline="")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "domain", "slashtag", "destination", "status", "creator_id", "workspace_id", "workspace_name", "domain_id"])
    gens = {d[0]: slashtags(random.Random(f"{args.seed}-{d[0]}")) for d in DOMAINS}
    creators = [f"{rng.getrandbits(128):032x}" for _ in range(25)]
    weights = [d[4] for d in DOMAINS]
    for i in range(args.count):
        domain, domain_id, ws_id, ws_name, _ = DOMAINS[0] if i == 0 else rng.choices(DOMAINS, weights)[0]
        tag = next(gens[domain])
        site = rng.choice(SITES)
        path = "/" if rng.random() < 0.3 else f"/{tag.replace('-', '/')}"
        dest = f"{site}{path}?utm_source={rng.choice(SOURCES)}&utm_medium={rng.choice(MEDIUMS)}&utm_campaign={tag}"
        status = rng.choices(["", "302", "307", "308"], [85, 10, 3, 2])[0]
        w.writerow([f"{rng.getrandbits(128):032x}", domain, tag, dest, status, rng.choice(creators), ws_id, ws_name, domain_id])
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
