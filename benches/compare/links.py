#!/usr/bin/env python3
"""Writes one link table in the three forms the comparison needs.

    python3 benches/compare/links.py --count 100000 --dir /tmp/cmp

produces, in --dir:

- ``links.csv``  for clickstream (header ``id,domain,slashtag,destination``);
- ``links.map``  the body of an nginx ``map $uri $dest { ... }`` block;
- ``slashtags.txt`` one slashtag per line, read by the wrk script.

Every link is on one domain (``--domain``, default ``brand.link``). Slashtags are lower case
and unique, so they cannot collide in nginx's case-insensitive ``map``; destinations look like
``https://www.example.com/p/<n>?utm_source=...&utm_medium=...&utm_campaign=...``. The output is
deterministic for a given --seed.
"""
import argparse
import csv
import os
import random
import re

WORDS = """spring summer autumn winter sale deal promo launch webinar guide report demo trial
offer event signup newsletter podcast video story pricing careers blog docs app download coupon
gift bonus vip early holiday flash weekend shop collection lookbook recipe tips tour contest
giveaway survey review update release beta""".split()
SOURCES = ["facebook", "instagram", "linkedin", "twitter", "newsletter", "tiktok", "youtube", "sms"]
MEDIUMS = ["social", "email", "paid", "organic", "referral"]
SAFE_TAG = re.compile(r"^[a-z0-9-]+$")
SAFE_URL = re.compile(r'^https://[A-Za-z0-9.:/?&=_%-]+$')


def generate(count, seed):
    """Yields (id, slashtag, destination) tuples."""
    rng = random.Random(seed)
    for n in range(count):
        tag = f"{rng.choice(WORDS)}-{n:x}"
        dest = (f"https://www.example.com/p/{n}?utm_source={rng.choice(SOURCES)}"
                f"&utm_medium={rng.choice(MEDIUMS)}&utm_campaign={tag}")
        yield f"{rng.getrandbits(128):032x}", tag, dest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--domain", default="brand.link")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--dir", required=True, help="output directory (created if missing)")
    args = ap.parse_args()
    if args.count < 1:
        ap.error("--count must be at least 1")
    os.makedirs(args.dir, exist_ok=True)

    seen = set()
    with open(os.path.join(args.dir, "links.csv"), "w", newline="") as csv_file, \
            open(os.path.join(args.dir, "links.map"), "w") as map_file, \
            open(os.path.join(args.dir, "slashtags.txt"), "w") as tag_file:
        out = csv.writer(csv_file, lineterminator="\n")
        out.writerow(["id", "domain", "slashtag", "destination"])
        for link_id, tag, dest in generate(args.count, args.seed):
            # nginx compares map keys case-insensitively: keep them lower case and unique.
            if not SAFE_TAG.match(tag) or tag.lower() in seen:
                raise SystemExit(f"slashtag {tag!r} is not a unique lower-case slashtag")
            if not SAFE_URL.match(dest):
                raise SystemExit(f"destination {dest!r} needs quoting in an nginx map")
            seen.add(tag.lower())
            out.writerow([link_id, args.domain, tag, dest])
            map_file.write(f'/{tag} "{dest}";\n')
            tag_file.write(tag + "\n")
    print(f"{args.count} links on {args.domain} in {args.dir}")


if __name__ == "__main__":
    main()
