#!/usr/bin/env python3
"""Turns the raw results of benches/compare.sh into tables, a Markdown report and an SVG chart.

    python3 benches/compare/report.py --runs WORK/runs --machine WORK/machine.env \\
        --command "benches/compare.sh" --settings "duration=10 rounds=3 ..." \\
        --md results/latest.md --svg results/latest.svg

--runs holds one directory per run: ``round<N>-<system>/`` with ``wrk.txt`` (wrk's output,
including the ``WRK_JSON`` line printed by clicks.lua) and, for clickstream, ``counts.env``
(redirects, events, events_after_stop, catchup_seconds) and ``metrics.txt`` (the admin
``/metrics`` page after the run); ``latency<N>-<label>/`` with the latency probe's
``pace.json``, ``latency.meta`` (system, rate, label, round, connections, the machine's busy
percent during the probe) and, for clickstream, the same ``counts.env``. The HTTPS runs also hold ``tls.env`` (tls_protocol, tls_cipher: what a
handshake before the load negotiated). The tables go to stdout, the Markdown and the SVG to the
given paths. Exit status 0, also when a check failed: the warnings are in the
output and in the report.
"""
import argparse
import glob
import json
import os
import re
import statistics
from html import escape

SYSTEMS = ["nginx-nolog", "nginx-log", "clickstream-file", "clickstream-webhook", "nginx-https", "clickstream-https"]
HTTPS_SYSTEMS = ["nginx-https", "clickstream-https"]
DESCRIPTIONS = {
    "nginx-nolog": "nginx, `map` + `return 301`, access log off",
    "nginx-log": "nginx, `map` + `return 301`, `combined` access log to a file",
    "clickstream-file": "clickstream, every click enriched and spooled, NDJSON file sink",
    "clickstream-webhook": "clickstream, every click enriched and spooled, webhook sink (local receiver)",
    "nginx-https": "nginx-log over HTTPS: nginx terminating TLS (`listen ... ssl`), `map` + `return 301`, "
                   "`combined` access log to a file",
    "clickstream-https": "clickstream-webhook over HTTPS: clickstream terminating TLS on its `tls_listen` port, "
                         "every click enriched and spooled, webhook sink (local receiver)",
}
COLORS = {
    "nginx-nolog": "#a0aec0",
    "nginx-log": "#718096",
    "clickstream-file": "#63b3ed",
    "clickstream-webhook": "#2b6cb0",
    "nginx-https": "#4a5568",
    "clickstream-https": "#1a365d",
}
# Columns of the ratio table: (header, clickstream system, nginx system).
RATIOS = [
    ("webhook / nginx-log", "clickstream-webhook", "nginx-log"),
    ("webhook / nginx-nolog", "clickstream-webhook", "nginx-nolog"),
    ("file / nginx-log", "clickstream-file", "nginx-log"),
    ("file / nginx-nolog", "clickstream-file", "nginx-nolog"),
    ("https / nginx-https", "clickstream-https", "nginx-https"),
]


def read_env(path):
    values = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                key, value = line.rstrip("\n").split("=", 1)
                values[key] = value
    return values


