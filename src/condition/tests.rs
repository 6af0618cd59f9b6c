//! Scenario tables for the condition language, one named case per row.

use super::*;

#[derive(Default)]
struct Seen {
    status: Option<u16>,
    body: Option<String>,
    response_time: Option<Duration>,
    connected: Option<bool>,
    loss: Option<f64>,
    cert: Option<Duration>,
}

impl Facts for Seen {
    fn value(&self, p: Placeholder) -> Option<Value> {
        match p {
            Placeholder::Status => self.status.map(|s| Value::Number(s.into())),
            Placeholder::Body => self.body.clone().map(Value::Text),
            Placeholder::ResponseTime => self.response_time.map(Value::Duration),
            Placeholder::Connected => self.connected.map(Value::Bool),
            Placeholder::PacketLoss => self.loss.map(Value::Number),
            Placeholder::CertificateExpiration => self.cert.map(Value::Duration),
            _ => None,
        }
    }
    fn body(&self) -> Option<&[u8]> {
        self.body.as_deref().map(str::as_bytes)
    }
}

fn check(cond: &str, seen: &Seen) -> Option<String> {
    let c = Condition::parse(cond).unwrap_or_else(|e| panic!("{cond}: {e}"));
    failures(std::slice::from_ref(&c), seen).pop().map(|f| f.display)
}

#[test]
fn evaluation_table() {
    let json = r#"{"status":"UP","queue":{"pending":612},"items":[1,2,3],"name":"Dịch vụ công"}"#;
    let seen = Seen {
        status: Some(503),
        body: Some(json.to_string()),
        response_time: Some(Duration::from_millis(1200)),
        connected: Some(true),
        loss: Some(20.0),
        cert: None,
    };
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("status mismatch shows value", "[STATUS] == 200", Some("[STATUS] (503) == 200")),
        ("status range", "[STATUS] < 600", None),
        ("status any miss", "[STATUS] == any(200, 204)", Some("[STATUS] (503) == any(200, 204)")),
        ("status any hit", "[STATUS] == any(503, 504)", None),
        ("json number", "[BODY].queue.pending < 500", Some("[BODY].queue.pending (612) < 500")),
        ("json string", "[BODY].status == UP", None),
        ("json missing", "[BODY].nope == 1", Some("[BODY].nope (missing) == 1")),
        ("len of array", "len([BODY].items) == 3", None),
        ("negative index is the last (RFC 9535)", "[BODY].items[-1] == 3", None),
        ("has path", "has([BODY].queue) == true", None),
        ("has missing", "has([BODY].nope) == false", None),
        ("pattern unicode", "[BODY] == pat(*Dịch vụ công*)", None),
        (
            "pattern miss",
            "[BODY] != pat(*UP*)",
            Some(r#"[BODY] ({"status":"UP","queue":{"pending":612},"items":[1,2,3],"name…) != pat(*UP*)"#),
        ),
        ("duration seconds", "[RESPONSE_TIME] < 1s", Some("[RESPONSE_TIME] (1.2s) < 1s")),
        ("duration bare ms", "[RESPONSE_TIME] < 1500", None),
        ("bool", "[CONNECTED] == true", None),
        ("percent", "[PACKET_LOSS] < 20%", Some("[PACKET_LOSS] (20) < 20%")),
        ("quoted text", "[BODY].status == \"UP\"", None),
    ];
    for (name, cond, expected) in cases {
        assert_eq!(check(cond, &seen).as_deref(), *expected, "case {name}");
    }
}

#[test]
fn missing_measurement_fails() {
    assert_eq!(check("[STATUS] == 200", &Seen::default()).as_deref(), Some("[STATUS] (missing) == 200"));
}

#[test]
fn parse_errors_carry_columns() {
    let cases: &[(&str, &str, usize, &str)] = &[
        ("no operator", "[STATUS] 200", 1, "expected a comparison"),
        ("unknown placeholder", "[STATU] == 200", 1, "unknown placeholder [STATU]"),
        ("not a number", "[STATUS] == abc", 13, "\"abc\" is not a number"),
        ("bad duration", "[RESPONSE_TIME] < 3 parsecs", 19, "is not a duration"),
        ("path on status", "[STATUS].x == 1", 9, "only [BODY] takes a JSON path"),
        ("missing value", "[STATUS] ==", 12, "missing the value"),
        ("bool ordering", "[CONNECTED] < true", 15, "can only be compared"),
        ("no placeholder", "1 == 2", 1, "expected a placeholder such as [STATUS] on one side"),
        ("text ordered", "[BODY].version > abc", 18, "\"abc\" is not a number or a duration"),
        ("bool vs number", "[CONNECTED] == [STATUS]", 16, "cannot compare [CONNECTED] with [STATUS]"),
        ("pat on duration", "[RESPONSE_TIME] == pat(1*)", 20, "pat() only applies to text and numbers"),
        ("any ordered", "[STATUS] < any(1, 2)", 12, "can only be compared with == or !="),
    ];
    for (name, cond, col, msg) in cases {
        let err = Condition::parse(cond).expect_err(name);
        assert_eq!(err.column, *col, "case {name}: {err}");
        assert!(err.message.contains(msg), "case {name}: {err}");
    }
}

