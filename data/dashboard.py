#!/usr/bin/env python3
"""Draws data/dashboard.svg: a small dashboard of clickstream's own metrics from a real run.

    cargo build --release && python3 data/dashboard.py

It starts target/release/clickstream on the sample table (file sink, temporary directory),
sends mixed traffic (browsers, bots, misses) for --seconds, scrapes /metrics every second and
draws four panels as the Grafana dashboard in data/grafana-dashboard.json would show them.
"""
import argparse
import http.client
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time

UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 9; SM-G960F Build/PPR1.180610.011; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/74.0.3729.157 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/227.0.0.43.158;]",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
]


def scrape(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def traffic(port, tags, stop, rate):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    rng = random.Random()
    while not stop.is_set():
        t = time.time()
        path = "/" + (rng.choice(tags) if rng.random() < 0.95 else "no-such-link")
        c.request("GET", path, headers={"Host": "brand.link", "User-Agent": rng.choice(UAS), "Referer": "https://www.google.com/"})
        c.getresponse().read()
        time.sleep(max(0, 1 / rate - (time.time() - t)))


def quantile(buckets, q):
    """Quantile of a Prometheus histogram from cumulative (le, count) pairs."""
    total = buckets[-1][1]
    if total <= 0:
        return 0.0
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / max(c - prev_c, 1e-9))
        prev_le, prev_c = le, c
    return prev_le


def svg(series, path):
    w, h, pad = 460, 190, 34
    panels = list(series.items())
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w + 30}" height="{2 * h + 70}" font-family="sans-serif" font-size="11">',
           f'<rect width="100%" height="100%" fill="#111217"/>',
           f'<text x="10" y="22" fill="#e0e0e0" font-size="15">clickstream — a {len(next(iter(series.values()))[0][1])} s run on the sample table</text>']
    colors = ["#73bf69", "#f2cc0c", "#5794f2", "#ff7383", "#b877d9"]
    for i, (title, lines) in enumerate(panels):
        x0, y0 = 10 + (i % 2) * (w + 10), 36 + (i // 2) * (h + 14)
        out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="#181b1f" stroke="#2c3235"/>')
        out.append(f'<text x="{x0 + 8}" y="{y0 + 16}" fill="#ccccdc" font-size="12">{title}</text>')
        ymax = max([max(v) for _, v in lines] + [1e-9]) * 1.15
        for k, (label, values) in enumerate(lines):
            n = len(values)
            pts = " ".join(f"{x0 + pad + j * (w - pad - 10) / max(n - 1, 1):.1f},{y0 + h - 18 - v / ymax * (h - 50):.1f}" for j, v in enumerate(values))
            out.append(f'<polyline fill="none" stroke="{colors[k]}" stroke-width="1.6" points="{pts}"/>')
            out.append(f'<text x="{x0 + pad + k * 120}" y="{y0 + h - 4}" fill="{colors[k]}">{label}: {values[-1]:.3g}</text>')
        out.append(f'<text x="{x0 + 4}" y="{y0 + 32}" fill="#8e8e8e">{ymax / 1.15:.3g}</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rate", type=float, default=150, help="requests per second per sender (4 senders)")
    ap.add_argument("--out", default="data/dashboard.svg")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    port, admin = 18480, 18490
    cfg = os.path.join(tmp, "c.toml")
    open(cfg, "w").write(f'[server]\nlisten = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{admin}"\nlinks = "{os.path.abspath("data/links.csv")}"\nspool_dir = "{tmp}/spool"\n[[sink]]\ntype = "file"\nname = "events"\ndir = "{tmp}/events"\n')
    proc = subprocess.Popen(["target/release/clickstream", "serve", "--config", cfg], stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        tags = [l.split(",")[2] for l in open("data/links.csv").read().splitlines()[1:] if l.split(",")[1] == "brand.link"]
        stop = threading.Event()
        senders = [threading.Thread(target=traffic, args=(port, tags, stop, args.rate), daemon=True) for _ in range(4)]
        for s in senders:
            s.start()
        samples = []
        for _ in range(args.seconds + 1):
            samples.append(scrape(admin))
            time.sleep(1)
        stop.set()
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    def rate(name):
        return [max(0.0, b.get(name, 0) - a.get(name, 0)) for a, b in zip(samples, samples[1:])]

    def p99():
        out = []
        for a, b in zip(samples, samples[1:]):
            buckets = []
            for k, v in b.items():
                m = re.match(r'clickstream_request_duration_seconds_bucket\{le="([^"]+)"\}', k)
                if m:
                    le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                    buckets.append((le, v - a.get(k, 0)))
            buckets.sort()
            out.append(quantile(buckets, 0.99) * 1e6)
        return out

    series = {
        "Redirects per second": [("301", rate('clickstream_redirects_total{status="301"}')), ("302/307/308", [x + y + z for x, y, z in zip(rate('clickstream_redirects_total{status="302"}'), rate('clickstream_redirects_total{status="307"}'), rate('clickstream_redirects_total{status="308"}'))]), ("404", rate('clickstream_responses_total{kind="not_found"}'))],
        "Clicks per second": [("human", rate('clickstream_clicks_total{type="human"}')), ("bot", rate('clickstream_clicks_total{type="bot"}'))],
        "Events delivered per second (file sink)": [("events", rate('clickstream_sink_delivered_total{sink="events"}'))],
        "Handler latency p99 (microseconds)": [("p99", p99())],
    }
    svg(series, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
