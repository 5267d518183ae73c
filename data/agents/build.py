#!/usr/bin/env python3
"""Regenerates the user-agent evaluation corpus in data/agents/ from pinned packages.

Every corpus file is derived from one published package version, downloaded
with the ordinary npm / pip clients into a temporary directory and checked
against the SHA-256 pinned below. The output is deterministic: the same pins
give byte-identical files. SOURCES.md says where each file comes from, under
which licence, and how it was filtered.

Usage:
    python3 data/agents/build.py            # rewrite the shipped files here (and LICENSES/)
    python3 data/agents/build.py --check    # rebuild into a temp dir, compare, exit 1 on a difference
    python3 data/agents/build.py --lgpl     # also build the LGPL-3.0 device-detector files,
                                            # into target/agents-lgpl/ (never into this folder)
    python3 data/agents/build.py --lgpl --lgpl-dir DIR

Needs python3 (3.9+), npm and pip on PATH, and the npm and PyPI registries.
PyYAML is used when importable, otherwise a pinned copy is installed into the
temp dir.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_LGPL_DIR = REPO / "target" / "agents-lgpl"

# Longest agent kept, in UTF-8 bytes.
MAX_AGENT_BYTES = 2048

# How many agents the human sample of the Crawler-Detect device fixtures keeps.
CRAWLER_DETECT_HUMAN_SAMPLE = 3000

# Pinned artifacts: (registry, name, version, file name, sha256).
NPM_CRAWLER_USER_AGENTS = ("npm", "crawler-user-agents", "1.60.0",
                           "crawler-user-agents-1.60.0.tgz",
                           "355ff319e17919f1738122752c8036d605d0e1bcba81de31e84377d12b286d79")
NPM_USER_AGENTS = ("npm", "user-agents", "2.1.198",
                   "user-agents-2.1.198.tgz",
                   "581c4f5074669b6f125263b8ddf302d221a26a06842488c6cc8d50dc5c5c0851")
NPM_TOP_USER_AGENTS = ("npm", "top-user-agents", "2.1.138",
                       "top-user-agents-2.1.138.tgz",
                       "1a0a2769adff6cad92f08b408c60ca5331a881d0d1645f90020cb6895e3939c1")
NPM_WOOTHEE = ("npm", "woothee", "1.11.1",
               "woothee-1.11.1.tgz",
               "9e744f0584515248be4890cf5e77ceb1eb761075877df80ba42dd4369508465e")
PYPI_CRAWLERDETECT = ("pypi-sdist", "crawlerdetect", "0.4.2",
                      "crawlerdetect-0.4.2.tar.gz",
                      "2ecbc825ec9bbfe94d1878078fbc3d336ed4b247a00dd56691479554ca3cb2ef")
PYPI_DEVICE_DETECTOR = ("pypi-wheel", "device-detector", "6.5.1",
                        "device_detector-6.5.1-py3-none-any.whl",
                        "a753fc24f7bdd54edfc1d78d08072c639a553dea109227a5644b39e9eed22583")
PYYAML = ("PyYAML", "6.0.3")

# Non-browser clients found in the non-bot data of a source: HTTP libraries,
# app HTTP stacks and headless / automation browsers. The design counts all of
# them as bots, so they go to bot-libraries-<source>.txt and never into a human
# file. Case-insensitive regular expressions, searched anywhere in the agent.
NON_BROWSER_CLIENT = [re.compile(p, re.IGNORECASE) for p in [
    r"^Dalvik/",
    r"^(?!Mozilla/).*\bCFNetwork/",     # an app's own stack: "App/1 CFNetwork/x Darwin/y"
    r"^AppleCoreMedia/",
    r"\bcurl/|^curl\b|\blibcurl\b",
    r"^Wget\b|\bWget/",
    r"python-requests/|python-urllib/|python-httpx/|\baiohttp/|\burllib3/",
    r"\bokhttp/",
    r"^Java/|Java-http-client/|Apache-HttpClient/|Jakarta Commons-HttpClient",
    r"Go-http-client/",
    r"node-fetch/|\baxios/|\bundici\b",
    r"libwww-perl/|\bLWP::",
    r"^PHP/|GuzzleHttp/",
    r"^Ruby\b",
    r"^Dart/",
    r"\breqwest/",
    r"HTTPie/|PostmanRuntime/",
    r"HeadlessChrome|PhantomJS|SlimerJS|\bHtmlUnit\b|Puppeteer|Playwright|Selenium",
]]


def is_non_browser_client(agent: str) -> bool:
    return any(p.search(agent) for p in NON_BROWSER_CLIENT)


# Screening of an unlabelled "not a crawler" list (Crawler-Detect's device
# fixtures): keep only agents that look like a client at all, at least 20
# characters with a product/version token and none of the marks of an attack
# payload or a placeholder (shell function, markup, a request line). That list
# holds such junk ("Foo", "14", Shellshock probes), neither human nor a useful
# bot case. Curated, labelled fixtures are not screened.
PRODUCT_VERSION = re.compile(r"[A-Za-z][\w.+-]*/\d")
NOT_A_CLIENT = re.compile(r"\(\)\s*\{|[<>]|\$\{|^https?://|\bGET https?://", re.IGNORECASE)


def is_plausible_client(agent: str) -> bool:
    return (len(agent) >= 20 and PRODUCT_VERSION.search(agent) is not None
            and NOT_A_CLIENT.search(agent) is None)


# --- downloading ------------------------------------------------------------

def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(pin, workdir: Path) -> Path:
    """Downloads one pinned artifact into workdir and checks its SHA-256."""
    kind, name, version, filename, digest = pin
    cached = workdir / filename
    if cached.is_file() and sha256(cached) == digest:
        return cached
    if kind == "npm":
        cmd = ["npm", "pack", f"{name}@{version}", "--silent", "--pack-destination", str(workdir)]
    elif kind == "pypi-sdist":
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--no-binary", ":all:", f"{name}=={version}", "-d", str(workdir)]
    elif kind == "pypi-wheel":
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary", ":all:", f"{name}=={version}", "-d", str(workdir)]
    else:
        raise ValueError(kind)
    subprocess.run(cmd, check=True, cwd=workdir, stdout=subprocess.DEVNULL)
    path = workdir / filename
    if not path.is_file():
        sys.exit(f"build.py: {name} {version}: expected {filename} after download")
    got = sha256(path)
    if got != digest:
        sys.exit(f"build.py: {filename}: sha256 {got}, pinned {digest}")
    return path


def read_tar_member(archive: Path, member: str) -> bytes:
    with tarfile.open(archive, "r:gz") as tar:
        f = tar.extractfile(member)
        if f is None:
            sys.exit(f"build.py: {archive.name}: no {member}")
        return f.read()


def tar_members(archive: Path, prefix: str, suffix: str) -> list[str]:
    with tarfile.open(archive, "r:gz") as tar:
        return sorted(m.name for m in tar.getmembers()
                      if m.isfile() and m.name.startswith(prefix) and m.name.endswith(suffix))


def load_yaml_module(workdir: Path):
    try:
        import yaml  # noqa: F401
    except ImportError:
        target = workdir / "pyyaml"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(target), f"{PYYAML[0]}=={PYYAML[1]}"], check=True)
        sys.path.insert(0, str(target))
    import yaml
    return yaml


def yaml_load(yaml, data: bytes):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(data.decode("utf-8"), Loader=loader)


# --- cleaning ---------------------------------------------------------------

class Corpus:
    """One output file: agents in a fixed order, deduplicated, with drop counts."""

    def __init__(self, name: str):
        self.name = name
        self.agents: list[str] = []
        self.seen: set[str] = set()
        self.dropped = {"empty": 0, "control": 0, "long": 0, "duplicate": 0,
                        "implausible": 0, "excluded": 0}

    def add(self, raw) -> bool:
        agent = clean(raw)
        if agent is None:
            self.dropped["empty"] += 1
            return False
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in agent):
            self.dropped["control"] += 1
            return False
        if len(agent.encode("utf-8")) > MAX_AGENT_BYTES:
            self.dropped["long"] += 1
            return False
        if agent in self.seen:
            self.dropped["duplicate"] += 1
            return False
        self.seen.add(agent)
        self.agents.append(agent)
        return True

    def text(self) -> str:
        return "".join(a + "\n" for a in self.agents)


def clean(raw):
    """Trims blanks and one pair of enclosing quotes; None when nothing is left."""
    if raw is None:
        return None
    agent = str(raw).strip()
    if len(agent) >= 2 and agent[0] == agent[-1] and agent[0] in "\"'":
        agent = agent[1:-1].strip()
    return agent or None


def split_human(raw, humans: Corpus, libraries: Corpus, screen: bool = False) -> None:
    """Files an agent from a source's non-bot data: non-browser clients go to
    the libraries file, the rest are human; with screen, agents that are not
    plausibly a client (see is_plausible_client) are dropped."""
    agent = clean(raw)
    if agent is not None and is_non_browser_client(agent):
        libraries.add(agent)
    elif screen and agent is not None and not is_plausible_client(agent):
        humans.dropped["implausible"] += 1
    else:
        humans.add(raw)


# --- sources ----------------------------------------------------------------

def crawler_user_agents(workdir: Path) -> list[Corpus]:
    tgz = fetch(NPM_CRAWLER_USER_AGENTS, workdir)
    entries = json.loads(read_tar_member(tgz, "package/crawler-user-agents.json"))
    libraries = Corpus("bot-libraries-crawler-user-agents.txt")
    bots = Corpus("bot-crawler-user-agents.txt")
    library_instances = {clean(i) for e in entries if "http-library" in e.get("tags", [])
                         for i in e.get("instances", [])}
    for e in entries:
        target = libraries if "http-library" in e.get("tags", []) else bots
        for instance in e.get("instances", []):
            if target is bots and clean(instance) in library_instances:
                continue
            target.add(instance)
    return [bots, libraries]


def user_agents(workdir: Path) -> list[Corpus]:
    tgz = fetch(NPM_USER_AGENTS, workdir)
    profiles = json.loads(read_tar_member(tgz, "package/dist/user-agents.json"))
    weight: dict[str, float] = {}
    for p in profiles:
        agent = clean(p.get("userAgent"))
        if agent is not None:
            weight[agent] = weight.get(agent, 0.0) + float(p.get("weight", 0.0))
    humans = Corpus("human-user-agents.txt")
    libraries = Corpus("bot-libraries-user-agents.txt")
    for agent in sorted(weight, key=lambda a: (-weight[a], a)):
        split_human(agent, humans, libraries)
    return [humans, libraries]


def top_user_agents(workdir: Path) -> list[Corpus]:
    tgz = fetch(NPM_TOP_USER_AGENTS, workdir)
    agents = json.loads(read_tar_member(tgz, "package/src/index.json"))
    humans = Corpus("human-top-user-agents.txt")
    libraries = Corpus("bot-libraries-top-user-agents.txt")
    for agent in agents:
        split_human(agent, humans, libraries)
    return [humans, libraries]


def crawler_detect(workdir: Path) -> list[Corpus]:
    sdist = fetch(PYPI_CRAWLERDETECT, workdir)
    base = "crawlerdetect-0.4.2/tests/fixtures/user_agent/"
    crawlers = read_tar_member(sdist, base + "crawlers.txt").decode("utf-8").splitlines()
    devices = read_tar_member(sdist, base + "devices.txt").decode("utf-8").splitlines()
    bots = Corpus("bot-crawler-detect.txt")
    for line in crawlers:
        bots.add(line)
    libraries = Corpus("bot-libraries-crawler-detect.txt")
    candidates = Corpus("(crawler-detect devices)")
    for line in devices:
        split_human(line, candidates, libraries, screen=True)
    # A deterministic, order-free sample: the agents with the smallest SHA-256,
    # written in the order of the fixture file.
    rank = {a: hashlib.sha256(a.encode("utf-8")).hexdigest() for a in candidates.agents}
    keep = set(sorted(candidates.agents, key=lambda a: rank[a])[:CRAWLER_DETECT_HUMAN_SAMPLE])
    humans = Corpus("human-crawler-detect.txt")
    for agent in candidates.agents:
        if agent in keep:
            humans.add(agent)
    humans.dropped = dict(candidates.dropped)
    humans.population = len(candidates.agents)
    return [bots, humans, libraries]


# Woothee's testsets are labelled by file: crawler*.yaml hold crawlers (also
# those the parser is only expected to name as a PC browser, e.g. VocusBot),
# misc.yaml's "HTTP Library" cases are libraries, and the pc_*, smartphone_*,
# mobilephone_* and appliance testsets hold people's browsers.
WOOTHEE_HUMAN_FILES = ("pc_", "smartphone_", "mobilephone_", "appliance")

# Cases of woothee's browser testsets that are fetchers or proxies rather than
# a person's browser: neither human nor a clear bot, so left out.
WOOTHEE_NOT_HUMAN = {
    "Instapaper/": "read-later fetcher",
    "Mobile-Gateway/": "transcoding gateway",
    "Wireless Transcoder": "transcoding gateway",
    "Gecko cXense": "content-analysis fetcher",
    "rcdtokyo.com/pc2m": "PC-to-mobile conversion proxy",
    "RSS Version": "feed reader",
}


def woothee(workdir: Path, yaml) -> list[Corpus]:
    tgz = fetch(NPM_WOOTHEE, workdir)
    bots = Corpus("bot-woothee.txt")
    libraries = Corpus("bot-libraries-woothee.txt")
    humans = Corpus("human-woothee.txt")
    for member in tar_members(tgz, "package/woothee/testsets/", ".yaml"):
        testset = member.rsplit("/", 1)[1]
        for case in yaml_load(yaml, read_tar_member(tgz, member)) or []:
            agent = case.get("target")
            if testset.startswith("crawler"):
                bots.add(agent)
            elif testset == "misc.yaml" and case.get("name") == "HTTP Library":
                libraries.add(agent)
            elif testset.startswith(WOOTHEE_HUMAN_FILES):
                if any(mark in str(agent) for mark in WOOTHEE_NOT_HUMAN):
                    humans.dropped["excluded"] += 1
                else:
                    split_human(agent, humans, libraries)
    return [bots, humans, libraries]


DEVICE_DETECTOR_HUMAN_TYPES = {"browser", "mobile app"}


def device_detector(workdir: Path, yaml) -> list[Corpus]:
    """LGPL-3.0-or-later fixtures: built on request, never written into data/agents/."""
    whl = fetch(PYPI_DEVICE_DETECTOR, workdir)
    base = "device_detector/tests/fixtures/upstream/"
    bots = Corpus("bot-device-detector.txt")
    libraries = Corpus("bot-libraries-device-detector.txt")
    humans = Corpus("human-device-detector.txt")
    with zipfile.ZipFile(whl) as z:
        names = sorted(n for n in z.namelist() if n.startswith(base) and n.endswith(".yml"))
        # bots.yml first, then the other fixtures in name order.
        names.sort(key=lambda n: (n != base + "bots.yml", n))
        for name in names:
            for case in yaml_load(yaml, z.read(name)) or []:
                agent = case.get("user_agent")
                client = case.get("client") or {}
                kind = client.get("type") if isinstance(client, dict) else None
                if "bot" in case:
                    bots.add(agent)
                elif kind == "library":
                    libraries.add(agent)
                elif kind in DEVICE_DETECTOR_HUMAN_TYPES:
                    split_human(agent, humans, libraries)
    return [bots, humans, libraries]


# The licence file each shipped source carries, copied to LICENSES/<source>.txt.
LICENCE_FILES = [
    ("crawler-user-agents", NPM_CRAWLER_USER_AGENTS, "package/LICENSE"),
    ("user-agents", NPM_USER_AGENTS, "package/LICENSE"),
    ("top-user-agents", NPM_TOP_USER_AGENTS, "package/LICENSE.md"),
    ("crawler-detect", PYPI_CRAWLERDETECT, "crawlerdetect-0.4.2/LICENSE"),
    ("woothee", NPM_WOOTHEE, "package/LICENSE-Apache2"),
]


# Crawler-Detect's fixtures come from JayBizzle/Crawler-Detect, whose own
# licence file is not in any package reachable here; its notice, as published
# in that repository's LICENSE.
CRAWLER_DETECT_UPSTREAM_LICENCE = """\
The MIT License (MIT)

