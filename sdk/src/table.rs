//! Server-side paging, sorting and filtering for a [`DataTable`](crate::dash_table::DataTable).
//!
//! [`FilterQuery::parse`] reads the `filter_query` prop in dash-table's filter syntax:
//! clauses `{column} operator value` joined by `&&` (or `and`). Operators are `=`/`eq`,
//! `!=`/`ne`, `<`/`lt`, `<=`/`le`, `>`/`gt`, `>=`/`ge`, `contains` and `datestartswith`,
//! each optionally prefixed with `s` (case-sensitive) or `i` (case-insensitive); values are
//! bare (`30`, `Paris`) or quoted with `"`, `'` or `` ` `` (backslash escapes the quote).
//! `||`, parentheses and unary operators are rejected with a [`FilterError`], which a
//! callback turns into the SDK's invalid-input error (a 4xx) with `?`.
//! [`SortBy`] reads `sort_by` and [`Page`] reads `page_current`/`page_size`.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;

use serde_json::Value;

use crate::error::Error;

/// A comparison of a filter clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=` / `eq`
    Eq,
    /// `!=` / `ne`
    Ne,
    /// `<` / `lt`
    Lt,
    /// `<=` / `le`
    Le,
    /// `>` / `gt`
    Gt,
    /// `>=` / `ge`
    Ge,
    /// `contains`
    Contains,
    /// `datestartswith`
    DateStartsWith,
}

/// Whether text comparisons respect case (`s` prefix or none) or ignore it (`i` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Case-sensitive (the default, or the `s` prefix).
    Sensitive,
    /// Case-insensitive (the `i` prefix).
    Insensitive,
}

/// The value a clause compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A bare value that reads as a number.
    Number(f64),
    /// Any other value, or a quoted one.
    Text(String),
}

impl Operand {
    fn as_number(&self) -> Option<f64> {
        match self {
            Operand::Number(x) => Some(*x),
            Operand::Text(text) => text.trim().parse().ok().filter(|x: &f64| x.is_finite()),
        }
    }

    fn text(&self) -> String {
        match self {
            Operand::Number(x) => format_number(*x),
            Operand::Text(text) => text.clone(),
        }
    }
}

/// A cell value a clause is tested against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// A number.
    Number(f64),
    /// Text.
    Text(&'a str),
}

/// One `{column} operator value` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// The column id between the braces.
    pub column: String,
    /// The comparison.
    pub operator: Operator,
    /// Case sensitivity of text comparisons.
    pub case: Case,
    /// The value compared with.
    pub value: Operand,
}

fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

impl Clause {
    /// Whether `cell` passes this clause. Numbers compare numerically when the value reads
    /// as a number; text compares as text; `contains` on a number looks in its decimal form.
    pub fn matches(&self, cell: Cell<'_>) -> bool {
        match (cell, self.operator) {
            (Cell::Number(x), Operator::Contains | Operator::DateStartsWith) => {
                self.matches_text(&format_number(x))
            }
            (Cell::Number(x), op) => match self.value.as_number() {
                Some(v) => compare(op, x.partial_cmp(&v)),
                None => op == Operator::Ne,
            },
            (Cell::Text(text), _) => self.matches_text(text),
        }
    }

    fn matches_text(&self, text: &str) -> bool {
        let value = self.value.text();
        let (cell, value) = match self.case {
            Case::Sensitive => (text.to_owned(), value),
            Case::Insensitive => (text.to_lowercase(), value.to_lowercase()),
        };
        match self.operator {
            Operator::Contains => cell.contains(&value),
            Operator::DateStartsWith => cell.starts_with(&value),
            op => compare(op, Some(cell.as_str().cmp(value.as_str()))),
        }
    }
}

fn compare(op: Operator, ordering: Option<Ordering>) -> bool {
    let Some(ordering) = ordering else {
        return op == Operator::Ne;
    };
    match op {
        Operator::Eq => ordering == Ordering::Equal,
        Operator::Ne => ordering != Ordering::Equal,
        Operator::Lt => ordering == Ordering::Less,
        Operator::Le => ordering != Ordering::Greater,
        Operator::Gt => ordering == Ordering::Greater,
        Operator::Ge => ordering != Ordering::Less,
        Operator::Contains | Operator::DateStartsWith => false,
    }
}