fn body(text: &str) -> Seen {
    Seen { body: Some(text.to_string()), ..Seen::default() }
}

/// Issue #17, item 1: a placeholder on the right-hand side is resolved, never compared as
/// the text "[BODY].limit".
#[test]
fn placeholders_on_both_sides() {
    let json = r#"{"used":12,"limit":500,"user":{"firstName":"john","lastName":"doe"},"status":200,
                  "max_ms":1000,"low_ms":"20","name":"john","alias":"john","days":30}"#;
    let seen = Seen {
        status: Some(200),
        response_time: Some(Duration::from_millis(150)),
        cert: Some(Duration::from_secs(10 * 86_400)),
        ..body(json)
    };
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("numbers hold", "[BODY].used < [BODY].limit", None),
        ("numbers fail, both shown", "[BODY].limit < [BODY].used", Some("[BODY].limit (500) < [BODY].used (12)")),
        ("same text", "[BODY].user.firstName == [BODY].user.firstName", None),
        ("different text", "[BODY].user.firstName != [BODY].user.lastName", None),
        (
            "different text fails",
            "[BODY].user.firstName == [BODY].user.lastName",
            Some("[BODY].user.firstName (john) == [BODY].user.lastName (doe)"),
        ),
        ("status against body", "[STATUS] == [BODY].status", None),
        ("duration against body ms", "[RESPONSE_TIME] < [BODY].max_ms", None),
        (
            "duration against body ms text",
            "[RESPONSE_TIME] < [BODY].low_ms",
            Some("[RESPONSE_TIME] (150ms) < [BODY].low_ms (20)"),
        ),
        ("text equal text", "[BODY].name == [BODY].alias", None),
        ("missing right side", "[BODY].used < [BODY].nope", Some("[BODY].used (12) < [BODY].nope (missing)")),
        (
            "text ordered against a number",
            "[BODY].name < [BODY].used",
            Some("[BODY].name (john) < [BODY].used (12): \"john\" is not a number"),
        ),
        ("len on the right", "[BODY].used > len([BODY].user)", None),
    ];
    for (name, cond, expected) in cases {
        assert_eq!(check(cond, &seen).as_deref(), *expected, "case {name}");
    }
}

