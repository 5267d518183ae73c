//! Property tests of the link table parser on any input: a table file is the operator's, and a
//! bad one must be refused with its lines named, never crash the loader or a reload.

use proptest::prelude::*;

use super::load::read_sequential;
use super::*;
use crate::config::Config;

/// Lines that look like table rows: the fields of a real row, separators, quotes, JSON
/// punctuation, and any text now and then.
fn row() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("l1,brand.link,spring-sale,https://example.com/?a=1".to_string()),
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("\"\"".to_string()),
        Just(
            "{\"id\":\"x\",\"domain\":\"brand.link\",\"slashtag\":\"s\",\"destination\":\"https://e.x/\"}".to_string()
        ),
        Just("https://".to_string()),
        Just("%".to_string()),
        Just("302".to_string()),
        "[ -~]{0,16}",
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

fn check(json: bool, text: &str) -> Result<(), TestCaseError> {
    let c = Config::embedded_default();
    let origin = if json { "links.jsonl" } else { "links.csv" };
    match read_sequential(&mut text.as_bytes(), json, origin, &c.server, &c.domains) {
        Ok(table) => prop_assert!(table.len() <= text.lines().count()),
        Err(LinkTableError::Invalid { errors, total }) => {
            prop_assert!(total >= errors.len());
            for e in &errors {
                prop_assert!(e.starts_with(origin), "{e}");
            }
        }
        Err(e) => prop_assert!(e.to_string().starts_with(origin), "{e}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_csv_table_loads_or_is_refused_with_its_lines(rows in proptest::collection::vec(row(), 0..12)) {
        let text = format!("id,domain,slashtag,destination,status\n{}", rows.join("\n"));
        check(false, &text)?;
    }

    #[test]
    fn any_json_lines_table_loads_or_is_refused_with_its_lines(rows in proptest::collection::vec(row(), 0..12)) {
        check(true, &rows.join("\n"))?;
    }
}