Copyright (c) 2015-2018 Mark Beech

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def licences(workdir: Path) -> dict[str, bytes]:
    files = {f"{source}.txt": read_tar_member(fetch(pin, workdir), member)
             for source, pin, member in LICENCE_FILES}
    files["crawler-detect-upstream.txt"] = CRAWLER_DETECT_UPSTREAM_LICENCE.encode("utf-8")
    return files


LGPL_NOTICE = """\
These files are derived from the test fixtures of Matomo Device Detector
(https://github.com/matomo-org/device-detector, Tests/fixtures), as shipped in
the PyPI package device-detector 6.5.1 (device_detector/tests/fixtures/upstream/).
Upstream notice: "Device Detector - The Universal Device Detection library for
parsing User Agents. @link https://matomo.org. @license
http://www.gnu.org/licenses/lgpl.html LGPL v3 or later" (SPDX: LGPL-3.0-or-later).
The licence texts are at https://www.gnu.org/licenses/lgpl-3.0.txt and
https://www.gnu.org/licenses/gpl-3.0.txt (on Debian, /usr/share/common-licenses/).
Modification: only the user_agent values were kept, one a line, filtered as
described in data/agents/SOURCES.md of the clickstream repository.
"""


# --- driver -----------------------------------------------------------------

def build(out: Path, lgpl_dir: Path | None) -> list[tuple[Path, Corpus]]:
    written: list[tuple[Path, Corpus]] = []
    with tempfile.TemporaryDirectory(prefix="agents-build-") as tmp:
        workdir = Path(tmp)
        yaml = load_yaml_module(workdir)
        corpora = (crawler_user_agents(workdir) + user_agents(workdir)
                   + top_user_agents(workdir) + crawler_detect(workdir)
                   + woothee(workdir, yaml))
        out.mkdir(parents=True, exist_ok=True)
        for stale in [*out.glob("bot-*.txt"), *out.glob("human-*.txt")]:
            stale.unlink()
        (out / "LICENSES").mkdir(exist_ok=True)
        for name, text in licences(workdir).items():
            (out / "LICENSES" / name).write_bytes(text)
        for c in corpora:
            if c.agents:
                path = out / c.name
                path.write_text(c.text(), encoding="utf-8", newline="\n")
                written.append((path, c))
        if lgpl_dir is not None:
            lgpl_dir.mkdir(parents=True, exist_ok=True)
            for stale in [*lgpl_dir.glob("bot-*.txt"), *lgpl_dir.glob("human-*.txt")]:
                stale.unlink()
            for c in device_detector(workdir, yaml):
                if c.agents:
                    path = lgpl_dir / c.name
                    path.write_text(c.text(), encoding="utf-8", newline="\n")
                    written.append((path, c))
            (lgpl_dir / "NOTICE").write_text(LGPL_NOTICE, encoding="utf-8", newline="\n")
    return written


