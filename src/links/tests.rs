use super::*;
use crate::config::Config;

fn table(csv: &str) -> Result<LinkTable, LinkTableError> {
    let c = Config::embedded_default();
    LinkTable::from_csv(csv, &c.server, &c.domains)
}

fn errors(csv: &str) -> Vec<String> {
    match table(csv) {
        Err(LinkTableError::Invalid { errors, .. }) => errors,
        Err(e) => vec![e.to_string()],
        Ok(_) => vec![],
    }
}

#[test]
fn csv_lines_split_like_rfc4180() {
    let cases: &[(&str, Result<&[&str], ()>)] = &[
        ("a,b,c", Ok(&["a", "b", "c"])),
        ("a,,c", Ok(&["a", "", "c"])),
        (r#""a,b",c"#, Ok(&["a,b", "c"])),
        (r#""say ""hi""",x"#, Ok(&[r#"say "hi""#, "x"])),
        ("a,", Ok(&["a", ""])),
        (r#""open,b"#, Err(())),
        (r#"a"b,c"#, Err(())),
        (r#""a"b,c"#, Err(())),
    ];
    for (line, want) in cases {
        let mut out = Vec::new();
        let got = split_csv_line(line, &mut out)
            .map(|()| out.iter().map(|c| c.to_string()).collect::<Vec<_>>())
            .map_err(|_| ());
        let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{line}");
    }
}

#[test]
fn loads_and_looks_up() {
    let t = table(
        "id,domain,slashtag,destination,status,workspace_id\n\
         1,Brand.Link,spring,https://example.com/a?x=1,,w1\n\
         2,brand.link,Summer,https://example.com/b,302,w1\n\
         3,other.test,spring,https://example.com/c,,w2\n",
    )
    .unwrap();
    assert_eq!(t.len(), 3);
    assert_eq!(t.domain_count(), 2);
    let d = t.domain_for_host("brand.link").unwrap();
    assert_eq!(d.lookup("spring").unwrap().id(), "1");
    assert_eq!(d.lookup("summer").unwrap().status, StatusCode::FOUND);
    assert_eq!(d.lookup("SPRING").unwrap().id(), "1");
    assert!(d.lookup("nope").is_none());
    assert_eq!(
        t.domain_for_host("other.test").unwrap().lookup("spring").unwrap().id(),
        "3"
    );
    // Unknown hosts fall back to the embedded default domain.
    assert_eq!(t.domain_for_host("127.0.0.1").unwrap().name.as_ref(), "brand.link");
    let link = d.lookup("spring").unwrap();
    assert_eq!(link.destination(), "https://example.com/a?x=1");
    assert!(Arc::ptr_eq(&link.owner, &d.lookup("Summer").unwrap().owner));
}

#[test]
fn every_bad_line_is_reported_with_its_number() {
    let errs = errors(
        "id,domain,slashtag,destination,status\n\
         1,a.test,ok,https://example.com/,\n\
         2,a.test,bad-url,htp://x,\n\
         3,a.test,ok,https://example.com/dup,\n\
         4,a.test,st,https://example.com/,200\n\
         5,a.test,,https://example.com/,\n\
         6,a b,x,https://example.com/,\n\
         7,a.test,ctl,\"https://exa\tmple.com/\",\n\
         1,a.test,again,https://example.com/,\n\
         9,a.test,few\n",
    );
    let want = [
        "links.csv:3: destination 'htp://x'",
        "links.csv:4: duplicate link a.test/ok",
        "links.csv:5: status 200",
        "links.csv:6: slashtag is empty",
        "links.csv:7: domain 'a b'",
        "links.csv:8: destination",
        "links.csv:9: id '1' is already used on line 2",
        "links.csv:10: 3 field(s), the header has 5",
    ];
    let joined = errs.join("\n");
    for w in want {
        assert!(joined.contains(w), "missing {w:?} in\n{joined}");
    }
}

#[test]
fn header_problems() {
    assert!(errors("id,domain,destination\n1,a.test,https://x.test/\n")[0].contains("missing column 'slashtag'"));
    assert!(errors("id,domain,slashtag,destination,colour\n")[0].contains("unknown column 'colour'"));
    assert!(table("").unwrap().is_empty());
}

fn load_file(name: &str, text: &[u8], stretches: usize) -> Result<LinkTable, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let c = Config::embedded_default();
    LinkTable::load_in(&path, &c.server, &c.domains, Some(stretches)).map_err(|e| match e {
        LinkTableError::Invalid { errors, .. } => errors
            .into_iter()
            .map(|e| e.strip_prefix(&format!("{}:", path.display())).unwrap().to_string())
            .collect(),
        e => vec![e.to_string()],
    })
}

#[test]
fn json_lines() {
    let text = br#"{"id":"1","domain":"a.test","slashtag":"x","destination":"https://e.test/","status":302}

{"id":"2","domain":"a.test","destination":"https://e.test/"}
not json
{"id":"3","domain":"a.test","slashtag":"y","destination":"https://e.test/","color":"red"}"#;
    for stretches in [1, 2, 4] {
        let errs = load_file("l.jsonl", text, stretches).err().unwrap();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("3: missing key(s) slashtag"), "{errs:?}");
        assert!(errs[1].starts_with("4: not a link object"), "{errs:?}");
        assert!(errs[2].starts_with("5:"), "{errs:?}");
    }
    let first = &text[..text.iter().position(|&x| x == b'\n').unwrap()];
    let t = load_file("l.jsonl", first, 1).unwrap();
    assert_eq!(
        t.domain("a.test").unwrap().lookup("x").unwrap().status,
        StatusCode::FOUND
    );
}

#[test]
fn a_file_read_in_stretches_gives_the_same_table_and_errors() {
    let mut good = String::from("\u{feff}\r\nid,domain,slashtag,destination\r\n");
    for i in 0..500 {
        good.push_str(&format!("{i},d{}.test,s{i},https://e.test/{i}\r\n", i % 3));
        if i % 97 == 0 {
            good.push_str("\r\n");
        }
    }
    for stretches in [1, 2, 3, 7, 64] {
        let t = load_file("l.csv", good.as_bytes(), stretches).unwrap();
        assert_eq!(t.len(), 500);
        assert_eq!(t.domain("d2.test").unwrap().lookup("s500").map(|l| l.id()), None);
        assert_eq!(t.domain("d1.test").unwrap().lookup("s499").unwrap().id(), "499");
        assert_eq!(t.domain("d0.test").unwrap().lookup("s0").unwrap().id(), "0");
    }
    // Errors anywhere keep their absolute line numbers; duplicates name the first line.
    let mut bad = String::from("id,domain,slashtag,destination\n");
    for i in 0..300 {
        match i {
            10 => bad.push_str("dup,a.test,x,https://e.test/\n"),
            250 => bad.push_str("dup,a.test,y,https://e.test/\n"),
            260 => bad.push_str("z,a.test,x,https://e.test/\n"),
            270 => bad.push_str("w,a.test,q,ftp://e.test/\n"),
            _ => bad.push_str(&format!("{i},a.test,s{i},https://e.test/\n")),
        }
    }
    let single = load_file("l.csv", bad.as_bytes(), 1).err().unwrap();
    assert_eq!(single.len(), 3, "{single:?}");
    assert!(
        single[0].starts_with("252: id 'dup' is already used on line 12"),
        "{single:?}"
    );
    assert!(
        single[1].starts_with("262: duplicate link a.test/x (first defined as id 'dup')"),
        "{single:?}"
    );
    assert!(single[2].starts_with("272: destination"), "{single:?}");
    for stretches in [2, 3, 5, 16] {
        assert_eq!(load_file("l.csv", bad.as_bytes(), stretches).err().unwrap(), single);
    }
}

#[test]
fn case_insensitive_fallback_never_guesses() {
    let t = table(
        "id,domain,slashtag,destination\n\
         1,a.test,Promo,https://e.test/1\n\
         2,a.test,PROMO,https://e.test/2\n\
         3,a.test,Deal,https://e.test/3\n",
    )
    .unwrap();
    let d = t.domain("a.test").unwrap();
    assert_eq!(d.lookup("PROMO").unwrap().id(), "2");
    assert!(d.lookup("promo").is_none(), "ambiguous fold must not resolve");
    assert_eq!(d.lookup("deal").unwrap().id(), "3");
    assert_eq!(d.lookup("DEAL").unwrap().id(), "3");
    let t = table(
        "id,domain,slashtag,destination\n\
         1,a.test,sale,https://e.test/1\n\
         2,a.test,Sale,https://e.test/2\n\
         3,a.test,news,https://e.test/3\n",
    )
    .unwrap();
    let d = t.domain("a.test").unwrap();
    assert_eq!(d.lookup("Sale").unwrap().id(), "2");
    assert_eq!(d.lookup("sale").unwrap().id(), "1");
    assert!(d.lookup("SALE").is_none(), "'sale' and 'Sale' both fold to it");
    assert_eq!(d.lookup("NEWS").unwrap().id(), "3");
}

#[test]
fn a_link_is_small() {
    // A handle is a pointer and the text's length; the allocation is the reference count,
    // these fields and the text.
    assert_eq!(std::mem::size_of::<Link>(), 16);
    assert_eq!(std::mem::size_of::<LinkFields>(), 48);
}

#[test]
fn a_link_keeps_its_three_strings_apart() {
    let owner = Arc::new(Owner::new(
        "a.test".into(),
        "".into(),
        "".into(),
        Arc::new(Workspace {
            id: "".into(),
            name: "".into(),
        }),
    ));
    let link = Link::new("ïd", "Tag", StatusCode::FOUND, "https://e.test/?q=1", owner.clone());
    assert_eq!(
        (link.id(), link.slashtag(), link.destination()),
        ("ïd", "Tag", "https://e.test/?q=1")
    );
    let link = Link::new("", "", StatusCode::FOUND, "https://e.test/", owner.clone());
    assert_eq!(
        (link.id(), link.slashtag(), link.destination()),
        ("", "", "https://e.test/")
    );
    // A value that would break the response head is never sent.
    for bad in ["https://e.test/\r\nset-cookie: x=1", "", "https://e.test/é"] {
        assert_eq!(
            Link::new("1", "t", StatusCode::FOUND, bad, owner.clone()).destination(),
            "/"
        );
    }
}

#[test]
fn control_characters_are_refused_in_ids_and_owner_fields() {
    // Owners were interned under their fields joined with NUL: these two were one owner, and a
    // click on the second was attributed to the first's workspace.
    let errs = errors(
        "id,domain,slashtag,destination,creator_id,workspace_id,workspace_name,domain_id\n\
         1,a.test,one,https://e.test/,x\0y,z,W,d\n\
         2,a.test,two,https://e.test/,x,y\0z,W,d\n\
         3\x1b,a.test,three,https://e.test/,c,w,W\x7f,d\t\n",
    );
    let want = [
        "links.csv:2: creator_id \"x\\0y\" contains control characters",
        "links.csv:3: workspace_id \"y\\0z\" contains control characters",
        "links.csv:4: id \"3\\u{1b}\" contains control characters",
        "links.csv:4: workspace_name \"W\\u{7f}\" contains control characters",
        "links.csv:4: domain_id \"d\\t\" contains control characters",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:?}");
    for (got, want) in errs.iter().zip(want) {
        assert!(got.starts_with(want), "{got:?} does not start with {want:?}");
    }
}

#[test]
fn owner_keys_are_unambiguous() {
    let key = |fields: &[&str]| {
        let mut out = String::new();
        owner_key(&mut out, fields);
        out
    };
    let pairs: &[(&[&str], &[&str])] = &[
        (&["a.test", "d", "x\0y", "z", ""], &["a.test", "d", "x", "y\0z", ""]),
        (&["a.test", "", "ab", "", ""], &["a.test", "", "a", "b", ""]),
        (&["a.test", "1:a", "", "", ""], &["a.test", "", "a", "", ""]),
        (&["a.test", "", "", "", "2:ab"], &["a.test", "", "", "2:ab", ""]),
    ];
    for (a, b) in pairs {
        assert_ne!(key(a), key(b), "{a:?} and {b:?}");
    }
    // Distinct owners in a table, even when one field's text is another's with a separator.
    let t = table(
        "id,domain,slashtag,destination,creator_id,workspace_id\n\
         1,a.test,one,https://e.test/,x:y,z\n\
         2,a.test,two,https://e.test/,x,y:z\n",
    )
    .unwrap();
    let d = t.domain("a.test").unwrap();
    let (one, two) = (d.lookup("one").unwrap(), d.lookup("two").unwrap());
    assert!(!Arc::ptr_eq(&one.owner, &two.owner));
    assert_eq!(two.workspace().id.as_ref(), "y:z");
}

#[test]
fn destinations_are_sent_as_the_url_crates_serialization() {
    let cases = [
        (
            "https://www.yourdestination.com/?utm_source=cs_facebook_post&utm_medium=customersuccess",
            "https://www.yourdestination.com/?utm_source=cs_facebook_post&utm_medium=customersuccess",
        ),
        (
            "HTTPS://Shop.EXAMPLE.com:443/a?b=1#Top",
            "https://shop.example.com/a?b=1#Top",
        ),
        ("https://e.test", "https://e.test/"),
        ("http://e.test:8080/./a/../b", "http://e.test:8080/b"),
        ("https://e.test/caf\u{e9}?q=\u{e9}", "https://e.test/caf%C3%A9?q=%C3%A9"),
        ("https://\u{4f8b}\u{3048}.jp/", "https://xn--r8jz45g.jp/"),
        ("https://[::1]:8443/x", "https://[::1]:8443/x"),
        ("https://e.test/\"q\"<>", "https://e.test/%22q%22%3C%3E"),
    ];
    for (raw, sent) in cases {
        let csv = format!(
            "id,domain,slashtag,destination\n1,a.test,x,\"{}\"\n",
            raw.replace('"', "\"\"")
        );
        let t = table(&csv).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(
            t.domain("a.test").unwrap().lookup("x").unwrap().destination(),
            sent,
            "{raw}"
        );
    }
}

#[test]
fn ambiguous_destinations_are_refused() {
    // (destination, what the message says)
    let cases = [
        ("https://good.example\\@evil.example/", "contains a backslash"),
        ("https://good.example/a\\b", "contains a backslash"),
        ("https://e.test/a b", "contains ' ': percent-encode"),
        ("https://e.test/a\u{a0}b", "percent-encode"),
        ("https://e.test/\u{7f}", "contains '\\u{7f}'"),
        ("https://good.example@evil.example/", "user name or password"),
        ("https://u:p@e.test/", "user name or password"),
        (
            "https:evil.example/",
            "must start with http:// or https:// and the host",
        ),
        (
            "https:/evil.example/",
            "must start with http:// or https:// and the host",
        ),
        (
            "https:///evil.example/",
            "must start with http:// or https:// and the host",
        ),
        ("https://evil%2Eexample/", "is read as 'evil.example'"),
        ("https://0x7f.1/", "is read as '127.0.0.1'"),
        ("https://[0:0::1]/", "is read as '[::1]'"),
    ];
    for (destination, message) in cases {
        let csv = format!(
            "id,domain,slashtag,destination\n1,a.test,ok,https://e.test/\n2,a.test,x,\"{}\"\n",
            destination.replace('"', "\"\"")
        );
        let errs = errors(&csv);
        assert!(
            errs.len() == 1 && errs[0].starts_with("links.csv:3: destination ") && errs[0].contains(message),
            "{destination:?}: want {message:?}, got {errs:?}"
        );
    }
}
