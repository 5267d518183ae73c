-- wrk script: realistic short-link clicks over a whole link table.
--
--   wrk -t2 -c64 -d10s --latency -s benches/compare/clicks.lua http://127.0.0.1:18080 -- slashtags.txt
--
-- Every request is `GET /<slashtag>` with `Host: brand.link`. The slashtags (one per line in
-- the file given after `--`) are visited in a scrambled order that covers the whole table, each
-- wrk thread starting at its own offset. Each request carries a user agent from a weighted
-- mix of browsers (Chrome, Safari, Firefox, Edge, Samsung; desktop and mobile, with Chrome's
-- client hints), in-app browsers (Facebook, Instagram), crawlers and link-preview bots
-- (Googlebot, facebookexternalhit, Twitterbot) and curl. Browsers also send Accept,
-- Accept-Language and, most of the time, a Referer (Google, Facebook, t.co, ...). Every request
-- carries an X-Forwarded-For address from a pool of 4,096 public-looking addresses, so that a
-- server trusting 127.0.0.1 as a proxy sees many visitors (no packet is ever sent to them).
--
-- done() prints one line `WRK_JSON {...}` with the totals and latency percentiles in
-- microseconds, for the benchmark script to read.

local HOST = "brand.link"

local ACCEPT_HTML = "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
  .. "Accept-Encoding: gzip, deflate, br\r\n"

-- { weight, user agent, extra headers, browser? }
local AGENTS = {
  { 14, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    'sec-ch-ua: "Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"\r\nsec-ch-ua-mobile: ?0\r\nsec-ch-ua-platform: "Windows"\r\n', true },
  { 6, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    'sec-ch-ua: "Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"\r\nsec-ch-ua-mobile: ?0\r\nsec-ch-ua-platform: "macOS"\r\n', true },
  { 16, "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    'sec-ch-ua: "Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"\r\nsec-ch-ua-mobile: ?1\r\nsec-ch-ua-platform: "Android"\r\n', true },
  { 14, "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "", true },
  { 5, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "", true },
  { 4, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "", true },
  { 1, "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", "", true },
  { 3, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    'sec-ch-ua: "Microsoft Edge";v="131", "Chromium";v="131", "Not_A Brand";v="24"\r\nsec-ch-ua-mobile: ?0\r\nsec-ch-ua-platform: "Windows"\r\n', true },
  { 2, "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "", true },
  { 6, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/488.0.0.32.108;FBBV/667544384;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.6;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]", "", true },
  { 5, "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/489.0.0.66.81;]", "", true },
  { 3, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 355.0.0.19.103 (iPhone14,5; iOS 17_6; en_US; en; scale=3.00; 1170x2532; 657284291)", "", true },
  { 3, "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "", false },
  { 2, "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "", false },
  { 1, "Twitterbot/1.0", "", false },
  { 2, "curl/8.5.0", "", false },
}

local REFERERS = {
  "", "", "", "", "",
  "Referer: https://www.google.com/\r\n", "Referer: https://www.google.com/\r\n",
  "Referer: https://www.google.de/\r\n",
  "Referer: https://m.facebook.com/\r\n", "Referer: https://l.facebook.com/\r\n",
  "Referer: https://t.co/\r\n", "Referer: https://t.co/\r\n",
  "Referer: https://l.instagram.com/\r\n",
  "Referer: https://www.linkedin.com/\r\n",
  "Referer: https://www.bing.com/\r\n",
  "Referer: https://duckduckgo.com/\r\n",
  "Referer: https://mail.google.com/\r\n",
}

local LANGUAGES = {
  "en-US,en;q=0.9", "en-US,en;q=0.9", "en-US,en;q=0.9", "en-GB,en;q=0.9",
  "de-DE,de;q=0.9,en;q=0.8", "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "es-ES,es;q=0.9",
  "pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7", "it-IT,it;q=0.9,en;q=0.8", "ja,en-US;q=0.9,en;q=0.8",
  "nl-NL,nl;q=0.9,en;q=0.8", "pl-PL,pl;q=0.9",
}

local agents, referers, languages, addresses = {}, {}, {}, {}
local tags, count, stride, cursor = {}, 0, 1, 0

local function gcd(a, b)
  while b ~= 0 do a, b = b, a % b end
  return a
end

local function build_tables()
  for _, a in ipairs(AGENTS) do
    local head = "User-Agent: " .. a[2] .. "\r\n" .. a[3]
    if a[4] then head = head .. ACCEPT_HTML end
    for _ = 1, a[1] do agents[#agents + 1] = { head, a[4] } end
  end
  for i, r in ipairs(REFERERS) do referers[i] = r end
  for i, l in ipairs(LANGUAGES) do languages[i] = "Accept-Language: " .. l .. "\r\n" end
  -- Public-looking unicast addresses, the same pool in every thread.
  math.randomseed(20261126)
  while #addresses < 4096 do
    local a = math.random(1, 223)
    if a ~= 10 and a ~= 100 and a ~= 127 and a ~= 169 and a ~= 172 and a ~= 192 and a ~= 198 and a ~= 203 then
      addresses[#addresses + 1] = string.format("X-Forwarded-For: %d.%d.%d.%d\r\n",
        a, math.random(0, 255), math.random(0, 255), math.random(1, 254))
    end
  end
end

function setup(thread)
  thread_counter = (thread_counter or 0) + 1
  thread:set("thread_number", thread_counter)
end

function init(args)
  local path = args[1]
  if not path then error("clicks.lua: pass the slashtag file after --") end
  for line in io.lines(path) do
    if line ~= "" then
      count = count + 1
      tags[count] = "GET /" .. line .. " HTTP/1.1\r\nHost: " .. HOST .. "\r\n"
    end
  end
  if count == 0 then error("clicks.lua: no slashtags in " .. path) end
  build_tables()
  -- A stride coprime with the table size visits every slashtag once per pass, scrambled.
  stride = 7919 % count
  if stride == 0 then stride = 1 end
  while gcd(stride, count) ~= 1 do stride = stride + 1 end
  local n = tonumber(thread_number) or 1
  cursor = ((n - 1) * math.floor(count * 0.618)) % count
end

local i = 0

function request()
  i = i + 1
  cursor = (cursor + stride) % count
  local agent = agents[i % #agents + 1]
  local head = tags[cursor + 1] .. agent[1] .. addresses[(i * 31) % #addresses + 1]
  if agent[2] then
    head = head .. languages[(i * 7) % #languages + 1] .. referers[(i * 13) % #referers + 1]
  end
  return head .. "\r\n"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"mean_us":%.1f,"connect_errors":%d,"read_errors":%d,"write_errors":%d,'
      .. '"status_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