/// A parsed `filter_query`: clauses that must all hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterQuery {
    /// The clauses, in the order written.
    pub clauses: Vec<Clause>,
}

/// Why a `filter_query` did not parse: where (a character offset) and what was there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Character offset of the offending token.
    pub position: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed filter_query at position {}: {}",
            self.position, self.message
        )
    }
}

impl std::error::Error for FilterError {}

impl From<FilterError> for Error {
    fn from(error: FilterError) -> Self {
        Error::InvalidInput(error.to_string())
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn error<T>(&self, position: usize, message: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError {
            position,
            message: message.into(),
        })
    }

    fn skip_space(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    /// The run of non-space characters starting here.
    fn word(&self) -> String {
        self.chars[self.at..]
            .iter()
            .take_while(|c| !c.is_whitespace())
            .collect()
    }

    fn column(&mut self) -> Result<String, FilterError> {
        let start = self.at;
        if self.peek() != Some('{') {
            let word = self.word();
            return self.error(start, format!("expected `{{column}}`, found `{word}`"));
        }
        self.at += 1;
        let mut name = String::new();
        loop {
            match self.peek() {
                None => return self.error(start, "unclosed `{` in column name"),
                Some('\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(c) => name.push(c),
                        None => return self.error(start, "unclosed `{` in column name"),
                    }
                }
                Some('}') => {
                    self.at += 1;
                    break;
                }
                Some(c) => name.push(c),
            }
            self.at += 1;
        }
        if name.is_empty() {
            return self.error(start, "empty column name `{}`");
        }
        Ok(name)
    }

    fn operator(&mut self) -> Result<(Operator, Case), FilterError> {
        let start = self.at;
        let symbolic: String = self.chars[self.at..]
            .iter()
            .take_while(|c| matches!(c, 's' | 'i' | '=' | '!' | '<' | '>'))
            .collect();
        let word = if symbolic.contains(['=', '!', '<', '>']) {
            symbolic
        } else {
            self.chars[self.at..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect()
        };
        if word.is_empty() {
            let found = self.word();
            return self.error(start, format!("expected an operator, found `{found}`"));
        }
        let (case, name) = match word.as_str() {
            "is" => {
                return self.error(start, "unary operators (`is ...`) are not supported");
            }
            w if w.len() > 1 && w.starts_with('s') && parse_operator(&w[1..]).is_some() => {
                (Case::Sensitive, &w[1..])
            }
            w if w.len() > 1 && w.starts_with('i') && parse_operator(&w[1..]).is_some() => {
                (Case::Insensitive, &w[1..])
            }
            w => (Case::Sensitive, w),
        };
        let Some(op) = parse_operator(name) else {
            return self.error(start, format!("unknown operator `{word}`"));
        };
        self.at += word.chars().count();
        Ok((op, case))
    }

    fn value(&mut self) -> Result<Operand, FilterError> {
        let start = self.at;
        match self.peek() {
            None => self.error(start, "expected a value, found the end of the query"),
            Some(quote @ ('"' | '\'' | '`')) => {
                self.at += 1;
                let mut text = String::new();
                loop {
                    match self.peek() {
                        None => {
                            return self.error(start, format!("unclosed quote `{quote}`"));
                        }
                        Some('\\') if self.chars.get(self.at + 1).is_some() => {
                            text.push(self.chars[self.at + 1]);
                            self.at += 2;
                        }
                        Some(c) if c == quote => {
                            self.at += 1;
                            return Ok(Operand::Text(text));
                        }
                        Some(c) => {
                            text.push(c);
                            self.at += 1;
                        }
                    }
                }
            }
            Some('{') => self.error(start, "comparing two columns is not supported"),
            Some(_) => {
                let word = self.word();
                if word == "&&" || word == "||" {
                    return self.error(start, format!("expected a value, found `{word}`"));
                }
                self.at += word.chars().count();
                Ok(match word.parse::<f64>() {
                    Ok(x) if x.is_finite() => Operand::Number(x),
                    _ => Operand::Text(word),
                })
            }
        }
    }
}

fn parse_operator(name: &str) -> Option<Operator> {
    Some(match name {
        "=" | "eq" => Operator::Eq,
        "!=" | "ne" => Operator::Ne,
        "<" | "lt" => Operator::Lt,
        "<=" | "le" => Operator::Le,
        ">" | "gt" => Operator::Gt,
        ">=" | "ge" => Operator::Ge,
        "contains" => Operator::Contains,
        "datestartswith" => Operator::DateStartsWith,
        _ => return None,
    })
}

impl FilterQuery {
    /// Parse dash-table's filter syntax; an empty (or blank) query has no clauses.
    pub fn parse(query: &str) -> Result<FilterQuery, FilterError> {
        let mut parser = Parser {
            chars: query.chars().collect(),
            at: 0,
        };
        let mut clauses = Vec::new();
        parser.skip_space();
        if parser.peek().is_none() {
            return Ok(FilterQuery { clauses });
        }
        loop {
            let column = parser.column()?;
            parser.skip_space();
            let (operator, case) = parser.operator()?;
            parser.skip_space();
            let value = parser.value()?;
            clauses.push(Clause {
                column,
                operator,
                case,
                value,
            });
            parser.skip_space();
            let start = parser.at;
            let word = parser.word();
            match word.as_str() {
                "" => return Ok(FilterQuery { clauses }),
                "&&" => parser.at += 2,
                w if w.eq_ignore_ascii_case("and") => parser.at += 3,
                "||" => return parser.error(start, "`||` is not supported; use `&&`"),
                w if w.eq_ignore_ascii_case("or") => {
                    return parser.error(start, "`or` is not supported; use `&&`");
                }
                w => return parser.error(start, format!("expected `&&`, found `{w}`")),
            }
            parser.skip_space();
            if parser.peek().is_none() {
                return parser.error(start, "`&&` with nothing after it");
            }
        }
    }

