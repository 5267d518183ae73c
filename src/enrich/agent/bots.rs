//! The bot list: case-insensitive tokens, one a line in data/bots.txt (or in
//! a file given to [`BotList::parse`]), compiled into Aho-Corasick automatons.
//!
//! The enricher builds a [`BotList`] at start-up; [`classify`](super::classify)
//! asks it about every agent. It does no I/O (the shipped list is compiled into
//! the binary, a custom one is handed over as text), never panics, and reads at
//! most [`MAX_UA_BYTES`] of an agent.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, Anchored, Input, MatchKind, StartKind};

use super::{MAX_UA_BYTES, clip};

/// The shortest bot token accepted in a bot list, in bytes.
pub const MIN_TOKEN_BYTES: usize = 3;

/// The longest bot token accepted in a bot list, in bytes.
pub const MAX_TOKEN_BYTES: usize = 128;

/// Case-insensitive bot token list, loaded from data/bots.txt.
///
/// Tokens match anywhere in the agent, or only at its start when written
/// with a leading `^`. Both sets are compiled once into Aho-Corasick
/// automatons; matching reads at most [`MAX_UA_BYTES`].
#[derive(Debug, Clone)]
pub struct BotList {
    anywhere: Option<AhoCorasick>,
    at_start: Option<AhoCorasick>,
    len: usize,
}

impl BotList {
    /// The list shipped in the binary (data/bots.txt). Never fails: a line
    /// that would not parse is skipped (a unit test keeps the file clean).
    pub fn embedded() -> BotList {
        Self::build(include_str!("../../../data/bots.txt"), "data/bots.txt").0
    }

    /// Parses a bot list. On failure returns every bad line, each as
    /// `origin:LINE: what is wrong`.
    pub fn parse(text: &str, origin: &str) -> Result<BotList, Vec<String>> {
        let (list, errors) = Self::build(text, origin);
        if errors.is_empty() { Ok(list) } else { Err(errors) }
    }

    /// How many tokens the list holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the list holds no token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the user agent contains one of the tokens (ignoring ASCII
    /// case), or starts with one of the `^` tokens.
    pub fn matches(&self, ua: &str) -> bool {
        let ua = clip(ua.trim_start(), MAX_UA_BYTES);
        let found = |ac: &AhoCorasick, input: Input<'_>| matches!(ac.try_find(input), Ok(Some(_)));
        self.anywhere.as_ref().is_some_and(|ac| found(ac, Input::new(ua)))
            || self
                .at_start
                .as_ref()
                .is_some_and(|ac| found(ac, Input::new(ua).anchored(Anchored::Yes)))
    }

    fn build(text: &str, origin: &str) -> (BotList, Vec<String>) {
        let mut anywhere: Vec<&str> = Vec::new();
        let mut at_start: Vec<&str> = Vec::new();
        let mut errors = Vec::new();
        let mut seen: HashMap<(bool, String), usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (anchored, token) = match line.strip_prefix('^') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let key = (anchored, token.to_ascii_lowercase());
            let problem = if token.is_empty() {
                Some("a lone ^ names no token".to_string())
            } else if token.chars().any(char::is_control) {
                Some(format!("token {token:?} holds a control character"))
            } else if token.trim_start() != token {
                Some(format!("blank after ^ in {line:?}"))
            } else if token.len() < MIN_TOKEN_BYTES {
                Some(format!(
                    "token {token:?} is shorter than {MIN_TOKEN_BYTES} bytes and would match too much"
                ))
            } else if token.len() > MAX_TOKEN_BYTES {
                Some(format!("token is longer than {MAX_TOKEN_BYTES} bytes"))
            } else {
                seen.get(&key)
                    .map(|first| format!("token {token:?} repeats line {first}"))
            };
            match problem {
                Some(what) => errors.push(format!("{origin}:{line_no}: {what}")),
                None => {
                    seen.insert(key, line_no);
                    if anchored {
                        at_start.push(token);
                    } else {
                        anywhere.push(token);
                    }
                }
            }
        }
        let anywhere_ac = compile(&anywhere, StartKind::Unanchored, origin, &mut errors);
        let at_start_ac = compile(&at_start, StartKind::Anchored, origin, &mut errors);
        let len =
            anywhere_ac.as_ref().map_or(0, |_| anywhere.len()) + at_start_ac.as_ref().map_or(0, |_| at_start.len());
        let list = BotList {
            anywhere: anywhere_ac,
            at_start: at_start_ac,
            len,
        };
        (list, errors)
    }
}

