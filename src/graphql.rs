//! Just enough GraphQL to read one operation: a query or a mutation made of
//! fields with arguments (literals or `$variables`) and selection sets.
//! Fragments and directives are refused with a clear message; variable
//! definitions are read past (their values come with the request).

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

/// Parses a document holding one operation.
pub fn parse(document: &str) -> Result<Operation, String> {
    let tokens = tokenize(document)?;
    Parser { tokens, at: 0 }.operation()
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

    #[test]
    fn a_mutation_with_an_input_object_parses() {
        let op = parse(
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
        let op = parse(r#"{ project(fullPath: "a/\"b\"") { policy(keep: TEN_PACKAGE_FILES, n: [1, -2.5]) { x } } }"#).unwrap();
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
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selection_keeps_only_what_was_asked() {
        let op = parse("{ p { a renamed: b } }").unwrap();
        let value = json!({"a": 1, "b": 2, "c": 3});
        assert_eq!(
            select(&value, &op.selections[0].selections),
            json!({"a": 1, "renamed": 2})
        );
    }
}