/// Issue #17, item 2: `len([BODY])` of a root JSON array counts its items.
#[test]
fn length_of_the_whole_body() {
    let cases: &[(&str, &str, &str, bool)] = &[
        ("root array", r#"[{"id":1},{"id":2},{"id":3}]"#, "len([BODY]) == 3", true),
        ("root array with spaces", " [1, 2]\n", "len([BODY]) == 2", true),
        ("root object counts keys", r#"{"a":1,"b":2}"#, "len([BODY]) == 2", true),
        ("plain text counts characters", "john.doe", "len([BODY]) == 8", true),
        ("a JSON number is text", "12345", "len([BODY]) == 5", true),
        ("trailing newline not counted", "john.doe\n", "len([BODY]) == 8", true),
    ];
    for (name, text, cond, holds) in cases {
        assert_eq!(check(cond, &body(text)).is_none(), *holds, "case {name}");
    }
}

/// Issue #17, item 3: 0x/0o/0b numbers, no silent letter-by-letter order, exact floats.
#[test]
fn numbers_as_gatus_reads_them() {
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("hex greater", r#"{"d":"0x1F"}"#, "[BODY].d > 30", None),
        ("hex equals decimal", r#"{"d":"0x1F"}"#, "[BODY].d == 31", None),
        ("octal equals decimal", r#"{"d":"0o17"}"#, "[BODY].d == 15", None),
        ("binary equals binary", r#"{"d":"0b0010"}"#, "[BODY].d == 0b10", None),
        ("binary ordered", r#"{"d":"0b101"}"#, "[BODY].d < 6", None),
        ("hex literal", r#"{"d":16}"#, "[BODY].d == 0x10", None),
        ("status hex literal", "", "[STATUS] == 0xC8", None),
        (
            "text is not ordered",
            r#"{"d":"0x1z"}"#,
            "[BODY].d > 0",
            Some("[BODY].d (0x1z) > 0: \"0x1z\" is not a number"),
        ),
        (
            "letters are not ordered",
            r#"{"v":"beta"}"#,
            "[BODY].v >= 1",
            Some("[BODY].v (beta) >= 1: \"beta\" is not a number"),
        ),
        ("decimal text still ordered", r#"{"v":"10"}"#, "[BODY].v > 9", None),
        ("17 digits exact", r#"{"x":123.40000000000005}"#, "[BODY].x > 123.40000000000003", None),
        ("17 digits equal", r#"{"x":123.40000000000005}"#, "[BODY].x == 123.40000000000005", None),
        ("17 digits in text", r#"{"x":"123.40000000000005"}"#, "[BODY].x > 100", None),
        (
            "huge number against a duration",
            r#"{"t":1e300}"#,
            "[RESPONSE_TIME] < [BODY].t",
            Some("[RESPONSE_TIME] (150ms) < [BODY].t (1e300): \"1e300\" is not a duration"),
        ),
        ("version strings stay text", r#"{"v":"1.10"}"#, "[BODY].v == 1.1", Some("[BODY].v (1.10) == 1.1")),
    ];
    for (name, text, cond, expected) in cases {
        let seen = Seen { status: Some(200), response_time: Some(Duration::from_millis(150)), ..body(text) };
        assert_eq!(check(cond, &seen).as_deref(), *expected, "case {name}");
    }
}

/// Issue #17, item 4: reversed operands, `pat()` on numbers, placeholders in any case.
#[test]
fn forms_gatus_accepts() {
    let seen = Seen { status: Some(429), ..body(r#"{"Name":"john.doe"}"#) };
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("any reversed", "any(200, 429) == [STATUS]", None),
        ("any reversed fails", "any(200, 201) == [STATUS]", Some("any(200, 201) == [STATUS] (429)")),
        ("literal reversed", "500 > [STATUS]", None),
        ("literal reversed fails", "400 > [STATUS]", Some("400 > [STATUS] (429)")),
        ("pat on status", "[STATUS] == pat(4*)", None),
        ("pat on status fails", "[STATUS] == pat(2*)", Some("[STATUS] (429) == pat(2*)")),
        ("pat reversed", "pat(*john*) == [BODY]", None),
        ("lower case", "[status] == 429", None),
        ("mixed case with path", "[Body].Name == john.doe", None),
        ("lower case len", "len([body].Name) == 8", None),
    ];
    for (name, cond, expected) in cases {
        assert_eq!(check(cond, &seen).as_deref(), *expected, "case {name}");
    }
}

/// `[CONNECTED] == false` holds when the connection failed.
#[test]
fn not_connected_is_a_value() {
    assert_eq!(check("[CONNECTED] == false", &Seen { connected: Some(false), ..Seen::default() }), None);
    assert_eq!(
        check("[CONNECTED] == false", &Seen { connected: Some(true), ..Seen::default() }).as_deref(),
        Some("[CONNECTED] (true) == false")
    );
}

#[test]
fn placeholders_read_on_both_sides() {
    let c = Condition::parse("[RESPONSE_TIME] < [BODY].max").expect("parses");
    assert_eq!(c.placeholders().collect::<Vec<_>>(), vec![Placeholder::ResponseTime, Placeholder::Body]);
    assert_eq!(c.placeholder(), Placeholder::ResponseTime);
    let reversed = Condition::parse("any(200, 429) == [STATUS]").expect("parses");
    assert_eq!(reversed.placeholder(), Placeholder::Status);
    assert!(reversed.mentions(Placeholder::Status) && !reversed.mentions(Placeholder::Body));
}

/// Found by fuzzing (issue #14): a long JSON path of nested filters made the path parser
/// backtrack for more than 10 s — a configuration that hangs the load. It is refused now,
/// at once, and ordinary paths still parse.
#[test]
fn json_paths_are_bounded_before_parsing() {
    let nested = format!("1 > [BODY].a{}", "..[?@.b".repeat(34));
    let started = std::time::Instant::now();
    let err = Condition::parse(&nested).expect_err("refused");
    assert!(err.message.contains("JSON path too long or complex"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert!(Condition::parse("[BODY].items[?@.state == 'down'].name == x").is_ok());
    assert!(Condition::parse("len([BODY].data[0].users[-1].roles) > 0").is_ok());
}

/// Found by fuzzing (issue #14): a JSON path ending inside a `\u` escape made the path
/// parser panic (`unreachable!` on an incomplete input). Unfinished escapes are refused
/// with their reason; finished ones, and an escaped backslash before `u`, still parse.
#[test]
fn unfinished_json_path_escapes_are_refused_not_a_panic() {
    for (path, why) in [
        (r"[BODY]['\u", r"\u needs four hex digits"),
        (r"[BODY]['\u12", r"\u needs four hex digits"),
        (r"[BODY]['\uD83D", "a high surrogate needs"),
        (r"[BODY]['\uD83D\u", "a high surrogate needs"),
        (r"[BODY]['\uD83D\u00e9']", "a high surrogate needs"),
        (r"[BODY]['a\", r"a \ escape at the end"),
    ] {
        let err = Condition::parse(&format!("1 == {path}")).expect_err(path);
        assert!(err.message.contains("invalid JSON path") && err.message.contains(why), "{path}: {err}");
    }
    for path in [r"[BODY]['\u00e9']", r"[BODY]['\uD83D\uDE00']", r"[BODY]['a\\u']"] {
        assert!(Condition::parse(&format!("{path} == 1")).is_ok(), "{path}");
    }
}
