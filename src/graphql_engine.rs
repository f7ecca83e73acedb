//! Just enough GraphQL to read one operation: a query or a mutation made of
//! fields with arguments (literals or `$variables`) and selection sets.
//! Fragments and directives are refused with a clear message; variable
//! definitions are read past (their values come with the request).
//!
//! Hostile documents are bounded before the (recursive) parser sees them:
//! a size limit, and a depth limit measured by one flat pass over the tokens
//! (GitLab's limits and messages), so no document can exhaust the stack.

use serde_json::{Map, Value as Json};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Enum(String),
    Variable(String),
    List(Vec<Value>),
    Object(Vec<(String, Value)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub alias: Option<String>,
    pub name: String,
    pub arguments: Vec<(String, Value)>,
    pub selections: Vec<Field>,
}

impl Field {
    /// The key the field's value has in the answer.
    pub fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub kind: OperationKind,
    pub selections: Vec<Field>,
}

/// GitLab's limit on the size of a query document, in characters.
pub const MAX_QUERY_CHARS: usize = 10_000;
/// GitLab's limits on how deep selection sets nest: anonymous callers, and
/// callers who present a token.
pub const ANONYMOUS_MAX_DEPTH: usize = 15;
pub const AUTHENTICATED_MAX_DEPTH: usize = 20;
/// How many brackets of any kind (selection sets, argument lists, list and
/// object values) may be open at once. Far above what any real document
/// needs; it bounds the parser's recursion.
pub const MAX_NESTING: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Punct(char),
    Spread,
    Name(String),
    Number(String),
    String(String),
}

fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() || c == ',' || c == '\u{feff}' => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' | '}' | '(' | ')' | ':' | '$' | '!' | '[' | ']' | '=' | '@' | '|' | '&' => {
                tokens.push(Token::Punct(c));
                i += 1;
            }
            '.' if chars[i..].starts_with(&['.', '.', '.']) => {
                tokens.push(Token::Spread);
                i += 3;
            }
            c if c == '_' || c.is_ascii_alphabetic() => {
                let start = i;
                while i < chars.len() && (chars[i] == '_' || chars[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                tokens.push(Token::Name(chars[start..i].iter().collect()));
            }
            c if c == '-' || c.is_ascii_digit() => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "+-.".contains(chars[i]))
                {
                    i += 1;
                }
                tokens.push(Token::Number(chars[start..i].iter().collect()));
            }
            '"' => {
                let (text, next) = read_string(&chars, i)?;
                tokens.push(Token::String(text));
                i = next;
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(tokens)
}