    /// Parse the `filter_query` prop as a callback receives it: `null` is no filter.
    pub fn from_value(value: Option<&Value>) -> Result<FilterQuery, Error> {
        match value {
            None | Some(Value::Null) => Ok(FilterQuery::default()),
            Some(Value::String(query)) => Ok(FilterQuery::parse(query)?),
            Some(other) => Err(Error::invalid_input(format!(
                "filter_query must be a string, not {other}"
            ))),
        }
    }

    /// Whether there are no clauses.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Smallest first.
    Ascending,
    /// Largest first.
    Descending,
}

/// One entry of `sort_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The column id.
    pub column: String,
    /// The direction.
    pub direction: Direction,
}

/// The `sort_by` prop: the sort keys, most significant first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SortBy(pub Vec<SortKey>);

impl SortBy {
    /// Read `sort_by` (`[{"column_id": "a", "direction": "asc"}]`); `null` is no sort.
    pub fn from_value(value: Option<&Value>) -> Result<SortBy, Error> {
        let entries = match value {
            None | Some(Value::Null) => return Ok(SortBy::default()),
            Some(Value::Array(entries)) => entries,
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "sort_by must be a list, not {other}"
                )));
            }
        };
        let mut keys = Vec::with_capacity(entries.len());
        for entry in entries {
            let column = entry.get("column_id").and_then(Value::as_str);
            let direction = match entry.get("direction").and_then(Value::as_str) {
                Some("asc") => Some(Direction::Ascending),
                Some("desc") => Some(Direction::Descending),
                _ => None,
            };
            match (column, direction) {
                (Some(column), Some(direction)) => keys.push(SortKey {
                    column: column.to_owned(),
                    direction,
                }),
                _ => {
                    return Err(Error::invalid_input(format!(
                        "a sort_by entry needs column_id and direction asc|desc: {entry}"
                    )));
                }
            }
        }
        Ok(SortBy(keys))
    }

    /// Whether nothing is sorted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The page a custom-paged table asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Zero-based page number.
    pub current: usize,
    /// Rows per page (at least 1).
    pub size: usize,
}

impl Page {
    /// The largest page size accepted, so one request cannot ask for every row.
    pub const MAX_SIZE: usize = 1000;