fn compile(tokens: &[&str], start: StartKind, origin: &str, errors: &mut Vec<String>) -> Option<AhoCorasick> {
    if tokens.is_empty() {
        return None;
    }
    let built = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .start_kind(start)
        .build(tokens);
    match built {
        Ok(ac) => Some(ac),
        Err(e) => {
            errors.push(format!("{origin}: cannot build the matcher: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::enrich::agent::browser::tests::{DESKTOP_BROWSERS, IN_APP, MOBILE_BROWSERS};
    use crate::enrich::agent::classify;
    use crate::enrich::agent::device::tests::{TABLETS, TV_CONSOLE_AND_OTHER};
    use crate::enrich::agent::tests::{NONE, bots, check};

    /// Preview fetchers, scanners, crawlers and scripts, with real agents.
    const BOT_AGENTS: &[&str] = &[
        // link previews
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "facebookcatalog/1.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
        "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
        "Twitterbot/1.0",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "Mozilla/5.0 (compatible; Pinterestbot/1.0; +http://www.pinterest.com/bot.html)",
        "Pinterest/0.2 (+https://www.pinterest.com/bot.html)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Slackbot 1.0 (+https://api.slack.com/robots)",
        "Slack-ImgProxy (+https://api.slack.com/robots)",
        "WhatsApp/2.23.20.0 A",
        "WhatsApp/2.19.92 i",
        "TelegramBot (like TwitterBot)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "http.rb/5.1.1 (Mastodon/4.2.10; +https://mastodon.social/)",
        "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; MicrosoftPreview/2.0; +https://aka.ms/MicrosoftPreview) Chrome/116.0.1938.76 Safari/537.36",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b",
        "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
        "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
        "Iframely/1.3.1 (+https://iframely.com/docs/about)",
        "Mozilla/5.0 (compatible; Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots)",
        "Viber/20.3.0.0 CFNetwork/1410.0.3 Darwin/22.6.0",
        "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)",
        "Mozilla/5.0 (compatible; OdklBot/1.0 like Linux; klass@odnoklassniki.ru)",
        "Mozilla/5.0 (compatible; Yahoo Link Preview; https://help.yahoo.com/kb/mail/yahoo-link-preview-SLN23615.html)",
        // mail and office scanners
        "Microsoft Office Existence Discovery",
        "Mozilla/5.0 (Windows NT 10.0; Microsoft Outlook 16.0.1; ms-office; MSOffice 16)",
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "Mozilla/5.0 (compatible; Barracuda Sentinel)",
        // search engines
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.175 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; Google-InspectionTool/1.0;)",
        "Mozilla/5.0 (compatible; GoogleOther)",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36 (compatible; Google-Read-Aloud; +https://support.google.com/webmasters/answer/1061943)",
        "AdsBot-Google (+http://www.google.com/adsbot.html)",
        "FeedFetcher-Google; (+http://www.google.com/feedfetcher.html)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "Mozilla/5.0 (compatible; YandexMetrika/2.0; +http://yandex.com/bots yabs01)",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
        "Mozilla/5.0 (compatible; DuckAssistBot/1.0; +http://duckduckgo.com/duckassistbot.html)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
        "ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)",
        "Mozilla/5.0 (compatible; archive.org_bot +http://archive.org/details/archive.org_bot)",
        "Mozilla/5.0 (compatible; Yeti/1.1; +https://naver.me/spd)",
        "Mozilla/5.0 (compatible; SeznamBot/3.2; +http://napoveda.seznam.cz/en/seznambot-intro/)",
        "Mozilla/5.0 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
        // ai crawlers
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; OAI-SearchBot/1.0; +https://openai.com/searchbot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; Claude-User/1.0; +Claude-User@anthropic.com",
        "Mozilla/5.0 (compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)",
        "Mozilla/5.0 (compatible; Perplexity-User/1.0; +https://perplexity.ai/perplexity-user)",
        "CCBot/2.0 (https://commoncrawl.org/faq/)",
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Amazonbot/0.1; +https://developer.amazon.com/support/amazonbot) Chrome/119.0.6045.214 Safari/537.36",
        // seo and monitoring
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
        "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot; help@moz.com)",
        "Screaming Frog SEO Spider/19.4",
        "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        "Mozilla/5.0 (compatible; pingbot/2.0; +http://www.pingdom.com/)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36 PTST/240301.000000",
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        // headless browsers
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/141.0.7390.37 Safari/537.36",
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        // libraries and tools
        "curl/8.4.0",
        "curl",
        "Wget/1.21.4",
        "python-requests/2.31.0",
        "Python-urllib/3.11",
        "python-httpx/0.27.0",
        "Python/3.11 aiohttp/3.9.1",
        "Go-http-client/2.0",
        "okhttp/4.12.0",
        "Java/17.0.2",
        "Apache-HttpClient/4.5.13 (Java/11.0.19)",
        "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
        "axios/1.7.2",
        "undici",
        "libwww-perl/6.72",
        "Ruby",
        "Faraday v2.9.0",
        "PostmanRuntime/7.37.3",
        "insomnia/2023.5.8",
        "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 7 Build/UQ1A.240205.004)",
        "MyApp/1 CFNetwork/1490.0.4 Darwin/23.5.0",
        "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
        "Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US) Speedy Spider (http://www.entireweb.com/about/search_tech/speedy_spider/)",
    ];

    #[test]
    fn every_kind_of_bot_is_flagged() {
        let list = bots();
        let missed: Vec<_> = BOT_AGENTS.iter().filter(|ua| !classify(ua, NONE, &list).bot).collect();
        assert!(missed.is_empty(), "not flagged: {missed:#?}");
    }

    #[rustfmt::skip]
    #[test]
    fn bots_still_report_what_they_claim() {
        check(
            &[
                ("curl/8.4.0", "", "", "", "", "", true),
                ("WhatsApp/2.23.20.0 A", "", "", "", "", "", true),
                ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.175 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                    "chrome", "125.0.6422.175", "android", "android-6.0.1-marshmallow", "smartphone", true),
                ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36",
                    "headless-chrome", "120.0.6099.28", "linux", "", "desktop", true),
                ("AppleCoreMedia/1.0.0.19J346 (Apple TV; U; CPU OS 15_0 like Mac OS X; en_us)",
                    "", "", "tvos", "tvos-15.0", "tv", true),
            ],
            NONE,
        );
    }

    #[test]
    fn no_real_browser_is_flagged() {
        let list = bots();
        let rows = DESKTOP_BROWSERS
            .iter()
            .chain(MOBILE_BROWSERS)
            .chain(TABLETS)
            .chain(IN_APP)
            .chain(TV_CONSOLE_AND_OTHER);
        let flagged: Vec<_> = rows.filter(|row| list.matches(row.0)).map(|row| row.0).collect();
        assert!(flagged.is_empty(), "flagged: {flagged:#?}");
    }

    #[test]
    fn embedded_list_parses_cleanly() {
        let text = include_str!("../../../data/bots.txt");
        let list = match BotList::parse(text, "data/bots.txt") {
            Ok(list) => list,
            Err(errors) => panic!("data/bots.txt has bad lines:\n{}", errors.join("\n")),
        };
        assert!(list.len() >= 300, "only {} tokens", list.len());
        assert_eq!(BotList::embedded().len(), list.len());
        assert!(!list.is_empty());
    }

    #[test]
    fn anchored_tokens_match_only_at_the_start() {
        let list = BotList::parse("^WhatsApp/\nSlackbot\n", "test").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(list.len(), 2);
        assert!(list.matches("WhatsApp/2.23.20.0 A"));
        assert!(list.matches("  whatsapp/2.23.20.0 A"));
        assert!(
            !list.matches("Mozilla/5.0 (Linux; Android 13) Chrome/126.0.0.0 Mobile Safari/537.36 WhatsApp/2.24.10.85")
        );
        assert!(list.matches("SLACKBOT-LinkExpanding 1.0"));
        assert!(!list.matches("Mozilla/5.0 Slack/4.36 Electron/28"));
    }

    #[test]
    fn parse_reports_every_bad_line_with_its_number() {
        let text = "# header\n\ncurl/\nab\n^\n^ spaced\nCURL/\ntab\there\nok-token\n^curl/\n";
        let errors = match BotList::parse(text, "bots.txt") {
            Ok(_) => panic!("should fail"),
            Err(errors) => errors,
        };
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].starts_with("bots.txt:4: "), "{}", errors[0]);
        assert!(errors[0].contains("shorter than 3"));
        assert!(errors[1].starts_with("bots.txt:5: "), "{}", errors[1]);
        assert!(errors[2].starts_with("bots.txt:6: "), "{}", errors[2]);
        assert!(errors[3].starts_with("bots.txt:7: "), "{}", errors[3]);
        assert!(errors[3].contains("repeats line 3"));
        assert!(errors[4].starts_with("bots.txt:8: "), "{}", errors[4]);
        assert!(errors[4].contains("control character"));

        let long = format!("{}\n", "x".repeat(MAX_TOKEN_BYTES + 1));
        let errors = BotList::parse(&long, "o").err().unwrap_or_default();
        assert_eq!(
            errors,
            vec![format!("o:1: token is longer than {MAX_TOKEN_BYTES} bytes")]
        );

        // an anchored and a plain token of the same text are different tokens
        let list = BotList::parse("curl/\n^curl/\r\n", "o").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(list.len(), 2);
        let empty = BotList::parse("# nothing\n\n", "o").unwrap_or_else(|e| panic!("{e:?}"));
        assert!(empty.is_empty());
        assert!(!empty.matches("curl/8"));
    }
}