/// Reads a `"..."` or `"""..."""` string starting at `start`.
fn read_string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    if chars[start..].starts_with(&['"', '"', '"']) {
        let mut i = start + 3;
        let mut text = String::new();
        while i < chars.len() {
            if chars[i..].starts_with(&['"', '"', '"']) {
                return Ok((text.trim().to_string(), i + 3));
            }
            text.push(chars[i]);
            i += 1;
        }
        return Err("unterminated block string".into());
    }
    let mut i = start + 1;
    let mut text = String::new();
    while i < chars.len() {
        match chars[i] {
            '"' => return Ok((text, i + 1)),
            '\\' => {
                let escaped = *chars.get(i + 1).ok_or("unterminated string")?;
                i += 2;
                match escaped {
                    'n' => text.push('\n'),
                    't' => text.push('\t'),
                    'r' => text.push('\r'),
                    'b' => text.push('\u{8}'),
                    'f' => text.push('\u{c}'),
                    'u' => {
                        let hex: String = chars
                            .get(i..i + 4)
                            .ok_or("bad \\u escape")?
                            .iter()
                            .collect();
                        let code = u32::from_str_radix(&hex, 16).map_err(|_| "bad \\u escape")?;
                        text.push(char::from_u32(code).ok_or("bad \\u escape")?);
                        i += 4;
                    }
                    other => text.push(other),
                }
            }
            '\n' => return Err("unterminated string".into()),
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    Err("unterminated string".into())
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, punct: char) -> Result<(), String> {
        match self.next() {
            Some(Token::Punct(c)) if c == punct => Ok(()),
            other => Err(format!(
                "expected '{punct}', found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn is(&self, punct: char) -> bool {
        self.peek() == Some(&Token::Punct(punct))
    }

    fn name(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Name(name)) => Ok(name),
            other => Err(format!(
                "expected a name, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn operation(&mut self) -> Result<Operation, String> {
        let kind = match self.peek() {
            Some(Token::Punct('{')) => OperationKind::Query,
            Some(Token::Name(n)) if n == "query" => OperationKind::Query,
            Some(Token::Name(n)) if n == "mutation" => OperationKind::Mutation,
            Some(Token::Name(n)) if n == "fragment" => {
                return Err("fragments are not supported".into())
            }
            other => return Err(format!("expected an operation, found {}", describe(other))),
        };
        if !self.is('{') {
            self.next();
            if matches!(self.peek(), Some(Token::Name(_))) {
                self.next();
            }
            if self.is('(') {
                self.skip_balanced('(', ')')?;
            }
        }
        let selections = self.selection_set()?;
        if self.peek().is_some() {
            return Err("only one operation per request is supported".into());
        }
        Ok(Operation { kind, selections })
    }

    fn skip_balanced(&mut self, open: char, close: char) -> Result<(), String> {
        let mut depth = 0;
        loop {
            match self.next() {
                Some(Token::Punct(c)) if c == open => depth += 1,
                Some(Token::Punct(c)) if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => return Err(format!("missing '{close}'")),
            }
        }
    }

    fn selection_set(&mut self) -> Result<Vec<Field>, String> {
        self.expect('{')?;
        let mut fields = Vec::new();
        while !self.is('}') {
            match self.peek() {
                Some(Token::Spread) => return Err("fragments are not supported".into()),
                Some(Token::Punct('@')) => return Err("directives are not supported".into()),
                None => return Err("missing '}'".into()),
                _ => fields.push(self.field()?),
            }
        }
        self.expect('}')?;
        Ok(fields)
    }

    fn field(&mut self) -> Result<Field, String> {
        let first = self.name()?;
        let (alias, name) = if self.is(':') {
            self.next();
            (Some(first), self.name()?)
        } else {
            (None, first)
        };
        let mut arguments = Vec::new();
        if self.is('(') {
            self.next();
            while !self.is(')') {
                let argument = self.name()?;
                self.expect(':')?;
                arguments.push((argument, self.value()?));
            }
            self.expect(')')?;
        }
        if self.is('@') {
            return Err("directives are not supported".into());
        }
        let selections = if self.is('{') {
            self.selection_set()?
        } else {
            Vec::new()
        };
        Ok(Field {
            alias,
            name,
            arguments,
            selections,
        })
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.next() {
            Some(Token::Punct('$')) => Ok(Value::Variable(self.name()?)),
            Some(Token::Number(n)) => Ok(Value::Number(n)),
            Some(Token::String(s)) => Ok(Value::String(s)),
            Some(Token::Name(n)) => Ok(match n.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => Value::Enum(n),
            }),
            Some(Token::Punct('[')) => {
                let mut items = Vec::new();
                while !self.is(']') {
                    if self.peek().is_none() {
                        return Err("missing ']'".into());
                    }
                    items.push(self.value()?);
                }
                self.next();
                Ok(Value::List(items))
            }
            Some(Token::Punct('{')) => {
                let mut entries = Vec::new();
                while !self.is('}') {
                    let key = self.name()?;
                    self.expect(':')?;
                    entries.push((key, self.value()?));
                }
                self.next();
                Ok(Value::Object(entries))
            }
            other => Err(format!(
                "expected a value, found {}",
                describe(other.as_ref())
            )),
        }
    }
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end".into(),
        Some(Token::Punct(c)) => format!("'{c}'"),
        Some(Token::Spread) => "'...'".into(),
        Some(Token::Name(n)) => format!("'{n}'"),
        Some(Token::Number(n)) => n.clone(),
        Some(Token::String(_)) => "a string".into(),
    }
}

/// Parses a document holding one operation whose selection sets nest at
/// most `max_depth` deep.
pub fn parse(document: &str, max_depth: usize) -> Result<Operation, String> {
    if document.chars().count() > MAX_QUERY_CHARS {
        return Err("Query too large".into());
    }
    let tokens = tokenize(document)?;
    let nesting = measure_nesting(&tokens);
    if nesting.selection_depth > max_depth {
        return Err(format!(
            "Query has depth of {}, which exceeds max depth of {max_depth}",
            nesting.selection_depth
        ));
    }
    if nesting.brackets > MAX_NESTING {
        return Err(format!(
            "Query has nesting of {}, which exceeds max nesting of {MAX_NESTING}",
            nesting.brackets
        ));
    }
    Parser { tokens, at: 0 }.operation()
}

/// The deepest a document nests, measured without recursion.
#[derive(Debug, Default, PartialEq, Eq)]
struct Nesting {
    /// Selection sets open at once: GraphQL's query depth.
    selection_depth: usize,
    /// Brackets of every kind open at once.
    brackets: usize,
}

/// One pass over the tokens with a stack of open brackets. A `{` is a
/// selection set unless an argument list is open (then it is an object
/// value). A closer only pops its own opener, so the stack is never smaller
/// than the parser's recursion.
fn measure_nesting(tokens: &[Token]) -> Nesting {
    let mut open: Vec<(char, bool)> = Vec::new();
    let mut selection_sets = 0;
    let mut deepest = Nesting::default();
    for token in tokens {
        let Token::Punct(c) = token else { continue };
        match c {
            '{' | '[' | '(' => {
                let in_arguments = open.iter().any(|(o, _)| *o == '(');
                let is_selection = *c == '{' && !in_arguments;
                selection_sets += usize::from(is_selection);
                open.push((*c, is_selection));
                deepest.selection_depth = deepest.selection_depth.max(selection_sets);
                deepest.brackets = deepest.brackets.max(open.len());
            }
            '}' | ']' | ')' => {
                let opener = match c {
                    '}' => '{',
                    ']' => '[',
                    _ => '(',
                };
                if let Some(&(top, is_selection)) = open.last() {
                    if top == opener {
                        open.pop();
                        selection_sets -= usize::from(is_selection);
                    }
                }
            }
            _ => {}
        }
    }
    deepest
}

impl Value {
    /// The value as JSON, variables taken from the request's `variables`.
    pub fn resolve(&self, variables: &Map<String, Json>) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => serde_json::from_str(n).unwrap_or(Json::String(n.clone())),
            Value::String(s) | Value::Enum(s) => Json::String(s.clone()),
            Value::Variable(name) => variables.get(name).cloned().unwrap_or(Json::Null),
            Value::List(items) => Json::Array(items.iter().map(|v| v.resolve(variables)).collect()),
            Value::Object(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.resolve(variables)))
                    .collect(),
            ),
        }
    }
}