def read_wrk(path):
    for line in open(path):
        if line.startswith("WRK_JSON "):
            r = json.loads(line[len("WRK_JSON "):])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
            r["errors"] = sum(r[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
            return r
    raise SystemExit(f"{path}: no WRK_JSON line (did wrk run with clicks.lua?)")


def metric_sum(path, name):
    """Sum of all samples of a metric (any labels) in a Prometheus text file."""
    total = 0.0
    if os.path.exists(path):
        pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)")
        for line in open(path):
            m = pattern.match(line)
            if m:
                total += float(m.group(2))
    return int(total)


def delivery(run_dir):
    """Delivery check of a clickstream run, or None for nginx."""
    counts = read_env(os.path.join(run_dir, "counts.env"))
    if not counts:
        return None
    metrics = os.path.join(run_dir, "metrics.txt")
    d = {k: float(v) if k == "catchup_seconds" else int(v) for k, v in counts.items()}
    d["clicks_dropped"] = metric_sum(metrics, "clickstream_clicks_dropped_total")
    d["sink_dropped"] = metric_sum(metrics, "clickstream_sink_dropped_total")
    d["sink_rejected"] = metric_sum(metrics, "clickstream_sink_rejected_total")
    d["sink_retries"] = metric_sum(metrics, "clickstream_sink_retries_total")
    d["other_responses"] = metric_sum(metrics, "clickstream_responses_total")
    receiver = os.path.join(run_dir, "receiver.json")
    if os.path.exists(receiver):
        r = json.load(open(receiver))
        d["duplicates"] = r["events"] - r["unique"]
        d["bad_requests"] = r["bad"]
    problems = []
    if d["redirects"] != d["events"]:
        problems.append(f"{d['events']} events delivered for {d['redirects']} redirects")
    if d.get("events_after_stop", d["events"]) != d["redirects"]:
        problems.append(f"{d['events_after_stop']} events after a graceful stop for {d['redirects']} redirects")
    for key, what in (("clicks_dropped", "clicks dropped"), ("sink_dropped", "events dropped by the sink"),
                      ("sink_rejected", "events rejected"), ("other_responses", "non-redirect answers"),
                      ("duplicates", "duplicate deliveries"), ("bad_requests", "bad webhook bodies")):
        if d.get(key):
            problems.append(f"{d[key]} {what}")
    d["problems"] = problems
    return d


def load_runs(runs_dir):
    runs = []
    for run_dir in sorted(glob.glob(os.path.join(runs_dir, "round*-*"))):
        m = re.match(r"round(\d+)-(.+)$", os.path.basename(run_dir))
        run = {"round": int(m.group(1)), "system": m.group(2), "wrk": read_wrk(os.path.join(run_dir, "wrk.txt"))}
        run["delivery"] = delivery(run_dir)
        cpu = read_env(os.path.join(run_dir, "cpu.env"))
        if "server_cpu_seconds" in cpu:
            run["cpu_us_per_req"] = float(cpu["server_cpu_seconds"]) * 1e6 / max(run["wrk"]["requests"], 1)
        if "receiver_cpu_seconds" in cpu:
            run["receiver_cpu_seconds"] = float(cpu["receiver_cpu_seconds"])
        tls = read_env(os.path.join(run_dir, "tls.env"))
        if tls.get("tls_protocol"):
            run["tls"] = f"{tls['tls_protocol']}, {tls.get('tls_cipher') or '?'}"
        log_lines = os.path.join(run_dir, "access_log_lines")
        if os.path.exists(log_lines):
            run["access_log_lines"] = int(open(log_lines).read().strip() or 0)
        runs.append(run)
    return runs


LATENCY_ORDER = ["clickstream-webhook-half-own", "nginx-log-half-own", "nginx-log-half-other",
                 "clickstream-webhook-half-other", "clickstream-webhook-fixed", "nginx-log-fixed"]


def load_latency(runs_dir):
    """One entry per latency run (every round of every label), in label order, then round."""
    results = []
    for run_dir in glob.glob(os.path.join(runs_dir, "latency*-*")):
        meta_path = os.path.join(run_dir, "latency.meta")
        if not os.path.exists(meta_path):
            continue
        fields = open(meta_path).read().split()
        system, rate, label, rnd, connections = fields[:5]
        busy = int(fields[5]) if len(fields) > 5 else None
        r = json.load(open(os.path.join(run_dir, "pace.json")))
        results.append({
            "system": system, "target": int(rate), "label": label, "round": int(rnd), "connections": int(connections),
            "rps": r["ok"] / r["seconds"],
            "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "p999_ms": r["p999_us"] / 1000, "max_ms": r["max_us"] / 1000,
            # Runs of the probe before it reported its own lateness have none.
            "lag_ms": r["send_lag_p99_us"] / 1000 if "send_lag_p99_us" in r else None,
            # The p99 with the warm-up's requests (runs without a warm-up: the p99 itself).
            "p99_all_ms": r.get("p99_all_us", r["p99_us"]) / 1000,
            "errors": r["errors"],
            "busy": busy,
            "delivery": delivery(run_dir),
        })
    results.sort(key=lambda x: (LATENCY_ORDER.index(x["label"]) if x["label"] in LATENCY_ORDER else 9, x["round"]))
    return results


def fmt_rps(v):
    return f"{v:,.0f}"


def fmt_cpu(us):
    return "-" if us is None else f"{us:.1f}"


def fmt_lag(values):
    """Median over a label's latency runs of how late the probe sent its requests (p99)."""
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.2f}" if known else "-"