def report(written: list[tuple[Path, Corpus]]) -> None:
    for path, c in written:
        drops = ", ".join(f"{k} {v}" for k, v in c.dropped.items() if v)
        extra = f" (sampled from {c.population})" if hasattr(c, "population") else ""
        print(f"{len(c.agents):6d}  {path.name}{extra}" + (f"  [dropped: {drops}]" if drops else ""))
    # The same agent under both labels is a disagreement between sources.
    label = {}
    for path, c in written:
        for a in c.agents:
            label.setdefault(a, set()).add((path.name.split("-", 1)[0], path.name))
    conflicts = sorted(a for a, s in label.items() if len({k for k, _ in s}) > 1)
    print(f"agents under both labels across files: {len(conflicts)}")
    for a in conflicts:
        print("  " + " / ".join(sorted(n for _, n in label[a])) + "  " + a)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temp dir and compare with the files here")
    ap.add_argument("--lgpl", action="store_true",
                    help="also build the LGPL-3.0 device-detector files")
    ap.add_argument("--lgpl-dir", type=Path, default=DEFAULT_LGPL_DIR,
                    help=f"where the LGPL files go (default {DEFAULT_LGPL_DIR})")
    args = ap.parse_args()
    lgpl_dir = args.lgpl_dir.resolve() if args.lgpl else None
    if lgpl_dir is not None and (lgpl_dir == HERE or HERE in lgpl_dir.parents):
        sys.exit("build.py: the LGPL files must not be written into data/agents/")
    if not args.check:
        written = build(HERE, lgpl_dir)
        report(written)
        return 0
    with tempfile.TemporaryDirectory(prefix="agents-check-") as tmp:
        written = build(Path(tmp), lgpl_dir)
        report(written)
        fresh = {str(p.relative_to(tmp)): p.read_bytes()
                 for p in sorted(Path(tmp).rglob("*.txt"))}
    shipped = {str(p.relative_to(HERE)): p.read_bytes() for p in sorted(HERE.rglob("*.txt"))}
    bad = sorted(n for n in fresh.keys() | shipped.keys() if fresh.get(n) != shipped.get(n))
    for n in bad:
        print(f"differs: {n}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