/// Keeps, from a resolved value, only what the selection set asks for, under
/// the keys (aliases) it asks for them.
pub fn select(value: &Json, selections: &[Field]) -> Json {
    if selections.is_empty() {
        return value.clone();
    }
    match value {
        Json::Object(map) => Json::Object(
            selections
                .iter()
                .map(|field| {
                    let inner = map.get(&field.name).unwrap_or(&Json::Null);
                    (field.key().to_string(), select(inner, &field.selections))
                })
                .collect(),
        ),
        Json::Array(items) => {
            Json::Array(items.iter().map(|item| select(item, selections)).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_deep(document: &str) -> Result<Operation, String> {
        parse(document, AUTHENTICATED_MAX_DEPTH)
    }

    fn nested_fields(depth: usize) -> String {
        format!("{}x{}", "{ a ".repeat(depth - 1) + "{ ", " }".repeat(depth))
    }

    #[test]
    fn a_mutation_with_an_input_object_parses() {
        let op = parse_deep(
            r#"mutation Update($regex: String) {
                 updateNamespacePackageSettings(input: { namespacePath: "acme", genericDuplicatesAllowed: false,
                                                         genericDuplicateExceptionRegex: $regex }) {
                   settings: packageSettings { genericDuplicatesAllowed }  # a comment
                   errors
                 }
               }"#,
        )
        .unwrap();
        assert_eq!(op.kind, OperationKind::Mutation);
        let field = &op.selections[0];
        assert_eq!(field.name, "updateNamespacePackageSettings");
        let variables = json!({"regex": "x.*"}).as_object().unwrap().clone();
        assert_eq!(
            field.arguments[0].1.resolve(&variables),
            json!({"namespacePath": "acme", "genericDuplicatesAllowed": false, "genericDuplicateExceptionRegex": "x.*"})
        );
        assert_eq!(field.selections[0].key(), "settings");
        assert_eq!(field.selections[1].name, "errors");
    }

    #[test]
    fn shorthand_queries_enums_and_escapes_parse() {
        let op = parse_deep(r#"{ project(fullPath: "a/\"b\"") { policy(keep: TEN_PACKAGE_FILES, n: [1, -2.5]) { x } } }"#).unwrap();
        assert_eq!(op.kind, OperationKind::Query);
        let project = &op.selections[0];
        assert_eq!(project.arguments[0].1, Value::String("a/\"b\"".into()));
        let policy = &project.selections[0];
        assert_eq!(
            policy.arguments[0].1,
            Value::Enum("TEN_PACKAGE_FILES".into())
        );
        assert_eq!(policy.arguments[1].1.resolve(&Map::new()), json!([1, -2.5]));
    }

    #[test]
    fn unsupported_or_broken_documents_are_errors() {
        for bad in [
            "",
            "{",
            "{ a(b: ) }",
            "{ ...F }",
            "fragment F on T { a }",
            "{ a @skip(if: true) }",
            "{ a } { b }",
            "{ a(s: \"open) }",
        ] {
            assert!(parse_deep(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selection_keeps_only_what_was_asked() {
        let op = parse_deep("{ p { a renamed: b } }").unwrap();
        let value = json!({"a": 1, "b": 2, "c": 3});
        assert_eq!(
            select(&value, &op.selections[0].selections),
            json!({"a": 1, "renamed": 2})
        );
    }

    #[test]
    fn depth_is_limited_with_gitlabs_message() {
        assert!(parse(&nested_fields(15), ANONYMOUS_MAX_DEPTH).is_ok());
        assert_eq!(
            parse(&nested_fields(16), ANONYMOUS_MAX_DEPTH).unwrap_err(),
            "Query has depth of 16, which exceeds max depth of 15"
        );
        assert!(parse(&nested_fields(20), AUTHENTICATED_MAX_DEPTH).is_ok());
        // Thousands deep (the 5 KB body that used to exhaust the stack).
        assert_eq!(
            parse(&"{".repeat(2500), AUTHENTICATED_MAX_DEPTH).unwrap_err(),
            "Query has depth of 2500, which exceeds max depth of 20"
        );
    }

    #[test]
    fn deeply_nested_values_are_refused() {
        let values = |n: usize| format!("{{ a(x: {}1{}) }}", "[".repeat(n), "]".repeat(n));
        assert!(parse_deep(&values(10)).is_ok());
        assert_eq!(
            parse_deep(&values(3000)).unwrap_err(),
            "Query has nesting of 3002, which exceeds max nesting of 64"
        );
        let objects = format!("{{ a(x: {}) }}", "{b: ".repeat(2000));
        assert!(parse_deep(&objects)
            .unwrap_err()
            .contains("exceeds max nesting"));
        // Unbalanced closers never hide openers.
        let tricky = format!("{{ a(x: {}) }}", "[)".repeat(3000));
        assert!(parse_deep(&tricky)
            .unwrap_err()
            .contains("exceeds max nesting"));
    }

    #[test]
    fn large_documents_are_refused() {
        let padding = " ".repeat(MAX_QUERY_CHARS);
        assert_eq!(
            parse_deep(&format!("{{ a }}{padding}")).unwrap_err(),
            "Query too large"
        );
        assert!(parse_deep(&format!("{{ a }}{}", &padding[6..])).is_ok());
    }

    #[test]
    fn braces_inside_arguments_are_values_not_depth() {
        let op = parse("mutation { m(input: {a: {b: {c: 1}}}) { x { y } } }", 3).unwrap();
        assert_eq!(op.selections[0].selections[0].selections[0].name, "y");
    }
}

/// Hostile documents: any text parses or is refused with a message, never a
/// panic or a stack overflow, and the depth limit holds exactly.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Documents made of GraphQL's own pieces, brackets weighted so that
    /// deep and unbalanced nesting is common.
    fn token_soup() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => prop::sample::select(vec!["{", "}", "[", "]", "(", ")"]),
            3 => prop::sample::select(vec![
                "a", "b: ", ":", "$v", "!", "@", "...", "query ", "mutation ", "fragment ", "1",
                "-2.5", "true", "null", "ENUM", "\"s\"", "\"\\u00e9\"", "\"\\u12\"", "\"open",
                "\"\"\"block\"\"\"", "#c\n", " ", ",", "=",
            ]),
        ];
        prop::collection::vec(piece, 0..2000).prop_map(|pieces| pieces.concat())
    }

    fn exercise(operation: &Operation) {
        let variables = json!({"v": [1, {"a": null}]}).as_object().unwrap().clone();
        let answer = json!({"a": [1, {"a": null, "b": "x"}], "b": {"a": 2}});
        for field in &operation.selections {
            for (_, value) in &field.arguments {
                let _ = value.resolve(&variables);
            }
            let _ = select(&answer, &field.selections);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_parses_or_is_refused(document in "\\PC{0,200}") {
            if let Ok(operation) = parse(&document, AUTHENTICATED_MAX_DEPTH) {
                exercise(&operation);
            }
        }

        #[test]
        fn token_soup_parses_or_is_refused(document in token_soup()) {
            match parse(&document, ANONYMOUS_MAX_DEPTH) {
                Ok(operation) => exercise(&operation),
                Err(message) => prop_assert!(!message.is_empty()),
            }
        }

        #[test]
        fn selection_depth_is_accepted_up_to_the_limit_only(depth in 1usize..400) {
            let document = format!("{}x{}", "{ a ".repeat(depth - 1) + "{ ", " }".repeat(depth));
            let parsed = parse(&document, AUTHENTICATED_MAX_DEPTH);
            prop_assert_eq!(parsed.is_ok(), depth <= AUTHENTICATED_MAX_DEPTH, "{:?}", parsed.err());
        }

        #[test]
        fn value_nesting_is_accepted_up_to_the_limit_only(
            depth in 1usize..2000,
            object in any::<bool>(),
        ) {
            let (open, close) = if object { ("{k: ", "}") } else { ("[", "]") };
            let document = format!("{{ a(x: {}1{}) }}", open.repeat(depth), close.repeat(depth));
            let parsed = parse(&document, AUTHENTICATED_MAX_DEPTH);
            if document.chars().count() <= MAX_QUERY_CHARS {
                // `{`, `(` and the values' own brackets are open at once.
                prop_assert_eq!(parsed.is_ok(), depth + 2 <= MAX_NESTING, "{:?}", parsed.err());
            } else {
                prop_assert_eq!(parsed.unwrap_err(), "Query too large");
            }
        }
    }
}