def fmt_busy(values):
    """Median busy share of the machine over a label's latency runs (load generator included)."""
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.0f}" if known else "-"


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


NUMBER = re.compile(r"^[-+0-9.,– ]+$")


def alignment(rows, columns):
    """'>' for columns holding only numbers, '<' for the others."""
    return [">" if rows and all(NUMBER.match(str(row[i])) for row in rows) else "<" for i in range(columns)]


def table(headers, rows):
    """Plain-text table for the terminal."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = alignment(rows, len(headers))
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(headers, rows):
    align = alignment(rows, len(headers))
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if a == ">" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def summarize(runs):
    """Median, min and max requests/s and median latencies per system."""
    summary = {}
    for system in SYSTEMS:
        mine = [r["wrk"] for r in runs if r["system"] == system]
        if mine:
            rates = [w["rps"] for w in mine]
            summary[system] = {
                "median": statistics.median(rates), "min": min(rates), "max": max(rates),
                "p50_ms": statistics.median(w["p50_us"] for w in mine) / 1000,
                "p99_ms": statistics.median(w["p99_us"] for w in mine) / 1000,
                "errors": sum(w["errors"] for w in mine),
            }
            cpu = [r["cpu_us_per_req"] for r in runs if r["system"] == system and "cpu_us_per_req" in r]
            summary[system]["cpu_us"] = statistics.median(cpu) if cpu else None
    return summary


def build_tables(runs, latency, summary):
    """Returns [(title, headers, rows)] shared by the terminal output and the Markdown."""
    tables = []
    rows = []
    for system in SYSTEMS:
        if system in summary:
            s = summary[system]
            rows.append([system, fmt_rps(s["median"]), f"{fmt_rps(s['min'])} – {fmt_rps(s['max'])}",
                         f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", fmt_cpu(s["cpu_us"]), s["errors"]])
    tables.append(("Median over the rounds",
                   ["system", "req/s (median)", "req/s (min – max)", "p50 ms", "p99 ms", "server CPU µs/req",
                    "errors"], rows))

    rows = []
    for r in sorted(runs, key=lambda r: (r["round"], SYSTEMS.index(r["system"]) if r["system"] in SYSTEMS else 9)):
        w = r["wrk"]
        rows.append([r["round"], r["system"], fmt_rps(w["rps"]), f"{w['p50_us'] / 1000:.2f}",
                     f"{w['p99_us'] / 1000:.2f}", f"{w['max_us'] / 1000:.1f}", fmt_cpu(r.get("cpu_us_per_req")),
                     w["errors"]])
    tables.append(("Every run (wrk)",
                   ["round", "system", "req/s", "p50 ms", "p99 ms", "max ms", "server CPU µs/req", "errors"], rows))

    # Only the columns whose two systems ran; "-" for a round that misses one of them.
    columns = [c for c in RATIOS if c[1] in summary and c[2] in summary]
    # Each round compares runs made minutes apart, so the summary is the median of the rounds'
    # ratios (not the ratio of the medians, which may come from different rounds).
    rows = []
    ratios = {c: [] for c in columns}
    for rnd in sorted({r["round"] for r in runs}):
        rps = {r["system"]: r["wrk"]["rps"] for r in runs if r["round"] == rnd}
        if columns and any(a in rps and b in rps for _, a, b in columns):
            for c in columns:
                if c[1] in rps and c[2] in rps and rps[c[2]]:
                    ratios[c].append(rps[c[1]] / rps[c[2]])
            rows.append([rnd] + [fmt_ratio(rps[a], rps[b]) if a in rps and b in rps else "-" for _, a, b in columns])
    if rows:
        rows.append(["median"] + [f"{statistics.median(ratios[c]):.2f}" if ratios[c] else "-" for c in columns])
    tables.append(("Throughput ratio clickstream / nginx (requests/s)",
                   ["round"] + [header for header, _, _ in columns], rows))

    rows = []
    for r in sorted(runs, key=lambda r: (r["round"], SYSTEMS.index(r["system"]) if r["system"] in SYSTEMS else 9)):
        d = r["delivery"]
        if d:
            rows.append([r["round"], r["system"], d["redirects"], d["events"], d.get("events_after_stop", "-"),
                         d["catchup_seconds"], r.get("receiver_cpu_seconds", "-"), "ok" if not d["problems"] else "MISMATCH: " + "; ".join(d["problems"])])
    for lat in latency:
        d = lat["delivery"]
        if d:
            rows.append([f"latency {lat['round']}, {lat['target']}/s", lat["system"], d["redirects"], d["events"],
                         d.get("events_after_stop", "-"), d["catchup_seconds"], "-",
                         "ok" if not d["problems"] else "MISMATCH: " + "; ".join(d["problems"])])
    tables.append(("clickstream: events delivered vs redirects served",
                   ["run", "system", "redirects (301)", "events delivered", "after stop", "catch-up s", "receiver CPU s",
                    "check"],
                   rows))

    if latency:
        rows = []
        labels = [label for label in LATENCY_ORDER if any(lat["label"] == label for lat in latency)]
        for label in labels:
            runs_of = [lat for lat in latency if lat["label"] == label]
            first = runs_of[0]
            med = {k: statistics.median(lat[k] for lat in runs_of)
                   for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "p99_all_ms")}
            rows.append([first["system"], load_description(first, latency), fmt_rps(first["target"]), first["connections"],
                         fmt_rps(med["rps"]),
                         f"{med['p50_ms']:.2f}", f"{med['p90_ms']:.2f}", f"{med['p99_ms']:.2f}", f"{med['p999_ms']:.2f}",
                         ", ".join(f"{lat['p99_ms']:.2f}" for lat in runs_of),
                         f"{med['p99_all_ms']:.2f}",
                         fmt_busy([lat["busy"] for lat in runs_of]),
                         fmt_lag([lat["lag_ms"] for lat in runs_of]),
                         sum(lat["errors"] for lat in runs_of)])
        n = max(lat["round"] for lat in latency)
        tables.append((f"Latency at half of the peak{' and at a set rate' if any(lat['label'].endswith('-fixed') for lat in latency) else ''} (paced probe, {'1 run' if n == 1 else f'median of {n} runs'}, "
                       "timed from when each request was due, keep-alive)",
                       ["system", "offered load", "req/s offered", "connections", "req/s answered", "p50 ms", "p90 ms", "p99 ms",
                        "p99.9 ms", "p99 of each run", "p99 with the warm-up ms", "machine busy %", "probe late p99 ms",
                        "errors"], rows))
    return tables


def load_description(lat, latency):
    if lat["label"].endswith("-half-own"):
        return "half of its own peak"
    if lat["label"].endswith("-fixed"):
        return "a set rate (--latency-rate)"
    others = [o["system"] for o in latency if o["system"] != lat["system"]]
    return f"half of {others[0]}'s peak" if others else "half of the other's peak"


def warnings(runs, latency, machine):
    out = []
    if machine.get("https_skipped"):
        out.append(f"nginx-https and clickstream-https skipped: {machine['https_skipped']}")
    for r in runs:
        if r["wrk"]["errors"]:
            out.append(f"round {r['round']} {r['system']}: wrk counted {r['wrk']['errors']} errors")
        if r["delivery"] and r["delivery"]["problems"]:
            out.append(f"round {r['round']} {r['system']}: " + "; ".join(r["delivery"]["problems"]))
    for lat in latency:
        what = f"latency run {lat['round']}, {lat['system']} at {lat['target']}/s"
        if lat["errors"]:
            out.append(f"{what}: {lat['errors']} requests not answered with a redirect")
        if lat["delivery"] and lat["delivery"]["problems"]:
            out.append(f"{what}: " + "; ".join(lat["delivery"]["problems"]))
    return out


def svg_chart(summary, machine, settings):
    """Horizontal bar chart of the median requests/s, with the min–max range of the rounds."""
    systems = [s for s in SYSTEMS if s in summary]
    width, left, right, top, row_h = 760, 170, 110, 58, 46
    height = top + row_h * len(systems) + 52
    peak = max(summary[s]["max"] for s in systems) or 1
    scale = (width - left - right) / peak
    subtitle = (f"wrk -t{settings.get('threads')} -c{settings.get('connections')} -d{settings.get('duration')}s, "
                f"{int(settings.get('links', 0)):,} links; black line: min – max of the rounds")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="26" font-size="16" font-weight="600" fill="#1a202c">'
        f'Redirects per second ({rounds_text(settings)}, higher is better)</text>',
        f'<text x="{left}" y="44" font-size="11" fill="#4a5568">{escape(subtitle)}</text>',
    ]
    # Grid lines.
    step = nice_step(peak)
    tick = 0.0
    while tick <= peak * 1.0001:
        x = left + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{top + row_h * len(systems)}" stroke="#edf2f7"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + row_h * len(systems) + 16}" font-size="10" fill="#718096" '
                     f'text-anchor="middle">{tick / 1000:g}k</text>')
        tick += step
    for i, system in enumerate(systems):
        s = summary[system]
        y = top + i * row_h
        bar = s["median"] * scale
        parts.append(f'<text x="{left - 10}" y="{y + row_h / 2 + 4:.1f}" font-size="13" fill="#2d3748" '
                     f'text-anchor="end">{escape(system)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 8}" width="{bar:.1f}" height="{row_h - 16}" rx="3" fill="{COLORS[system]}"/>')
        x1, x2, ym = left + s["min"] * scale, left + s["max"] * scale, y + row_h / 2
        parts.append(f'<line x1="{x1:.1f}" y1="{ym:.1f}" x2="{x2:.1f}" y2="{ym:.1f}" stroke="#1a202c" stroke-width="1.5"/>')
        for x in (x1, x2):
            parts.append(f'<line x1="{x:.1f}" y1="{ym - 6:.1f}" x2="{x:.1f}" y2="{ym + 6:.1f}" stroke="#1a202c" stroke-width="1.5"/>')
        parts.append(f'<text x="{max(x2, left + bar) + 8:.1f}" y="{ym + 4:.1f}" font-size="13" font-weight="600" '
                     f'fill="#1a202c">{fmt_rps(s["median"])}</text>')
    parts.append(f'<text x="{left}" y="{height - 10}" font-size="10" fill="#718096">'
                 f'{escape(machine_line(machine))}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def rounds_text(settings):
    rounds = settings.get("rounds", "?")
    return "1 round" if rounds == "1" else f"median of {rounds} rounds"


def nice_step(peak):
    """A round grid step giving 4 to 10 lines."""
    for step in (1000, 2000, 2500, 5000, 10000, 20000, 25000, 50000, 100000, 200000, 250000, 500000):
        if peak / step <= 8:
            return step
    return peak / 5


def machine_line(machine):
    return (f"{machine.get('cpus', '?')} CPUs ({machine.get('cpu_model', '?')}), {machine.get('kernel', '?')}; "
            f"nginx {machine.get('nginx', '?')}, wrk {machine.get('wrk', '?')}"
            + (f", OpenSSL {machine['openssl']}" if machine.get("openssl") else "")
            + f"; clickstream {machine.get('clickstream', '?')}")


def tls_description(runs, system):
    """What the handshakes before the loads of SYSTEM negotiated, e.g. 'TLSv1.3, TLS_AES_256_GCM_SHA384'."""
    seen = sorted({r["tls"] for r in runs if r["system"] == system and "tls" in r})
    return " / ".join(seen)


def markdown(tables, warns, machine, settings, command, runs, summary):
    systems = [s for s in SYSTEMS if s in summary]
    https = ""
    if any(s in summary for s in HTTPS_SYSTEMS):
        https = (" HTTPS systems: TLS with one self-signed ECDSA P-256 certificate for `brand.link`, on the same "
                 "keep-alive connections, HTTP/1.1 (what wrk speaks; no ALPN), SNI the URL's address 127.0.0.1, so "
                 "clickstream answers with its `[tls] default_domain` certificate; nginx: `ssl_protocols TLSv1.2 "
                 "TLSv1.3`, `ssl_session_cache shared:SSL:10m`, `ssl_session_tickets on`.")
    lines = [
        "# clickstream vs nginx: redirects per second",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_line(machine)}. Load generator, servers and webhook receiver share the "
        f"same {machine.get('cpus', '?')} CPUs over 127.0.0.1. Load average before the run "
        f"{machine.get('load_before', '?')}, after {machine.get('load_after', '?')} (1, 5, 15 min): anything else "
        "running on the machine shows up there and skews the numbers.",
        "",
        f"Load: wrk, {settings.get('threads')} threads, {settings.get('connections')} keep-alive connections, "
        f"{settings.get('duration')} s per run, {settings.get('rounds')} round{'' if settings.get('rounds') == '1' else 's'} "
        f"(every system once per round, in the order {settings.get('order', '?').replace(',', ', ')}, reversed in even "
        "rounds, so that each "
        f"clickstream system runs next to the nginx it is compared with); {int(settings.get('links', 0)):,} links on `brand.link`, every slashtag requested, "
        "with browser, in-app and bot user agents, referrers, Accept-Language and X-Forwarded-For addresses "
        "(`benches/compare/clicks.lua`). nginx: "
        f"`worker_processes {settings.get('nginx_workers')}`, `keepalive_requests 1000000`." + https,
        "",
    ]
    for system in systems:
        tls = tls_description(runs, system)
        lines.append(f"- **{system}**: {DESCRIPTIONS[system]}" + (f" (handshake before the load: {tls})" if tls else ""))
    lines.append("")
    for title, headers, rows in tables:
        if rows:
            lines += [f"## {title}", "", md_table(headers, rows), ""]
    lines += ["For clickstream, events delivered are the webhook receiver's unique event ids, or the lines of the "
              "file sink's NDJSON, counted once delivery caught up after the run and again after a graceful stop; "
              "redirects are `clickstream_redirects_total{status=\"301\"}` from `/metrics` of a fresh process per "
              "run. Server CPU µs/req: user + system CPU time of the server's processes (nginx: master and workers; "
              "clickstream: the whole process, from the start of the load until delivery caught up, so enrichment, "
              "spool and delivery included) divided by the requests wrk completed. Machine busy %: the share of "
              "both CPUs not idle while the latency probe ran, the probe itself included: near 100, requests wait "
              "for a CPU, whatever the server. The probe sends the requests that fall due in each 100 µs tick at "
              "the tick's end and times each from its own due instant, so its latencies include that wait and "
              "any lateness of the probe itself; probe late p99: how late it sent its requests after their tick "
              "(waiting for a CPU). Each latency run sends "
              f"{settings.get('latency_warmup', '0')} s of warm-up on the same schedule before its measured "
              f"{settings.get('latency_duration', '?')} s; the percentiles leave the warm-up's requests out, but for "
              "the p99 with the warm-up (the whole run's).", ""]
    if warns:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warns] + [""]
    lines += ["![median requests per second](latest.svg)", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--settings", default="", help="space-separated key=value pairs")
    ap.add_argument("--md", required=True)
    ap.add_argument("--svg", required=True)
    args = ap.parse_args()

    settings = dict(kv.split("=", 1) for kv in args.settings.split())
    machine = read_env(args.machine)
    runs = load_runs(args.runs)
    if not runs:
        raise SystemExit(f"no runs in {args.runs}")
    latency = load_latency(args.runs)
    summary = summarize(runs)
    tables = build_tables(runs, latency, summary)
    warns = warnings(runs, latency, machine)

    print()
    print(machine_line(machine))
    print(f"load average before {machine.get('load_before', '?')}, after {machine.get('load_after', '?')}")
    for title, headers, rows in tables:
        if rows:
            print(f"\n{title}\n")
            print(table(headers, rows))
    print()
    for w in warns:
        print(f"WARNING: {w}")
    if not warns:
        print("All checks passed: no wrk errors, every redirect delivered exactly once as an event.")

    with open(args.md, "w") as f:
        f.write(markdown(tables, warns, machine, settings, args.command, runs, summary))
    with open(args.svg, "w") as f:
        f.write(svg_chart(summary, machine, settings))
    print(f"\nReport: {args.md}\nChart:  {args.svg}")


if __name__ == "__main__":
    main()