    /// Read `page_current` and `page_size`; `null` means page 0 and `default_size`.
    pub fn from_values(
        current: Option<&Value>,
        size: Option<&Value>,
        default_size: usize,
    ) -> Result<Page, Error> {
        let read = |value: Option<&Value>, name: &str, default: usize| match value {
            None | Some(Value::Null) => Ok(default),
            Some(value) => value
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    Error::invalid_input(format!("{name} must be a whole number, not {value}"))
                }),
        };
        let current = read(current, "page_current", 0)?;
        let size = read(size, "page_size", default_size)?;
        if size == 0 || size > Self::MAX_SIZE {
            return Err(Error::invalid_input(format!(
                "page_size must be between 1 and {}, not {size}",
                Self::MAX_SIZE
            )));
        }
        Ok(Page { current, size })
    }

    /// How many pages `total` rows fill (at least 1, so an empty table still has a page).
    pub fn count(&self, total: usize) -> usize {
        total.div_ceil(self.size).max(1)
    }

    /// The rows of this page among `total` rows (empty past the end).
    pub fn range(&self, total: usize) -> Range<usize> {
        let start = self.current.saturating_mul(self.size).min(total);
        start..start.saturating_add(self.size).min(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clause(column: &str, operator: Operator, case: Case, value: Operand) -> Clause {
        Clause {
            column: column.into(),
            operator,
            case,
            value,
        }
    }

    #[test]
    fn parses_what_dash_table_writes() {
        let query =
            FilterQuery::parse("{amount} s> 30 && {city} icontains \"new y\"").expect("valid");
        assert_eq!(
            query.clauses,
            vec![
                clause(
                    "amount",
                    Operator::Gt,
                    Case::Sensitive,
                    Operand::Number(30.0)
                ),
                clause(
                    "city",
                    Operator::Contains,
                    Case::Insensitive,
                    Operand::Text("new y".into())
                ),
            ]
        );
        for (text, op) in [
            ("=", Operator::Eq),
            ("eq", Operator::Eq),
            ("!=", Operator::Ne),
            ("ne", Operator::Ne),
            ("<", Operator::Lt),
            ("lt", Operator::Lt),
            ("<=", Operator::Le),
            ("le", Operator::Le),
            (">", Operator::Gt),
            ("gt", Operator::Gt),
            (">=", Operator::Ge),
            ("ge", Operator::Ge),
            ("contains", Operator::Contains),
            ("datestartswith", Operator::DateStartsWith),
        ] {
            for (prefix, case) in [
                ("", Case::Sensitive),
                ("s", Case::Sensitive),
                ("i", Case::Insensitive),
            ] {
                let q = FilterQuery::parse(&format!("{{x}} {prefix}{text} 'v'")).expect("valid");
                assert_eq!(q.clauses[0].operator, op, "{prefix}{text}");
                assert_eq!(q.clauses[0].case, case, "{prefix}{text}");
            }
        }
        let q = FilterQuery::parse("{a b\\}} eq `it\\`s` and {n}>=-1.5").expect("valid");
        assert_eq!(q.clauses[0].column, "a b}");
        assert_eq!(q.clauses[0].value, Operand::Text("it`s".into()));
        assert_eq!(q.clauses[1].value, Operand::Number(-1.5));
        assert!(FilterQuery::parse("   ").expect("valid").is_empty());
    }

    #[test]
    fn errors_name_the_position_and_token() {
        let err = FilterQuery::parse("{a} s> 30 && {b} frob 2").expect_err("invalid");
        assert_eq!(err.position, 17);
        assert!(err.to_string().contains("unknown operator `frob`"), "{err}");
        let err = FilterQuery::parse("{a} > 1 || {b} = 2").expect_err("invalid");
        assert_eq!(err.position, 8);
        assert!(
            FilterQuery::parse("a = 1")
                .expect_err("invalid")
                .message
                .contains("`a`")
        );
        assert!(FilterQuery::parse("{a} =").is_err());
        assert!(FilterQuery::parse("{a} = 'x").is_err());
        assert!(FilterQuery::parse("{a = 1").is_err());
        assert!(FilterQuery::parse("{a} = 1 &&").is_err());
        assert!(FilterQuery::parse("{a} = 1 2").is_err());
        assert!(FilterQuery::parse("{a} is blank").is_err());
        let error: Error = FilterQuery::parse("{}").expect_err("invalid").into();
        assert!(matches!(error, Error::InvalidInput(_)));
    }

    #[test]
    fn clauses_match_cells() {
        let q = FilterQuery::parse("{n} > 30").expect("valid");
        assert!(q.clauses[0].matches(Cell::Number(31.0)));
        assert!(!q.clauses[0].matches(Cell::Number(30.0)));
        let q = FilterQuery::parse("{c} icontains PAR").expect("valid");
        assert!(q.clauses[0].matches(Cell::Text("Paris")));
        let q = FilterQuery::parse("{c} contains PAR").expect("valid");
        assert!(!q.clauses[0].matches(Cell::Text("Paris")));
        let q = FilterQuery::parse("{c} = Paris").expect("valid");
        assert!(q.clauses[0].matches(Cell::Text("Paris")));
        let q = FilterQuery::parse("{n} contains 12").expect("valid");
        assert!(q.clauses[0].matches(Cell::Number(3120.0)));
        let q = FilterQuery::parse("{d} datestartswith 2024-01").expect("valid");
        assert!(q.clauses[0].matches(Cell::Text("2024-01-15")));
    }

    #[test]
    fn sort_by_and_pages() {
        let sort = SortBy::from_value(Some(&json!([{"column_id": "a", "direction": "desc"}])))
            .expect("valid");
        assert_eq!(sort.0[0].direction, Direction::Descending);
        assert!(
            SortBy::from_value(Some(&Value::Null))
                .expect("valid")
                .is_empty()
        );
        assert!(SortBy::from_value(Some(&json!([{"column_id": "a"}]))).is_err());
        let page = Page::from_values(Some(&json!(2)), Some(&json!(10)), 25).expect("valid");
        assert_eq!(page.range(25), 20..25);
        assert_eq!(page.range(5), 5..5);
        assert_eq!(page.count(25), 3);
        assert_eq!(page.count(0), 1);
        assert_eq!(Page::from_values(None, None, 25).expect("valid").size, 25);
        assert!(Page::from_values(Some(&json!(-1)), None, 25).is_err());
        assert!(Page::from_values(None, Some(&json!(0)), 25).is_err());
        assert!(Page::from_values(None, Some(&json!(100_000)), 25).is_err());
    }

    /// A tiny xorshift generator: deterministic, no dependencies.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn the_parser_never_panics_on_random_or_mutated_input() {
        const SEEDS: &[&str] = &[
            "{amount} s> 30 && {city} icontains \"new y\"",
            "{a b\\}} eq `it\\`s` and {n}>=-1.5",
            "{date} datestartswith '2024-01' && {x} != 3",
            "{é} i<= 'ü\\'' && {n} ge 1e308",
        ];
        const PIECES: &[&str] = &[
            "{",
            "}",
            "\\",
            "\"",
            "'",
            "`",
            " ",
            "&&",
            "||",
            "and",
            "s",
            "i",
            "=",
            "!",
            "<",
            ">",
            "contains",
            "datestartswith",
            "is blank",
            "1",
            "-",
            ".",
            "e",
            "é",
            "ü",
            "\u{1F600}",
            "\t",
            "x",
            "(",
            ")",
            "\0",
            "\u{2003}",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut parsed = 0;
        for round in 0..20_000 {
            let mut chars: Vec<char> = if round % 3 == 0 {
                Vec::new()
            } else {
                SEEDS[rng.below(SEEDS.len())].chars().collect()
            };
            for _ in 0..1 + rng.below(8) {
                let at = if chars.is_empty() {
                    0
                } else {
                    rng.below(chars.len() + 1)
                };
                match rng.below(3) {
                    0 if !chars.is_empty() && at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => {
                        chars[at] = PIECES[rng.below(PIECES.len())]
                            .chars()
                            .next()
                            .unwrap_or(' ');
                    }
                    _ => {
                        let piece = PIECES[rng.below(PIECES.len())];
                        chars.splice(at..at, piece.chars());
                    }
                }
            }
            let text: String = chars.into_iter().collect();
            match FilterQuery::parse(&text) {
                Ok(query) => {
                    parsed += 1;
                    for clause in &query.clauses {
                        clause.matches(Cell::Number(1.0));
                        clause.matches(Cell::Text("x"));
                    }
                }
                Err(error) => assert!(error.position <= text.chars().count(), "{text:?}: {error}"),
            }
        }
        assert!(
            parsed > 100,
            "the mutations should keep some queries valid ({parsed})"
        );
    }
}
